//! The data-flow pass: what each instruction needs of the facts before it
//! (written registers, pointer kinds, proven packet ranges, stack bounds)
//! and the facts after it, joined over all paths to a fixed point.

use std::collections::BTreeSet;

use super::branch::{gain, refine};
use super::cfg::Cfg;
use super::ctx::{self, Helper};
use super::state::State;
use super::value::{self, Range, Val, MAX_VAR_OFF};
use super::{CheckError, Options, Rule};
use crate::ebpf::disasm::helper_name;
use crate::ebpf::insn::{AluOp, CallTarget, JmpOp, Op, Operand, Reg, Size};
use crate::Hook;

/// Instruction visits before the analysis gives up; far more than any
/// program the translator emits needs.
const MAX_STEPS: usize = 2_000_000;

pub(super) fn run(cfg: &Cfg, kind: Hook, opts: Options) -> Result<(), CheckError> {
    let n = cfg.ops.len();
    let mut input: Vec<Option<State>> = vec![None; n];
    input[0] = Some(State::entry());
    let mut work = BTreeSet::from([0usize]);
    let mut steps = 0;
    while let Some(slot) = work.pop_first() {
        steps += 1;
        let (Some(state), Some(op)) = (input[slot].clone(), cfg.ops[slot]) else {
            continue;
        };
        if steps > MAX_STEPS {
            return Err(CheckError::new(slot, Rule::TooComplex));
        }
        super::cfg::reserved(&cfg.raw[slot], &op).map_err(|rule| CheckError::new(slot, rule))?;
        let step = Step {
            cfg,
            kind,
            opts,
            slot,
            st: state,
        };
        let outs = step.op(op).map_err(|rule| CheckError::new(slot, rule))?;
        for (k, out) in outs.into_iter().enumerate() {
            let (Some(out), Some(t)) = (out, cfg.succ[slot][k]) else {
                continue;
            };
            let new = match &input[t] {
                None => out,
                Some(old) => old.join(&out, cfg.loop_heads[t]),
            };
            if input[t].as_ref() != Some(&new) {
                input[t] = Some(new);
                work.insert(t);
            }
        }
    }
    Ok(())
}

/// The states after an instruction: on fall-through, on the jump.
type Outs = [Option<State>; 2];

struct Step<'a> {
    cfg: &'a Cfg,
    kind: Hook,
    opts: Options,
    slot: usize,
    st: State,
}

fn konst(v: u64) -> Val {
    Val::Scalar(Range::konst(v))
}

/// Farthest offset of a load through a kernel object's pointer this
/// checker lets through: `struct sk_buff` is a few hundred bytes.
const KERNEL_OBJECT_MAX: i64 = 4096;

impl Step<'_> {
    fn read(&self, r: Reg) -> Result<Val, Rule> {
        match self.st.regs[r.index()] {
            Val::Uninit => Err(Rule::UninitRegister {
                reg: r.index() as u8,
            }),
            v => Ok(v),
        }
    }

    fn scalar(&self, r: Reg) -> Result<Range, Rule> {
        match self.read(r)? {
            Val::Scalar(x) => Ok(x),
            Val::Mixed => Err(Rule::MixedValue {
                reg: r.index() as u8,
            }),
            v => Err(Rule::PointerArith {
                reg: r.index() as u8,
                what: format!("holds {} where a number is needed", v.what()),
            }),
        }
    }

    fn write(&mut self, r: Reg, v: Val) -> Result<(), Rule> {
        if r == Reg::R10 {
            return Err(Rule::FramePointerWrite);
        }
        self.st.regs[r.index()] = v;
        Ok(())
    }

    fn fall(self) -> Result<Outs, Rule> {
        Ok([Some(self.st), None])
    }

    fn op(self, op: Op) -> Result<Outs, Rule> {
        let mut s = self;
        match op {
            Op::Alu { wide, op, dst, src } => {
                s.alu(wide, op, dst, src)?;
                s.fall()
            }
            Op::Neg { wide, dst } => {
                s.scalar(dst)?;
                s.write(dst, Val::Scalar(if wide { Range::FULL } else { Range::U32 }))?;
                s.fall()
            }
            Op::End { dst, bits, .. } => {
                s.scalar(dst)?;
                s.write(dst, Val::Scalar(value::end(bits)))?;
                s.fall()
            }
            Op::LdImm64 { dst, pseudo: crate::ebpf::insn::Pseudo::None, imm, .. } => {
                s.write(dst, konst(imm))?;
                s.fall()
            }
            Op::LdImm64 { .. } => Err(Rule::Unsupported(
                "ld_imm64 of a map or other pseudo value: the checker cannot see the loader's file descriptors".into(),
            )),
            Op::LdAbs { .. } | Op::LdInd { .. } => {
                s.legacy_load(op)?;
                s.fall()
            }
            Op::Ldx { size, signed, dst, src, off } => {
                let base = s.read(src)?;
                let v = s.mem(src, base, off, size, None, signed)?;
                s.write(dst, v)?;
                s.fall()
            }
            Op::St { size, dst, off, imm } => {
                let base = s.read(dst)?;
                if matches!(base, Val::Ctx { .. }) {
                    return Err(Rule::Unsupported("storing a constant into the context (store a register instead)".into()));
                }
                s.mem(dst, base, off, size, Some(konst(imm as i64 as u64)), false)?;
                s.fall()
            }
            Op::Stx { size, dst, src, off } => {
                let v = s.read(src)?;
                let base = s.read(dst)?;
                s.mem(dst, base, off, size, Some(v), false)?;
                s.fall()
            }
            Op::Atomic { .. } => Err(Rule::Unsupported("atomic operations are not supported by this checker".into())),
            Op::Ja { .. } => Ok([None, Some(s.st)]),
            Op::MayGoto { .. } => Ok([Some(s.st.clone()), Some(s.st)]),
            Op::Jmp { wide, op, dst, src, .. } => s.jump(wide, op, dst, src),
            Op::Call(CallTarget::Helper(id)) => {
                s.call(id)?;
                s.fall()
            }
            Op::Call(_) => Err(Rule::Unsupported("bpf-to-bpf calls and kfuncs are not supported by this checker".into())),
            Op::Exit => match s.read(Reg::R0)? {
                Val::Scalar(_) => Ok([None, None]),
                v => Err(Rule::ReturnValue { what: v.what() }),
            },
        }
    }

    fn alu(&mut self, wide: bool, op: AluOp, dst: Reg, src: Operand) -> Result<(), Rule> {
        let s = match src {
            Operand::Imm(i) => konst(if wide {
                i as i64 as u64
            } else {
                i as u32 as u64
            }),
            Operand::Reg(r) => self.read(r)?,
        };
        let sreg = match src {
            Operand::Reg(r) => r.index() as u8,
            Operand::Imm(_) => dst.index() as u8,
        };
        let dreg = dst.index() as u8;
        if op == AluOp::Mov && wide {
            return self.write(dst, s);
        }
        let b = match s {
            Val::Scalar(b) => Some(b),
            Val::Mixed => return Err(Rule::MixedValue { reg: sreg }),
            _ => None,
        };
        if matches!(op, AluOp::Mov | AluOp::MovSx(_)) {
            // A privileged loader may move a pointer's low half into a
            // number (the kernel forgets it was a pointer).
            let b = match (op, b) {
                (_, Some(b)) => b,
                (AluOp::Mov, None) => Range::U32,
                _ => {
                    return Err(Rule::PointerArith {
                        reg: sreg,
                        what: "a pointer may only be copied (64-bit move)".into(),
                    })
                }
            };
            let v = if op == AluOp::Mov {
                value::alu(op, wide, Range::konst(0), b)
            } else if wide {
                Range::FULL
            } else {
                Range::U32
            };
            return self.write(dst, Val::Scalar(v));
        }
        let d = self.read(dst)?;
        let v = match (d, b) {
            (Val::Scalar(a), Some(b)) => Val::Scalar(value::alu(op, wide, a, b)),
            (Val::Mixed, _) => return Err(Rule::MixedValue { reg: dreg }),
            (Val::Scalar(_), None) => {
                return Err(Rule::PointerArith { reg: dreg, what: "a pointer may not be an operand of arithmetic on a number (write pointer += number)".into() })
            }
            (_, None) => return Err(Rule::PointerArith { reg: dreg, what: "arithmetic between two pointers".into() }),
            (p, Some(b)) => {
                if !wide {
                    return Err(Rule::PointerArith { reg: dreg, what: "32-bit arithmetic on a pointer".into() });
                }
                if !matches!(op, AluOp::Add | AluOp::Sub) {
                    return Err(Rule::PointerArith { reg: dreg, what: "only + and - apply to pointers".into() });
                }
                self.ptr_add(dreg, p, op == AluOp::Sub, b, matches!(src, Operand::Reg(_)))?
            }
        };
        self.write(dst, v)
    }

    /// `p += b` (or `-=`). A register added to a packet pointer counts as
    /// a variable part even when its value is known: the analysis joins
    /// paths, and one path's constant is another path's variable, so both
    /// must name the same kind of pointer. That proves no more than the
    /// kernel does, which folds a known register into the offset.
    fn ptr_add(
        &mut self,
        reg: u8,
        p: Val,
        sub: bool,
        b: Range,
        from_reg: bool,
    ) -> Result<Val, Rule> {
        let bad = |what: String| Rule::PointerArith { reg, what };
        let fold = !(from_reg && matches!(p, Val::Pkt { .. }));
        if let Some(c) = b.as_const().filter(|_| fold) {
            let c = c as i64;
            if !(-MAX_VAR_OFF + 1..MAX_VAR_OFF).contains(&c) {
                return Err(bad(format!("adding {c} to a pointer is out of bounds")));
            }
            let d = if sub { -c } else { c };
            let moved = |off: i32| -> Result<i32, Rule> {
                let n = off as i64 + d;
                if (-MAX_VAR_OFF + 1..MAX_VAR_OFF).contains(&n) {
                    Ok(n as i32)
                } else {
                    Err(bad(format!("pointer offset {n} is out of bounds")))
                }
            };
            return match p {
                Val::Ctx { off } => Ok(Val::Ctx { off: moved(off)? }),
                Val::Stack { off } => Ok(Val::Stack { off: moved(off)? }),
                Val::Pkt {
                    id,
                    off,
                    var,
                    range,
                } => Ok(Val::Pkt {
                    id,
                    off: moved(off)?,
                    var,
                    range,
                }),
                v => Err(bad(format!("arithmetic on {} is prohibited", v.what()))),
            };
        }
        match p {
            Val::Pkt { off, var, .. }
                if !sub && b.max <= i64::MAX as u64 && (b.min as i64) < MAX_VAR_OFF =>
            {
                // A fresh variable part: ranges proven for the old one do
                // not carry over. Earlier pointers made at this slot (on a
                // previous turn of a loop) stop being usable, so that one
                // id never names two different variable parts.
                let id = self.slot as u32 + 1;
                self.st.each_pkt(id, |v| *v = Val::Mixed);
                Ok(Val::Pkt {
                    id,
                    off,
                    var: var.saturating_add(b.max),
                    range: 0,
                })
            }
            Val::Pkt { .. } => Err(bad(
                "a packet pointer may only grow by a non-negative, bounded number".into(),
            )),
            v => Err(bad(format!(
                "a variable offset on {} is not supported",
                v.what()
            ))),
        }
    }

    /// A load or store of `size` bytes at `base + off`; `store` is the
    /// value stored, `None` for a load, which returns the value read.
    fn mem(
        &mut self,
        reg: Reg,
        base: Val,
        off: i16,
        size: Size,
        store: Option<Val>,
        signed: bool,
    ) -> Result<Val, Rule> {
        let n = size.bytes();
        let regn = reg.index() as u8;
        let loaded = Val::Scalar(if signed { Range::FULL } else { Range::bytes(n) });
        if let Some(v) = store {
            if v == Val::Mixed && n != 8 {
                return Err(Rule::MixedValue { reg: regn });
            }
        }
        match base {
            Val::Stack { off: b } => self.stack_mem(b as i64 + off as i64, n, store, signed),
            Val::Ctx { off: b } => self.ctx_mem(b, off, n, store, signed),
            // Loads of a field: the kernel checks the offset against the
            // object's type; a pointer field loads as a number here (this
            // checker follows no kernel pointer further).
            Val::Kernel => match store {
                None if (0..KERNEL_OBJECT_MAX).contains(&(off as i64)) => Ok(loaded),
                None => Err(Rule::Unsupported(format!(
                    "a load {off} bytes into a kernel object"
                ))),
                Some(_) => Err(Rule::Unsupported("storing into a kernel object".into())),
            },
            Val::Pkt { off: b, range, .. } => {
                let at = b as i64 + off as i64;
                if at < 0 || at + n as i64 > range as i64 {
                    return Err(Rule::PacketRange {
                        reg: regn,
                        off: at,
                        size: n,
                        range,
                    });
                }
                match store {
                    None => Ok(loaded),
                    Some(Val::Scalar(_)) => Ok(loaded),
                    Some(_) => Err(Rule::Unsupported(
                        "storing a pointer into the packet".into(),
                    )),
                }
            }
            Val::Mixed => Err(Rule::MixedValue { reg: regn }),
            v => Err(Rule::BadPointer {
                reg: regn,
                what: v.what(),
            }),
        }
    }

    /// [`Self::mem`] on the stack, `n` bytes at `fp + at`.
    fn stack_mem(
        &mut self,
        at: i64,
        n: usize,
        store: Option<Val>,
        signed: bool,
    ) -> Result<Val, Rule> {
        if at < -512 || at + n as i64 > 0 {
            return Err(Rule::StackRange { off: at, size: n });
        }
        if at.rem_euclid(n as i64) != 0 {
            return Err(Rule::StackAlign { off: at, size: n });
        }
        if let Some(c) = &self.cfg.counter {
            let hits = at < c.off as i64 + 8 && at + n as i64 > c.off as i64;
            if store.is_some() && hits && !c.writers.contains(&self.slot) {
                return Err(Rule::LoopCounter {
                    off: c.off,
                    why: "written by an instruction other than the loop's own".into(),
                });
            }
            if c.loads.contains(&self.slot) && !self.st.stack_init(at, n) {
                return Err(Rule::LoopCounter {
                    off: c.off,
                    why: "read before it is set on every path".into(),
                });
            }
        }
        match store {
            Some(v) => {
                if v.is_pointer() && (n != 8 || at % 8 != 0) {
                    return Err(Rule::Unsupported(
                        "storing part of a pointer on the stack".into(),
                    ));
                }
                self.st.stack_write(at, n, Some(v));
                Ok(v)
            }
            None => {
                if self.opts.strict_stack && !self.st.stack_init(at, n) {
                    return Err(Rule::StackUninit { off: at, size: n });
                }
                self.st
                    .stack_read(at, n, signed)
                    .map_err(|_| Rule::PartialPointerFill { off: at })
            }
        }
    }

    /// [`Self::mem`] in the context, `n` bytes at `off` from `ctx + b`.
    fn ctx_mem(
        &mut self,
        b: i32,
        off: i16,
        n: usize,
        store: Option<Val>,
        signed: bool,
    ) -> Result<Val, Rule> {
        if b != 0 {
            return Err(Rule::ModifiedCtx { off: b });
        }
        let bad = || Rule::CtxField {
            access: if store.is_some() { "a write" } else { "a read" },
            off: off as i64,
            size: n,
            kind: self.kind.description(),
        };
        let v = ctx::access(self.kind, off as i64, n, store.is_some()).ok_or_else(bad)?;
        match store {
            Some(Val::Scalar(_)) => Ok(v),
            Some(_) => Err(Rule::Unsupported(
                "storing a pointer into the context".into(),
            )),
            None if signed => Err(Rule::Unsupported(
                "sign-extending loads from the context".into(),
            )),
            None => Ok(v),
        }
    }

    fn legacy_load(&mut self, op: Op) -> Result<(), Rule> {
        if matches!(self.kind, Hook::Xdp | Hook::Trace) {
            return Err(Rule::LegacyLoad {
                kind: self.kind.description(),
            });
        }
        match self.read(Reg::R6)? {
            Val::Ctx { off: 0 } => {}
            _ => return Err(Rule::LegacyLoadCtx),
        }
        if let Op::LdInd { src, .. } = op {
            self.scalar(src)?;
        }
        self.clobber();
        Ok(())
    }

    /// After a call or legacy load: arguments gone, a number in r0.
    fn clobber(&mut self) {
        for r in 1..=5 {
            self.st.regs[r] = Val::Uninit;
        }
        self.st.regs[0] = Val::Scalar(Range::FULL);
    }

    fn call(&mut self, id: i32) -> Result<(), Rule> {
        let name = helper_name(id).unwrap_or("unknown");
        let (helper, allowed) = ctx::helper(id, self.kind).ok_or_else(|| {
            Rule::Unsupported(format!(
                "helper #{id} ({name}) is not one this checker knows the arguments of"
            ))
        })?;
        if !allowed {
            return Err(Rule::Helper {
                id,
                name,
                kind: self.kind.description(),
            });
        }
        let arg = |reg: u8, why: &str| Rule::HelperArg {
            id,
            name,
            reg,
            why: why.into(),
        };
        let ctx_arg = |s: &Self| match s.read(Reg::R1)? {
            Val::Ctx { off: 0 } => Ok(()),
            _ => Err(arg(1, "must be the unmodified context pointer")),
        };
        match helper {
            Helper::NoArgs => {}
            Helper::CtxOnly => ctx_arg(self)?,
            Helper::LoadBytes { relative } => {
                ctx_arg(self)?;
                self.scalar(Reg::R2)?;
                if relative {
                    self.scalar(Reg::R5)?;
                }
                self.helper_buffer(id, name, Reg::R3, Reg::R4)?;
            }
            Helper::ProbeRead => {
                self.scalar(Reg::R3)?;
                self.helper_buffer(id, name, Reg::R1, Reg::R2)?;
            }
        }
        self.clobber();
        Ok(())
    }

    /// A helper's output buffer: `buf` points into the stack and `len`
    /// bytes from there fit it (and spare the loop counter); afterwards
    /// the bytes every length writes are written.
    fn helper_buffer(
        &mut self,
        id: i32,
        name: &'static str,
        buf: Reg,
        len: Reg,
    ) -> Result<(), Rule> {
        let arg = |reg: Reg, why: &str| Rule::HelperArg {
            id,
            name,
            reg: reg.index() as u8,
            why: why.into(),
        };
        let Val::Stack { off } = self.read(buf)? else {
            return Err(arg(buf, "must point into the stack"));
        };
        let len_range = self.scalar(len)?;
        let at = off as i64;
        if len_range.min == 0 || len_range.max > 512 || at < -512 || at + len_range.max as i64 > 0 {
            return Err(arg(
                len,
                &format!(
                    "a length of {}..={} at fp{at} does not fit the stack",
                    len_range.min, len_range.max
                ),
            ));
        }
        if let Some(c) = &self.cfg.counter {
            if at < c.off as i64 + 8 && at + len_range.max as i64 > c.off as i64 {
                return Err(Rule::LoopCounter {
                    off: c.off,
                    why: "overwritten by a helper".into(),
                });
            }
        }
        // Only the bytes every length writes are surely written; any of
        // them may be.
        self.st.stack_write(at, len_range.min as usize, None);
        let (first, end) = (
            (at + 512) as usize / 8,
            (at + 512 + len_range.max as i64) as usize,
        );
        for s in &mut self.st.spill[first..end.div_ceil(8)] {
            *s = None;
        }
        Ok(())
    }

    fn jump(self, wide: bool, op: JmpOp, dst: Reg, src: Operand) -> Result<Outs, Rule> {
        let d = self.read(dst)?;
        let s = match src {
            Operand::Imm(i) => konst(if wide {
                i as i64 as u64
            } else {
                i as u32 as u64
            }),
            Operand::Reg(r) => self.read(r)?,
        };
        for (v, r) in [
            (d, dst),
            (
                s,
                match src {
                    Operand::Reg(r) => r,
                    Operand::Imm(_) => dst,
                },
            ),
        ] {
            if v == Val::Mixed {
                return Err(Rule::MixedValue {
                    reg: r.index() as u8,
                });
            }
        }
        let mut taken = self.st.clone();
        let mut fall = self.st;
        match (d, s) {
            (Val::Scalar(a), Val::Scalar(b)) => {
                let (t, f) = refine(op, wide, a, b);
                let keep = |st: &mut State, r: Option<Range>| -> bool {
                    match r {
                        Some(r) => {
                            st.regs[dst.index()] = Val::Scalar(r);
                            true
                        }
                        None => false,
                    }
                };
                let t_ok = keep(&mut taken, t);
                let f_ok = keep(&mut fall, f);
                return Ok([f_ok.then_some(fall), t_ok.then_some(taken)]);
            }
            (Val::Pkt { id, off, var, .. }, Val::PktEnd) if wide => match op {
                JmpOp::Jgt | JmpOp::Jge => gain(&mut fall, id, off, var),
                JmpOp::Jlt | JmpOp::Jle => gain(&mut taken, id, off, var),
                _ => {}
            },
            (Val::PktEnd, Val::Pkt { id, off, var, .. }) if wide => match op {
                JmpOp::Jgt | JmpOp::Jge => gain(&mut taken, id, off, var),
                JmpOp::Jlt | JmpOp::Jle => gain(&mut fall, id, off, var),
                _ => {}
            },
            _ => {}
        }
        Ok([Some(fall), Some(taken)])
    }
}
