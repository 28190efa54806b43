//! Local simplification with the forward facts: statements that recompute
//! what their destination already holds go, operands and results that are
//! known constants become immediates, and branches the facts decide become
//! unconditional.

use super::cfg::{Cfg, Term};
use super::dataflow::Flow;
use super::state::{State, A, X};
use super::value::{Values, SPECIAL_OFF};
use crate::cbpf::{AluOp, Op, Src};

/// A cheaper statement with the same effect in `s` (the state before it),
/// if there is one. `None` keeps the statement.
fn simpler(vals: &mut Values, s: &State, op: Op) -> Option<Op> {
    let xc = vals.as_const(s.loc[X]);
    match op {
        Op::Alu {
            op: aop,
            src: Src::X,
        } => {
            let c = xc?;
            let ok = match aop {
                AluOp::Lsh | AluOp::Rsh => c < 32,
                AluOp::Div | AluOp::Mod => c != 0,
                _ => true,
            };
            ok.then_some(Op::Alu {
                op: aop,
                src: Src::K(c),
            })
        }
        Op::LdInd { size, k } => {
            let off = u64::from(xc?) + u64::from(k);
            (off < u64::from(SPECIAL_OFF)).then_some(Op::LdAbs {
                size,
                k: off as u32,
            })
        }
        // A copy from the other register instead of a scratch cell lets
        // the store die.
        Op::LdMem { k } if s.loc[2 + k as usize % 16] == s.loc[X] => Some(Op::Txa),
        Op::LdxMem { k } if s.loc[2 + k as usize % 16] == s.loc[A] => Some(Op::Tax),
        _ => None,
    }
}

/// Rewrites every reachable block; returns whether anything changed.
pub(super) fn run(cfg: &mut Cfg, flow: &mut Flow) -> bool {
    let vals = &mut flow.vals;
    let mut changed = false;
    let mut out = Vec::new();
    for (b, entry) in cfg.blocks.iter_mut().zip(&flow.entry) {
        let Some(entry) = entry else { continue };
        let mut s = entry.clone();
        out.clear();
        for &op in &b.stmts {
            let mut op = op;
            if let Some(better) = simpler(vals, &s, op) {
                op = better;
            }
            let eff = s.step(vals, op);
            if eff.nop {
                continue;
            }
            // A known constant result, computed by something that cannot
            // fail, is an immediate load.
            if !eff.can_fail && !matches!(op, Op::LdImm { .. } | Op::LdxImm { .. }) {
                if let Some(c) = vals.as_const(eff.vn) {
                    if eff.dest == A {
                        op = Op::LdImm { k: c };
                    } else if eff.dest == X {
                        op = Op::LdxImm { k: c };
                    }
                }
            }
            out.push(op);
        }
        if out != b.stmts {
            std::mem::swap(&mut b.stmts, &mut out);
            changed = true;
        }
        if let Term::Jmp { op, src, t, f } = b.term {
            let src = match (src, vals.as_const(s.loc[X])) {
                (Src::X, Some(c)) => Src::K(c),
                _ => src,
            };
            let new = if t == f {
                Term::Goto(t)
            } else {
                match s.decide(vals, op, src) {
                    Some(true) => Term::Goto(t),
                    Some(false) => Term::Goto(f),
                    None => Term::Jmp { op, src, t, f },
                }
            };
            if new != b.term {
                b.term = new;
                changed = true;
            }
        }
    }
    changed
}
