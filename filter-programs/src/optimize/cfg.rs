//! The control-flow graph the passes work on: basic blocks of straight-line
//! statements, each ended by a return, an unconditional jump or a
//! two-way branch.
//!
//! Invariant: block 0 is the entry and every edge goes from a lower index
//! to a higher one. Classic BPF jumps only forward, so the graph is a DAG
//! and index order is a topological order; every pass keeps it that way
//! (a redirected edge only ever moves to a later block).

use crate::cbpf::{Insn, JmpOp, Op, RetVal, Src, MEMWORDS};

pub(super) type BlockId = usize;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Term {
    Ret(RetVal),
    Goto(BlockId),
    Jmp {
        op: JmpOp,
        src: Src,
        t: BlockId,
        f: BlockId,
    },
}

impl Term {
    pub(super) fn succs(&self) -> impl Iterator<Item = BlockId> {
        let (a, b) = match *self {
            Term::Ret(_) => (None, None),
            Term::Goto(t) => (Some(t), None),
            Term::Jmp { t, f, .. } => (Some(t), (t != f).then_some(f)),
        };
        a.into_iter().chain(b)
    }

    pub(super) fn succs_mut(&mut self) -> impl Iterator<Item = &mut BlockId> {
        let (a, b) = match self {
            Term::Ret(_) => (None, None),
            Term::Goto(t) => (Some(t), None),
            Term::Jmp { t, f, .. } => (Some(t), Some(f)),
        };
        a.into_iter().chain(b)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Block {
    pub stmts: Vec<Op>,
    pub term: Term,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Cfg {
    pub blocks: Vec<Block>,
}

impl Cfg {
    /// Number of predecessors of every block (from every block, reachable
    /// or not).
    pub(super) fn pred_counts(&self) -> Vec<usize> {
        let mut n = vec![0; self.blocks.len()];
        for b in &self.blocks {
            for s in b.term.succs() {
                n[s] += 1;
            }
        }
        n
    }

    /// Which blocks the entry reaches.
    pub(super) fn reachable(&self) -> Vec<bool> {
        let mut seen = vec![false; self.blocks.len()];
        if let Some(s) = seen.first_mut() {
            *s = true;
        }
        for i in 0..self.blocks.len() {
            if seen[i] {
                for s in self.blocks[i].term.succs() {
                    seen[s] = true;
                }
            }
        }
        seen
    }
}

fn is_term(op: &Op) -> bool {
    matches!(op, Op::Ja { .. } | Op::Jmp { .. } | Op::Ret { .. })
}

/// Builds the graph, or `None` for a program the passes must not touch:
/// an undecodable instruction, `ret x`, a scratch index past M[15], a
/// backward or out-of-range jump, or a path that runs off the end. The
/// interpreters give those programs meanings (a trap, a bounded loop) that
/// the passes do not model, so such a program is returned unchanged.
pub(super) fn build(prog: &[Insn]) -> Option<Cfg> {
    let len = prog.len();
    let ops: Vec<Op> = prog
        .iter()
        .map(|i| i.decode().ok())
        .collect::<Option<_>>()?;
    let target = |pc: usize, off: u64| -> Option<usize> {
        let t = pc as u64 + 1 + off;
        (t < len as u64).then_some(t as usize)
    };
    let mut leader = vec![false; len + 1];
    *leader.first_mut()? = true;
    for (pc, op) in ops.iter().enumerate() {
        match *op {
            Op::Ret { val: RetVal::X } => return None,
            Op::LdMem { k } | Op::LdxMem { k } | Op::St { k } | Op::Stx { k } if k >= MEMWORDS => {
                return None
            }
            Op::Ja { k } => {
                if (k as i32) < 0 {
                    return None;
                }
                leader[target(pc, u64::from(k))?] = true;
            }
            Op::Jmp { jt, jf, .. } => {
                leader[target(pc, u64::from(jt))?] = true;
                leader[target(pc, u64::from(jf))?] = true;
            }
            _ => {}
        }
        if is_term(op) {
            leader[pc + 1] = true;
        } else if pc + 1 == len {
            return None;
        }
    }
    let mut id_of = vec![usize::MAX; len];
    let mut starts = Vec::new();
    for pc in 0..len {
        if leader[pc] {
            id_of[pc] = starts.len();
            starts.push(pc);
        }
    }
    let mut blocks = Vec::with_capacity(starts.len());
    for &start in &starts {
        let mut stmts = Vec::new();
        let mut pc = start;
        let term = loop {
            let op = ops[pc];
            match op {
                Op::Ret { val } => break Term::Ret(val),
                Op::Ja { k } => break Term::Goto(id_of[pc + 1 + k as usize]),
                Op::Jmp { op, src, jt, jf } => {
                    break Term::Jmp {
                        op,
                        src,
                        t: id_of[pc + 1 + jt as usize],
                        f: id_of[pc + 1 + jf as usize],
                    }
                }
                _ => stmts.push(op),
            }
            pc += 1;
            if leader[pc] {
                break Term::Goto(id_of[pc]);
            }
        };
        blocks.push(Block { stmts, term });
    }
    Some(Cfg { blocks })
}
