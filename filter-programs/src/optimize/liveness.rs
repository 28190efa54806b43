//! Backward liveness of A, X and the scratch cells, and what it allows:
//! removing statements whose result nobody reads (unless they might end
//! the run: a load that could fail is kept, so verdicts never change), and
//! the peepholes that need A to be dead after a branch.

use super::cfg::{Block, Cfg, Term};
use super::dataflow::Flow;
use super::state::{Loc, A, X};
use super::value::SPECIAL_OFF;
use crate::cbpf::{AluOp, JmpOp, Op, RetVal, Src};

pub(super) fn bit(l: Loc) -> u32 {
    1 << l
}

fn mem(k: u32) -> Loc {
    2 + k as usize % 16
}

/// The location a statement writes.
pub(super) fn def(op: &Op) -> Loc {
    match *op {
        Op::St { k } | Op::Stx { k } => mem(k),
        Op::LdxImm { .. } | Op::LdxMem { .. } | Op::LdxLen | Op::LdxMsh { .. } | Op::Tax => X,
        _ => A,
    }
}

/// The locations a statement reads.
pub(super) fn uses(op: &Op) -> u32 {
    match *op {
        Op::LdInd { .. } | Op::Txa | Op::Stx { .. } | Op::Alu { src: Src::X, .. } => {
            bit(X)
                | if matches!(op, Op::Alu { .. }) {
                    bit(A)
                } else {
                    0
                }
        }
        Op::LdMem { k } | Op::LdxMem { k } => bit(mem(k)),
        Op::St { .. } | Op::Tax | Op::Neg | Op::Alu { .. } => bit(A),
        _ => 0,
    }
}

fn term_uses(t: &Term) -> u32 {
    match *t {
        Term::Ret(RetVal::K(_)) | Term::Goto(_) => 0,
        Term::Ret(RetVal::A) => bit(A),
        Term::Ret(RetVal::X) => bit(X),
        Term::Jmp { src: Src::X, .. } => bit(A) | bit(X),
        Term::Jmp { .. } => bit(A),
    }
}

fn live_out(t: &Term, live_in: &[u32]) -> u32 {
    t.succs().fold(0, |acc, s| acc | live_in[s])
}

/// Live locations on entry to `b`, given its successors'.
pub(super) fn block_live_in(b: &Block, live_in: &[u32]) -> u32 {
    let mut live = live_out(&b.term, live_in) | term_uses(&b.term);
    for op in b.stmts.iter().rev() {
        live = (live & !bit(def(op))) | uses(op);
    }
    live
}

/// `and #m; jeq #0` is `jset #m` with the branches swapped, and
/// `sub #k; jeq #0` is `jeq #k`, when nothing reads A afterwards.
fn peephole(b: &mut Block, out: u32) -> bool {
    if out & bit(A) != 0 {
        return false;
    }
    let Term::Jmp {
        op: JmpOp::Jeq,
        src: Src::K(0),
        t,
        f,
    } = b.term
    else {
        return false;
    };
    let new = match b.stmts.last() {
        Some(&Op::Alu {
            op: AluOp::And,
            src: Src::K(m),
        }) => Term::Jmp {
            op: JmpOp::Jset,
            src: Src::K(m),
            t: f,
            f: t,
        },
        Some(&Op::Alu {
            op: AluOp::Sub,
            src,
        }) => Term::Jmp {
            op: JmpOp::Jeq,
            src,
            t,
            f,
        },
        _ => return false,
    };
    b.stmts.pop();
    b.term = new;
    true
}

/// How far into the packet a statement's load reaches, for loads whose
/// failure is exactly "the capture is shorter than that".
fn load_end(op: &Op) -> Option<u64> {
    match *op {
        Op::LdAbs { size, k } if k < SPECIAL_OFF => Some(u64::from(k) + u64::from(size.bytes())),
        Op::LdxMsh { k } if k < SPECIAL_OFF => Some(u64::from(k) + 1),
        _ => None,
    }
}

/// Loads outside the packet: engine-specific, never moved or removed,
/// and (as the kernel may end the program there returning A) treated as
/// a possible acceptance by `guard`.
fn special(op: &Op) -> bool {
    matches!(*op, Op::LdAbs { k, .. } | Op::LdxMsh { k } if k >= SPECIAL_OFF)
}

/// What the rest of the run guarantees, backwards: `guard` is the least
/// end offset, over every path, of a packet load attempted before any
/// return that may accept; `u64::MAX` when every path returns 0. A dead
/// statement that could only fail by a load ending at or before `guard`,
/// or anything at all when `guard` is `u64::MAX`, can go without changing
/// a verdict: where it would have failed, the run still returns 0.
fn guard_out(t: &Term, guard_in: &[u64]) -> u64 {
    match *t {
        Term::Ret(RetVal::K(0)) => u64::MAX,
        Term::Ret(_) => 0,
        _ => t.succs().map(|s| guard_in[s]).min().unwrap_or(0),
    }
}

/// Dead statement elimination over the whole graph; returns whether
/// anything changed. A block from which every path returns 0 becomes
/// `ret #0`.
pub(super) fn dce(cfg: &mut Cfg, flow: &mut Flow) -> bool {
    let n = cfg.blocks.len();
    let mut live_in = vec![0u32; n];
    let mut guard_in = vec![0u64; n];
    let mut changed = false;
    // Per-block scratch, reused.
    let (mut effects, mut keep) = (Vec::new(), Vec::new());
    for i in (0..n).rev() {
        let b = &mut cfg.blocks[i];
        let mut guard = guard_out(&b.term, &guard_in);
        if guard == u64::MAX && b.term != Term::Ret(RetVal::K(0)) && !b.stmts.iter().any(special) {
            b.stmts.clear();
            b.term = Term::Ret(RetVal::K(0));
            changed = true;
        }
        if let Some(entry) = &flow.entry[i] {
            let out = live_out(&b.term, &live_in);
            changed |= peephole(b, out);
            let x_out = (out | term_uses(&b.term)) & bit(X) != 0;
            changed |= super::addr::fold(b, entry, &mut flow.vals, x_out);
            let mut s = entry.clone();
            effects.clear();
            effects.extend(b.stmts.iter().map(|&op| s.step(&mut flow.vals, op)));
            let mut live = out | term_uses(&b.term);
            keep.clear();
            keep.resize(b.stmts.len(), true);
            for (j, op) in b.stmts.iter().enumerate().rev() {
                let d = def(op);
                let end = load_end(op);
                let harmless = !effects[j].can_fail
                    || guard == u64::MAX
                    || matches!(end, Some(e) if e <= guard);
                if live & bit(d) == 0 && harmless && !special(op) {
                    keep[j] = false;
                    continue;
                }
                if special(op) {
                    guard = 0;
                } else if let Some(e) = end {
                    guard = guard.max(e);
                }
                live = (live & !bit(d)) | uses(op);
            }
            if keep.contains(&false) {
                let mut it = keep.iter();
                b.stmts.retain(|_| *it.next().unwrap_or(&true));
                changed = true;
            }
        } else {
            for op in b.stmts.iter().rev() {
                if special(op) {
                    guard = 0;
                } else if let Some(e) = load_end(op) {
                    guard = guard.max(e);
                }
            }
        }
        guard_in[i] = guard;
        live_in[i] = block_live_in(&cfg.blocks[i], &live_in);
    }
    changed
}
