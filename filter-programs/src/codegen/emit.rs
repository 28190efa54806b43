//! Linearization: block graph to `Vec<Insn>`, laid out as libpcap lays out
//! an unoptimized program (reverse post-order, false branch first), with
//! `ja` trampolines for branches farther than 255 instructions.

use super::block::{BlockId, Blocks, End};
use crate::cbpf::{Insn, Op, RetVal};

/// Block order: reverse post-order of a depth-first walk that visits the
/// false successor before the true one. Every branch then goes forward.
fn order(blocks: &Blocks, root: BlockId) -> Vec<BlockId> {
    let mut seen = vec![false; blocks.blocks.len()];
    let mut post = Vec::new();
    // (block, successors already pushed?)
    let mut stack = vec![(root, false)];
    while let Some((id, expanded)) = stack.pop() {
        if expanded {
            post.push(id);
            continue;
        }
        if seen[id] {
            continue;
        }
        seen[id] = true;
        stack.push((id, true));
        let b = &blocks.blocks[id];
        // Pushed in reverse so the false successor is walked first.
        for next in [b.jt, b.jf].into_iter().flatten() {
            if !seen[next] {
                stack.push((next, false));
            }
        }
    }
    post.reverse();
    post
}

/// Lays out and encodes the program rooted at `root`. Every jump must be
/// resolved (`Blocks::finish` does that).
pub fn emit(blocks: &Blocks, root: BlockId) -> Vec<Insn> {
    let order = order(blocks, root);
    let n = blocks.blocks.len();
    // Extra `ja` slots per block for its true and false branch.
    let mut long = vec![(false, false); n];
    loop {
        let mut start = vec![0usize; n];
        let mut pc = 0usize;
        for &id in &order {
            start[id] = pc;
            let (lt, lf) = long[id];
            pc += blocks.blocks[id].stmts.len() + 1 + lt as usize + lf as usize;
        }
        let mut changed = false;
        let mut out = Vec::with_capacity(pc);
        for &id in &order {
            let b = &blocks.blocks[id];
            out.extend(b.stmts.iter().map(|op| Insn::from(*op)));
            match b.end {
                End::Ret(k) => out.push(Insn::from(Op::Ret { val: RetVal::K(k) })),
                End::Jump { op, src } => {
                    let here = start[id] + b.stmts.len();
                    let off = |t: Option<BlockId>| start[t.unwrap_or(root)] - here - 1;
                    let (ot, of) = (off(b.jt), off(b.jf));
                    let (lt, lf) = long[id];
                    if (ot > 255 && !lt) || (of > 255 && !lf) {
                        long[id] = (lt || ot > 255, lf || of > 255);
                        changed = true;
                        continue;
                    }
                    let mut extra = 0u8;
                    let mut trampolines = Vec::new();
                    let mut branch = |o: usize, is_long: bool| -> u8 {
                        if is_long {
                            let slot = extra;
                            extra += 1;
                            trampolines.push(o - extra as usize);
                            slot
                        } else {
                            o as u8
                        }
                    };
                    let jt = branch(ot, lt);
                    let jf = branch(of, lf);
                    out.push(Insn::from(Op::Jmp { op, src, jt, jf }));
                    for k in trampolines {
                        out.push(Insn::from(Op::Ja { k: k as u32 }));
                    }
                }
            }
        }
        if !changed {
            return out;
        }
    }
}
