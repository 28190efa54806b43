//! Address folding: `tax` of `X + c` that only feeds indirect loads is
//! dropped and `c` moves into the loads' offsets (`ld #c; add x; tax;
//! ldb [x + k]` is `ldb [x + k + c]` once the rest dies).

use super::cfg::Block;
use super::liveness::{bit, def, uses};
use super::state::{State, A, X};
use super::value::{Val, Values, SPECIAL_OFF};
use crate::cbpf::{AluOp, Op};

/// The constant `c` when `a` is `x + c`.
fn offset_of(vals: &Values, a: u32, x: u32) -> Option<u32> {
    match vals.get(a) {
        Val::Alu(AluOp::Add, p, q) if p == x => vals.as_const(q),
        Val::Alu(AluOp::Add, p, q) if q == x => vals.as_const(p),
        _ => None,
    }
}

/// Folds one `tax` in `b`; `x_live_out` says whether X is read after the
/// block's statements (by its branch or a successor).
pub(super) fn fold(b: &mut Block, entry: &State, vals: &mut Values, x_live_out: bool) -> bool {
    let mut s = entry.clone();
    for i in 0..b.stmts.len() {
        if b.stmts[i] == Op::Tax {
            if let Some(c) = offset_of(vals, s.loc[A], s.loc[X]) {
                // X + c must not wrap, or the loads would read elsewhere.
                let no_wrap =
                    u64::from(vals.known(s.loc[X]).hi) + u64::from(c) <= u64::from(u32::MAX);
                if no_wrap {
                    if let Some(loads) = only_loads(&b.stmts[i + 1..], c, x_live_out) {
                        for j in loads {
                            if let Op::LdInd { size, k } = b.stmts[i + 1 + j] {
                                b.stmts[i + 1 + j] = Op::LdInd { size, k: k + c };
                            }
                        }
                        b.stmts.remove(i);
                        return true;
                    }
                }
            }
        }
        s.step(vals, b.stmts[i]);
    }
    false
}

/// The indices of the indirect loads reading the X that `rest` starts
/// with, if nothing else reads it and every new offset stays a packet
/// offset.
fn only_loads(rest: &[Op], c: u32, x_live_out: bool) -> Option<Vec<usize>> {
    let mut loads = Vec::new();
    for (j, op) in rest.iter().enumerate() {
        match *op {
            Op::LdInd { k, .. } => {
                if u64::from(k) + u64::from(c) >= u64::from(SPECIAL_OFF) {
                    return None;
                }
                loads.push(j);
            }
            _ if uses(op) & bit(X) != 0 => return None,
            _ => {}
        }
        if def(op) == X {
            return Some(loads);
        }
    }
    (!x_live_out).then_some(loads)
}
