//! Structural clean-up: trivial branches and jump chains, blocks merged
//! into their only predecessor, unreachable blocks dropped, and equal
//! blocks (same statements, same exits) shared.

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;

use super::cfg::{Block, BlockId, Cfg, Term};

/// An empty block that only jumps on: where an edge into it can go.
fn forward(cfg: &Cfg, mut c: BlockId) -> BlockId {
    while let Some(Block {
        stmts,
        term: Term::Goto(d),
    }) = cfg.blocks.get(c)
    {
        if !stmts.is_empty() {
            break;
        }
        c = *d;
    }
    c
}

fn simplify_terms(cfg: &mut Cfg) -> bool {
    let mut changed = false;
    for i in 0..cfg.blocks.len() {
        let mut term = cfg.blocks[i].term.clone();
        for s in term.succs_mut() {
            *s = forward(cfg, *s);
        }
        if let Term::Jmp { t, f, .. } = term {
            if t == f {
                term = Term::Goto(t);
            }
        }
        // A jump to a lone `ret` is the `ret` itself.
        if let Term::Goto(t) = term {
            if let Some(Block {
                stmts,
                term: Term::Ret(v),
            }) = cfg.blocks.get(t)
            {
                if stmts.is_empty() {
                    term = Term::Ret(*v);
                }
            }
        }
        if cfg.blocks[i].term != term {
            cfg.blocks[i].term = term;
            changed = true;
        }
    }
    changed
}

/// Appends a block to its predecessor when that is its only one and ends
/// in a plain jump to it.
fn concatenate(cfg: &mut Cfg) -> bool {
    let mut changed = false;
    let reach = cfg.reachable();
    let mut preds = vec![0usize; cfg.blocks.len()];
    for (b, r) in cfg.blocks.iter().zip(&reach) {
        if *r {
            for s in b.term.succs() {
                preds[s] += 1;
            }
        }
    }
    for (i, r) in reach.iter().enumerate() {
        if !r {
            continue;
        }
        while let Term::Goto(c) = cfg.blocks[i].term {
            if preds[c] != 1 || c == i {
                break;
            }
            let next = std::mem::replace(
                &mut cfg.blocks[c],
                Block {
                    stmts: Vec::new(),
                    term: Term::Ret(crate::cbpf::RetVal::K(0)),
                },
            );
            preds[c] = 0;
            cfg.blocks[i].stmts.extend(next.stmts);
            cfg.blocks[i].term = next.term;
            changed = true;
        }
    }
    changed
}

/// Drops unreachable blocks, keeping the order of the rest.
fn compact(cfg: &mut Cfg) -> bool {
    let reach = cfg.reachable();
    if !reach.contains(&false) {
        return false;
    }
    let mut new_id = vec![usize::MAX; cfg.blocks.len()];
    let mut n = 0;
    for (i, r) in reach.iter().enumerate() {
        if *r {
            new_id[i] = n;
            n += 1;
        }
    }
    let old = std::mem::take(&mut cfg.blocks);
    for (mut b, r) in old.into_iter().zip(reach) {
        if r {
            for s in b.term.succs_mut() {
                *s = new_id[*s];
            }
            cfg.blocks.push(b);
        }
    }
    true
}

/// Shares equal blocks. Last to first, so a block's successors are
/// already canonical when it is compared, and the survivor is the later
/// copy (every edge into either still goes forward). The entry has no
/// predecessors, so it is never redirected.
fn dedupe(cfg: &mut Cfg) -> bool {
    let n = cfg.blocks.len();
    let mut changed = false;
    let mut rep: Vec<BlockId> = (0..n).collect();
    // Blocks by hash, each pointing at the survivor's index, where the
    // block is already canonical: no block is copied. Two different
    // blocks with one hash are simply not shared.
    let hasher = FixedState::default();
    let mut seen: HashMap<u64, BlockId, FixedState> =
        HashMap::with_capacity_and_hasher(n, FixedState::default());
    for i in (0..n).rev() {
        let b = &mut cfg.blocks[i];
        let mut term = b.term.clone();
        for s in term.succs_mut() {
            *s = rep[*s];
        }
        if let Term::Jmp { t, f, .. } = term {
            if t == f {
                term = Term::Goto(t);
            }
        }
        if b.term != term {
            b.term = term;
            changed = true;
        }
        let h = hasher.hash_one(&cfg.blocks[i]);
        match seen.get(&h) {
            // Not a change by itself: the edges into `i` move when their
            // blocks (all earlier) are visited.
            Some(&r) if cfg.blocks[r] == cfg.blocks[i] => rep[i] = r,
            Some(_) => {}
            None => {
                seen.insert(h, i);
            }
        }
    }
    changed
}

/// All clean-ups; returns whether the graph changed.
pub(super) fn cleanup(cfg: &mut Cfg) -> bool {
    let mut changed = simplify_terms(cfg);
    changed |= concatenate(cfg);
    changed |= compact(cfg);
    changed |= dedupe(cfg);
    changed |= compact(cfg);
    changed
}
