//! The forward analysis: the state on entry to every block, as the meet of
//! what holds at the end of each incoming edge. One sweep in index order
//! suffices because the graph is a DAG in that order.
//!
//! A branch whose outcome is already decided on entry contributes only its
//! taken edge, so blocks behind an impossible edge come out unreachable.

use super::cfg::{Cfg, Term};
use super::state::State;
use super::value::Values;

#[derive(Default)]
pub(super) struct Flow {
    pub vals: Values,
    /// `None`: no feasible path reaches the block.
    pub entry: Vec<Option<State>>,
    /// Per block, the state at the end of each feasible outgoing edge, as
    /// `(successor, state)`: what jump threading starts from.
    pub edges: Vec<[Option<(usize, State)>; 2]>,
}

impl Flow {
    /// The state at the end of `b`'s edge to `succ`, if it was feasible.
    pub(super) fn edge(&self, b: usize, succ: usize) -> Option<&State> {
        self.edges
            .get(b)?
            .iter()
            .flatten()
            .find(|(s, _)| *s == succ)
            .map(|(_, st)| st)
    }
}

/// The state after a block's statements.
pub(super) fn exit_state(vals: &mut Values, entry: &State, stmts: &[crate::cbpf::Op]) -> State {
    let mut s = entry.clone();
    for &op in stmts {
        s.step(vals, op);
    }
    s
}

/// The state at the end of each feasible outgoing edge, given the state
/// after the block's statements, handed to `to(successor, state)`.
pub(super) fn out_edges(
    vals: &mut Values,
    exit: State,
    term: &Term,
    mut to: impl FnMut(usize, State),
) {
    match *term {
        Term::Ret(_) => {}
        Term::Goto(t) => to(t, exit),
        Term::Jmp { t, f, .. } if t == f => to(t, exit),
        Term::Jmp { op, src, t, f } => match exit.decide(vals, op, src) {
            Some(true) => to(t, exit),
            Some(false) => to(f, exit),
            None => {
                let mut st = exit.clone();
                st.assume(vals, op, src, true);
                let mut sf = exit;
                sf.assume(vals, op, src, false);
                to(t, st);
                to(f, sf);
            }
        },
    }
}

impl Flow {
    /// Redoes the analysis for `cfg`, reusing this one's allocations. Each
    /// block's incoming states are met as they arrive (the meet is
    /// associative), so no edge state is kept longer than it takes to
    /// reach its target.
    pub(super) fn recompute(&mut self, cfg: &Cfg) {
        let vals = &mut self.vals;
        let entry = &mut self.entry;
        let edges = &mut self.edges;
        vals.clear();
        entry.clear();
        entry.resize(cfg.blocks.len(), None);
        edges.clear();
        edges.resize(cfg.blocks.len(), [None, None]);
        if let Some(e) = entry.first_mut() {
            *e = Some(State::entry(vals));
        }
        for (i, b) in cfg.blocks.iter().enumerate() {
            let Some(st) = &mut entry[i] else {
                continue;
            };
            st.settle(vals);
            let exit = exit_state(vals, st, &b.stmts);
            let (_, later) = entry.split_at_mut(i + 1);
            let kept = &mut edges[i];
            let mut n = 0;
            out_edges(vals, exit, &b.term, |succ, s| {
                // At most two edges leave a block.
                if let Some(k) = kept.get_mut(n) {
                    *k = Some((succ, s.clone()));
                    n += 1;
                }
                // Edges only go forward (`cfg` invariant).
                if let Some(slot) = succ.checked_sub(i + 1).and_then(|k| later.get_mut(k)) {
                    match slot {
                        Some(have) => have.meet_with(&s),
                        None => *slot = Some(s),
                    }
                }
            });
        }
    }
}
