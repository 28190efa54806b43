//! What a conditional jump teaches each of its two edges: number ranges
//! from comparisons with constants, packet ranges from comparisons with
//! `data_end`.

use super::state::State;
use super::value::{Range, Val, MAX_PACKET_OFF};
use crate::ebpf::insn::JmpOp;

/// `pkt + off <= data_end` holds: every pointer with that variable part
/// may read `off` bytes (the kernel's `find_good_pkt_pointers`, taking the
/// smaller range it grants for strict comparisons).
pub(super) fn gain(st: &mut State, id: u32, off: i32, var: u64) {
    if off < 0 || var > MAX_PACKET_OFF || var + off as u64 > MAX_PACKET_OFF {
        return;
    }
    st.each_pkt(id, |v| {
        if let Val::Pkt { range, .. } = v {
            *range = (*range).max(off as u32);
        }
    });
}

/// The ranges of the compared number on the taken and fall-through edges
/// (`None`: that edge cannot be taken).
pub(super) fn refine(op: JmpOp, wide: bool, a: Range, b: Range) -> (Option<Range>, Option<Range>) {
    let narrow = !wide && (a.max > u32::MAX as u64 || b.max > u32::MAX as u64);
    let Some(k) = b.as_const().filter(|_| !narrow) else {
        return (Some(a), Some(a));
    };
    let within = |min: u64, max: u64| {
        let r = Range {
            min: a.min.max(min),
            max: a.max.min(max),
        };
        (r.min <= r.max).then_some(r)
    };
    let below = |k: u64| k.checked_sub(1).and_then(|m| within(0, m));
    let above = |k: u64| k.checked_add(1).and_then(|m| within(m, u64::MAX));
    match op {
        JmpOp::Jeq | JmpOp::Jne => {
            let eq = within(k, k);
            let ne = if a.as_const() == Some(k) {
                None
            } else if a.min == k {
                Some(Range {
                    min: k + 1,
                    max: a.max,
                })
            } else if a.max == k {
                Some(Range {
                    min: a.min,
                    max: k - 1,
                })
            } else {
                Some(a)
            };
            if op == JmpOp::Jeq {
                (eq, ne)
            } else {
                (ne, eq)
            }
        }
        JmpOp::Jgt => (above(k), within(0, k)),
        JmpOp::Jge => (within(k, u64::MAX), below(k)),
        JmpOp::Jlt => (below(k), within(k, u64::MAX)),
        JmpOp::Jle => (within(0, k), above(k)),
        JmpOp::Jset | JmpOp::Jsgt | JmpOp::Jsge | JmpOp::Jslt | JmpOp::Jsle => match a.as_const() {
            Some(c) => {
                let (x, y) = if wide {
                    (c as i64, k as i64)
                } else {
                    (c as u32 as i32 as i64, k as u32 as i32 as i64)
                };
                let t = match op {
                    JmpOp::Jset => c & k != 0,
                    JmpOp::Jsgt => x > y,
                    JmpOp::Jsge => x >= y,
                    JmpOp::Jslt => x < y,
                    _ => x <= y,
                };
                (t.then_some(a), (!t).then_some(a))
            }
            None => (Some(a), Some(a)),
        },
    }
}
