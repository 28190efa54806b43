//! The classic BPF optimizer: any valid program in, an equivalent program
//! no longer than it out.
//!
//! What "equivalent" means: for every packet, complete or truncated, the
//! optimized program returns what the input returns under
//! [`Program::run`](crate::cbpf::interp::Program::run). That is stricter
//! than libpcap's optimizer, which deletes unused loads and so may accept
//! a truncated packet that its unoptimized program rejects; here a load
//! that might fail is removed only when an earlier load on every path
//! proved it cannot (see `state`). The passes:
//!
//! - [`cfg`]: basic blocks; programs the passes do not model (backward
//!   jumps, unknown opcodes, `ret x`) come back unchanged.
//! - [`value`] and [`state`]: global value numbering and constant folding,
//!   with the branch outcomes known on every path to a point and the
//!   packet bounds proven by earlier loads; [`dataflow`] computes them.
//! - [`rewrite`]: redundant loads and stores go, known operands become
//!   immediates, decided branches become jumps.
//! - [`thread`]: an edge whose next branch is decided jumps straight to
//!   the known successor (libpcap's edge dominators).
//! - [`liveness`]: dead statement elimination and `jset` peepholes;
//!   [`addr`] folds `X + c` into indirect load offsets.
//! - [`merge`]: jump chains, single-predecessor merges, equal blocks,
//!   unreachable code.
//! - [`linearize`]: layout with fall-through and long-jump trampolines.
//!
//! Verdicts are the same under the kernel's meaning of the instructions
//! ([`Program::run_with`](crate::cbpf::interp::Program::run_with)) as long
//! as the program makes no metadata loads through `ld [x + k]` (the one
//! load whose target the passes cannot see); absolute loads at negative
//! offsets are never moved, merged or removed.

mod addr;
mod cfg;
mod dataflow;
mod linearize;
mod liveness;
mod merge;
mod rewrite;
mod state;
#[cfg(test)]
mod tests;
mod thread;
mod value;

use crate::cbpf::Insn;

/// Upper bound on rounds of all passes. Each round that changes something
/// removes a statement, a block or an edge, or moves an edge forward, so
/// the loop ends by itself long before this on real programs.
const MAX_ROUNDS: usize = 64;

/// Optimizes a classic BPF program (see the module documentation).
pub fn optimize(prog: &[Insn]) -> Vec<Insn> {
    let Some(mut g) = cfg::build(prog) else {
        return prog.to_vec();
    };
    merge::cleanup(&mut g);
    let mut flow = dataflow::Flow::default();
    // Whether `flow` is the analysis of `g` as it is now. A pass that
    // changed nothing leaves it valid for the next one (passes only add
    // values to it), so it is redone only after a change.
    let mut current = false;
    for _ in 0..MAX_ROUNDS {
        if !current {
            flow.recompute(&g);
        }
        let mut changed = rewrite::run(&mut g, &mut flow);
        if thread::run(&mut g, &mut flow) {
            flow.recompute(&g);
            changed = true;
        }
        let pruned = liveness::dce(&mut g, &mut flow) | merge::cleanup(&mut g);
        if !changed && !pruned {
            break;
        }
        current = !pruned;
    }
    let out = linearize::emit(&g);
    if out.len() <= prog.len() {
        out
    } else {
        prog.to_vec()
    }
}
