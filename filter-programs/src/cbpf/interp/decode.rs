//! The interpreter's internal form: one `Ins` per classic instruction, with
//! absolute jump targets, the load width in the variant, and scratch
//! indices already known to be in range. Decoding never fails: anything
//! libpcap's `bpf_filter` would `abort()` on becomes `Trap`.

use crate::cbpf::{AluOp, Insn, JmpOp, Op, RetVal, Size, Src, MEMWORDS};

/// Operands of a load fused with the conditional jump after it:
/// `A = P[off]; pc = (A cond k) ? t : f` (for `and`: `A &= off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fused {
    pub off: u32,
    pub k: u32,
    pub t: u32,
    pub f: u32,
}

/// A decoded instruction. Jump targets are absolute indices into the op
/// list, which always ends with one extra `Trap` (the "fell off the end"
/// sentinel), so every target is a valid index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ins {
    /// Absolute loads with `k < 2^31`: plain packet offsets everywhere.
    LdAbsW(u32),
    LdAbsH(u32),
    LdAbsB(u32),
    /// Absolute loads with `k >= 2^31`: the kernel's SKF_* space. Kept apart
    /// so that the packet-load arms above never test the sign.
    LdNeg(Size, u32),
    LdIndW(u32),
    LdIndH(u32),
    LdIndB(u32),
    LdImm(u32),
    /// Scratch index, `< 16` by construction.
    LdMem(u8),
    LdLen,
    LdxImm(u32),
    LdxMem(u8),
    LdxLen,
    LdxMsh(u32),
    St(u8),
    Stx(u8),
    AddK(u32),
    SubK(u32),
    MulK(u32),
    /// Non-zero after validation; zero only in unvalidated programs.
    DivK(u32),
    ModK(u32),
    OrK(u32),
    AndK(u32),
    XorK(u32),
    /// Shift count already reduced to `k & 31` (see the table in interp.rs).
    LshK(u32),
    RshK(u32),
    AddX,
    SubX,
    MulX,
    DivX,
    ModX,
    OrX,
    AndX,
    XorX,
    LshX,
    RshX,
    Neg,
    Tax,
    Txa,
    /// Forward `ja` to an absolute target.
    Ja(u32),
    /// Backward `ja` (libpcap's `ip6 protochain` loop): charged against the
    /// step budget so that no program runs forever.
    JaBack(u32),
    JeqK {
        k: u32,
        t: u32,
        f: u32,
    },
    JgtK {
        k: u32,
        t: u32,
        f: u32,
    },
    JgeK {
        k: u32,
        t: u32,
        f: u32,
    },
    JsetK {
        k: u32,
        t: u32,
        f: u32,
    },
    JeqX {
        t: u32,
        f: u32,
    },
    JgtX {
        t: u32,
        f: u32,
    },
    JgeX {
        t: u32,
        f: u32,
    },
    JsetX {
        t: u32,
        f: u32,
    },
    RetK(u32),
    RetA,
    /// An opcode libpcap's interpreter does not implement (it aborts), a
    /// target outside the program, or the end of the program: returns 0.
    Trap,
    // Superinstructions: a load and the `j* #k` right after it. Only in
    // the fast op list; the instruction after stays in place for jumps
    // that land on it.
    AbsWJeq(Fused),
    AbsWJgt(Fused),
    AbsWJge(Fused),
    AbsWJset(Fused),
    AbsHJeq(Fused),
    AbsHJgt(Fused),
    AbsHJge(Fused),
    AbsHJset(Fused),
    AbsBJeq(Fused),
    AbsBJgt(Fused),
    AbsBJge(Fused),
    AbsBJset(Fused),
    IndWJeq(Fused),
    IndWJgt(Fused),
    IndWJge(Fused),
    IndWJset(Fused),
    IndHJeq(Fused),
    IndHJgt(Fused),
    IndHJge(Fused),
    IndHJset(Fused),
    IndBJeq(Fused),
    IndBJgt(Fused),
    IndBJge(Fused),
    IndBJset(Fused),
    /// `and #off` and the `j* #k` after it (the netmask and flag idiom).
    AndJeq(Fused),
    AndJgt(Fused),
    AndJge(Fused),
    AndJset(Fused),
}

/// Builds one superinstruction variant.
type MakeFused = fn(Fused) -> Ins;

/// Decodes every instruction, one `Ins` each, plus the trailing sentinel.
pub(super) fn decode(insns: &[Insn]) -> Vec<Ins> {
    let len = insns.len();
    let mut ops: Vec<Ins> = insns
        .iter()
        .enumerate()
        .map(|(pc, i)| decode_one(pc, i, len))
        .collect();
    ops.push(Ins::Trap);
    ops
}

/// The absolute target of a jump from `pc` by `off`, as libpcap computes
/// it (`ja` sign-extends its 32-bit offset); `len` (the sentinel) when it
/// leaves the program.
fn target(pc: usize, off: i64, len: usize) -> u32 {
    let t = pc as i64 + 1 + off;
    if t < 0 || t as u64 >= len as u64 || t > u32::MAX as i64 {
        len.min(u32::MAX as usize) as u32
    } else {
        t as u32
    }
}

fn scratch(k: u32) -> Option<u8> {
    (k < MEMWORDS).then_some(k as u8)
}

fn decode_one(pc: usize, insn: &Insn, len: usize) -> Ins {
    let Ok(op) = insn.decode() else {
        return Ins::Trap;
    };
    match op {
        Op::LdAbs { size, k } if k >= 0x8000_0000 => Ins::LdNeg(size, k),
        Op::LdAbs { size: Size::W, k } => Ins::LdAbsW(k),
        Op::LdAbs { size: Size::H, k } => Ins::LdAbsH(k),
        Op::LdAbs { size: Size::B, k } => Ins::LdAbsB(k),
        Op::LdInd { size: Size::W, k } => Ins::LdIndW(k),
        Op::LdInd { size: Size::H, k } => Ins::LdIndH(k),
        Op::LdInd { size: Size::B, k } => Ins::LdIndB(k),
        Op::LdImm { k } => Ins::LdImm(k),
        Op::LdMem { k } => scratch(k).map_or(Ins::Trap, Ins::LdMem),
        Op::LdLen => Ins::LdLen,
        Op::LdxImm { k } => Ins::LdxImm(k),
        Op::LdxMem { k } => scratch(k).map_or(Ins::Trap, Ins::LdxMem),
        Op::LdxLen => Ins::LdxLen,
        Op::LdxMsh { k } => Ins::LdxMsh(k),
        Op::St { k } => scratch(k).map_or(Ins::Trap, Ins::St),
        Op::Stx { k } => scratch(k).map_or(Ins::Trap, Ins::Stx),
        Op::Alu { op, src: Src::K(k) } => match op {
            AluOp::Add => Ins::AddK(k),
            AluOp::Sub => Ins::SubK(k),
            AluOp::Mul => Ins::MulK(k),
            AluOp::Div => Ins::DivK(k),
            AluOp::Mod => Ins::ModK(k),
            AluOp::Or => Ins::OrK(k),
            AluOp::And => Ins::AndK(k),
            AluOp::Xor => Ins::XorK(k),
            AluOp::Lsh => Ins::LshK(k & 31),
            AluOp::Rsh => Ins::RshK(k & 31),
        },
        Op::Alu { op, src: Src::X } => match op {
            AluOp::Add => Ins::AddX,
            AluOp::Sub => Ins::SubX,
            AluOp::Mul => Ins::MulX,
            AluOp::Div => Ins::DivX,
            AluOp::Mod => Ins::ModX,
            AluOp::Or => Ins::OrX,
            AluOp::And => Ins::AndX,
            AluOp::Xor => Ins::XorX,
            AluOp::Lsh => Ins::LshX,
            AluOp::Rsh => Ins::RshX,
        },
        Op::Neg => Ins::Neg,
        Op::Tax => Ins::Tax,
        Op::Txa => Ins::Txa,
        Op::Ja { k } => {
            let t = target(pc, i64::from(k as i32), len);
            if t as usize == len {
                Ins::Trap
            } else if t as usize <= pc {
                Ins::JaBack(t)
            } else {
                Ins::Ja(t)
            }
        }
        Op::Jmp { op, src, jt, jf } => {
            let t = target(pc, i64::from(jt), len);
            let f = target(pc, i64::from(jf), len);
            match (op, src) {
                (JmpOp::Jeq, Src::K(k)) => Ins::JeqK { k, t, f },
                (JmpOp::Jgt, Src::K(k)) => Ins::JgtK { k, t, f },
                (JmpOp::Jge, Src::K(k)) => Ins::JgeK { k, t, f },
                (JmpOp::Jset, Src::K(k)) => Ins::JsetK { k, t, f },
                (JmpOp::Jeq, Src::X) => Ins::JeqX { t, f },
                (JmpOp::Jgt, Src::X) => Ins::JgtX { t, f },
                (JmpOp::Jge, Src::X) => Ins::JgeX { t, f },
                (JmpOp::Jset, Src::X) => Ins::JsetX { t, f },
            }
        }
        Op::Ret { val: RetVal::K(k) } => Ins::RetK(k),
        Op::Ret { val: RetVal::A } => Ins::RetA,
        // Neither libpcap's bpf_filter nor the kernel implements `ret x`.
        Op::Ret { val: RetVal::X } => Ins::Trap,
    }
}

/// The fast list: each packet load or `and #k` followed by a `j* #k`
/// becomes one superinstruction. The jump keeps its own slot, so a jump that lands on
/// it still works and no jump target moves.
pub(super) fn fuse(plain: &[Ins]) -> Vec<Ins> {
    let mut ops = plain.to_vec();
    for (i, pair) in plain.windows(2).enumerate() {
        let (cond, k, t, f) = match pair[1] {
            Ins::JeqK { k, t, f } => (0, k, t, f),
            Ins::JgtK { k, t, f } => (1, k, t, f),
            Ins::JgeK { k, t, f } => (2, k, t, f),
            Ins::JsetK { k, t, f } => (3, k, t, f),
            _ => continue,
        };
        let (kind, off) = match pair[0] {
            Ins::LdAbsW(off) => (0, off),
            Ins::LdAbsH(off) => (1, off),
            Ins::LdAbsB(off) => (2, off),
            Ins::LdIndW(off) => (3, off),
            Ins::LdIndH(off) => (4, off),
            Ins::LdIndB(off) => (5, off),
            Ins::AndK(mask) => (6, mask),
            _ => continue,
        };
        let fu = Fused { off, k, t, f };
        const TABLE: [[MakeFused; 4]; 7] = [
            [Ins::AbsWJeq, Ins::AbsWJgt, Ins::AbsWJge, Ins::AbsWJset],
            [Ins::AbsHJeq, Ins::AbsHJgt, Ins::AbsHJge, Ins::AbsHJset],
            [Ins::AbsBJeq, Ins::AbsBJgt, Ins::AbsBJge, Ins::AbsBJset],
            [Ins::IndWJeq, Ins::IndWJgt, Ins::IndWJge, Ins::IndWJset],
            [Ins::IndHJeq, Ins::IndHJgt, Ins::IndHJge, Ins::IndHJset],
            [Ins::IndBJeq, Ins::IndBJgt, Ins::IndBJge, Ins::IndBJset],
            [Ins::AndJeq, Ins::AndJgt, Ins::AndJge, Ins::AndJset],
        ];
        ops[i] = TABLE[kind][cond](fu);
    }
    ops
}
