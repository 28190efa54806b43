//! The form a program runs in: every slot lowered once, when the program is
//! built, into a micro-op that leaves the run as little to decide as
//! possible.
//!
//! - Immediates are extended as the instruction's width wants, and 32-bit
//!   ops whose result the extension already gives (`mov32`/`and32` with an
//!   immediate) become their 64-bit form.
//! - The instructions filters are made of (moves, adds, masks, shifts, byte
//!   swaps, compares against a constant, loads) get a variant each, so one
//!   dispatch runs them.
//! - Jump targets are resolved and checked here. Only a forward jump to a
//!   real instruction of the jump's own function (see [`super::functions`])
//!   becomes a fast jump: a bad target keeps its [`Op`] and fails with
//!   `BadJump` when taken, as always, and a backward jump or one into
//!   another function keeps its `Op` too, because those are what the run's
//!   budget counts (see `Env::budget`). For the same reason the last op of
//!   a function that may run on into the next one keeps its `Op`: the
//!   general path pays for the function it enters. Fast ops, fused or not,
//!   never leave their function, so they need no budget.
//! - The program ends with a [`Micro::FellOff`] sentinel, so running past
//!   the last instruction needs no check of its own.
//!
//! Everything rarer keeps its decoded [`Op`] and runs on the general path.
//! Then [`super::fuse`] replaces common sequences with one op each.

use crate::ebpf::insn::{AluOp, Endian, JmpOp, Op, Operand, Size};

#[derive(Clone, Copy, Debug)]
pub(super) enum Micro {
    /// `dst = k` (`mov`, `mov32` with `k` zero-extended).
    MovK {
        dst: u8,
        k: u64,
    },
    MovX {
        dst: u8,
        src: u8,
    },
    Mov32X {
        dst: u8,
        src: u8,
    },
    AddK {
        dst: u8,
        k: u64,
    },
    AddX {
        dst: u8,
        src: u8,
    },
    /// `and`, and `and32` with `k` zero-extended.
    AndK {
        dst: u8,
        k: u64,
    },
    OrX {
        dst: u8,
        src: u8,
    },
    /// Shift counts are masked here, as the run would.
    LshK {
        dst: u8,
        k: u32,
    },
    RshK {
        dst: u8,
        k: u32,
    },
    /// Any other ALU op, `k` extended for the width.
    AluK {
        op: AluOp,
        wide: bool,
        dst: u8,
        k: u64,
    },
    AluX {
        op: AluOp,
        wide: bool,
        dst: u8,
        src: u8,
    },
    /// `be16`/`be32` (the byte swaps of network-order loads).
    Be16 {
        dst: u8,
    },
    Be32 {
        dst: u8,
    },
    Ja {
        target: u32,
    },
    /// 64-bit compares with an immediate: `if dst op k goto target`.
    JeqK {
        dst: u8,
        k: u64,
        target: u32,
    },
    JneK {
        dst: u8,
        k: u64,
        target: u32,
    },
    JgtK {
        dst: u8,
        k: u64,
        target: u32,
    },
    JgeK {
        dst: u8,
        k: u64,
        target: u32,
    },
    JsetK {
        dst: u8,
        k: u64,
        target: u32,
    },
    /// 32-bit compares with an immediate: `if (u32)dst op k goto target`
    /// (how translated filters test the accumulator).
    Jmp32K {
        cmp: Cmp,
        dst: u8,
        k: u32,
        target: u32,
    },
    /// `if dst > src goto target`: the packet bounds check.
    JgtX {
        dst: u8,
        src: u8,
        target: u32,
    },
    JmpK {
        op: JmpOp,
        wide: bool,
        dst: u8,
        k: u64,
        target: u32,
    },
    JmpX {
        op: JmpOp,
        wide: bool,
        dst: u8,
        src: u8,
        target: u32,
    },
    /// Unsigned loads `dst = *(u8/u16/u32/u64 *)(src + off)`.
    LdxB {
        dst: u8,
        src: u8,
        off: i16,
    },
    LdxH {
        dst: u8,
        src: u8,
        off: i16,
    },
    LdxW {
        dst: u8,
        src: u8,
        off: i16,
    },
    LdxDW {
        dst: u8,
        src: u8,
        off: i16,
    },
    Exit,
    // Fused sequences (see `super::fuse`); each runs as its slots would in
    // turn and then goes on after the last of them. The slots after the
    // first keep their own ops, so a jump into the middle of a sequence
    // runs the rest of it as before.
    /// `dst = base; dst += k; if dst > end goto target`: the bounds check
    /// of direct packet access.
    Check {
        dst: u8,
        base: u8,
        end: u8,
        k: u64,
        target: u32,
    },
    /// A load and the byte swap of what it loaded (`ldxh` + `be16`,
    /// `ldxw` + `be32`).
    LdxHBe {
        dst: u8,
        src: u8,
        off: i16,
    },
    LdxWBe {
        dst: u8,
        src: u8,
        off: i16,
    },
    /// A load (and its swap, and a mask), then a 32-bit compare of the
    /// result, covering `slots` slots. Unmasked, `mask` is all ones.
    LdJmp {
        load: Load,
        cmp: Cmp,
        dst: u8,
        src: u8,
        slots: u8,
        off: i16,
        mask: u32,
        k: u32,
        target: u32,
    },
    /// `dst = *(u8 *)(src + off); w(dst) &= mask; w(dst) <<= shift` (three
    /// slots): the IPv4 header's length, classic BPF's `ldxb 4*([k]&0xf)`.
    LdMsh {
        dst: u8,
        src: u8,
        shift: u8,
        off: i16,
        mask: u32,
    },
    /// The offset and address of a load past a variable-length header
    /// (five slots): `d = (u32)s; d += k; if d > limit goto target;
    /// p = base; p += d`.
    IndAddr {
        d: u8,
        s: u8,
        p: u8,
        base: u8,
        k: u32,
        limit: u32,
        target: u32,
    },
    /// A load (and its swap), then `lo <= v <= hi` tested by two 32-bit
    /// compares (a `portrange`): to `inside` or `outside`.
    LdRange {
        load: Load,
        dst: u8,
        src: u8,
        off: i16,
        lo: u32,
        hi: u32,
        inside: u32,
        outside: u32,
    },
    /// [`Micro::IndAddr`], then the bounds check of the load at the address
    /// (eight slots): `q = p; q += k2; if q > end goto target2`.
    IndCheck {
        d: u8,
        s: u8,
        p: u8,
        base: u8,
        q: u8,
        end: u8,
        k2: u8,
        k: u16,
        limit: u16,
        target: u32,
        target2: u32,
    },
    /// Two 32-bit compares of one register with constants, one after the
    /// other (a switch on the EtherType or the protocol).
    JmpPair {
        dst: u8,
        cmp: Cmp,
        cmp2: Cmp,
        k: u32,
        target: u32,
        k2: u32,
        target2: u32,
    },
    /// Two moves of constants that fit in 32 bits.
    MovKK {
        dst: u8,
        dst2: u8,
        k: u32,
        k2: u32,
    },
    /// `d = s`, then a [`Micro::MovKK`]: three slots.
    MovXKK {
        d: u8,
        s: u8,
        dst: u8,
        dst2: u8,
        k: u32,
        k2: u32,
    },
    /// Two 32-bit loads from one base register that the first leaves alone
    /// (a program's first reads of the context).
    LdxWW {
        dst: u8,
        dst2: u8,
        src: u8,
        off: i16,
        off2: i16,
    },
    /// `r0 = k; exit`.
    RetK {
        k: u64,
    },
    /// Any other instruction, run by the general path.
    Op(Op),
    /// The second slot of an `LD_IMM64`, where no jump may land.
    Tail,
    /// One past the last slot.
    FellOff,
}

/// The unsigned compares a fast 32-bit jump makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cmp {
    Eq,
    Ne,
    Set,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn of(op: JmpOp) -> Option<Cmp> {
        Some(match op {
            JmpOp::Jeq => Cmp::Eq,
            JmpOp::Jne => Cmp::Ne,
            JmpOp::Jset => Cmp::Set,
            JmpOp::Jgt => Cmp::Gt,
            JmpOp::Jge => Cmp::Ge,
            JmpOp::Jlt => Cmp::Lt,
            JmpOp::Jle => Cmp::Le,
            _ => return None,
        })
    }

    #[inline(always)]
    pub(super) fn holds(self, a: u32, k: u32) -> bool {
        match self {
            Cmp::Eq => a == k,
            Cmp::Ne => a != k,
            Cmp::Set => a & k != 0,
            Cmp::Gt => a > k,
            Cmp::Ge => a >= k,
            Cmp::Lt => a < k,
            Cmp::Le => a <= k,
        }
    }
}

/// The load a [`Micro::LdJmp`] starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Load {
    /// `ldxb`: one slot.
    B,
    /// `ldxh` + `be16`, `ldxw` + `be32`: two slots.
    HBe,
    WBe,
}

impl Load {
    pub(super) fn slots(self) -> usize {
        match self {
            Load::B => 1,
            Load::HBe | Load::WBe => 2,
        }
    }
}

/// What an immediate operand means: sign-extended to 64 bits, then
/// truncated for 32-bit instructions.
fn extend(imm: i32, wide: bool) -> u64 {
    if wide {
        imm as i64 as u64
    } else {
        imm as u32 as u64
    }
}

/// The runnable form of decoded slots (`None` is the tail of an `LD_IMM64`),
/// with the [`Micro::FellOff`] sentinel appended, sequences fused. `rest`
/// is [`super::functions::rest`] of the same slots.
pub(super) fn compile(slots: &[Option<Op>], rest: &[u32]) -> Vec<Micro> {
    let mut code = lower_all(slots, rest);
    super::fuse::fuse(&mut code);
    code
}

/// Each slot lowered on its own, and the sentinel.
pub(super) fn lower_all(slots: &[Option<Op>], rest: &[u32]) -> Vec<Micro> {
    // A fast jump's target: forward, inside the program, at an op's start,
    // in the jump's function.
    let forward = |pc: usize, off: i64| -> Option<u32> {
        let t = usize::try_from(pc as i64 + 1 + off).ok()?;
        match slots.get(t) {
            Some(Some(_)) if t > pc && t - pc < rest[pc] as usize => u32::try_from(t).ok(),
            _ => None,
        }
    };
    // The function's last op, when it may go on into the next function
    // (into the sentinel it only fails).
    let runs_on = |pc: usize, op: Op| {
        let next = pc + op.slots();
        next - pc == rest[pc] as usize && next < slots.len() && !matches!(op, Op::Exit)
    };
    let mut code: Vec<Micro> = slots
        .iter()
        .enumerate()
        .map(|(pc, slot)| match *slot {
            None => Micro::Tail,
            Some(op) if runs_on(pc, op) => Micro::Op(op),
            Some(op) => lower(op, |off| forward(pc, off)),
        })
        .collect();
    code.push(Micro::FellOff);
    code
}

fn lower(op: Op, forward: impl Fn(i64) -> Option<u32>) -> Micro {
    // Register numbers are below 11 by construction of `Reg`.
    let r = |reg: crate::ebpf::insn::Reg| reg.index() as u8;
    match op {
        Op::Alu {
            wide,
            op,
            dst,
            src: Operand::Imm(i),
        } => {
            let (dst, k) = (r(dst), extend(i, wide));
            match (op, wide) {
                (AluOp::Mov, _) => Micro::MovK { dst, k },
                (AluOp::Add, true) => Micro::AddK { dst, k },
                (AluOp::And, _) => Micro::AndK { dst, k },
                (AluOp::Lsh, true) => Micro::LshK {
                    dst,
                    k: (k & 63) as u32,
                },
                (AluOp::Rsh, true) => Micro::RshK {
                    dst,
                    k: (k & 63) as u32,
                },
                _ => Micro::AluK { op, wide, dst, k },
            }
        }
        Op::Alu {
            wide,
            op,
            dst,
            src: Operand::Reg(s),
        } => {
            let (dst, src) = (r(dst), r(s));
            match (op, wide) {
                (AluOp::Mov, true) => Micro::MovX { dst, src },
                (AluOp::Mov, false) => Micro::Mov32X { dst, src },
                (AluOp::Add, true) => Micro::AddX { dst, src },
                (AluOp::Or, true) => Micro::OrX { dst, src },
                _ => Micro::AluX { op, wide, dst, src },
            }
        }
        Op::End {
            dst,
            endian: Endian::ToBe,
            bits: 16,
        } => Micro::Be16 { dst: r(dst) },
        Op::End {
            dst,
            endian: Endian::ToBe,
            bits: 32,
        } => Micro::Be32 { dst: r(dst) },
        Op::Ja { off } => match forward(off as i64) {
            Some(target) => Micro::Ja { target },
            None => Micro::Op(op),
        },
        Op::Jmp {
            wide,
            op: jop,
            dst,
            src,
            off,
        } => {
            let Some(target) = forward(off as i64) else {
                return Micro::Op(op);
            };
            let dst = r(dst);
            match src {
                Operand::Imm(i) if !wide => match Cmp::of(jop) {
                    Some(cmp) => Micro::Jmp32K {
                        cmp,
                        dst,
                        k: i as u32,
                        target,
                    },
                    None => Micro::JmpK {
                        op: jop,
                        wide,
                        dst,
                        k: extend(i, wide),
                        target,
                    },
                },
                Operand::Imm(i) => {
                    let k = extend(i, wide);
                    match (jop, wide) {
                        (JmpOp::Jeq, true) => Micro::JeqK { dst, k, target },
                        (JmpOp::Jne, true) => Micro::JneK { dst, k, target },
                        (JmpOp::Jgt, true) => Micro::JgtK { dst, k, target },
                        (JmpOp::Jge, true) => Micro::JgeK { dst, k, target },
                        (JmpOp::Jset, true) => Micro::JsetK { dst, k, target },
                        _ => Micro::JmpK {
                            op: jop,
                            wide,
                            dst,
                            k,
                            target,
                        },
                    }
                }
                Operand::Reg(s) => match (jop, wide) {
                    (JmpOp::Jgt, true) => Micro::JgtX {
                        dst,
                        src: r(s),
                        target,
                    },
                    _ => Micro::JmpX {
                        op: jop,
                        wide,
                        dst,
                        src: r(s),
                        target,
                    },
                },
            }
        }
        Op::Ldx {
            size,
            signed: false,
            dst,
            src,
            off,
        } => {
            let (dst, src) = (r(dst), r(src));
            match size {
                Size::B => Micro::LdxB { dst, src, off },
                Size::H => Micro::LdxH { dst, src, off },
                Size::W => Micro::LdxW { dst, src, off },
                Size::DW => Micro::LdxDW { dst, src, off },
            }
        }
        Op::Exit => Micro::Exit,
        op => Micro::Op(op),
    }
}

/// The `Op` behind a slot that kept one, for questions about the program
/// (not its run).
pub(super) fn op_of(m: &Micro) -> Option<Op> {
    match *m {
        Micro::Op(op) => Some(op),
        _ => None,
    }
}
