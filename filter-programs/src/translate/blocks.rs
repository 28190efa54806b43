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

/// For each instruction: `Some(end)` when it starts a block that must
/// check the packet holds `end` bytes before running, `None` otherwise.
///
/// A block's check is left out when every path into it has already checked
/// at least as many bytes (the packet cannot have shrunk since), as a hand
/// written program checks the IPv4 header once and then reads any field of
/// it. The verifier follows each path with the range it proved, so it sees
/// the same. A block that a backward jump reaches is taken to know nothing.
pub(super) fn block_checks(ops: &[Op], live: &[bool]) -> Vec<Option<u64>> {
    let needs = block_needs(ops);
    let n = ops.len();
    // Bytes proven on every path into each leader so far (`None`: no path
    // seen yet); forward jumps only, so instruction order visits every
    // predecessor of a block before the block.
    let mut proven: Vec<Option<u64>> = vec![None; n];
    if n > 0 {
        proven[0] = Some(0);
    }
    for (i, op) in ops.iter().enumerate() {
        if !live[i] {
            continue;
        }
        for t in successors(i, op).into_iter().flatten() {
            if t <= i {
                if let Some(p) = proven.get_mut(t) {
                    *p = Some(0);
                }
            }
        }
    }
    let mut checks = vec![None; n];
    let mut have = 0;
    for i in 0..n {
        if let Some(need) = needs[i] {
            have = proven[i].unwrap_or(0);
            if need > have {
                checks[i] = Some(need);
                have = need;
            }
        }
        if !live[i] {
            continue;
        }
        for t in successors(i, &ops[i]).into_iter().flatten() {
            if t > i {
                if let Some(p) = proven.get_mut(t) {
                    *p = Some(p.map_or(have, |p| p.min(have)));
                }
            }
        }
    }
    checks
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
            Op::LdAbs {
                size: Size::H,
                k: 12,
            },
            Op::Jmp {
                op: JmpOp::Jeq,
                src: Src::K(0x800),
                jt: 0,
                jf: 3,
            },
            Op::LdAbs {
                size: Size::B,
                k: 23,
            },
            Op::LdAbs {
                size: Size::H,
                k: 20,
            },
            Op::Ret { val: RetVal::K(1) },
            Op::Ret { val: RetVal::K(0) },
        ];
        assert_eq!(
            block_needs(&ops),
            vec![Some(14), None, Some(24), None, None, Some(0)]
        );
        let _ = Insn::default();
    }

    fn ldh(k: u32) -> Op {
        Op::LdAbs { size: Size::H, k }
    }
    fn jeq(k: u32, jt: u8, jf: u8) -> Op {
        Op::Jmp {
            op: JmpOp::Jeq,
            src: Src::K(k),
            jt,
            jf,
        }
    }

    #[test]
    fn checks_proven_on_every_path_are_left_out() {
        let ops = [
            ldh(12),
            jeq(0x800, 0, 4),
            Op::LdAbs {
                size: Size::B,
                k: 23,
            },
            jeq(17, 0, 2),
            // Every path here has checked 24 bytes.
            ldh(20),
            Op::Ret { val: RetVal::K(1) },
            // Reached with 24 bytes checked from (3) but only 14 from (1).
            ldh(20),
            Op::Ret { val: RetVal::K(0) },
        ];
        let live = reachable(&ops);
        let want = vec![Some(14), None, Some(24), None, None, None, Some(22), None];
        assert_eq!(block_checks(&ops, &live), want);
    }

    #[test]
    fn a_backward_jump_target_checks_again() {
        let ops = [
            ldh(20),
            jeq(0, 0, 2),
            Op::LdAbs {
                size: Size::B,
                k: 14,
            },
            // `ja` back to (2): 4 + k wraps to 2.
            Op::Ja { k: u32::MAX - 1 },
            Op::Ret { val: RetVal::K(0) },
        ];
        let live = reachable(&ops);
        assert_eq!(
            block_checks(&ops, &live),
            vec![Some(22), None, Some(15), None, None]
        );
    }
}
