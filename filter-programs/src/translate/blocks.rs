//! Straight-line blocks of a classic program, and the packet bytes each
//! block needs.
//!
//! A block starts at a leader (the entry, a jump target, or the instruction
//! after a jump or return) and runs to the next leader. Inside a block every
//! instruction runs if the first does, so if any absolute load in it would
//! read past the packet, the classic program rejects the packet whatever the
//! instructions before the load did (none of them can return a verdict).
//! One bounds check at the block's start, for the farthest byte, therefore
//! gives exactly the classic verdict.

use crate::cbpf::skf::LoadBase;
use crate::cbpf::Op;

/// For each instruction: `Some(end)` when it starts a block whose absolute
/// packet loads read up to byte `end` (exclusive), `Some(0)` for a block
/// without such loads, `None` inside a block.
/// The instructions control can go to after `ops[i]`. Classic jump offsets
/// add in 32 bits: libpcap's validator lets a huge `ja` wrap backwards, and
/// its own code generator emits such loops for `protochain`.
pub(super) fn successors(i: usize, op: &Op) -> [Option<usize>; 2] {
    let at = |off: u32| Some((i as u32).wrapping_add(1).wrapping_add(off) as usize);
    match *op {
        Op::Ja { k } => [at(k), None],
        Op::Jmp { jt, jf, .. } => [at(jt as u32), at(jf as u32)],
        Op::Ret { .. } => [None, None],
        _ => [at(0), None],
    }
}

/// Which instructions any path from the entry reaches. The verifier
/// refuses unreachable code, and libpcap's optimizer leaves some behind.
pub(super) fn reachable(ops: &[Op]) -> Vec<bool> {
    let mut seen = vec![false; ops.len()];
    let mut work = vec![0usize];
    while let Some(i) = work.pop() {
        match seen.get_mut(i) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        work.extend(successors(i, &ops[i]).into_iter().flatten());
    }
    seen
}

/// For each instruction: `Some(end)` when it starts a block whose absolute
/// packet loads read up to byte `end` (exclusive), `Some(0)` for a block
/// without such loads, `None` inside a block.
pub(super) fn block_needs(ops: &[Op]) -> Vec<Option<u64>> {
    let n = ops.len();
    let mut leader = vec![false; n];
    if n > 0 {
        leader[0] = true;
    }
    for (i, op) in ops.iter().enumerate() {
        if matches!(op, Op::Ja { .. } | Op::Jmp { .. } | Op::Ret { .. }) {
            for t in successors(i, op).into_iter().flatten().chain([i + 1]) {
                if let Some(l) = leader.get_mut(t) {
                    *l = true;
                }
            }
        }
    }
    let mut needs = vec![None; n];
    let mut start = 0;
    for i in 0..n {
        if leader[i] {
            start = i;
            needs[i] = Some(0);
        }
        if let Some(end) = absolute_end(&ops[i]) {
            let cur = needs[start].get_or_insert(0);
            *cur = (*cur).max(end);
        }
    }
    needs
}

/// The end of the packet range an instruction reads at a fixed offset.
pub(super) fn absolute_end(op: &Op) -> Option<u64> {
    let (k, size) = match *op {
        Op::LdAbs { size, k } => (k, size.bytes()),
        Op::LdxMsh { k } => (k, 1),
        _ => return None,
    };
    match LoadBase::of(k) {
        LoadBase::Packet(off) | LoadBase::LinkLayer(off) => Some(off as u64 + size as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbpf::{Insn, JmpOp, RetVal, Size, Src};

    #[test]
    fn one_need_per_block() {
        // (0) ldh [12]; (1) jeq #0x800 jt 2 jf 5; (2) ldb [23]; (3) ldh [20];
        // (4) ret #1; (5) ret #0
        let ops = [
            Op::LdAbs { size: Size::H, k: 12 },
            Op::Jmp { op: JmpOp::Jeq, src: Src::K(0x800), jt: 0, jf: 3 },
            Op::LdAbs { size: Size::B, k: 23 },
            Op::LdAbs { size: Size::H, k: 20 },
            Op::Ret { val: RetVal::K(1) },
            Op::Ret { val: RetVal::K(0) },
        ];
        assert_eq!(block_needs(&ops), vec![Some(14), None, Some(24), None, None, Some(0)]);
        let _ = Insn::default();
    }
}
