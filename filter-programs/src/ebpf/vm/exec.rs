//! The interpreter loop, memory access and helpers.

use super::context::{skb, Input};
use super::maps::Maps;
use super::memory::{read_le, write_le, Region};
use super::{Env, VmError, MAX_FRAMES, STACK_SIZE};
use crate::cbpf::skf::LoadBase;
use crate::ebpf::insn::{AluOp, AtomicOp, CallTarget, Endian, JmpOp, Op, Operand, Pseudo, Size};

/// Tag of a map handle (what `LD_IMM64` with a map-fd pseudo source loads):
/// not memory, only an argument for the map helpers.
const MAP_HANDLE: u64 = 5 << 40;

const EFAULT: u64 = -14i64 as u64;
const EINVAL: u64 = -22i64 as u64;

struct Machine<'a, 'm> {
    input: &'a Input<'a>,
    maps: &'m mut Maps,
    ctx: [u8; 192],
    stack: [u8; STACK_SIZE * MAX_FRAMES],
    prandom: u32,
    pc: usize,
    /// The full packet length (at least the frame's).
    wire_len: u32,
}

struct Frame {
    ret: usize,
    saved: [u64; 4],
}

/// Most tail calls one run may make, as in the kernel (`MAX_TAIL_CALL_CNT`).
const MAX_TAIL_CALLS: u32 = 33;
const HELPER_TAIL_CALL: i32 = 12;

/// Runs `programs[0]`; `bpf_tail_call` moves to the program a program-array
/// map names (see `MapKind::ProgArray`).
pub(super) fn run(programs: &[&[Option<Op>]], input: &Input, maps: &mut Maps, env: &Env) -> Result<u64, VmError> {
    let mut slots: &[Option<Op>] = programs.first().copied().unwrap_or(&[]);
    let mut tail_calls = 0u32;
    let mut m = Machine {
        input,
        maps,
        ctx: [0; 192],
        stack: [0; STACK_SIZE * MAX_FRAMES],
        prandom: env.prandom_seed | 1,
        pc: 0,
        wire_len: env.wire_len.unwrap_or(0).max(input.frame().len() as u32),
    };
    input.write_ctx(&mut m.ctx[..input.ctx_size()]);
    if let Input::Skb { .. } = input {
        let len = m.wire_len.saturating_sub(input.data_off() as u32);
        let _ = write_le(&mut m.ctx, skb::LEN as u64, 4, len as u64);
        let _ = write_le(&mut m.ctx, skb::WIRE_LEN as u64, 4, m.wire_len as u64);
    }
    let mut r = [0u64; 11];
    r[1] = Region::Ctx.base();
    r[10] = Region::Stack.base() + STACK_SIZE as u64;
    let mut frames: Vec<Frame> = Vec::new();
    let mut executed = 0u64;
    loop {
        let pc = m.pc;
        let op = match slots.get(pc) {
            Some(Some(op)) => *op,
            Some(None) => return Err(VmError::BadJump { pc }),
            None => return Err(VmError::FellOff { pc }),
        };
        executed += 1;
        if executed > env.budget {
            return Err(VmError::Budget(env.budget));
        }
        let mut next = pc + op.slots();
        match op {
            Op::Alu { wide, op, dst, src } => {
                let s = operand(&r, src, wide);
                r[dst.index()] = alu(op, wide, r[dst.index()], s);
            }
            Op::Neg { wide, dst } => {
                let d = r[dst.index()];
                r[dst.index()] = if wide { d.wrapping_neg() } else { (d as u32).wrapping_neg() as u64 };
            }
            Op::End { dst, endian, bits } => r[dst.index()] = end(r[dst.index()], endian, bits),
            Op::LdImm64 { dst, pseudo, imm, .. } => {
                r[dst.index()] = match pseudo {
                    Pseudo::None => imm,
                    Pseudo::MapFd | Pseudo::MapIdx => MAP_HANDLE | (imm as u32 as u64),
                    Pseudo::MapValue | Pseudo::MapIdxValue => {
                        let map = imm as u32 as u64;
                        if map as usize >= m.maps.len() {
                            return Err(VmError::NoSuchMap { pc, map });
                        }
                        Region::MapValue(map as u8).base() + (imm >> 32)
                    }
                    Pseudo::BtfId | Pseudo::Func => {
                        return Err(VmError::Unsupported { pc, what: format!("ld_imm64 with {pseudo:?}") })
                    }
                }
            }
            Op::LdAbs { size, imm } => match m.legacy_load(size, imm as u32)? {
                Some(v) => r[0] = v,
                None => {
                    // The kernel ends the program with 0 when a legacy load fails.
                    if frames.is_empty() {
                        return Ok(0);
                    }
                    return Err(VmError::Unsupported { pc, what: "legacy load in a subprogram".into() });
                }
            },
            Op::LdInd { size, src, imm } => {
                let off = (r[src.index()] as u32).wrapping_add(imm as u32);
                match m.legacy_load(size, off)? {
                    Some(v) => r[0] = v,
                    None if frames.is_empty() => return Ok(0),
                    None => return Err(VmError::Unsupported { pc, what: "legacy load in a subprogram".into() }),
                }
            }
            Op::Ldx { size, signed, dst, src, off } => {
                let addr = r[src.index()].wrapping_add(off as i64 as u64);
                let v = m.load(addr, size.bytes())?;
                r[dst.index()] = if signed { sign_extend(v, size.bytes() * 8) } else { v };
            }
            Op::St { size, dst, off, imm } => {
                let addr = r[dst.index()].wrapping_add(off as i64 as u64);
                m.store(addr, size.bytes(), imm as i64 as u64)?;
            }
            Op::Stx { size, dst, src, off } => {
                let addr = r[dst.index()].wrapping_add(off as i64 as u64);
                m.store(addr, size.bytes(), r[src.index()])?;
            }
            Op::Atomic { size, op, fetch, dst, src, off } => {
                let addr = r[dst.index()].wrapping_add(off as i64 as u64);
                let n = size.bytes();
                let old = m.load(addr, n)?;
                let s = r[src.index()];
                let mask = if n == 8 { u64::MAX } else { 0xffff_ffff };
                let new = match op {
                    AtomicOp::Add => old.wrapping_add(s),
                    AtomicOp::Or => old | s,
                    AtomicOp::And => old & s,
                    AtomicOp::Xor => old ^ s,
                    AtomicOp::Xchg => s,
                    AtomicOp::CmpXchg => {
                        if old == r[0] & mask {
                            s
                        } else {
                            old
                        }
                    }
                };
                m.store(addr, n, new & mask)?;
                match op {
                    AtomicOp::CmpXchg => r[0] = old,
                    _ if fetch || op == AtomicOp::Xchg => r[src.index()] = old,
                    _ => {}
                }
            }
            Op::Ja { off } => next = jump(pc, off as i64, slots)?,
            Op::Jmp { wide, op, dst, src, off } => {
                let s = operand(&r, src, wide);
                if compare(op, wide, r[dst.index()], s) {
                    next = jump(pc, off as i64, slots)?;
                }
            }
            Op::Call(CallTarget::Helper(HELPER_TAIL_CALL)) => {
                // On success the new program starts over with the same
                // context; on failure the caller carries on.
                match m.tail_call_target(r[2], r[3])? {
                    Some(p) if tail_calls < MAX_TAIL_CALLS && frames.is_empty() => {
                        let Some(target) = programs.get(p) else {
                            return Err(VmError::Unsupported { pc, what: format!("tail call to program {p}, which was not given") });
                        };
                        tail_calls += 1;
                        slots = target;
                        r[1] = Region::Ctx.base();
                        m.pc = 0;
                        continue;
                    }
                    _ => r[0] = EINVAL,
                }
                for reg in &mut r[1..=5] {
                    *reg = 0xdead_beef_dead_beef;
                }
            }
            Op::Call(CallTarget::Helper(id)) => {
                r[0] = m.helper(id, [r[1], r[2], r[3], r[4], r[5]])?;
                // Caller-saved registers hold garbage after a call.
                for reg in &mut r[1..=5] {
                    *reg = 0xdead_beef_dead_beef;
                }
            }
            Op::Call(CallTarget::Local(rel)) => {
                if frames.len() + 1 >= MAX_FRAMES {
                    return Err(VmError::CallDepth { pc });
                }
                frames.push(Frame { ret: next, saved: [r[6], r[7], r[8], r[9]] });
                r[10] = Region::Stack.base() + ((frames.len() + 1) * STACK_SIZE) as u64;
                next = jump(pc, rel as i64, slots)?;
            }
            Op::Call(CallTarget::Kfunc(id)) => {
                return Err(VmError::Unsupported { pc, what: format!("kfunc call #{id}") })
            }
            Op::Exit => match frames.pop() {
                None => return Ok(r[0]),
                Some(f) => {
                    r[6..10].copy_from_slice(&f.saved);
                    r[10] = Region::Stack.base() + ((frames.len() + 1) * STACK_SIZE) as u64;
                    next = f.ret;
                }
            },
        }
        m.pc = next;
    }
}

fn operand(r: &[u64; 11], src: Operand, wide: bool) -> u64 {
    match src {
        Operand::Reg(s) => r[s.index()],
        // Immediates are sign-extended to 64 bits, then truncated for ALU32.
        Operand::Imm(i) if wide => i as i64 as u64,
        Operand::Imm(i) => i as u32 as u64,
    }
}

fn jump(pc: usize, off: i64, slots: &[Option<super::Op>]) -> Result<usize, VmError> {
    let t = pc as i64 + 1 + off;
    match usize::try_from(t).ok().and_then(|t| slots.get(t).map(|s| (t, s))) {
        Some((t, Some(_))) => Ok(t),
        _ => Err(VmError::BadJump { pc }),
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
    let (d, s) = if wide { (d, s) } else { (d as u32 as u64, s as u32 as u64) };
    let (sd, ss) = if wide { (d as i64, s as i64) } else { (d as u32 as i32 as i64, s as u32 as i32 as i64) };
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

impl Machine<'_, '_> {
    fn oob(&self, addr: u64, size: usize, kind: &'static str) -> VmError {
        VmError::OutOfBounds { pc: self.pc, addr, size, kind }
    }

    fn load(&self, addr: u64, size: usize) -> Result<u64, VmError> {
        let v = match Region::of(addr) {
            Some((Region::Ctx, off)) => match self.input.pointer_field(off) {
                Some(p) if size >= 4 => Some(p),
                _ => read_le(&self.ctx[..self.input.ctx_size()], off, size),
            },
            Some((Region::Packet, off)) if off >= self.input.data_off() as u64 => {
                read_le(self.input.frame(), off, size)
            }
            Some((Region::Stack, off)) => read_le(&self.stack, off, size),
            Some((Region::MapValue(i), off)) => self.maps.read(i as usize, off, size),
            _ => None,
        };
        v.ok_or_else(|| self.oob(addr, size, "load"))
    }

    fn store(&mut self, addr: u64, size: usize, v: u64) -> Result<(), VmError> {
        let ok = match Region::of(addr) {
            Some((Region::Ctx, off)) if self.input.writable(off, size) => {
                let n = self.input.ctx_size();
                write_le(&mut self.ctx[..n], off, size, v)
            }
            Some((Region::Stack, off)) => write_le(&mut self.stack, off, size, v),
            Some((Region::MapValue(i), off)) => self.maps.write(i as usize, off, size, v),
            // Packets are read-only here: no program we emit writes one.
            _ => None,
        };
        ok.ok_or_else(|| self.oob(addr, size, "store"))
    }

    fn read_bytes(&self, addr: u64, len: usize) -> Result<Vec<u8>, VmError> {
        (0..len as u64).map(|i| self.load(addr.wrapping_add(i), 1).map(|b| b as u8)).collect()
    }

    fn write_bytes(&mut self, addr: u64, bytes: &[u8]) -> Result<(), VmError> {
        for (i, b) in bytes.iter().enumerate() {
            self.store(addr.wrapping_add(i as u64), 1, *b as u64)?;
        }
        Ok(())
    }

    /// `LD_ABS`/`LD_IND`: big-endian loads relative to `skb->data`, with the
    /// kernel's negative-offset bases. `None` ends the program with 0.
    fn legacy_load(&self, size: Size, off: u32) -> Result<Option<u64>, VmError> {
        let Input::Skb { frame, net_off, .. } = *self.input else {
            return Err(VmError::Unsupported { pc: self.pc, what: "legacy packet load outside a socket buffer".into() });
        };
        let start = match LoadBase::of(off) {
            LoadBase::Packet(k) => self.input.data_off() as u64 + k as u64,
            LoadBase::Net(k) => net_off as u64 + k as u64,
            LoadBase::LinkLayer(k) => k as u64,
            LoadBase::Ancillary(_) | LoadBase::Invalid(_) => return Ok(None),
        };
        let n = size.bytes();
        let bytes = usize::try_from(start).ok().and_then(|s| frame.get(s..s.checked_add(n)?));
        Ok(bytes.map(|b| b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64)))
    }

    /// The program a `bpf_tail_call(ctx, map, index)` goes to, if the map
    /// is a program array holding one at `index`.
    fn tail_call_target(&self, map: u64, index: u64) -> Result<Option<usize>, VmError> {
        if map & !0xffff_ffff != MAP_HANDLE {
            return Err(VmError::Unsupported { pc: self.pc, what: format!("map argument {map:#x} is not a map") });
        }
        let map = (map & 0xffff_ffff) as usize;
        match self.maps.def(map) {
            Some(def) if def.kind == super::maps::MapKind::ProgArray => {}
            _ => return Err(VmError::Unsupported { pc: self.pc, what: format!("tail call through map {map}, not a program array") }),
        }
        Ok(self.maps.program_at(map, index as u32))
    }

    fn helper(&mut self, id: i32, a: [u64; 5]) -> Result<u64, VmError> {
        let pc = self.pc;
        let map_of = |h: u64| -> Result<usize, VmError> {
            if h & !0xffff_ffff != MAP_HANDLE {
                return Err(VmError::Unsupported { pc, what: format!("map argument {h:#x} is not a map") });
            }
            Ok((h & 0xffff_ffff) as usize)
        };
        match id {
            1 | 2 | 3 => {
                let map = map_of(a[0])?;
                let def = self.maps.def(map).ok_or(VmError::NoSuchMap { pc, map: map as u64 })?;
                let key = self.read_bytes(a[1], def.key_size as usize)?;
                Ok(match id {
                    1 => self.maps.lookup(map, &key).map_or(0, |off| Region::MapValue(map as u8).base() + off),
                    2 => {
                        let value = self.read_bytes(a[2], def.value_size as usize)?;
                        self.maps.update(map, &key, &value, a[3]) as u64
                    }
                    _ => self.maps.delete(map, &key) as u64,
                })
            }
            5 => Ok(0),
            7 => {
                // xorshift32: deterministic, so runs can be replayed.
                let mut x = self.prandom;
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                self.prandom = x;
                Ok(x as u64)
            }
            8 => Ok(self.maps.cpu as u64),
            26 | 68 => self.skb_load_bytes(id, a),
            // bpf_xdp_get_buff_len: the VM's frames have no fragments.
            188 if matches!(self.input, Input::Xdp { .. }) => Ok(self.wire_len as u64),
            189 => {
                let (off, to, len) = (a[1] as u32 as usize, a[2], a[3] as u32 as usize);
                match self.input.frame().get(off..off.saturating_add(len)) {
                    Some(bytes) if matches!(self.input, Input::Xdp { .. }) => {
                        let bytes = bytes.to_vec();
                        self.write_bytes(to, &bytes)?;
                        Ok(0)
                    }
                    _ => Ok(EINVAL),
                }
            }
            _ => Err(VmError::UnknownHelper { pc, id }),
        }
    }

    /// `bpf_skb_load_bytes(skb, off, to, len)` and
    /// `bpf_skb_load_bytes_relative(skb, off, to, len, start)`: copy or, on
    /// failure, zero the destination and return -EFAULT (-EINVAL for a bad
    /// start header).
    fn skb_load_bytes(&mut self, id: i32, a: [u64; 5]) -> Result<u64, VmError> {
        let Input::Skb { frame, net_off, .. } = *self.input else {
            return Err(VmError::Unsupported { pc: self.pc, what: format!("helper #{id} needs a socket buffer") });
        };
        let (off, to, len) = (a[1] as u32, a[2], a[3] as u32 as usize);
        let start = if id == 26 {
            (off <= i32::MAX as u32).then(|| self.input.data_off() + off as usize)
        } else {
            match a[4] {
                0 if off <= 0xffff => Some(off as usize),
                1 if off <= 0xffff => Some(net_off + off as usize),
                0 | 1 => None,
                _ => return Ok(EINVAL),
            }
        };
        let src = start.and_then(|s| frame.get(s..s.checked_add(len)?)).map(<[u8]>::to_vec);
        match src {
            Some(bytes) => {
                self.write_bytes(to, &bytes)?;
                Ok(0)
            }
            None => {
                self.write_bytes(to, &vec![0; len])?;
                Ok(EFAULT)
            }
        }
    }
}
