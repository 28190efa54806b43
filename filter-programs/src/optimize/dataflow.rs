//! The forward analysis: the state on entry to every block, as the meet of
//! what holds at the end of each incoming edge. One sweep in index order
//! suffices because the graph is a DAG in that order.
//!
//! A branch whose outcome is already decided on entry contributes only its
//! taken edge, so blocks behind an impossible edge come out unreachable.

use super::cfg::{Cfg, Term};
use super::state::{Effect, State};
use super::value::Values;

pub(super) struct Flow {
    pub vals: Values,
    /// `None`: no feasible path reaches the block.
    pub entry: Vec<Option<State>>,
}

/// The state after a block's statements, with each statement's effect.
pub(super) fn run_block(
    vals: &mut Values,
    entry: &State,
    stmts: &[crate::cbpf::Op],
) -> (State, Vec<Effect>) {
    let mut s = entry.clone();
    let effects = stmts.iter().map(|&op| s.step(vals, op)).collect();
    (s, effects)
}

/// The states at the ends of a block's outgoing edges, given the state
/// after its statements: `(successor, state)` for each feasible edge.
pub(super) fn out_edges(vals: &mut Values, exit: State, term: &Term) -> Vec<(usize, State)> {
    match *term {
        Term::Ret(_) => Vec::new(),
        Term::Goto(t) => vec![(t, exit)],
        Term::Jmp { t, f, .. } if t == f => vec![(t, exit)],
        Term::Jmp { op, src, t, f } => match exit.decide(vals, op, src) {
            Some(true) => vec![(t, exit)],
            Some(false) => vec![(f, exit)],
            None => {
                let mut st = exit.clone();
                st.assume(vals, op, src, true);
                let mut sf = exit;
                sf.assume(vals, op, src, false);
                vec![(t, st), (f, sf)]
            }
        },
    }
}

pub(super) fn forward(cfg: &Cfg) -> Flow {
    let n = cfg.blocks.len();
    let mut vals = Values::default();
    let mut pending: Vec<Vec<State>> = vec![Vec::new(); n];
    let mut entry = vec![None; n];
    if let Some(p) = pending.first_mut() {
        p.push(State::entry(&mut vals));
    }
    for (i, b) in cfg.blocks.iter().enumerate() {
        let ins = std::mem::take(&mut pending[i]);
        let Some(st) = State::meet(&ins, &mut vals) else {
            continue;
        };
        let (exit, _) = run_block(&mut vals, &st, &b.stmts);
        for (succ, s) in out_edges(&mut vals, exit, &b.term) {
            pending[succ].push(s);
        }
        entry[i] = Some(st);
    }
    Flow { vals, entry }
}
