//! Linearization: block order, encoding, and long jumps.
//!
//! The order is topological (every jump forward) and greedy: a block that
//! ends in `ja` is followed by its target whenever every other
//! predecessor of the target is already placed, so the `ja` disappears.
//! Otherwise blocks keep their relative order. A conditional branch can
//! only reach 255 instructions ahead; a farther one gets a `ja`
//! trampoline right after its block, as many rounds as that takes.

use std::collections::BTreeSet;

use super::cfg::{Cfg, Term};
use crate::cbpf::{Insn, Op};

fn order(cfg: &Cfg) -> Vec<usize> {
    let mut indeg = cfg.pred_counts();
    let mut ready = BTreeSet::new();
    ready.insert(0usize);
    let mut order = Vec::with_capacity(cfg.blocks.len());
    let mut prefer = None;
    loop {
        let next = prefer
            .take()
            .filter(|p| ready.contains(p))
            .or_else(|| ready.first().copied());
        let Some(b) = next else { break };
        ready.remove(&b);
        order.push(b);
        for s in cfg.blocks[b].term.succs() {
            indeg[s] -= 1;
            if indeg[s] == 0 {
                ready.insert(s);
            }
        }
        if let Term::Goto(d) = cfg.blocks[b].term {
            prefer = Some(d);
        }
    }
    order
}

/// Encodes the graph (all of whose blocks must be reachable).
pub(super) fn emit(cfg: &Cfg) -> Vec<Insn> {
    let order = order(cfg);
    let n = cfg.blocks.len();
    let mut next_of = vec![usize::MAX; n];
    for w in order.windows(2) {
        next_of[w[0]] = w[1];
    }
    // Trampolines after each block, for its true and false branch.
    let mut long = vec![(false, false); n];
    loop {
        let mut start = vec![0usize; n];
        let mut pc = 0usize;
        for &b in &order {
            start[b] = pc;
            let blk = &cfg.blocks[b];
            let term = match blk.term {
                Term::Goto(d) if next_of[b] == d => 0,
                _ => 1,
            };
            pc += blk.stmts.len() + term + long[b].0 as usize + long[b].1 as usize;
        }
        let mut out = Vec::with_capacity(pc);
        let mut grew = false;
        for &b in &order {
            let blk = &cfg.blocks[b];
            out.extend(blk.stmts.iter().map(|&op| Insn::from(op)));
            let here = out.len();
            match blk.term {
                Term::Ret(val) => out.push(Insn::from(Op::Ret { val })),
                Term::Goto(d) if next_of[b] == d => {}
                Term::Goto(d) => out.push(Insn::from(Op::Ja {
                    k: (start[d] - here - 1) as u32,
                })),
                Term::Jmp { op, src, t, f } => {
                    let (ot, of) = (start[t] - here - 1, start[f] - here - 1);
                    let (lt, lf) = long[b];
                    if (ot > 255 && !lt) || (of > 255 && !lf) {
                        long[b] = (lt || ot > 255, lf || of > 255);
                        grew = true;
                        continue;
                    }
                    let mut slots = Vec::new();
                    let mut off = |o: usize, far: bool| -> u8 {
                        if far {
                            slots.push(o);
                            (slots.len() - 1) as u8
                        } else {
                            o as u8
                        }
                    };
                    let jt = off(ot, lt);
                    let jf = off(of, lf);
                    out.push(Insn::from(Op::Jmp { op, src, jt, jf }));
                    for (i, o) in slots.into_iter().enumerate() {
                        // The `ja` at slot i sits i + 1 after the branch.
                        out.push(Insn::from(Op::Ja {
                            k: (o - (i + 1)) as u32,
                        }));
                    }
                }
            }
        }
        if !grew {
            return out;
        }
    }
}
