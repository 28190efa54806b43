//! Jump threading. An edge into a block whose branch outcome is already
//! known on that edge goes straight to the known successor, provided that
//! skipping the block changes nothing anyone reads: each of its statements
//! either recomputes what its destination already holds, or cannot fail
//! and writes a location that is dead at the new target.
//!
//! This is libpcap's edge-dominator optimization generalized: the facts
//! come from every branch on every path to the edge, and the skipped block
//! may contain statements.
//!
//! Blocks are visited last to first. Threading an edge out of block `b`
//! changes only the liveness of `b` and the blocks before it, and the
//! forward facts only of blocks after it, so the facts used for `b` (from
//! the start of the pass) and the liveness of its successors (computed
//! just before) are both exact when `b` is processed.

use super::cfg::{BlockId, Cfg, Term};
use super::dataflow::{exit_state, Flow};
use super::liveness::{bit, block_live_in};
use super::state::{State, NLOCS};
use super::value::Values;

/// Longest chain of blocks one threading step looks through.
const MAX_CHAIN: usize = 64;

/// Where an edge into `c` carrying state `e` can go instead of `c`: the
/// last block `d` of a chain of decided branches from `c` such that the
/// chain's statements cannot fail and leave every location that differs
/// from `e` dead at `d`. A chain may pass through blocks whose own
/// effects are live (a load another block on the chain makes redundant).
fn skip(
    cfg: &Cfg,
    vals: &mut Values,
    live_in: &[u32],
    e: &State,
    mut c: BlockId,
) -> Option<BlockId> {
    let mut s = e.clone();
    let mut best = None;
    for _ in 0..MAX_CHAIN {
        let blk = &cfg.blocks[c];
        for &op in &blk.stmts {
            if s.step(vals, op).can_fail {
                return best;
            }
        }
        let d = match blk.term {
            Term::Ret(_) => return best,
            Term::Goto(d) => d,
            Term::Jmp { t, f, .. } if t == f => t,
            Term::Jmp { op, src, t, f } => match s.decide(vals, op, src) {
                Some(true) => t,
                Some(false) => f,
                None => return best,
            },
        };
        let clobbered = (0..NLOCS)
            .filter(|&l| s.loc[l] != e.loc[l])
            .fold(0u32, |m, l| m | bit(l));
        if clobbered & live_in[d] == 0 {
            best = Some(d);
        }
        c = d;
    }
    best
}

/// Follows `skip` as far as it goes. The state stays `e`: the skipped
/// blocks changed only dead locations.
fn follow(cfg: &Cfg, vals: &mut Values, live_in: &[u32], e: &State, mut c: BlockId) -> BlockId {
    while let Some(d) = skip(cfg, vals, live_in, e, c) {
        c = d;
    }
    c
}

/// One threading sweep; returns whether any edge moved.
pub(super) fn run(cfg: &mut Cfg, flow: &mut Flow) -> bool {
    let n = cfg.blocks.len();
    let mut live_in = vec![0u32; n];
    let mut changed = false;
    for b in (0..n).rev() {
        if let Some(entry) = &flow.entry[b] {
            // The edge states of the analysis when it has them (statement
            // rewrites since then changed no value), else from scratch.
            let term = &cfg.blocks[b].term;
            let (st, sf) = match *term {
                Term::Goto(c) => (flow.edge(b, c).cloned(), None),
                Term::Jmp { t, f, .. } if t != f => {
                    (flow.edge(b, t).cloned(), flow.edge(b, f).cloned())
                }
                _ => (None, None),
            };
            let vals = &mut flow.vals;
            let mut exit = || exit_state(vals, entry, &cfg.blocks[b].stmts);
            let new = match *term {
                Term::Goto(c) => {
                    let e = st.unwrap_or_else(&mut exit);
                    Term::Goto(follow(cfg, vals, &live_in, &e, c))
                }
                Term::Jmp { op, src, t, f } if t != f => {
                    let (st, sf) = match (st, sf) {
                        (Some(st), Some(sf)) => (st, sf),
                        _ => {
                            let exit = exit();
                            let mut st = exit.clone();
                            st.assume(vals, op, src, true);
                            let mut sf = exit;
                            sf.assume(vals, op, src, false);
                            (st, sf)
                        }
                    };
                    Term::Jmp {
                        op,
                        src,
                        t: follow(cfg, vals, &live_in, &st, t),
                        f: follow(cfg, vals, &live_in, &sf, f),
                    }
                }
                ref other => other.clone(),
            };
            if new != cfg.blocks[b].term {
                cfg.blocks[b].term = new;
                changed = true;
            }
        }
        live_in[b] = block_live_in(&cfg.blocks[b], &live_in);
    }
    changed
}
