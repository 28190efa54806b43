//! The interpreter loop. The micro-ops of [`super::micro`] run inline in
//! one `match`; every other instruction goes through [`Run::general`].

use super::context::Input;
use super::machine::{Machine, E2BIG, EINVAL, FUNC_HANDLE, MAP_HANDLE};
use super::maps::Maps;
use super::memory::Region;
use super::micro::{Load, Micro};
use super::scratch::Loop;
use super::scratch::{Frame, Scratch};
use super::{Env, VmError, MAX_FRAMES, STACK_SIZE};
use crate::ebpf::insn::{AluOp, AtomicOp, CallTarget, Endian, JmpOp, Op, Operand, Pseudo};

/// Most tail calls one run may make, as in the kernel (`MAX_TAIL_CALL_CNT`).
const MAX_TAIL_CALLS: u32 = 33;
const HELPER_TAIL_CALL: i32 = 12;
const HELPER_LOOP: i32 = 181;
/// `bpf_loop`'s most iterations (`BPF_MAX_LOOPS`).
const MAX_LOOPS: u64 = 1 << 23;

/// One program as a run sees it: its micro-ops, and what the budget
/// charges at each slot (see `functions::rest`).
#[derive(Clone, Copy)]
pub(super) struct Code<'p> {
    pub(super) ops: &'p [Micro],
    pub(super) rest: &'p [u32],
}

/// Registers r0-r10 live in 16 entries so that an index masked with 15 is
/// in bounds without a check; micro-ops only name r0-r10.
type Regs = [u64; 16];

#[inline(always)]
fn x(reg: u8) -> usize {
    (reg & 15) as usize
}

/// The offset and address of a load past a variable-length header, as
/// [`Micro::IndAddr`] and the start of [`Micro::IndCheck`] compute them:
/// `d = (u32)s + k`; false when `d > limit` (the jump), else `p = base + d`.
#[inline(always)]
fn address(r: &mut Regs, d: u8, s: u8, p: u8, base: u8, k: u64, limit: u64) -> bool {
    let off = (r[x(s)] as u32 as u64).wrapping_add(k);
    r[x(d)] = off;
    if off > limit {
        return false;
    }
    r[x(p)] = r[x(base)].wrapping_add(off);
    true
}

/// Where the general path sends the run.
enum Flow {
    Next(usize),
    Exit,
    /// Start over in `programs[p]`.
    TailCall(usize),
}

/// A run's state outside the registers.
struct Run<'a, 'm, 's> {
    m: Machine<'a, 'm, 's>,
    frames: &'s mut [Frame; MAX_FRAMES],
    depth: usize,
    /// Budget units spent (see `Env::budget`), and the most allowed.
    spent: u64,
    budget: u64,
    tail_calls: u32,
    /// Turns `may_goto` still allows before it jumps: the kernel's hidden
    /// per-run counter, which starts at `BPF_MAX_LOOPS`.
    may_goto: u64,
}

/// Runs `programs[0]`; `bpf_tail_call` moves to the program a program-array
/// map names (see `MapKind::ProgArray`). Each program ends with the
/// `FellOff` sentinel.
pub(super) fn run(
    programs: &[Code<'_>],
    input: &Input,
    maps: &mut Maps,
    env: &Env,
) -> Result<u64, VmError> {
    Scratch::with(|s| {
        let mut run = Run {
            m: Machine::new(input, maps, &mut s.stack, &mut s.ctx, env),
            frames: &mut s.frames,
            depth: 0,
            spent: 0,
            budget: env.budget,
            tail_calls: 0,
            may_goto: MAX_LOOPS,
        };
        run.go(programs)
    })
    .map_err(|e| *e)
}

impl Run<'_, '_, '_> {
    /// The error is boxed so that the result comes back in two registers:
    /// copying a wide `Result` out through the thread-local's closure after
    /// its narrow field stores stalled on store forwarding, a large share of
    /// a short run.
    fn go(&mut self, programs: &[Code<'_>]) -> Result<u64, Box<VmError>> {
        const SENTINEL: Code = Code {
            ops: &[Micro::FellOff],
            rest: &[0],
        };
        let mut prog = programs.first().copied().unwrap_or(SENTINEL);
        // The run starts with nothing spent: no load of what was just stored.
        let first = prog.rest[0] as u64;
        if first > self.budget {
            return Err(Box::new(VmError::Budget(self.budget)));
        }
        self.spent = first;
        // The loop indexes the ops alone.
        let mut code = prog.ops;
        let mut r: Regs = [0; 16];
        r[1] = Region::Ctx.base();
        r[10] = Region::Stack.base() + STACK_SIZE as u64;
        let mut pc = 0usize;
        loop {
            // Fast ops fall through to `pc += 1`; the rest `continue`.
            match code[pc] {
                Micro::MovK { dst, k } => r[x(dst)] = k,
                Micro::MovX { dst, src } => r[x(dst)] = r[x(src)],
                Micro::Mov32X { dst, src } => r[x(dst)] = r[x(src)] as u32 as u64,
                Micro::AddK { dst, k } => r[x(dst)] = r[x(dst)].wrapping_add(k),
                Micro::AddX { dst, src } => r[x(dst)] = r[x(dst)].wrapping_add(r[x(src)]),
                Micro::AndK { dst, k } => r[x(dst)] &= k,
                Micro::OrX { dst, src } => r[x(dst)] |= r[x(src)],
                Micro::LshK { dst, k } => r[x(dst)] <<= k,
                Micro::RshK { dst, k } => r[x(dst)] >>= k,
                Micro::AluK { op, wide, dst, k } => r[x(dst)] = alu(op, wide, r[x(dst)], k),
                Micro::AluX { op, wide, dst, src } => {
                    r[x(dst)] = alu(op, wide, r[x(dst)], r[x(src)])
                }
                Micro::Be16 { dst } => r[x(dst)] = (r[x(dst)] as u16).swap_bytes() as u64,
                Micro::Be32 { dst } => r[x(dst)] = (r[x(dst)] as u32).swap_bytes() as u64,
                Micro::Ja { target } => {
                    pc = target as usize;
                    continue;
                }
                Micro::JeqK { dst, k, target } => {
                    pc = if r[x(dst)] == k {
                        target as usize
                    } else {
                        pc + 1
                    };
                    continue;
                }
                Micro::JneK { dst, k, target } => {
                    pc = if r[x(dst)] != k {
                        target as usize
                    } else {
                        pc + 1
                    };
                    continue;
                }
                Micro::JgtK { dst, k, target } => {
                    pc = if r[x(dst)] > k {
                        target as usize
                    } else {
                        pc + 1
                    };
                    continue;
                }
                Micro::JgeK { dst, k, target } => {
                    pc = if r[x(dst)] >= k {
                        target as usize
                    } else {
                        pc + 1
                    };
                    continue;
                }
                Micro::JsetK { dst, k, target } => {
                    pc = if r[x(dst)] & k != 0 {
                        target as usize
                    } else {
                        pc + 1
                    };
                    continue;
                }
                Micro::JgtX { dst, src, target } => {
                    pc = if r[x(dst)] > r[x(src)] {
                        target as usize
                    } else {
                        pc + 1
                    };
                    continue;
                }
                Micro::JmpK {
                    op,
                    wide,
                    dst,
                    k,
                    target,
                } => {
                    pc = if compare(op, wide, r[x(dst)], k) {
                        target as usize
                    } else {
                        pc + 1
                    };
                    continue;
                }
                Micro::JmpX {
                    op,
                    wide,
                    dst,
                    src,
                    target,
                } => {
                    pc = if compare(op, wide, r[x(dst)], r[x(src)]) {
                        target as usize
                    } else {
                        pc + 1
                    };
                    continue;
                }
                Micro::Jmp32K {
                    cmp,
                    dst,
                    k,
                    target,
                } => {
                    pc = if cmp.holds(r[x(dst)] as u32, k) {
                        target as usize
                    } else {
                        pc + 1
                    };
                    continue;
                }
                Micro::LdxB { dst, src, off } => r[x(dst)] = self.ldx::<1>(pc, r[x(src)], off)?,
                Micro::LdxH { dst, src, off } => r[x(dst)] = self.ldx::<2>(pc, r[x(src)], off)?,
                Micro::LdxW { dst, src, off } => r[x(dst)] = self.ldx::<4>(pc, r[x(src)], off)?,
                Micro::LdxDW { dst, src, off } => r[x(dst)] = self.ldx::<8>(pc, r[x(src)], off)?,
                Micro::Check {
                    dst,
                    base,
                    end,
                    k,
                    target,
                } => {
                    let v = r[x(base)].wrapping_add(k);
                    r[x(dst)] = v;
                    pc = if v > r[x(end)] {
                        target as usize
                    } else {
                        pc + 3
                    };
                    continue;
                }
                Micro::LdxHBe { dst, src, off } => {
                    r[x(dst)] = (self.ldx::<2>(pc, r[x(src)], off)? as u16).swap_bytes() as u64;
                    pc += 2;
                    continue;
                }
                Micro::LdxWBe { dst, src, off } => {
                    r[x(dst)] = (self.ldx::<4>(pc, r[x(src)], off)? as u32).swap_bytes() as u64;
                    pc += 2;
                    continue;
                }
                Micro::LdJmp {
                    load,
                    cmp,
                    dst,
                    src,
                    slots,
                    off,
                    mask,
                    k,
                    target,
                } => {
                    let v = self.load(load, pc, r[x(src)], off)? & mask;
                    r[x(dst)] = v as u64;
                    pc = if cmp.holds(v, k) {
                        target as usize
                    } else {
                        pc + slots as usize
                    };
                    continue;
                }
                Micro::LdRange {
                    load,
                    dst,
                    src,
                    off,
                    lo,
                    hi,
                    inside,
                    outside,
                } => {
                    let v = self.load(load, pc, r[x(src)], off)?;
                    r[x(dst)] = v as u64;
                    pc = if lo <= v && v <= hi { inside } else { outside } as usize;
                    continue;
                }
                Micro::LdMsh {
                    dst,
                    src,
                    shift,
                    off,
                    mask,
                } => {
                    let b = self.ldx::<1>(pc, r[x(src)], off)? as u32;
                    r[x(dst)] = ((b & mask) << shift) as u64;
                    pc += 3;
                    continue;
                }
                Micro::IndCheck {
                    d,
                    s,
                    p,
                    base,
                    q,
                    end,
                    k2,
                    k,
                    limit,
                    target,
                    target2,
                } => {
                    if !address(&mut r, d, s, p, base, k.into(), limit.into()) {
                        pc = target as usize;
                        continue;
                    }
                    let v = r[x(p)].wrapping_add(k2 as u64);
                    r[x(q)] = v;
                    pc = if v > r[x(end)] {
                        target2 as usize
                    } else {
                        pc + 8
                    };
                    continue;
                }
                Micro::IndAddr {
                    d,
                    s,
                    p,
                    base,
                    k,
                    limit,
                    target,
                } => {
                    pc = if address(&mut r, d, s, p, base, k.into(), limit.into()) {
                        pc + 5
                    } else {
                        target as usize
                    };
                    continue;
                }
                Micro::JmpPair {
                    dst,
                    cmp,
                    cmp2,
                    k,
                    target,
                    k2,
                    target2,
                } => {
                    let v = r[x(dst)] as u32;
                    pc = if cmp.holds(v, k) {
                        target as usize
                    } else if cmp2.holds(v, k2) {
                        target2 as usize
                    } else {
                        pc + 2
                    };
                    continue;
                }
                Micro::MovKK { dst, dst2, k, k2 } => {
                    r[x(dst)] = k as u64;
                    r[x(dst2)] = k2 as u64;
                    pc += 2;
                    continue;
                }
                Micro::MovXKK {
                    d,
                    s,
                    dst,
                    dst2,
                    k,
                    k2,
                } => {
                    r[x(d)] = r[x(s)];
                    r[x(dst)] = k as u64;
                    r[x(dst2)] = k2 as u64;
                    pc += 3;
                    continue;
                }
                Micro::LdxWW {
                    dst,
                    dst2,
                    src,
                    off,
                    off2,
                } => {
                    r[x(dst)] = self.ldx::<4>(pc, r[x(src)], off)?;
                    r[x(dst2)] = self.ldx::<4>(pc + 1, r[x(src)], off2)?;
                    pc += 2;
                    continue;
                }
                Micro::RetK { k } => {
                    r[0] = k;
                    match self.exit(&mut r)? {
                        Some(ret) => {
                            pc = ret;
                            continue;
                        }
                        None => return Ok(r[0]),
                    }
                }
                Micro::Exit => match self.exit(&mut r)? {
                    Some(ret) => {
                        pc = ret;
                        continue;
                    }
                    None => return Ok(r[0]),
                },
                Micro::Op(op) => {
                    match self.general(op, pc, &mut r, prog)? {
                        Flow::Next(next) => pc = next,
                        Flow::Exit => return Ok(r[0]),
                        Flow::TailCall(p) => {
                            let Some(&target) = programs.get(p) else {
                                let what = format!("tail call to program {p}, which was not given");
                                return Err(Box::new(VmError::Unsupported { pc, what }));
                            };
                            self.charge(target.rest[0] as u64)?;
                            prog = target;
                            code = prog.ops;
                            r[1] = Region::Ctx.base();
                            pc = 0;
                        }
                    }
                    continue;
                }
                // Decoding sends no jump here, and execution never runs
                // into it (`LD_IMM64` steps over it).
                Micro::Tail => return Err(Box::new(VmError::BadJump { pc })),
                Micro::FellOff => return Err(Box::new(VmError::FellOff { pc })),
            }
            pc += 1;
        }
    }

    /// `*(uN *)(base + off)`: a packet load in one subtraction and one
    /// compare, a context pointer in three compares, anything else checked
    /// against its region.
    #[inline(always)]
    fn ldx<const N: usize>(&mut self, pc: usize, base: u64, off: i16) -> Result<u64, VmError> {
        let addr = base.wrapping_add(off as i64 as u64);
        if let Some(b) = self.m.packet::<N>(addr) {
            let mut w = [0u8; 8];
            w[..N].copy_from_slice(&b);
            return Ok(u64::from_le_bytes(w));
        }
        if N >= 4 {
            if let Some(p) = self.m.pointer(addr) {
                return Ok(p);
            }
        }
        self.m.load(pc, addr, N)
    }

    /// The value a fused op's load (and swap) gives, as a 32-bit compare
    /// sees it.
    #[inline(always)]
    fn load(&mut self, load: Load, pc: usize, base: u64, off: i16) -> Result<u32, VmError> {
        Ok(match load {
            Load::B => self.ldx::<1>(pc, base, off)? as u32,
            Load::HBe => (self.ldx::<2>(pc, base, off)? as u16).swap_bytes() as u32,
            Load::WBe => (self.ldx::<4>(pc, base, off)? as u32).swap_bytes(),
        })
    }

    /// Returns from a BPF-to-BPF call to the slot it gives, or `None` from
    /// the program.
    /// Where an `exit` goes: back to the caller (`None` at the entry
    /// function), or into a `bpf_loop` callback's next iteration.
    fn exit(&mut self, r: &mut Regs) -> Result<Option<usize>, VmError> {
        let Some(depth) = self.depth.checked_sub(1) else {
            return Ok(None);
        };
        let f = &mut self.frames[depth];
        if let Some(l) = f.looping.as_mut() {
            // The callback returns 0 to go on, 1 to stop (the verifier
            // allows nothing else).
            l.i += 1;
            if r[0] == 0 && l.i < l.n {
                let (callback, cost) = (l.callback, l.cost);
                r[1] = l.i;
                r[2] = l.ctx;
                r[3..=5].fill(0xdead_beef_dead_beef);
                self.charge(cost as u64)?;
                return Ok(Some(callback));
            }
            r[0] = l.i;
            r[1..=5].fill(0xdead_beef_dead_beef);
        }
        let f = self.frames[depth];
        self.depth = depth;
        r[6..10].copy_from_slice(&f.saved);
        r[10] = Region::Stack.base() + ((self.depth + 1) * STACK_SIZE) as u64;
        Ok(Some(f.ret))
    }

    fn charge(&mut self, units: u64) -> Result<(), VmError> {
        self.spent = self.spent.saturating_add(units);
        if self.spent > self.budget {
            return Err(VmError::Budget(self.budget));
        }
        Ok(())
    }

    /// Where a jump or call the micro-ops left alone lands: an op's first
    /// slot inside the program, or `BadJump`.
    fn target(pc: usize, off: i64, code: &[Micro]) -> Result<usize, VmError> {
        let last = code.len() - 1; // the sentinel is no target
        match usize::try_from(pc as i64 + 1 + off) {
            Ok(t) if t < last && !matches!(code[t], Micro::Tail) => Ok(t),
            _ => Err(VmError::BadJump { pc }),
        }
    }

    /// A taken jump the micro-ops left alone: backward (charged the slots
    /// it goes back over), into another function (charged the rest of that
    /// function), or bad.
    fn jump(&mut self, pc: usize, off: i64, code: Code) -> Result<usize, VmError> {
        let t = Self::target(pc, off, code.ops)?;
        if t <= pc {
            self.charge((pc + 1 - t) as u64)?;
        } else {
            self.forward(pc, t, code)?;
        }
        Ok(t)
    }

    /// A move forward from `pc` to `next`: if it leaves `pc`'s function,
    /// it pays for the rest of the function it enters.
    fn forward(&mut self, pc: usize, next: usize, code: Code) -> Result<(), VmError> {
        if next - pc >= code.rest[pc] as usize {
            self.charge(code.rest[next] as u64)?;
        }
        Ok(())
    }

    fn general(&mut self, op: Op, pc: usize, r: &mut Regs, code: Code) -> Result<Flow, VmError> {
        self.m.pc = pc;
        let next = pc + op.slots();
        match op {
            Op::Alu { wide, op, dst, src } => {
                let s = operand(r, src, wide);
                r[dst.index()] = alu(op, wide, r[dst.index()], s);
            }
            Op::Neg { wide, dst } => {
                let d = r[dst.index()];
                r[dst.index()] = if wide {
                    d.wrapping_neg()
                } else {
                    (d as u32).wrapping_neg() as u64
                };
            }
            Op::End { dst, endian, bits } => r[dst.index()] = end(r[dst.index()], endian, bits),
            Op::LdImm64 {
                dst, pseudo, imm, ..
            } => {
                r[dst.index()] = match pseudo {
                    Pseudo::None => imm,
                    Pseudo::MapFd | Pseudo::MapIdx => MAP_HANDLE | (imm as u32 as u64),
                    Pseudo::MapValue | Pseudo::MapIdxValue => {
                        let map = imm as u32 as u64;
                        if map as usize >= self.m.maps.len() {
                            return Err(VmError::NoSuchMap { pc, map });
                        }
                        Region::MapValue(map as u8).base() + (imm >> 32)
                    }
                    Pseudo::Func => {
                        FUNC_HANDLE | Self::target(pc, imm as u32 as i32 as i64, code.ops)? as u64
                    }
                    Pseudo::BtfId => {
                        return Err(VmError::Unsupported {
                            pc,
                            what: format!("ld_imm64 with {pseudo:?}"),
                        })
                    }
                }
            }
            Op::LdAbs { size, imm } | Op::LdInd { size, imm, .. } => {
                let base = match op {
                    Op::LdInd { src, .. } => r[src.index()] as u32,
                    _ => 0,
                };
                match self.m.legacy_load(size, base.wrapping_add(imm as u32))? {
                    Some(v) => r[0] = v,
                    // The kernel ends the program with 0 when a legacy load fails.
                    None if self.depth == 0 => {
                        r[0] = 0;
                        return Ok(Flow::Exit);
                    }
                    None => {
                        return Err(VmError::Unsupported {
                            pc,
                            what: "legacy load in a subprogram".into(),
                        })
                    }
                }
            }
            Op::Ldx {
                size,
                signed,
                dst,
                src,
                off,
            } => {
                let addr = r[src.index()].wrapping_add(off as i64 as u64);
                let v = self.m.load(pc, addr, size.bytes())?;
                r[dst.index()] = if signed {
                    sign_extend(v, size.bytes() * 8)
                } else {
                    v
                };
            }
            Op::St {
                size,
                dst,
                off,
                imm,
            } => {
                let addr = r[dst.index()].wrapping_add(off as i64 as u64);
                self.m.store(pc, addr, size.bytes(), imm as i64 as u64)?;
            }
            Op::Stx {
                size,
                dst,
                src,
                off,
            } => {
                let addr = r[dst.index()].wrapping_add(off as i64 as u64);
                self.m.store(pc, addr, size.bytes(), r[src.index()])?;
            }
            Op::Atomic {
                size,
                op,
                fetch,
                dst,
                src,
                off,
            } => {
                let addr = r[dst.index()].wrapping_add(off as i64 as u64);
                let n = size.bytes();
                let old = self.m.load(pc, addr, n)?;
                let s = r[src.index()];
                let mask = if n == 8 { u64::MAX } else { 0xffff_ffff };
                let new = match op {
                    AtomicOp::Add => old.wrapping_add(s),
                    AtomicOp::Or => old | s,
                    AtomicOp::And => old & s,
                    AtomicOp::Xor => old ^ s,
                    AtomicOp::Xchg => s,
                    AtomicOp::CmpXchg if old == r[0] & mask => s,
                    AtomicOp::CmpXchg => old,
                };
                self.m.store(pc, addr, n, new & mask)?;
                match op {
                    AtomicOp::CmpXchg => r[0] = old,
                    _ if fetch || op == AtomicOp::Xchg => r[src.index()] = old,
                    _ => {}
                }
            }
            Op::Ja { off } => return Ok(Flow::Next(self.jump(pc, off as i64, code)?)),
            Op::MayGoto { off } => match self.may_goto.checked_sub(1) {
                Some(left) => self.may_goto = left,
                None => return Ok(Flow::Next(self.jump(pc, off as i64, code)?)),
            },
            Op::Jmp {
                wide,
                op,
                dst,
                src,
                off,
            } => {
                let s = operand(r, src, wide);
                if compare(op, wide, r[dst.index()], s) {
                    return Ok(Flow::Next(self.jump(pc, off as i64, code)?));
                }
            }
            Op::Call(CallTarget::Helper(HELPER_TAIL_CALL)) => {
                // On success the new program starts over with the same
                // context; on failure the caller carries on.
                match self.m.tail_call_target(r[2], r[3])? {
                    Some(p) if self.tail_calls < MAX_TAIL_CALLS && self.depth == 0 => {
                        // The new program's entry function is paid for
                        // where it is known, in the loop.
                        self.tail_calls += 1;
                        return Ok(Flow::TailCall(p));
                    }
                    _ => r[0] = EINVAL,
                }
                r[1..=5].fill(0xdead_beef_dead_beef);
            }
            Op::Call(CallTarget::Helper(HELPER_LOOP)) => {
                let (n, f, ctx, flags) = (r[1], r[2], r[3], r[4]);
                if f & !0xffff_ffff != FUNC_HANDLE {
                    return Err(VmError::Unsupported {
                        pc,
                        what: format!("bpf_loop callback {f:#x} is not a function"),
                    });
                }
                r[0] = match (n, flags) {
                    (_, 1..) => EINVAL,
                    _ if n > MAX_LOOPS => E2BIG,
                    (0, _) => 0,
                    _ => {
                        if self.depth + 1 >= MAX_FRAMES {
                            return Err(VmError::CallDepth { pc });
                        }
                        let callback = (f & 0xffff_ffff) as usize;
                        let cost = code.rest[callback];
                        self.charge(cost as u64)?;
                        self.forward(pc, next, code)?;
                        self.frames[self.depth] = Frame {
                            ret: next,
                            saved: [r[6], r[7], r[8], r[9]],
                            looping: Some(Loop {
                                callback,
                                cost,
                                i: 0,
                                n,
                                ctx,
                            }),
                        };
                        self.depth += 1;
                        r[1] = 0;
                        r[2] = ctx;
                        r[10] = Region::Stack.base() + ((self.depth + 1) * STACK_SIZE) as u64;
                        return Ok(Flow::Next(callback));
                    }
                };
                r[1..=5].fill(0xdead_beef_dead_beef);
            }
            Op::Call(CallTarget::Helper(id)) => {
                let args = [r[1], r[2], r[3], r[4], r[5]];
                self.charge(self.m.helper_cost(id, args))?;
                r[0] = self.m.helper(id, args)?;
                // Caller-saved registers hold garbage after a call.
                r[1..=5].fill(0xdead_beef_dead_beef);
            }
            Op::Call(CallTarget::Local(rel)) => {
                if self.depth + 1 >= MAX_FRAMES {
                    return Err(VmError::CallDepth { pc });
                }
                let target = Self::target(pc, rel as i64, code.ops)?;
                // The callee's whole function; and, when the call is its
                // function's last op, what the return runs into.
                self.charge(code.rest[target] as u64)?;
                self.forward(pc, next, code)?;
                self.frames[self.depth] = Frame {
                    ret: next,
                    saved: [r[6], r[7], r[8], r[9]],
                    looping: None,
                };
                self.depth += 1;
                r[10] = Region::Stack.base() + ((self.depth + 1) * STACK_SIZE) as u64;
                return Ok(Flow::Next(target));
            }
            Op::Call(CallTarget::Kfunc(id)) => {
                return Err(VmError::Unsupported {
                    pc,
                    what: format!("kfunc call #{id}"),
                })
            }
            Op::Exit => {
                return Ok(match self.exit(r)? {
                    Some(ret) => Flow::Next(ret),
                    None => Flow::Exit,
                })
            }
        }
        self.forward(pc, next, code)?;
        Ok(Flow::Next(next))
    }
}

fn operand(r: &Regs, src: Operand, wide: bool) -> u64 {
    match src {
        Operand::Reg(s) => r[s.index()],
        // Immediates are sign-extended to 64 bits, then truncated for ALU32.
        Operand::Imm(i) if wide => i as i64 as u64,
        Operand::Imm(i) => i as u32 as u64,
    }
}

fn sign_extend(v: u64, bits: usize) -> u64 {
    let shift = 64 - bits as u32;
    (((v << shift) as i64) >> shift) as u64
}

fn alu(op: AluOp, wide: bool, d: u64, s: u64) -> u64 {
    if wide {
        match op {
            AluOp::Add => d.wrapping_add(s),
            AluOp::Sub => d.wrapping_sub(s),
            AluOp::Mul => d.wrapping_mul(s),
            AluOp::Div => d.checked_div(s).unwrap_or(0),
            AluOp::Mod => d.checked_rem(s).unwrap_or(d),
            AluOp::SDiv => match s as i64 {
                0 => 0,
                -1 => (d as i64).wrapping_neg() as u64,
                s => ((d as i64) / s) as u64,
            },
            AluOp::SMod => match s as i64 {
                0 => d,
                -1 => 0,
                s => ((d as i64) % s) as u64,
            },
            AluOp::Or => d | s,
            AluOp::And => d & s,
            AluOp::Xor => d ^ s,
            AluOp::Lsh => d << (s & 63),
            AluOp::Rsh => d >> (s & 63),
            AluOp::Arsh => ((d as i64) >> (s & 63)) as u64,
            AluOp::Mov => s,
            AluOp::MovSx(bits) => sign_extend(s, bits as usize),
        }
    } else {
        let (d, s) = (d as u32, s as u32);
        (match op {
            AluOp::Add => d.wrapping_add(s),
            AluOp::Sub => d.wrapping_sub(s),
            AluOp::Mul => d.wrapping_mul(s),
            AluOp::Div => d.checked_div(s).unwrap_or(0),
            AluOp::Mod => d.checked_rem(s).unwrap_or(d),
            AluOp::SDiv => match s as i32 {
                0 => 0,
                -1 => (d as i32).wrapping_neg() as u32,
                s => ((d as i32) / s) as u32,
            },
            AluOp::SMod => match s as i32 {
                0 => d,
                -1 => 0,
                s => ((d as i32) % s) as u32,
            },
            AluOp::Or => d | s,
            AluOp::And => d & s,
            AluOp::Xor => d ^ s,
            AluOp::Lsh => d << (s & 31),
            AluOp::Rsh => d >> (s & 31),
            AluOp::Arsh => ((d as i32) >> (s & 31)) as u32,
            AluOp::Mov => s,
            AluOp::MovSx(bits) => sign_extend(s as u64, bits as usize) as u32,
        }) as u64
    }
}

fn end(d: u64, endian: Endian, bits: u8) -> u64 {
    match (endian, bits) {
        (Endian::ToLe, 16) => d as u16 as u64,
        (Endian::ToLe, 32) => d as u32 as u64,
        (Endian::ToLe, _) => d,
        (_, 16) => (d as u16).swap_bytes() as u64,
        (_, 32) => (d as u32).swap_bytes() as u64,
        (_, _) => d.swap_bytes(),
    }
}

fn compare(op: JmpOp, wide: bool, d: u64, s: u64) -> bool {
    let (d, s) = if wide {
        (d, s)
    } else {
        (d as u32 as u64, s as u32 as u64)
    };
    let (sd, ss) = if wide {
        (d as i64, s as i64)
    } else {
        (d as u32 as i32 as i64, s as u32 as i32 as i64)
    };
    match op {
        JmpOp::Jeq => d == s,
        JmpOp::Jne => d != s,
        JmpOp::Jgt => d > s,
        JmpOp::Jge => d >= s,
        JmpOp::Jlt => d < s,
        JmpOp::Jle => d <= s,
        JmpOp::Jset => d & s != 0,
        JmpOp::Jsgt => sd > ss,
        JmpOp::Jsge => sd >= ss,
        JmpOp::Jslt => sd < ss,
        JmpOp::Jsle => sd <= ss,
    }
}
