//! The IPv4 fast path: hash tables of address/protocol/port tuples that
//! find, in a few lookups, the first pass or drop rule of the common
//! shapes (host, net, port and their conjunctions, `tuple`) an IPv4 frame
//! matches, however many such rules there are.
//!
//! The other rules (count rules, which must see every frame they match,
//! and rules of other shapes) stay in the IPv4 chain, in order, each
//! behind a guard: a table rule that comes before it and matched decides
//! first. Runs of table rules stay in the chain too, skipped as a whole
//! when the lookups ran: a frame whose header or ports are not captured
//! cannot be looked up, and goes through every rule as the classic
//! programs would (a rule's truncated load rejects it where a lookup could
//! not tell).
//!
//! ```text
//!  IPv4 chain  ok = 0; best = NONE
//!              IPv4 header (and ports of a first TCP/UDP/SCTP fragment)
//!              captured? then one lookup per table, best = the least
//!              `index << 1 | drop` found; ok = 1
//!              run of table rules: if ok, skip the run
//!              other rule j:       if best < j << 1, decide best
//!              after the last rule of the program: decide best when no
//!              later program holds a rule before it; when ok and no later
//!              program holds a non-table rule, the default
//! ```
//!
//! A program reached by a tail call has a fresh stack, so each program
//! with IPv4 rules does its own lookups; they find the same `best`.

use std::collections::{BTreeMap, BTreeSet};

use super::specialize::{specialize, Fact};
use super::tuple::{self, Shape, KEY_SIZE};
use super::{Action, Rule};
use crate::ebpf::asm::{Asm, Label};
use crate::ebpf::insn::{AluOp, CallTarget, Endian, JmpOp, Op, Operand, Pseudo, Reg, Size};
use crate::ebpf::vm::context::xdp;

/// Map index of table 0 (after the counters and the program array).
pub const TABLES_MAP_INDEX: u64 = 2;
/// Most tables (tuple shapes): the kernel allows 64 maps per program.
const MAX_TABLES: usize = 32;
/// What one table lookup costs, in the units of a rule's chain cost (its
/// tests and loads, about one instruction each): a hash lookup with its
/// key built takes about as long as 40 executed instructions. A table
/// whose rules would cost less in the chain is not made (the cost model:
/// a handful of rules runs faster as straight-line code).
pub const LOOKUP_COST: usize = 40;
const HELPER_MAP_LOOKUP: i32 = 1;
const CTX: Reg = Reg::R6;

/// Stack slots: the frame's fields, the lookups' outcome, and the key
/// under construction; all below the translator's (fp-80 and up) and the
/// counter key (fp-88).
const F_SRC: i16 = -128;
const F_DST: i16 = -124;
const F_PROTO: i16 = -120;
const F_L4: i16 = -116;
const F_SPORT: i16 = -112;
const F_DPORT: i16 = -108;
const F_BEST: i16 = -104;
/// The first guarded rule the lookups found; 0 (run them all) until the
/// lookups run.
const F_CAND: i16 = -100;
const F_OK: i16 = -96;
const F_KEY: i16 = -152;
/// `best` when no table entry matched: above every `index << 1 | drop`.
const NONE: i32 = -1;

/// A table entry: the first pass/drop rule with this key (`index << 1 |
/// drop`), and the first guarded rule (its index); [`NONE`] for neither.
pub type Entry = (u32, u32);

pub struct Fast {
    pub tables: Vec<(Shape, BTreeMap<[u8; KEY_SIZE], Entry>)>,
    /// Per rule: every IPv4 frame it matches is found by the lookups.
    pub in_table: Vec<bool>,
    /// Per rule tested in the chain: the lookups find every IPv4 frame it
    /// can match among its guard terms (see [`tuple::guard`]), so it is
    /// skipped when they find no guarded rule at or before it.
    pub guarded: Vec<bool>,
    /// Per rule outside the tables: why.
    pub why_not: Vec<Option<NotInTable>>,
}

/// Why a rule is tested in the chain rather than found by a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotInTable {
    /// A count rule must count every frame it matches, not only the first.
    Count,
    /// It matches no IPv4 frame (the tables serve IPv4).
    NotIpv4,
    /// Its expression is not of the table shapes.
    Shape,
    /// The tables already hold [`MAX_TABLES`] shapes.
    TooManyShapes,
    /// Its table would cost more than the rules it serves (cost model).
    Unpaid,
}

impl NotInTable {
    pub fn key(self) -> &'static str {
        match self {
            NotInTable::Count => "count_rule",
            NotInTable::NotIpv4 => "not_ipv4",
            NotInTable::Shape => "not_a_table_shape",
            NotInTable::TooManyShapes => "too_many_shapes",
            NotInTable::Unpaid => "cheaper_in_the_chain",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            NotInTable::Count => "a count rule counts every frame it matches, so it is tested in order",
            NotInTable::NotIpv4 => "it matches no IPv4 frame; the lookup tables serve IPv4 only",
            NotInTable::Shape => {
                "not of the table shapes (IPv4 host, net, numeric port, tcp/udp/sctp, and their and/or)"
            }
            NotInTable::TooManyShapes => "the lookup tables already hold their 32 shapes",
            NotInTable::Unpaid => "too few rules of its shape for a lookup to pay (cost model)",
        }
    }
}

/// A chain rule's guard: its exact terms when it has them (a count
/// rule), else [`tuple::guard`].
pub(crate) fn guard_terms(r: &Rule) -> Option<Vec<tuple::Term>> {
    tuple::terms(&r.expr).or_else(|| tuple::guard(&r.expr))
}

impl Fast {
    /// Which rules go into the tables: every pass and drop rule of the
    /// common shapes, in order, as long as the shapes fit in the tables;
    /// then only the tables that pay for their lookup. `cost` is a rule's
    /// cost in the chain, `lookup_cost` a table lookup's.
    pub fn new(rules: &[Rule], cost: impl Fn(&Rule) -> usize, lookup_cost: usize) -> Fast {
        let mut fast = Fast::all(rules, &[]);
        // A table pays when the rules only it serves would cost more in
        // the chain than its lookup. Dropping one can leave another
        // unpaid (its rules' other shapes go too), so to a fixpoint.
        let mut dropped: BTreeSet<Shape> = BTreeSet::new();
        loop {
            let mut saved: BTreeMap<Shape, usize> = BTreeMap::new();
            for (i, r) in rules.iter().enumerate() {
                let terms = match (fast.in_table[i], fast.guarded[i]) {
                    (true, _) => tuple::terms(&r.expr),
                    (_, true) => guard_terms(r),
                    _ => continue,
                };
                let shapes: BTreeSet<Shape> = terms
                    .unwrap_or_default()
                    .iter()
                    .map(|t| t.shape())
                    .collect();
                let share = cost(r) / shapes.len().max(1);
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
            fast = Fast::all(rules, &dropped.iter().copied().collect::<Vec<_>>());
        }
    }

    /// Every pass and drop rule of the common shapes whose terms use none
    /// of the `excluded` shapes, and every other rule with a guard of
    /// such terms, as long as the shapes fit in the tables.
    fn all(rules: &[Rule], excluded: &[Shape]) -> Fast {
        let ip = Fact::EtherType(0x0800);
        let mut tables: BTreeMap<Shape, BTreeMap<[u8; KEY_SIZE], Entry>> = BTreeMap::new();
        let mut in_table = vec![false; rules.len()];
        let mut guarded = vec![false; rules.len()];
        let mut why_not = vec![None; rules.len()];
        for (i, r) in rules.iter().enumerate() {
            if specialize(&r.program, &ip).is_none() {
                why_not[i] = Some(NotInTable::NotIpv4);
                continue;
            }
            let decides = r.action != Action::Count;
            let (terms, guard) = match decides.then(|| tuple::terms(&r.expr)).flatten() {
                Some(t) => (t, false),
                None => match guard_terms(r) {
                    Some(g) => (g, true),
                    None => {
                        why_not[i] = Some(match decides {
                            true => NotInTable::Shape,
                            false => NotInTable::Count,
                        });
                        continue;
                    }
                },
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
            if tables.len() + new_shapes.len() > MAX_TABLES {
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
                    e.0 =
                        e.0.min(((i as u32) << 1) | (r.action == Action::Drop) as u32);
                }
            }
            if guard {
                guarded[i] = true;
            } else {
                in_table[i] = true;
            }
        }
        Fast {
            tables: tables.into_iter().collect(),
            in_table,
            guarded,
            why_not,
        }
    }

    /// Can rule `i` match an IPv4 frame?
    pub fn ipv4(&self, i: usize) -> bool {
        self.why_not[i] != Some(NotInTable::NotIpv4)
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

    /// The lookups, at the head of a program's IPv4 chain: sets `ok` and
    /// `best`, and falls through.
    pub fn emit_lookups(&self, a: &mut Asm) {
        let (l4chk, lookups, done) = (a.label(), a.label(), a.label());
        a.push(Op::St {
            size: Size::W,
            dst: Reg::R10,
            off: F_OK,
            imm: 0,
        });
        a.push(Op::St {
            size: Size::W,
            dst: Reg::R10,
            off: F_BEST,
            imm: NONE,
        });
        a.push(Op::St {
            size: Size::W,
            dst: Reg::R10,
            off: F_CAND,
            imm: 0,
        });
        a.ldx(Size::W, Reg::R2, CTX, xdp::DATA as i16);
        a.ldx(Size::W, Reg::R3, CTX, xdp::DATA_END as i16);
        a.mov64(Reg::R1, Operand::Reg(Reg::R2));
        a.alu64(AluOp::Add, Reg::R1, Operand::Imm(34));
        a.jmp(true, JmpOp::Jgt, Reg::R1, Operand::Reg(Reg::R3), done);
        for (off, slot) in [(26, F_SRC), (30, F_DST)] {
            a.ldx(Size::W, Reg::R1, Reg::R2, off);
            a.push(Op::End {
                dst: Reg::R1,
                endian: Endian::ToBe,
                bits: 32,
            });
            a.stx(Size::W, Reg::R10, Reg::R1, slot);
        }
        a.ldx(Size::B, Reg::R4, Reg::R2, 23);
        a.stx(Size::W, Reg::R10, Reg::R4, F_PROTO);
        for slot in [F_L4, F_SPORT, F_DPORT] {
            a.push(Op::St {
                size: Size::W,
                dst: Reg::R10,
                off: slot,
                imm: 0,
            });
        }
        for p in tuple::PORT_PROTOS {
            a.jmp(false, JmpOp::Jeq, Reg::R4, Operand::Imm(p as i32), l4chk);
        }
        a.ja(lookups);
        a.bind(l4chk);
        // libpcap: not a fragment (offset 0), ports at 14 + 4 * IHL.
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
        a.mov64(Reg::R4, Operand::Reg(Reg::R2));
        a.alu64(AluOp::Add, Reg::R4, Operand::Imm(18));
        a.jmp(true, JmpOp::Jgt, Reg::R4, Operand::Reg(Reg::R3), done);
        for (off, slot) in [(14, F_SPORT), (16, F_DPORT)] {
            a.ldx(Size::H, Reg::R1, Reg::R2, off);
            a.push(Op::End {
                dst: Reg::R1,
                endian: Endian::ToBe,
                bits: 16,
            });
            a.stx(Size::W, Reg::R10, Reg::R1, slot);
        }
        a.push(Op::St {
            size: Size::W,
            dst: Reg::R10,
            off: F_L4,
            imm: 1,
        });
        a.bind(lookups);
        a.push(Op::St {
            size: Size::W,
            dst: Reg::R10,
            off: F_CAND,
            imm: NONE,
        });
        for (g, (shape, _)) in self.tables.iter().enumerate() {
            lookup(a, g, shape);
        }
        a.push(Op::St {
            size: Size::W,
            dst: Reg::R10,
            off: F_OK,
            imm: 1,
        });
        a.bind(done);
    }

    /// Goes to `decide` when a table rule before rule `limit` matched
    /// (`None`: any table rule).
    pub fn emit_best_before(&self, a: &mut Asm, limit: Option<usize>, decide: Label) {
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

    /// Goes to `to` when the lookups ran (past a run of table rules, or
    /// to the default when no rule outside the tables is left).
    pub fn emit_if_looked_up(&self, a: &mut Asm, to: Label) {
        let on = a.label();
        a.ldx(Size::W, Reg::R1, Reg::R10, F_OK);
        a.jmp(false, JmpOp::Jeq, Reg::R1, Operand::Imm(0), on);
        // `to` may be more than a 16-bit offset away: only `ja` reaches.
        a.ja(to);
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

/// Table `g`'s lookup: the frame's fields under the shape's masks as the
/// key; a value below `best` becomes `best`.
fn lookup(a: &mut Asm, g: usize, shape: &Shape) {
    let skip = a.label();
    let ports = shape.sport || shape.dport;
    if ports {
        a.ldx(Size::W, Reg::R1, Reg::R10, F_L4);
        a.jmp(false, JmpOp::Jeq, Reg::R1, Operand::Imm(0), skip);
    }
    let field = |a: &mut Asm, used: bool, from: i16, mask: u32, to: i16| {
        if used {
            a.ldx(Size::W, Reg::R1, Reg::R10, from);
            if mask != u32::MAX {
                a.alu32(AluOp::And, Reg::R1, Operand::Imm(mask as i32));
            }
            a.stx(Size::W, Reg::R10, Reg::R1, to);
        } else {
            a.push(Op::St {
                size: Size::W,
                dst: Reg::R10,
                off: to,
                imm: 0,
            });
        }
    };
    let m = |l: Option<u8>| {
        l.map_or(0, |l| {
            if l == 0 {
                0
            } else {
                u32::MAX << (32 - l as u32)
            }
        })
    };
    field(a, shape.src.is_some(), F_SRC, m(shape.src), F_KEY);
    field(a, shape.dst.is_some(), F_DST, m(shape.dst), F_KEY + 4);
    field(a, shape.proto, F_PROTO, u32::MAX, F_KEY + 8);
    a.push(Op::St {
        size: Size::W,
        dst: Reg::R10,
        off: F_KEY + 12,
        imm: ports as i32,
    });
    field(a, shape.sport, F_SPORT, u32::MAX, F_KEY + 16);
    field(a, shape.dport, F_DPORT, u32::MAX, F_KEY + 20);
    a.push(Op::LdImm64 {
        dst: Reg::R1,
        pseudo: Pseudo::MapFd,
        src_reg: 1,
        imm: TABLES_MAP_INDEX + g as u64,
    });
    a.mov64(Reg::R2, Operand::Reg(Reg::R10));
    a.alu64(AluOp::Add, Reg::R2, Operand::Imm(F_KEY as i32));
    a.push(Op::Call(CallTarget::Helper(HELPER_MAP_LOOKUP)));
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
