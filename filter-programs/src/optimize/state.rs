//! What is known at one program point: the value number in every register
//! and scratch cell, the branch outcomes that held on every path here
//! (libpcap's "edge dominators", kept as facts about values), and how far
//! into the packet loads are proven to succeed.

use std::rc::Rc;

use super::value::{Val, Values, Vn, SPECIAL_OFF};
use crate::cbpf::{AluOp, JmpOp, Op, Src, MEMWORDS};

/// A register or scratch cell: 0 is A, 1 is X, 2 + k is M[k].
pub(super) type Loc = usize;
pub(super) const A: Loc = 0;
pub(super) const X: Loc = 1;
pub(super) const NLOCS: usize = 2 + MEMWORDS as usize;

/// Most facts one state keeps. Knowing less is always sound (a branch is
/// left undecided), and without a bound a chain of `n` tests keeps `n`
/// facts in each of `n` states: `host a or host b or ...` with 20,000
/// hosts needed tens of gigabytes.
pub(super) const MAX_FACTS: usize = 64;

/// `lhs op rhs` evaluated to `holds` on every path to this point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Fact {
    pub lhs: Vn,
    pub op: u8,
    pub rhs: Vn,
    pub holds: bool,
}

pub(super) fn op_code(op: JmpOp) -> u8 {
    match op {
        JmpOp::Jeq => 0,
        JmpOp::Jgt => 1,
        JmpOp::Jge => 2,
        JmpOp::Jset => 3,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct State {
    pub loc: [Vn; NLOCS],
    /// Sorted, without duplicates. Shared between copies until one of them
    /// changes: the analysis copies states far more often than it adds or
    /// drops a fact.
    pub facts: Rc<[Fact]>,
    /// Every absolute load ending at or before this offset succeeds.
    pub abs_end: u64,
    /// Per X value: indirect loads ending at or before `x + end` succeed.
    /// Sorted by value number.
    pub ind_end: Rc<[(Vn, u64)]>,
}

/// The effect of one statement.
#[derive(Clone, Copy, Debug)]
pub(super) struct Effect {
    pub dest: Loc,
    pub vn: Vn,
    /// The destination held `vn` already: the statement changes nothing.
    pub nop: bool,
    /// It may end the run (a load past the capture, a division by zero).
    pub can_fail: bool,
}

fn eval(op: u8, a: u32, b: u32) -> bool {
    match op {
        0 => a == b,
        1 => a > b,
        2 => a >= b,
        _ => a & b != 0,
    }
}

impl State {
    /// The state on entry: A and X are 0 in both engines, scratch memory
    /// is unknown (libpcap leaves it uninitialized).
    pub(super) fn entry(vals: &mut Values) -> State {
        let zero = vals.konst(0);
        let mut loc = [zero; NLOCS];
        for l in loc.iter_mut().skip(2) {
            *l = vals.fresh();
        }
        State {
            loc,
            facts: Rc::from([]),
            abs_end: 0,
            ind_end: Rc::from([]),
        }
    }

    /// Narrows this state to what also holds in `other`: facts and proven
    /// bounds both must have stay, and a location whose values differ is
    /// marked to become a fresh opaque value in [`State::settle`].
    pub(super) fn meet_with(&mut self, other: &State) {
        for (o, v) in self.loc.iter_mut().zip(other.loc) {
            if *o != v {
                *o = Vn::MAX;
            }
        }
        let lost = |f: &Fact| other.facts.binary_search(f).is_err();
        if !Rc::ptr_eq(&self.facts, &other.facts) && self.facts.iter().any(lost) {
            self.facts = self.facts.iter().filter(|f| !lost(f)).copied().collect();
        }
        self.abs_end = self.abs_end.min(other.abs_end);
        if !Rc::ptr_eq(&self.ind_end, &other.ind_end) {
            let theirs = |v: Vn| {
                other
                    .ind_end
                    .binary_search_by_key(&v, |p| p.0)
                    .ok()
                    .map(|i| other.ind_end[i].1)
            };
            let kept = |&(v, e): &(Vn, u64)| theirs(v).map(|o| (v, e.min(o)));
            if self.ind_end.iter().any(|p| kept(p) != Some(*p)) {
                self.ind_end = self.ind_end.iter().filter_map(kept).collect();
            }
        }
    }

    /// Gives every location that [`State::meet_with`] found to differ its
    /// own fresh value, once all incoming states are met.
    pub(super) fn settle(&mut self, vals: &mut Values) {
        for o in self.loc.iter_mut() {
            if *o == Vn::MAX {
                *o = vals.fresh();
            }
        }
    }

    fn src(&self, src: Src, vals: &mut Values) -> Vn {
        match src {
            Src::K(k) => vals.konst(k),
            Src::X => self.loc[X],
        }
    }

    fn ind_bound(&self, x: Vn) -> u64 {
        match self.ind_end.binary_search_by_key(&x, |p| p.0) {
            Ok(i) => self.ind_end[i].1,
            Err(_) => 0,
        }
    }

    /// Records a successful load ending at `end` and says whether it could
    /// have failed.
    fn load(&mut self, vals: &Values, vn: Vn, end: u64) -> bool {
        match vals.get(vn) {
            Val::Ind { x, .. } => {
                let can_fail = end > self.ind_bound(x);
                if can_fail {
                    let ends = &self.ind_end;
                    let i = ends.partition_point(|p| p.0 < x);
                    let rest = if ends.get(i).is_some_and(|p| p.0 == x) {
                        i + 1
                    } else {
                        i
                    };
                    self.ind_end = ends[..i]
                        .iter()
                        .chain([&(x, end)])
                        .chain(&ends[rest..])
                        .copied()
                        .collect();
                }
                can_fail
            }
            _ => {
                let can_fail = end > self.abs_end;
                self.abs_end = self.abs_end.max(end);
                can_fail
            }
        }
    }

    /// Runs one statement (not a jump or return) symbolically.
    pub(super) fn step(&mut self, vals: &mut Values, op: Op) -> Effect {
        let a = self.loc[A];
        let x = self.loc[X];
        let (dest, vn, can_fail) = match op {
            Op::LdAbs { k, .. } | Op::LdxMsh { k } if k >= SPECIAL_OFF => {
                let dest = if matches!(op, Op::LdxMsh { .. }) {
                    X
                } else {
                    A
                };
                (dest, vals.fresh(), true)
            }
            Op::LdAbs { size, k } => {
                let vn = vals.intern(Val::Abs { size, k });
                (
                    A,
                    vn,
                    self.load(vals, vn, u64::from(k) + u64::from(size.bytes())),
                )
            }
            Op::LdInd { size, k } => {
                let vn = vals.ind(size, k, x);
                let end = match vals.get(vn) {
                    Val::Abs { k, .. } => u64::from(k),
                    _ => u64::from(k),
                } + u64::from(size.bytes());
                (A, vn, self.load(vals, vn, end))
            }
            Op::LdxMsh { k } => {
                let vn = vals.intern(Val::Msh(k));
                (X, vn, self.load(vals, vn, u64::from(k) + 1))
            }
            Op::LdImm { k } => (A, vals.konst(k), false),
            Op::LdxImm { k } => (X, vals.konst(k), false),
            Op::LdLen => (A, vals.intern(Val::Len), false),
            Op::LdxLen => (X, vals.intern(Val::Len), false),
            Op::LdMem { k } => (A, self.loc[2 + k as usize % 16], false),
            Op::LdxMem { k } => (X, self.loc[2 + k as usize % 16], false),
            Op::St { k } => (2 + k as usize % 16, a, false),
            Op::Stx { k } => (2 + k as usize % 16, x, false),
            Op::Tax => (X, a, false),
            Op::Txa => (A, x, false),
            Op::Neg => (A, vals.neg(a), false),
            Op::Alu { op, src } => {
                let b = match (op, src) {
                    (AluOp::Lsh | AluOp::Rsh, Src::K(k)) => vals.konst(k & 31),
                    _ => self.src(src, vals),
                };
                let can_fail = matches!(op, AluOp::Div | AluOp::Mod)
                    && !matches!(vals.as_const(b), Some(c) if c != 0);
                (A, vals.alu(op, a, b), can_fail)
            }
            // Terminators are not statements; treat them as nops.
            Op::Ja { .. } | Op::Jmp { .. } | Op::Ret { .. } => (A, a, false),
        };
        let nop = self.loc[dest] == vn;
        // A value already held was computed on every path here, so
        // computing it again cannot fail.
        let can_fail = can_fail && !nop;
        self.loc[dest] = vn;
        Effect {
            dest,
            vn,
            nop,
            can_fail,
        }
    }

    /// The outcome of `A op src`, if the facts decide it.
    pub(super) fn decide(&self, vals: &mut Values, op: JmpOp, src: Src) -> Option<bool> {
        let rhs = self.src(src, vals);
        decide(&self.facts, vals, self.loc[A], op_code(op), rhs)
    }

    /// Adds the fact that `A op src` came out `holds`.
    pub(super) fn assume(&mut self, vals: &mut Values, op: JmpOp, src: Src, holds: bool) {
        let f = Fact {
            lhs: self.loc[A],
            op: op_code(op),
            rhs: self.src(src, vals),
            holds,
        };
        if self.facts.len() >= MAX_FACTS {
            return;
        }
        if let Err(i) = self.facts.binary_search(&f) {
            let (before, after) = self.facts.split_at(i);
            self.facts = before.iter().chain([&f]).chain(after).copied().collect();
        }
    }
}

/// Decides `lhs op rhs` from constants, the value's shape and the facts.
pub(super) fn decide(facts: &[Fact], vals: &Values, lhs: Vn, op: u8, rhs: Vn) -> Option<bool> {
    let k = vals.as_const(rhs);
    if let (Some(a), Some(b)) = (vals.as_const(lhs), k) {
        return Some(eval(op, a, b));
    }
    if lhs == rhs {
        match op {
            0 | 2 => return Some(true),
            1 => return Some(false),
            _ => {}
        }
    }
    let start = facts.partition_point(|f| f.lhs < lhs);
    let about = facts[start..].iter().take_while(|f| f.lhs == lhs);
    if let Some(f) = about.clone().find(|f| f.op == op && f.rhs == rhs) {
        return Some(f.holds);
    }
    let k = k?;
    let kn = vals.known(lhs);
    let (mut lo, mut hi, mut zero) = (kn.lo, kn.hi, kn.zero);
    // A is known to differ from k, from 0; a `jset` mask that held lies
    // within k.
    let (mut ne_k, mut ne_zero, mut set_within_k) = (false, false, false);
    for f in about {
        let Some(c) = vals.as_const(f.rhs) else {
            continue;
        };
        match (f.op, f.holds) {
            (0, true) => return Some(eval(op, c, k)),
            (0, false) => {
                ne_k |= c == k;
                ne_zero |= c == 0;
            }
            (1, true) => lo = lo.max(c.saturating_add(1)),
            (1, false) => hi = hi.min(c),
            (2, true) => lo = lo.max(c),
            (2, false) => hi = hi.min(c.saturating_sub(1)),
            (3, true) => set_within_k |= c & !k == 0,
            (3, false) => zero |= c,
            _ => {}
        }
    }
    hi = hi.min(!zero);
    if lo > hi {
        // Contradictory facts: the point is unreachable. Decide nothing.
        return None;
    }
    if lo == hi {
        return Some(eval(op, lo, k));
    }
    match op {
        0 => (k < lo || k > hi || k & zero != 0 || ne_k).then_some(false),
        1 if lo > k => Some(true),
        1 if hi <= k => Some(false),
        2 if lo >= k => Some(true),
        2 if hi < k => Some(false),
        3 if k & !zero == 0 => Some(false),
        3 if set_within_k => Some(true),
        // A is not zero and every bit it may have is tested.
        3 if (lo > 0 || ne_zero) && (k | zero) == u32::MAX => Some(true),
        _ => None,
    }
}
