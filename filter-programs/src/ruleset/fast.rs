//! The fast path of one family (IPv4, IPv6 or ARP): hash tables of
//! address/protocol/port (ICMP type and code, TCP flags) tuples that find,
//! in a few lookups, the first pass or drop rule of the common shapes
//! (`tuple`) a frame matches, however many such rules there are. With
//! three or more address shapes in one direction, a *presence* table (a
//! prefix to the tables with entries under it) skips the lookups a frame's
//! address cannot hit.
//!
//! The other rules (count rules, which must see every frame they match,
//! and rules of other shapes) stay in the family's chain, in order, each
//! behind a check: a table rule that comes before it and matched decides
//! first. A rule of the common shapes that no table takes (too few of its
//! shape for a lookup to pay, a count rule) is *inline*: its terms are
//! compared with the fields the gate read, a few instructions a word. A
//! rule with a *guard* (terms every frame it matches satisfies,
//! `tuple::guard_in`) also puts those terms in the tables, and is skipped
//! unless the lookups found a guarded rule at or before it. A frame whose
//! header or transport fields are not captured cannot be looked up: the
//! gate sends it through every rule as the classic programs would (a
//! rule's truncated load rejects it where a lookup could not tell),
//! compiled or interpreted (see `compile`).
//!
//! ```text
//!  gate        header (and transport fields) captured? else every rule,
//!              compiled or interpreted
//!  lookups     best = cand = NONE; per presence table: the tables the
//!              frame's prefix names; one lookup per table named: best =
//!              the least `index << 1 | drop`, cand = the least guarded
//!              index found
//!  chain       table rule:           no code
//!              run of guarded rules: if cand > its last rule, skip the run
//!              other rule j:         if best < j << 1, decide best;
//!                                    guarded: if cand > j, skip it;
//!              run of inline rules:  by protocol, their terms against the
//!                                    fields
//!              after the last rule of the program: decide best when no
//!              later program holds a rule that could come before it; when
//!              none is left, the default
//! ```
//!
//! A program reached by a tail call has a fresh stack, so each program
//! with rules of the family does its own lookups; they find the same.

use std::collections::{BTreeMap, BTreeSet};

use super::bitmap::{self, Bitmap};
use super::negate::{self, NTerm};
use super::specialize::{specialize, Fact};
use super::tuple::{self, Family, Shape, Term, Word};
use super::{Action, Rule};
use crate::ebpf::asm::{Asm, Label};
use crate::ebpf::insn::{AluOp, Endian, JmpOp, Op, Operand, Reg, Size};

/// Map index of table 0 (after the counters and the program array).
pub const TABLES_MAP_INDEX: u64 = 2;
/// Most tables (tuple shapes) of one family. The kernel allows 64 maps
/// per program (see [`MAX_MAPS`]): the counters, the program array and
/// the cold path's two maps, then each family's shapes and up to two
/// presence tables; IPv4 and IPv6 take up to 25 shapes each, ARP what is
/// left.
pub const MAX_TABLES: usize = 25;
/// The kernel's limit on the maps one program uses (`MAX_USED_MAPS`).
pub const MAX_MAPS: usize = 64;
/// The maps that are not lookup tables: counters, program array, the
/// cold path's code and state.
pub const OTHER_MAPS: usize = 4;
// A presence table names tables by a bit in an immediate (see `lookup`).
const _: () = assert!(MAX_TABLES < 31);
/// Address shapes of one direction from which a presence table pays: on
/// a miss it saves all but one of their lookups, on a hit it costs one.
const PRESENCE_MIN_SHAPES: usize = 3;
/// What one table lookup costs, in the units of a rule's chain cost (its
/// tests and loads, about one instruction each): a hash lookup with its
/// key built takes about as long as 40 executed instructions. A table
/// whose rules would cost less in the chain is not made (the cost model:
/// a handful of rules runs faster as straight-line code).
pub const LOOKUP_COST: usize = 40;
/// Inline rules that make the gate (reading the fields once, about 25
/// instructions) pay, when no table does.
const INLINE_MIN: usize = 2;

/// Stack slots: each family's frame fields and key under construction,
/// and the lookups' outcome; all below the translator's (fp-80 and up)
/// and the counter key (fp-88).
struct Slots {
    src: i16,
    dst: i16,
    proto: i16,
    l4: i16,
    sport: i16,
    dport: i16,
    flags: i16,
    key: i16,
}

const V4: Slots = Slots {
    src: -128,
    dst: -124,
    proto: -120,
    l4: -116,
    sport: -112,
    dport: -108,
    flags: -160,
    key: -152,
};
const V6: Slots = Slots {
    src: -232,
    dst: -216,
    proto: -200,
    l4: -196,
    sport: -192,
    dport: -188,
    flags: -156,
    key: -280,
};
const F_BEST: i16 = -104;
/// The first guarded rule the lookups found.
const F_CAND: i16 = -100;
/// `best` when no table entry matched: above every `index << 1 | drop`.
const NONE: i32 = -1;
/// A port field the frame has not: equal to no 16-bit port, so an inline
/// port test fails without asking whether the ports were read.
const NO_PORT: i32 = 0x1_0000;
/// The flags field of a frame whose TCP flags were not read.
const NO_FLAGS: i32 = 0x100;

/// A table entry: the first pass/drop rule with this key (`index << 1 |
/// drop`), and the first guarded rule (its index); [`NONE`] for neither.
pub type Entry = (u32, u32);

pub struct Fast {
    pub family: Family,
    /// The map index (after the counters and the program array) of this
    /// family's first table: the IPv4 tables come first.
    pub first_map: usize,
    pub tables: Vec<(Shape, BTreeMap<Vec<u8>, Entry>)>,
    /// Per rule: every frame of the family it matches is found by the
    /// lookups.
    pub in_table: Vec<bool>,
    /// Per rule tested in the chain: the lookups find every frame of the
    /// family it can match among its guard terms (see [`tuple::guard_in`]),
    /// so it is skipped when they find no guarded rule at or before it.
    pub guarded: Vec<bool>,
    /// Per rule outside the tables: why.
    pub why_not: Vec<Option<NotInTable>>,
    /// Per rule in the tables or guarded: the tables (indices into
    /// `tables`) that hold its terms.
    pub rule_tables: Vec<Vec<usize>>,
    /// Per rule neither in the tables nor guarded: its exact terms, when
    /// it has them, compared inline (see [`Fast::emit_inline`]).
    pub inline: Vec<Option<Vec<Term>>>,
    /// Presence tables (indices into `tables`, after the shapes' tables),
    /// for the source (`true`) or destination address: every address
    /// prefix of that direction in the tables, cut to the shortest
    /// length they use, to the set of tables (a bit per index) with an
    /// entry under it. A frame's lookups of that direction run only in
    /// the tables its prefix names: none when the prefix is absent.
    pub presence: Vec<(bool, usize)>,
    /// The pass and drop rules of the table shapes that no shape table
    /// takes (past `max_shapes`, or of a shape too rare for a table), when
    /// per-field bitmaps pay for them: their maps follow the tables.
    pub bitmap: Option<Bitmap>,
}

/// A protocol (`None`: any the run's terms do not name) and the run's
/// rules specialized to it: (rule, terms left).
pub type ProtoGroup = (Option<u8>, Vec<(usize, Vec<Term>)>);
/// Most protocols a run is split by, and most rules in a split run (each
/// protocol copies the run's code).
const MAX_PROTO_GROUPS: usize = 4;
const MAX_SPLIT_RUN: usize = 64;

/// Why a rule is tested in the chain rather than found by a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotInTable {
    /// A count rule must count every frame it matches, not only the first.
    Count,
    /// It matches no frame of the family.
    NotInFamily,
    /// Its expression is not of the table shapes.
    Shape,
    /// The family's tables already hold [`MAX_TABLES`] shapes, and its
    /// bitmaps [`bitmap::MAX_BITS`] terms (or would not pay).
    TooManyShapes,
    /// Its table would cost more than the rules it serves (cost model).
    Unpaid,
}

impl NotInTable {
    pub fn key(self) -> &'static str {
        match self {
            NotInTable::Count => "count_rule",
            NotInTable::NotInFamily => "not_ip",
            NotInTable::Shape => "not_a_table_shape",
            NotInTable::TooManyShapes => "too_many_shapes",
            NotInTable::Unpaid => "cheaper_in_the_chain",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            NotInTable::Count => "a count rule counts every frame it matches, so it is tested in order",
            NotInTable::NotInFamily => {
                "it matches no IPv4, IPv6 or ARP frame; the lookup tables serve those only"
            }
            NotInTable::Shape => {
                "not of the table shapes (host, net, numeric port or portrange, tcp/udp/sctp/icmp/icmp6, ip/ip6, and their and/or)"
            }
            NotInTable::TooManyShapes => {
                "past the family's lookup tables (25 shapes; ARP what the kernel's 64 maps leave), and its bitmaps are full (4,096 terms) or cost more than comparing it inline"
            }
            NotInTable::Unpaid => "too few rules of its shape for a lookup to pay (cost model)",
        }
    }
}

/// A rule's terms in a family: exact (it may decide there) or a guard.
#[derive(Clone, Debug)]
enum Plan {
    /// Exact terms of a pass (false) or drop (true) rule.
    Decide(Vec<Term>, bool),
    /// A guard; `true` when the terms are exact (a count rule's).
    Guard(Vec<Term>, bool),
    /// Exact terms of a pass or drop rule that exclude values (`not host
    /// X`): only the bitmaps can hold them, else the chain.
    Bits(Vec<NTerm>, bool),
    Chain(NotInTable),
}

fn plan(r: &Rule, family: Family) -> Plan {
    if specialize(&r.program, &Fact::EtherType(family.ethertype())).is_none() {
        return Plan::Chain(NotInTable::NotInFamily);
    }
    let with_not = tuple::nterms_in(&r.expr, family);
    let exact = with_not.as_deref().and_then(negate::positive);
    let exact = exact.filter(|t| t.len() <= tuple::MAX_TERMS);
    match (r.action, exact) {
        (Action::Pass | Action::Drop, Some(t)) => {
            Plan::Decide(t.into_iter().collect(), r.action == Action::Drop)
        }
        (Action::Count, Some(t)) => Plan::Guard(t.into_iter().collect(), true),
        (Action::Pass | Action::Drop, None)
            if with_not
                .as_ref()
                .is_some_and(|t| t.iter().all(bitmap::holds_term)) =>
        {
            Plan::Bits(with_not.unwrap_or_default(), r.action == Action::Drop)
        }
        (action, None) => match tuple::guard_in(&r.expr, family) {
            Some(g) => Plan::Guard(g, false),
            None if action == Action::Count => Plan::Chain(NotInTable::Count),
            None => Plan::Chain(NotInTable::Shape),
        },
    }
}

impl Fast {
    /// Which rules go into the family's tables: every pass and drop rule
    /// of the common shapes, in order, and the guards of other rules, as
    /// long as the shapes fit in the tables; then only the tables that pay
    /// for their lookup. `cost` is a rule's cost in the chain,
    /// `lookup_cost` a table lookup's.
    /// `max_shapes` (at most [`MAX_TABLES`]) bounds its shape tables; two
    /// presence tables may come on top.
    ///
    /// The pass and drop rules of the table shapes left over (past the
    /// shapes the tables take, or of shapes too rare for a table to pay)
    /// go to per-field bitmaps when those cost less than comparing the
    /// rules inline; the bitmaps' maps come out of the shape tables'.
    pub fn new(
        rules: &[Rule],
        family: Family,
        first_map: usize,
        max_shapes: usize,
        cost: impl Fn(&Rule) -> usize,
        lookup_cost: usize,
    ) -> Fast {
        let max = max_shapes.min(MAX_TABLES);
        let plans: Vec<Plan> = rules.iter().map(|r| plan(r, family)).collect();
        let none = BTreeSet::new();
        let fast = Fast::fit(
            rules,
            &plans,
            family,
            first_map,
            max,
            &none,
            &cost,
            lookup_cost,
        );
        if family == Family::Arp || left_over(&fast, &plans).is_empty() {
            return fast;
        }
        // The bitmaps' maps come out of the shape tables' budget, and a
        // shape of few rules costs a frame less as bits than as a lookup.
        let rare = rare_shapes(&plans, lookup_cost);
        let fewer = Fast::fit(
            rules,
            &plans,
            family,
            first_map,
            max.saturating_sub(bitmap::MAPS),
            &rare,
            &cost,
            lookup_cost,
        );
        let left = left_over(&fewer, &plans);
        let slices: Vec<(usize, bool, &[NTerm])> = left
            .iter()
            .map(|(i, d, t)| (*i, *d, t.as_slice()))
            .collect();
        let Some(b) = Bitmap::build(family, rules.len(), &slices) else {
            return fast;
        };
        // Without the bitmaps: compared inline, or (with exclusions) the
        // rule's program in the chain.
        let inline: usize = (left.iter())
            .filter(|(i, ..)| b.holds[*i])
            .map(|(i, _, t)| match &plans[*i] {
                Plan::Bits(..) => cost(&rules[*i]),
                _ => inline_cost(&t.iter().map(|n| n.term).collect::<Vec<_>>()),
            })
            .sum();
        if lookup_cost > 0 && inline <= b.cost(lookup_cost) {
            return fast;
        }
        let mut f = fewer;
        for (i, held) in b.holds.iter().enumerate() {
            if *held {
                f.in_table[i] = true;
                f.inline[i] = None;
                f.why_not[i] = None;
            } else if matches!(plans[i], Plan::Bits(..)) {
                f.why_not[i] = Some(NotInTable::TooManyShapes);
            }
        }
        f.bitmap = Some(b);
        f
    }

    /// The tables of at most `max` shapes, none of the `rare` ones, that
    /// pay for their lookups; the other rules inline or in the chain.
    #[allow(clippy::too_many_arguments)]
    fn fit(
        rules: &[Rule],
        plans: &[Plan],
        family: Family,
        first_map: usize,
        max: usize,
        rare: &BTreeSet<Shape>,
        cost: &impl Fn(&Rule) -> usize,
        lookup_cost: usize,
    ) -> Fast {
        let mut fast = Fast::all(plans, family, first_map, rare, max);
        // A table pays when the rules only it serves would cost more in
        // the chain than its lookup. Dropping one can leave another
        // unpaid (its rules' other shapes go too), so to a fixpoint.
        let mut dropped: BTreeSet<Shape> = rare.clone();
        loop {
            let mut saved: BTreeMap<Shape, usize> = BTreeMap::new();
            for (i, (r, p)) in rules.iter().zip(plans).enumerate() {
                let (Plan::Decide(terms, _) | Plan::Guard(terms, _)) = p else {
                    continue;
                };
                if !fast.in_table[i] && !fast.guarded[i] {
                    continue;
                }
                let shapes: BTreeSet<Shape> = terms.iter().map(|t| t.shape()).collect();
                // Without the table, a rule of exact terms is compared
                // inline; a guarded one runs its classic program.
                let without = match p {
                    Plan::Decide(..) => inline_cost(terms),
                    _ => cost(r),
                };
                let share = without / shapes.len().max(1);
                for s in shapes {
                    *saved.entry(s).or_default() += share.max(1);
                }
            }
            let unpaid: Vec<Shape> = saved
                .iter()
                .filter(|(_, c)| **c < lookup_cost)
                .map(|(s, _)| *s)
                .collect();
            if unpaid.is_empty() {
                for (i, p) in plans.iter().enumerate() {
                    if let Plan::Decide(t, _) | Plan::Guard(t, true) = p {
                        if !fast.in_table[i] && !fast.guarded[i] {
                            fast.inline[i] = Some(t.clone());
                        }
                    }
                }
                if fast.tables.is_empty() && fast.inline.iter().flatten().count() < INLINE_MIN {
                    fast.inline = vec![None; rules.len()];
                }
                fast.add_presence(plans);
                for (i, r) in rules.iter().enumerate() {
                    if fast.why_not[i].is_none() && !fast.in_table[i] {
                        fast.why_not[i] = Some(match r.action {
                            Action::Count => NotInTable::Count,
                            _ if fast.guarded[i] => NotInTable::Shape,
                            _ => NotInTable::Unpaid,
                        });
                    }
                }
                return fast;
            }
            dropped.extend(unpaid);
            fast = Fast::all(plans, family, first_map, &dropped, max);
        }
    }

    /// Every rule whose plan's terms use none of the `excluded` shapes, as
    /// long as the shapes fit in the tables.
    fn all(
        plans: &[Plan],
        family: Family,
        first_map: usize,
        excluded: &BTreeSet<Shape>,
        max: usize,
    ) -> Fast {
        let mut tables: BTreeMap<Shape, BTreeMap<Vec<u8>, Entry>> = BTreeMap::new();
        let n = plans.len();
        let (mut in_table, mut guarded, mut why_not) =
            (vec![false; n], vec![false; n], vec![None; n]);
        let mut shapes: Vec<BTreeSet<Shape>> = vec![BTreeSet::new(); n];
        for (i, p) in plans.iter().enumerate() {
            let (terms, guard, drop) = match p {
                Plan::Chain(why) => {
                    why_not[i] = Some(*why);
                    continue;
                }
                // Unless the bitmaps take it (see `Fast::new`).
                Plan::Bits(..) => {
                    why_not[i] = Some(NotInTable::Unpaid);
                    continue;
                }
                Plan::Decide(t, drop) => (t, false, *drop),
                Plan::Guard(t, _) => (t, true, false),
            };
            if terms.iter().any(|t| excluded.contains(&t.shape())) {
                // Its reason is set once the fixpoint is reached.
                continue;
            }
            let new_shapes: BTreeSet<Shape> = terms
                .iter()
                .map(|t| t.shape())
                .filter(|s| !tables.contains_key(s))
                .collect();
            if tables.len() + new_shapes.len() > max {
                why_not[i] = Some(NotInTable::TooManyShapes);
                continue;
            }
            for t in terms {
                let e = tables
                    .entry(t.shape())
                    .or_default()
                    .entry(t.key())
                    .or_insert((NONE as u32, NONE as u32));
                // Rules come in order: the first of each kind stays.
                if guard {
                    e.1 = e.1.min(i as u32);
                } else {
                    e.0 = e.0.min(((i as u32) << 1) | drop as u32);
                }
            }
            if guard {
                guarded[i] = true;
            } else {
                in_table[i] = true;
            }
            shapes[i] = terms.iter().map(|t| t.shape()).collect();
        }
        let tables: Vec<_> = tables.into_iter().collect();
        let index = |s: &Shape| tables.iter().position(|(t, _)| t == s);
        let rule_tables = shapes
            .iter()
            .map(|set| set.iter().filter_map(index).collect())
            .collect();
        Fast {
            family,
            first_map,
            tables,
            in_table,
            guarded,
            why_not,
            rule_tables,
            inline: vec![None; n],
            presence: Vec::new(),
            bitmap: None,
        }
    }

    /// The presence tables that pay (see [`Fast::presence`]).
    fn add_presence(&mut self, plans: &[Plan]) {
        let family = self.family;
        for src in [true, false] {
            let len_of = |s: &Shape| if src { s.src } else { s.dst };
            let lens: Vec<u8> = self.tables.iter().filter_map(|(s, _)| len_of(s)).collect();
            let Some(&min) = lens.iter().min() else {
                continue;
            };
            // A short prefix filters little.
            if lens.len() < PRESENCE_MIN_SHAPES || u32::from(min) < family.bits() / 4 {
                continue;
            }
            let cut = |a: Option<(u128, u8)>| {
                a.map(|(addr, _)| Term {
                    src: src.then_some((addr, min)),
                    dst: (!src).then_some((addr, min)),
                    ..Term::any(family)
                })
            };
            // (key, the tables' bits as the u64 value's two halves)
            let mut keys: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
            for (i, p) in plans.iter().enumerate() {
                let (Plan::Decide(terms, _) | Plan::Guard(terms, _)) = p else {
                    continue;
                };
                if !self.in_table[i] && !self.guarded[i] {
                    continue;
                }
                for t in terms {
                    let Some(k) = cut(if src { t.src } else { t.dst }) else {
                        continue;
                    };
                    let g = (self.tables.iter().position(|(s, _)| *s == t.shape()))
                        .expect("a table term's shape has its table");
                    let e = keys.entry(k.key()).or_insert((0, 0));
                    let bits = (u64::from(e.0) | u64::from(e.1) << 32) | 1 << g;
                    *e = (bits as u32, (bits >> 32) as u32);
                }
            }
            let shape = cut(Some((0, min))).expect("a term").shape();
            self.presence.push((src, self.tables.len()));
            self.tables.push((shape, keys));
        }
    }

    /// Does a table or an inline rule test TCP's flags? Then the gate
    /// reads them, and a TCP header cut before them is not served.
    fn reads_flags(&self) -> bool {
        self.tables.iter().any(|(s, _)| s.flags)
            || (self.inline.iter().flatten()).any(|t| t.iter().any(|t| t.flags.is_some()))
            || self.bitmap.as_ref().is_some_and(Bitmap::reads_flags)
    }

    /// Does the family have a fast path: tables, or inline rules?
    pub fn active(&self) -> bool {
        self.lookups() || self.inline.iter().any(Option::is_some)
    }

    /// Do lookups (tables or bitmaps) find rules?
    fn lookups(&self) -> bool {
        !self.tables.is_empty() || self.bitmap.is_some()
    }

    /// The maps it takes: the tables, then the bitmaps'.
    pub fn maps(&self) -> usize {
        self.tables.len() + self.bitmap.as_ref().map_or(0, |b| b.maps().len())
    }

    /// The bitmaps' maps with their indices after the counters and the
    /// program array.
    pub fn bitmap_maps(&self) -> Vec<(usize, bitmap::MapSpec)> {
        let first = self.first_map + self.tables.len();
        (self.bitmap.iter())
            .flat_map(|b| b.maps())
            .enumerate()
            .map(|(k, m)| (first + k, m))
            .collect()
    }

    /// Rule `i`'s terms against the fields the gate read: a match of the
    /// last term falls through (bind `hit` right after), of another goes
    /// to `hit`; no match goes to `miss`. The same test as a lookup of the
    /// term's shape: the key's words from the fields under the shape's
    /// masks, equal to the term's key. With `regs` (after
    /// [`Fast::emit_field_regs`]), the fields it names are read from
    /// registers.
    pub fn emit_inline(&self, a: &mut Asm, terms: &[Term], hit: Label, miss: Label, regs: bool) {
        let s = self.slots();
        for (n, t) in terms.iter().enumerate() {
            let last = n + 1 == terms.len();
            let next = if last { miss } else { a.label() };
            let key = t.key();
            for (w, want) in t.shape().words().into_iter().zip(key.chunks(4)) {
                let want = u32::from_le_bytes([want[0], want[1], want[2], want[3]]);
                let Some((from, mask)) = field(s, w) else {
                    continue;
                };
                let reg = match field_reg(w) {
                    Some(r) if regs && self.family != Family::V6 => r,
                    _ => {
                        a.ldx(Size::W, Reg::R1, Reg::R10, from);
                        Reg::R1
                    }
                };
                let reg = if mask != u32::MAX {
                    if reg != Reg::R1 {
                        a.mov64(Reg::R1, Operand::Reg(reg));
                    }
                    a.alu32(AluOp::And, Reg::R1, Operand::Imm(mask as i32));
                    Reg::R1
                } else {
                    reg
                };
                a.jmp(false, JmpOp::Jne, reg, Operand::Imm(want as i32), next);
            }
            if !last {
                a.ja(hit);
                a.bind(next);
            }
        }
        if terms.is_empty() {
            a.ja(miss);
        }
    }

    /// The fields inline rules of an IPv4 or ARP run compare most, into
    /// r7 (source), r8 (destination) and r9 (destination port), which no
    /// inline test or counter update clobbers. Returns whether it did.
    pub fn emit_field_regs(&self, a: &mut Asm) -> bool {
        if self.family == Family::V6 {
            return false;
        }
        let s = self.slots();
        a.ldx(Size::W, Reg::R7, Reg::R10, s.src);
        a.ldx(Size::W, Reg::R8, Reg::R10, s.dst);
        // The ARP gate writes no port field (no ARP term tests one).
        if self.family == Family::V4 {
            a.ldx(Size::W, Reg::R9, Reg::R10, s.dport);
        }
        true
    }

    /// A run of inline rules split by the frame's protocol, when that
    /// pays: per protocol its terms test (then "any other"), the rules
    /// with only the terms that can match such a frame, the protocol word
    /// dropped (it is known there). `None`: no term tests a protocol, or
    /// too many protocols or rules for the copies to pay.
    pub fn proto_groups(run: &[(usize, &[Term])]) -> Option<Vec<ProtoGroup>> {
        let mut protos: Vec<u8> = run
            .iter()
            .flat_map(|(_, t)| t.iter().filter_map(|t| t.proto))
            .collect();
        protos.sort_unstable();
        protos.dedup();
        if protos.is_empty() || protos.len() > MAX_PROTO_GROUPS || run.len() > MAX_SPLIT_RUN {
            return None;
        }
        let group = |p: Option<u8>| -> ProtoGroup {
            let rules = run
                .iter()
                .map(|(i, terms)| {
                    let kept = terms
                        .iter()
                        .filter(|t| match p {
                            // Ports are read for TCP, UDP and SCTP only.
                            Some(p) => {
                                t.proto.is_none_or(|q| q == p)
                                    && (!t.l4() || tuple::reads_l4(p, t.family))
                            }
                            None => t.proto.is_none(),
                        })
                        .map(|t| Term { proto: None, ..*t })
                        .collect();
                    (*i, kept)
                })
                .collect();
            (p, rules)
        };
        Some(
            protos
                .iter()
                .map(|p| group(Some(*p)))
                .chain([group(None)])
                .collect(),
        )
    }

    /// To `to[k]` when the frame's protocol is `protos[k]`, else to
    /// `other`.
    pub fn emit_proto_dispatch(&self, a: &mut Asm, protos: &[u8], to: &[Label], other: Label) {
        a.ldx(Size::W, Reg::R1, Reg::R10, self.slots().proto);
        for (p, l) in protos.iter().zip(to) {
            a.jmp(false, JmpOp::Jeq, Reg::R1, Operand::Imm(*p as i32), *l);
        }
        a.ja(other);
    }

    /// Can rule `i` match a frame of the family?
    pub fn in_family(&self, i: usize) -> bool {
        self.why_not[i] != Some(NotInTable::NotInFamily)
    }

    /// Goes to `to` when the lookups ran and found no guarded rule at or
    /// before rule `i`.
    pub fn emit_skip_unless_candidate(&self, a: &mut Asm, i: usize, to: Label) {
        a.ldx(Size::W, Reg::R1, Reg::R10, F_CAND);
        a.jmp(true, JmpOp::Jgt, Reg::R1, Operand::Imm(i as i32), to);
    }

    pub fn rules(&self) -> usize {
        self.in_table.iter().filter(|t| **t).count()
    }

    fn slots(&self) -> &'static Slots {
        match self.family {
            // An ARP frame's addresses are where an IPv4 frame's would be.
            Family::V4 | Family::Arp => &V4,
            Family::V6 => &V6,
        }
    }

    /// The lookups, at the head of a program's chain of the family, with
    /// r2 = data and r3 = data_end as the prologue left them: sets `best`
    /// and `cand` and falls through, or goes to `unserved` when the
    /// frame's header (or its ports) is not captured.
    pub fn emit_lookups(&self, a: &mut Asm, unserved: Label) {
        let (lookups, done) = (a.label(), a.label());
        match self.family {
            Family::V4 => fields_v4(a, lookups, unserved, self.reads_flags()),
            Family::V6 => fields_v6(a, lookups, unserved),
            Family::Arp => fields_arp(a, lookups, unserved),
        }
        a.bind(lookups);
        if self.lookups() {
            for (off, imm) in [(F_BEST, NONE), (F_CAND, NONE)] {
                a.push(Op::St {
                    size: Size::W,
                    dst: Reg::R10,
                    off,
                    imm,
                });
            }
        }
        // r8 (source) and r9 (destination): the tables the frame's
        // prefix has entries in, a bit each.
        let mut gates = Vec::new();
        for &(src, g) in &self.presence {
            let reg = if src { Reg::R8 } else { Reg::R9 };
            let (shape, map) = (&self.tables[g].0, (self.first_map + g) as u64);
            let absent = a.label();
            a.mov64(reg, Operand::Imm(0));
            lookup_key(a, self.slots(), map, shape);
            a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), absent);
            a.ldx(Size::DW, reg, Reg::R0, 0);
            a.bind(absent);
            gates.push((src, reg));
        }
        for (g, (shape, _)) in self.tables.iter().enumerate() {
            if self.presence.iter().any(|p| p.1 == g) {
                continue;
            }
            let gated: Vec<Reg> = (gates.iter())
                .filter(|(src, _)| {
                    if *src {
                        shape.src.is_some()
                    } else {
                        shape.dst.is_some()
                    }
                })
                .map(|g| g.1)
                .collect();
            lookup(
                a,
                self.slots(),
                (self.first_map + g) as u64,
                shape,
                &gated,
                g,
            );
        }
        if let Some(b) = &self.bitmap {
            let s = self.slots();
            let fields = bitmap::Fields {
                src: s.src,
                dst: s.dst,
                proto: s.proto,
                sport: s.sport,
                dport: s.dport,
                flags: s.flags,
                key: s.key,
            };
            let first = TABLES_MAP_INDEX + (self.first_map + self.tables.len()) as u64;
            b.emit(a, &fields, first, F_BEST);
        }
        a.bind(done);
    }

    /// Goes to `decide` when a table rule before rule `limit` matched
    /// (`None`: any table rule).
    pub fn emit_best_before(&self, a: &mut Asm, limit: Option<usize>, decide: Label) {
        if !self.lookups() {
            // `best` stays NONE.
            return;
        }
        let on = a.label();
        a.ldx(Size::W, Reg::R1, Reg::R10, F_BEST);
        match limit {
            Some(j) => a.jmp(
                true,
                JmpOp::Jge,
                Reg::R1,
                Operand::Imm(((j as u32) << 1) as i32),
                on,
            ),
            None => a.jmp(false, JmpOp::Jeq, Reg::R1, Operand::Imm(NONE), on),
        };
        a.ja(decide);
        a.bind(on);
    }

    /// The decision of `best`: r8 = its rule, then its action's tail.
    pub fn emit_decide(&self, a: &mut Asm, tails: (Label, Label)) {
        let (tail_pass, tail_drop) = tails;
        a.ldx(Size::W, Reg::R1, Reg::R10, F_BEST);
        a.mov64(Reg::R8, Operand::Reg(Reg::R1));
        a.alu64(AluOp::Rsh, Reg::R8, Operand::Imm(1));
        a.alu64(AluOp::And, Reg::R1, Operand::Imm(1));
        let pass = a.label();
        a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), pass);
        a.ja(tail_drop);
        a.bind(pass);
        a.ja(tail_pass);
    }
}

/// The pass and drop rules of the table shapes that `f` leaves inline
/// (past its shape tables, or unpaid), and those with exclusions: (index,
/// drop?, terms), what the bitmaps may take, in rule order.
fn left_over(f: &Fast, plans: &[Plan]) -> Vec<(usize, bool, Vec<NTerm>)> {
    (plans.iter().enumerate())
        .filter_map(|(i, p)| match p {
            Plan::Bits(t, drop) => Some((i, *drop, t.clone())),
            Plan::Decide(_, drop)
                if matches!(
                    f.why_not[i],
                    Some(NotInTable::TooManyShapes | NotInTable::Unpaid)
                ) =>
            {
                let t = f.inline[i].as_deref()?;
                Some((i, *drop, t.iter().map(|t| NTerm::from(*t)).collect()))
            }
            _ => None,
        })
        .collect()
}

/// Rules of a shape from which its table costs a frame less than their
/// bits in the bitmaps: a lookup against a word (64 rules) of the scan,
/// about 8 units (see `Bitmap::cost`), so about 300; fewer, to keep the
/// bitmaps' words (and [`bitmap::MAX_BITS`]) for the rarest shapes.
const TABLE_MIN_RULES: usize = 64;

/// The shapes whose pass/drop rules go to the bitmaps rather than to a
/// table of their own: fewer than [`TABLE_MIN_RULES`] rules, no guard
/// using them (a guard needs its table), and, rarest first, as many as
/// the bitmaps' bits allow. None when every table is forced
/// (`lookup_cost` 0, as tests drive them).
fn rare_shapes(plans: &[Plan], lookup_cost: usize) -> BTreeSet<Shape> {
    if lookup_cost == 0 {
        return BTreeSet::new();
    }
    let mut count: BTreeMap<Shape, (usize, usize)> = BTreeMap::new();
    let mut guards = BTreeSet::new();
    for p in plans {
        match p {
            Plan::Decide(terms, _) => {
                let shapes: BTreeSet<Shape> = terms.iter().map(Term::shape).collect();
                for s in shapes {
                    let c = count.entry(s).or_default();
                    c.0 += 1;
                    c.1 += terms.len();
                }
            }
            Plan::Guard(terms, _) => guards.extend(terms.iter().map(Term::shape)),
            Plan::Bits(..) | Plan::Chain(_) => {}
        }
    }
    let mut by_size: Vec<(usize, usize, Shape)> = (count.into_iter())
        .filter(|(s, (n, _))| *n < TABLE_MIN_RULES && !guards.contains(s))
        .map(|(s, (n, bits))| (n, bits, s))
        .collect();
    by_size.sort();
    let mut bits = 0;
    let mut rare = BTreeSet::new();
    for (_, b, s) in by_size {
        if bits + b > bitmap::MAX_BITS {
            break;
        }
        bits += b;
        rare.insert(s);
    }
    rare
}

/// Stores a zero word at `off`.
fn zero(a: &mut Asm, off: i16) {
    a.push(Op::St {
        size: Size::W,
        dst: Reg::R10,
        off,
        imm: 0,
    });
}

/// The packet's big-endian field of `size` at r2 + `off`, as a number,
/// into stack slot `slot` (through r1).
fn field_at(a: &mut Asm, size: Size, off: i16, slot: i16) {
    a.ldx(size, Reg::R1, Reg::R2, off);
    let bits = match size {
        Size::H => 16,
        Size::W => 32,
        _ => 0,
    };
    if bits > 0 {
        a.push(Op::End {
            dst: Reg::R1,
            endian: Endian::ToBe,
            bits,
        });
    }
    a.stx(Size::W, Reg::R10, Reg::R1, slot);
}

/// To `done` unless r2 + `n` bytes are within the frame (r3 its end).
fn need(a: &mut Asm, n: i32, done: Label) {
    a.mov64(Reg::R5, Operand::Reg(Reg::R2));
    a.alu64(AluOp::Add, Reg::R5, Operand::Imm(n));
    a.jmp(true, JmpOp::Jgt, Reg::R5, Operand::Reg(Reg::R3), done);
}

/// The transport fields were read: `l4` = 1.
fn set_l4(a: &mut Asm, s: &Slots) {
    a.push(Op::St {
        size: Size::W,
        dst: Reg::R10,
        off: s.l4,
        imm: 1,
    });
}

/// The protocol (in r4) to its slot, `l4` zeroed and the port fields
/// [`NO_PORT`]; then a TCP, UDP or SCTP packet goes to the first label
/// returned (to have its ports read), an `icmp` one to the second, any
/// other to `lookups`. The caller binds both.
fn protocol(a: &mut Asm, s: &Slots, lookups: Label, icmp: u8, flags: bool) -> (Label, Label) {
    let (l4chk, icmpchk) = (a.label(), a.label());
    a.stx(Size::W, Reg::R10, Reg::R4, s.proto);
    zero(a, s.l4);
    if flags {
        a.push(Op::St {
            size: Size::W,
            dst: Reg::R10,
            off: s.flags,
            imm: NO_FLAGS,
        });
    }
    for slot in [s.sport, s.dport] {
        a.push(Op::St {
            size: Size::W,
            dst: Reg::R10,
            off: slot,
            imm: NO_PORT,
        });
    }
    for p in tuple::PORT_PROTOS {
        a.jmp(false, JmpOp::Jeq, Reg::R4, Operand::Imm(p as i32), l4chk);
    }
    a.jmp(
        false,
        JmpOp::Jeq,
        Reg::R4,
        Operand::Imm(icmp as i32),
        icmpchk,
    );
    a.ja(lookups);
    (l4chk, icmpchk)
}

/// The ports (`icmp`: the type and code, in the port fields) from the
/// transport header at r2 (r4 the protocol), and with `flags` TCP's flags;
/// `done` when they are not captured.
fn transport(a: &mut Asm, s: &Slots, icmp: bool, flags: bool, done: Label) {
    if icmp {
        need(a, 2, done);
        field_at(a, Size::B, 0, s.sport);
        field_at(a, Size::B, 1, s.dport);
        set_l4(a, s);
        return;
    }
    need(a, 4, done);
    field_at(a, Size::H, 0, s.sport);
    field_at(a, Size::H, 2, s.dport);
    set_l4(a, s);
    if flags {
        let not_tcp = a.label();
        a.jmp(false, JmpOp::Jne, Reg::R4, Operand::Imm(6), not_tcp);
        need(a, 14, done);
        field_at(a, Size::B, 13, s.flags);
        a.bind(not_tcp);
    }
}

/// r2 = the IPv4 transport header (at 14 + 4 * IHL), or to `lookups` for
/// a fragment that is not the first (libpcap reads transport fields of
/// offset 0 only).
fn transport_v4(a: &mut Asm, lookups: Label) {
    a.ldx(Size::H, Reg::R1, Reg::R2, 20);
    a.push(Op::End {
        dst: Reg::R1,
        endian: Endian::ToBe,
        bits: 16,
    });
    a.alu32(AluOp::And, Reg::R1, Operand::Imm(0x1fff));
    a.jmp(false, JmpOp::Jne, Reg::R1, Operand::Imm(0), lookups);
    a.ldx(Size::B, Reg::R1, Reg::R2, 14);
    a.alu32(AluOp::And, Reg::R1, Operand::Imm(0xf));
    a.alu32(AluOp::Lsh, Reg::R1, Operand::Imm(2));
    a.alu64(AluOp::Add, Reg::R2, Operand::Reg(Reg::R1));
    a.alu64(AluOp::Add, Reg::R2, Operand::Imm(14));
}

/// IPv4 fields, r2 = data, r3 = data_end; `unserved` when the header (or the
/// ports of a first TCP/UDP/SCTP fragment, or the type and code of a
/// first ICMP one) is not captured.
fn fields_v4(a: &mut Asm, lookups: Label, unserved: Label, flags: bool) {
    let s = &V4;
    let done = a.label();
    addresses32(a, (26, 30), done);
    a.ldx(Size::B, Reg::R4, Reg::R2, 23);
    // ICMP first, so that the ports' path falls through to the lookups.
    let (ports, icmp) = protocol(a, s, lookups, 1, flags);
    a.bind(icmp);
    transport_v4(a, lookups);
    transport(a, s, true, false, done);
    a.ja(lookups);
    far(a, done, unserved);
    a.bind(ports);
    transport_v4(a, lookups);
    transport(a, s, false, flags, done);
}

/// `unserved` lies past the family's chain, further than a conditional
/// jump may reach: the gate's jumps go to `done`, a `ja` there, placed
/// where the gate never falls through.
fn far(a: &mut Asm, done: Label, unserved: Label) {
    a.bind(done);
    a.ja(unserved);
}

/// ARP fields, r2 = data, r3 = data_end: the sender and target protocol
/// addresses as numbers (libpcap reads them at 28 and 38, whatever the
/// hardware and protocol types); `unserved` when they are not captured.
fn fields_arp(a: &mut Asm, lookups: Label, unserved: Label) {
    let done = a.label();
    addresses32(a, (28, 38), done);
    a.ja(lookups);
    far(a, done, unserved);
}

/// The 32-bit source and destination addresses at `at` (IPv4 or ARP),
/// as numbers, into their slots; `done` when the frame ends before the
/// later one's end.
fn addresses32(a: &mut Asm, at: (i16, i16), done: Label) {
    let s = &V4;
    a.mov64(Reg::R1, Operand::Reg(Reg::R2));
    a.alu64(
        AluOp::Add,
        Reg::R1,
        Operand::Imm(i32::from(at.0.max(at.1)) + 4),
    );
    a.jmp(true, JmpOp::Jgt, Reg::R1, Operand::Reg(Reg::R3), done);
    field_at(a, Size::W, at.0, s.src);
    field_at(a, Size::W, at.1, s.dst);
}

/// IPv6 fields, r2 = data, r3 = data_end; `unserved` when the fixed header
/// (or a TCP/UDP/SCTP packet's ports) is not captured, or the next header
/// is a fragment header (libpcap's protocol tests look past it).
fn fields_v6(a: &mut Asm, lookups: Label, unserved: Label) {
    let s = &V6;
    let done = a.label();
    a.mov64(Reg::R1, Operand::Reg(Reg::R2));
    a.alu64(AluOp::Add, Reg::R1, Operand::Imm(54));
    a.jmp(true, JmpOp::Jgt, Reg::R1, Operand::Reg(Reg::R3), done);
    a.ldx(Size::B, Reg::R4, Reg::R2, 20);
    a.jmp(false, JmpOp::Jeq, Reg::R4, Operand::Imm(44), done);
    // The addresses as the packet holds them (network order).
    for (base, slot) in [(22, s.src), (38, s.dst)] {
        for k in 0..4 {
            a.ldx(Size::W, Reg::R1, Reg::R2, base + 4 * k);
            a.stx(Size::W, Reg::R10, Reg::R1, slot + 4 * k);
        }
    }
    let (ports, icmp) = protocol(a, s, lookups, 58, false);
    a.bind(icmp);
    a.alu64(AluOp::Add, Reg::R2, Operand::Imm(54));
    transport(a, s, true, false, done);
    a.ja(lookups);
    far(a, done, unserved);
    a.bind(ports);
    a.alu64(AluOp::Add, Reg::R2, Operand::Imm(54));
    transport(a, s, false, false, done);
}

/// Where the gate put a key word's field, and the word's mask; `None` for
/// the constant zero word.
fn field(s: &Slots, w: Word) -> Option<(i16, u32)> {
    Some(match w {
        Word::Src { k, mask } => (s.src + 4 * k as i16, mask),
        Word::Dst { k, mask } => (s.dst + 4 * k as i16, mask),
        Word::Proto => (s.proto, u32::MAX),
        Word::Sport | Word::Itype => (s.sport, u32::MAX),
        Word::Dport | Word::Icode => (s.dport, u32::MAX),
        Word::Flags => (s.flags, u32::MAX),
        Word::Zero => return None,
    })
}

/// The register [`Fast::emit_field_regs`] holds a 32-bit family's word in.
fn field_reg(w: Word) -> Option<Reg> {
    match w {
        Word::Src { .. } => Some(Reg::R7),
        Word::Dst { .. } => Some(Reg::R8),
        Word::Dport => Some(Reg::R9),
        _ => None,
    }
}

/// What comparing `terms` inline costs, in a rule's chain-cost units:
/// about one per word.
fn inline_cost(terms: &[Term]) -> usize {
    terms.iter().map(|t| t.shape().words().len() + 1).sum()
}

/// One table's lookup: the frame's fields under the shape's masks as the
/// key; an entry below `best` or `cand` becomes it.
fn lookup(a: &mut Asm, s: &Slots, map: u64, shape: &Shape, gates: &[Reg], index: usize) {
    let skip = a.label();
    // Shape tables come first, fewer than 31: the bit fits an immediate.
    for g in gates {
        a.mov64(Reg::R1, Operand::Reg(*g));
        a.alu64(AluOp::And, Reg::R1, Operand::Imm(1 << index));
        a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), skip);
    }
    let ports = shape.sport || shape.dport;
    if ports {
        a.ldx(Size::W, Reg::R1, Reg::R10, s.l4);
        a.jmp(false, JmpOp::Jeq, Reg::R1, Operand::Imm(0), skip);
    }
    lookup_key(a, s, map, shape);
    a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), skip);
    // The entry: (first pass/drop rule, first guarded rule); keep the least.
    for (off, slot) in [(0, F_BEST), (4, F_CAND)] {
        let keep = a.label();
        a.ldx(Size::W, Reg::R1, Reg::R0, off);
        a.ldx(Size::W, Reg::R2, Reg::R10, slot);
        a.jmp(true, JmpOp::Jge, Reg::R1, Operand::Reg(Reg::R2), keep);
        a.stx(Size::W, Reg::R10, Reg::R1, slot);
        a.bind(keep);
    }
    a.bind(skip);
}

/// r0 = the entry of table `map` for the frame's fields under `shape`
/// (or 0); clobbers r1-r5.
fn lookup_key(a: &mut Asm, s: &Slots, map: u64, shape: &Shape) {
    for (n, w) in shape.words().into_iter().enumerate() {
        let to = s.key + 4 * n as i16;
        let Some((from, mask)) = field(s, w) else {
            zero(a, to);
            continue;
        };
        a.ldx(Size::W, Reg::R1, Reg::R10, from);
        if mask != u32::MAX {
            a.alu32(AluOp::And, Reg::R1, Operand::Imm(mask as i32));
        }
        a.stx(Size::W, Reg::R10, Reg::R1, to);
    }
    a.map_lookup(TABLES_MAP_INDEX + map, s.key);
}
