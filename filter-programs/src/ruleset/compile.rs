//! A ruleset to one XDP program (with the programs it tail-calls).
//!
//! The rules are cut into segments, one program each; a program that ends
//! without a decision tail-calls the next through the program array
//! `programs`, and the last applies the default. One program per 10,000
//! rules would be simplest, but the verifier refuses chains that long (see
//! `SEGMENT_BUDGET`); the kernel allows 33 tail calls, so 34 programs.
//!
//! Each program:
//!
//! ```text
//!  prologue    r6 = ctx; fewer than 14 bytes -> chain "short";
//!              r7 = ethertype; one jne/gotol pair per dispatched type;
//!              anything else -> chain "other"
//!  chain T     compiled: for each rule that can match a type-T frame, in
//!                 order, the rule's classic program specialized to T,
//!                 inlined (translate::inline): no match -> next rule
//!                 match, count rule:  count(i) inline, then next rule
//!                 match, pass/drop:   r8 = i, gotol tail_pass/tail_drop
//!              after the last rule: tail call to the next program, or
//!              (in the last) r8 = default index, gotol its tail
//!              IPv4/IPv6 with tables (see `fast`): the lookups first; a
//!                 frame they cannot read -> the cold path; then only the
//!                 rules outside the tables, compiled as above
//!              ARP, RARP, other, short with many rules: the cold path
//!  tail_pass   r7 = XDP_PASS; tail_drop: r7 = XDP_DROP; then count(r8)
//!              and return r7
//!  count(k)    v = bpf_map_lookup_elem(&counters, &k);
//!              v->packets += 1; v->bytes += bpf_xdp_get_buff_len(ctx)
//!  cold path   (first program only) the class's rules interpreted, a
//!              `bpf_loop` callback per classic instruction (see `cold`),
//!              then tail_pass/tail_drop with r8 set
//! ```
//!
//! Per-CPU values need no atomics. Every fragment reloads the packet
//! pointer and its registers, so the verifier sees the same state at every
//! rule boundary and prunes: verification cost grows with the program's
//! length, not with the number of paths through it.

use super::cold::{self, ColdCode};
use super::fast::{self, Fast, NotInTable};
use super::specialize::{specialize, Fact};
use super::tuple::{Family, Term};
use super::vlan;
use super::{Action, Rule, Verdict};
use crate::ebpf::asm::{Asm, Label};
use crate::ebpf::insn::{AluOp, CallTarget, Endian, Insn, JmpOp, Op, Operand, Pseudo, Reg, Size};
use crate::ebpf::vm::context::xdp;
use crate::elf::{MapBtf, Part, ValueLayout};
use crate::translate::{self, Target, TranslateError};
use crate::Hook;

/// Ethernet types with a chain of their own.
pub const DISPATCHED: [u16; 6] = [0x0800, 0x86dd, 0x0806, 0x8035, 0x8100, 0x88a8];

const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
const BPF_MAP_TYPE_HASH: u32 = 1;
const HELPER_TAIL_CALL: i32 = 12;
/// Map indices in the object (the `LD_IMM64` immediates before relocation).
const COUNTERS_MAP_INDEX: u64 = 0;
const PROGRAMS_MAP_INDEX: u64 = 1;
const HELPER_XDP_BUFF_LEN: i32 = 188;
/// A linear part shorter than this has no fragments behind it (a
/// fragmented frame fills the first page's 3,520 bytes).
const LINEAR_ONLY: i32 = 3_072;
/// The counter key's stack slot, below the translator's (fp-80 and up).
const KEY_SLOT: i16 = -88;
/// The frame length while a counter is updated (8 bytes, below the key;
/// the fast path's slots start at fp-100).
const LEN_SLOT: i16 = -96;
/// The cold path's callback context (16 bytes), below the fast path's
/// slots (down to fp-280).
const COLD_CTX: i16 = -296;
const CTX: Reg = Reg::R6;

/// The compiled ruleset.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The entry program, then the programs it tail-calls, in order.
    pub programs: Vec<Vec<Insn>>,
    /// The rules each program holds (indices into the config's rules).
    pub segments: Vec<std::ops::Range<usize>>,
    /// Counter index to name: the rules in order, then "default".
    pub counter_names: Vec<String>,
    /// Per chain, summed over programs: its name, the rules placed in it,
    /// and its length in assembler items (about instructions).
    pub chains: Vec<ChainSize>,
    /// The tuple tables of the IPv4 fast path (see `fast`), to be filled
    /// into hash maps `tuples_0`, `tuples_1`, ... before the program runs.
    pub tables: Vec<Table>,
    /// How many rules the fast path's tables hold (see `fast`).
    pub fast_rules: usize,
    /// Per rule, in config order: how it is classified and its code.
    pub plans: Vec<RulePlan>,
    /// The cold path's lists and programs (see `cold`), when any frames
    /// go there: filled into the map `cold_code`.
    pub cold: Option<ColdCode>,
    /// The chains whose frames (all, or those the lookups cannot serve)
    /// run interpreted, and how many rules each list holds.
    pub cold_classes: Vec<(String, usize)>,
}

/// How one rule is classified, and what of the program is its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulePlan {
    /// The lookup tables that find it (by name); empty when only the chain
    /// tests it. A rule in tables is in the chains too, for the frames the
    /// lookups cannot serve (other ethertypes, headers cut short).
    pub tables: Vec<String>,
    /// Why the lookups do not find it, when they don't.
    pub chain_reason: Option<super::fast::NotInTable>,
    /// For a rule tested in the chain: the tables whose lookups must find
    /// one of its guard terms for it to be tested at all (empty: always
    /// tested when the frame reaches it).
    pub guard_tables: Vec<String>,
    /// Instructions of its inlined tests, summed over chains and programs.
    pub insns: usize,
    /// In the chain as its terms compared with the fields the lookups'
    /// gate read (a few instructions a word), rather than its classic
    /// program (see `fast`), for frames of some family.
    pub inline: bool,
}

/// A chain's name, the rules placed in it, and its length in assembler
/// items.
pub type ChainSize = (String, usize, usize);

/// The names of a family's bitmap maps start with this (`lbvs4_src`, ...).
pub fn bitmap_prefix(family: Family) -> &'static str {
    match family {
        Family::V4 => "lbvs4",
        Family::V6 => "lbvs6",
        Family::Arp => "lbvsarp",
    }
}

/// One map of the fast path, filled before the program runs. A tuple
/// table (`tuples_N`, a hash) maps keys of one shape to a u64 whose low
/// half is `index << 1 | drop` of the first pass/drop rule with that key
/// and whose high half is the index of the first guarded chain rule with
/// it (`u32::MAX` for none), so the value's little-endian bytes are the
/// two u32 the program reads. The bitmaps' maps (`lbvs*`) are described
/// in `bitmap`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    /// The frames it serves.
    pub family: Family,
    /// `BPF_MAP_TYPE_*`, and its `BPF_F_*` flags.
    pub map_type: u32,
    pub map_flags: u32,
    /// 4 to 44 bytes for a tuple table: the words its shape tests (see
    /// `tuple::Shape::words`).
    pub key_size: u32,
    pub value_size: u32,
    /// For a presence table (see `Fast::presence`): which address
    /// ("source", "destination") it holds the prefixes of.
    pub presence_of: Option<&'static str>,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Compiled {
    /// The index of the map `cold_code` in the object (after the counters,
    /// the program array and the tables), when there is a cold path; the
    /// state map follows it.
    pub fn cold_code_map(&self) -> Option<usize> {
        self.cold.as_ref().map(|_| 2 + self.tables.len())
    }

    /// Instructions in all programs.
    pub fn len(&self) -> usize {
        self.programs.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The program names in the object: `filterd`, `filterd_1`, ...
    pub fn program_names(&self) -> Vec<String> {
        (0..self.programs.len()).map(program_name).collect()
    }

    /// The ELF object: every program in section `xdp`, the counters map
    /// and the program array `programs` that chains them.
    pub fn elf(&self) -> Result<Vec<u8>, crate::elf::ElfError> {
        let parts: Vec<Part> = self
            .programs
            .iter()
            .enumerate()
            .map(|(i, insns)| Part {
                name: program_name(i),
                insns: insns.clone(),
                map_refs: crate::elf::map_refs(insns),
            })
            .collect();
        let mut maps = vec![
            counters_map(self.counter_names.len() as u32),
            programs_map(self.programs.len() as u32),
        ];
        maps.extend(self.tables.iter().map(|t| MapBtf {
            name: t.name.clone(),
            map_type: t.map_type,
            max_entries: t.entries.len().max(1) as u32,
            value: ValueLayout::Opaque {
                key_size: t.key_size,
                value_size: t.value_size,
            },
            map_flags: t.map_flags,
        }));
        if let Some(cold) = &self.cold {
            maps.push(cold.code_map());
            maps.push(ColdCode::state_map());
        }
        crate::elf::write_many(Hook::Xdp, &parts, &maps, "GPL")
    }
}

fn program_name(i: usize) -> String {
    if i == 0 {
        PROGRAM.to_string()
    } else {
        format!("{PROGRAM}_{i}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("rule {name:?}: {source}")]
    Rule {
        name: String,
        source: TranslateError,
    },
    #[error("assembling the ruleset program: {0}")]
    Asm(#[from] crate::ebpf::asm::AsmError),
    #[error("the assembled program does not decode: {0}")]
    Decode(#[from] crate::ebpf::insn::DecodeError),
    #[error("{rules} rules need {programs} chained programs; the kernel allows {MAX_PROGRAMS}")]
    TooMany { rules: usize, programs: usize },
}

/// The entry program's name.
pub const PROGRAM: &str = "filterd";
/// The name of the map of counters.
pub const COUNTERS_MAP: &str = "counters";
/// The program array that chains the programs.
pub const PROGRAMS_MAP: &str = "programs";
/// The name under which the default's counters are reported.
pub const DEFAULT_COUNTER: &str = "default";
/// The entry program plus the kernel's 33 tail calls.
pub const MAX_PROGRAMS: usize = 34;
/// How much rule code one program takes. The verifier walks a chain of
/// rules depth first and keeps one pending branch for about every test and
/// every bounds check a rule makes; past 8,192 pending branches it gives up
/// ("the sequence of jumps is too complex"), whatever the program's length.
/// A rule costs its conditional jumps plus its packet loads (each may add
/// a bounds check). Measured: 1,000 `host` rules (about 9 each) load in
/// one program, 1,400 rules of `ip[8] = k and udp src port n` (about 10
/// each, and more pending per test) do not; 6,000 leaves room for both.
const SEGMENT_BUDGET: usize = 6_000;
/// A rule with a loop (`protochain`) costs the verifier one walk of the
/// loop per turn; few of them fit in one program.
const LOOP_COST: usize = 2_500;

fn cost(rule: &Rule) -> usize {
    use crate::cbpf::Op as C;
    let mut looped = false;
    let mut n = 0;
    for (i, insn) in rule.program.iter().enumerate() {
        match insn.decode() {
            Ok(C::Jmp { .. } | C::LdAbs { .. } | C::LdInd { .. } | C::LdxMsh { .. }) => n += 1,
            Ok(C::Ja { k }) if (i as u32).wrapping_add(1).wrapping_add(k) as usize <= i => {
                looped = true
            }
            _ => {}
        }
    }
    n.max(1) + if looped { LOOP_COST } else { 0 }
}

/// Choices of the code generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// What one table lookup costs against rules in the chain (see
    /// [`super::fast::LOOKUP_COST`]); 0 makes every table pay, which tests
    /// use to drive small rulesets through the tables.
    pub lookup_cost: usize,
    /// From how many rules on an ARP, RARP, other-ethertype or runt frame
    /// those frames run the rules interpreted (see `cold`) rather than
    /// compiled; 0 sends them all there, which tests use to drive the
    /// interpreter. Frames the lookups cannot serve always go there.
    pub cold_min_rules: usize,
    /// Most shape tables per family (at most `fast::MAX_TABLES`); the
    /// rules of shapes past them go to per-field bitmaps (see `bitmap`)
    /// when those pay. Tests set it low to drive the bitmaps.
    pub max_shapes: usize,
}

/// See [`Options::cold_min_rules`]: 256 rules compiled cost the verifier
/// about 35 ms; interpreted, a frame costs about 10 ns per classic
/// instruction run.
pub const COLD_MIN_RULES: usize = 256;

impl Default for Options {
    fn default() -> Options {
        Options {
            lookup_cost: super::fast::LOOKUP_COST,
            cold_min_rules: COLD_MIN_RULES,
            max_shapes: fast::MAX_TABLES,
        }
    }
}

impl Options {
    /// Every table the rules' shapes allow, and every rare frame
    /// interpreted: the most of the lookups and of the cold path.
    pub fn forced() -> Options {
        Options {
            lookup_cost: 0,
            cold_min_rules: 0,
            max_shapes: fast::MAX_TABLES,
        }
    }

    /// [`Options::forced`] with room for `shapes` tables less the bitmaps'
    /// maps: most rules of the table shapes go to the bitmaps.
    pub fn bitmaps(shapes: usize) -> Options {
        Options {
            max_shapes: shapes,
            ..Options::forced()
        }
    }
}

/// How a chain's frames are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Every rule that can match compiled, in order.
    Compiled,
    /// The family's lookups (`fasts[k]`), then its rules outside the
    /// tables, compiled or inline; frames the lookups cannot serve go to
    /// the cold path (`cold`) or to every rule compiled.
    Fast { k: usize, cold: bool },
    /// The cold path (see `cold`).
    Cold,
}

impl Mode {
    /// Does the cold path serve (some of) the chain's frames?
    fn cold(self) -> bool {
        matches!(self, Mode::Cold | Mode::Fast { cold: true, .. })
    }
}

/// The ethertypes whose frames may go to the cold path as a whole.
fn coldable(fact: &Fact) -> bool {
    match fact {
        Fact::EtherType(t) => matches!(t, 0x0806 | 0x8035),
        Fact::EtherTypeNotIn(_) | Fact::Short => true,
        Fact::Tagged { .. } => false,
    }
}

/// Compiles `rules` (first match wins) with `default` for packets no
/// deciding rule matches.
pub fn compile(rules: &[Rule], default: Verdict) -> Result<Compiled, CompileError> {
    compile_with(rules, default, &Options::default())
}

/// [`compile`] with the code generator's choices.
pub fn compile_with(
    rules: &[Rule],
    default: Verdict,
    opts: &Options,
) -> Result<Compiled, CompileError> {
    let (lookup_cost, max) = (opts.lookup_cost, opts.max_shapes.min(fast::MAX_TABLES));
    let v4 = Fast::new(rules, Family::V4, 0, max, cost, lookup_cost);
    let v6 = Fast::new(rules, Family::V6, v4.maps(), max, cost, lookup_cost);
    let maps = v4.maps() + v6.maps();
    // ARP's shapes and presence tables in what the kernel's maps leave.
    let left = (fast::MAX_MAPS - fast::OTHER_MAPS).saturating_sub(maps + 2);
    let arp = Fast::new(rules, Family::Arp, maps, left, cost, lookup_cost);
    let fasts = [v4, v6, arp];
    let mut facts = chain_facts();
    // Per chain, every rule that can match its frames, specialized.
    let mut placed: Vec<Vec<(usize, Vec<crate::cbpf::Insn>)>> = facts
        .iter()
        .map(|(_, fact)| {
            (rules.iter().enumerate())
                .filter_map(|(i, r)| specialize(&r.program, fact).map(|p| (i, p)))
                .collect()
        })
        .collect();
    // Tagged frames: a chain per VLAN ID the rules name (see `vlan`).
    let mut splits = Vec::new();
    for tpid in [0x8100u16, 0x88a8] {
        let chain = DISPATCHED
            .iter()
            .position(|t| *t == tpid)
            .expect("dispatched");
        splits.extend(vlan::split(rules, tpid, chain, &mut facts, &mut placed));
    }
    let modes: Vec<Mode> = facts
        .iter()
        .zip(&placed)
        .map(|((_, fact), placed)| {
            let fast = (fasts.iter())
                .position(|f| f.active() && *fact == Fact::EtherType(f.family.ethertype()));
            match fast {
                Some(k) => Mode::Fast {
                    k,
                    cold: placed.len() >= opts.cold_min_rules,
                },
                None if coldable(fact) && placed.len() >= opts.cold_min_rules => Mode::Cold,
                None => Mode::Compiled,
            }
        })
        .collect();
    let cold = modes.iter().any(|m| m.cold()).then(|| {
        let classes: Vec<Option<Vec<cold::Entry<'_>>>> = (modes.iter().zip(&placed))
            .map(|(m, placed)| {
                m.cold().then(|| {
                    (placed.iter())
                        .map(|(i, p)| (*i, rules[*i].action, p.as_slice()))
                        .collect()
                })
            })
            .collect();
        ColdCode::build(&classes)
    });
    // What of each rule is compiled: its cost, where any chain compiles it.
    let mut compiled_cost = vec![0usize; rules.len()];
    for (m, placed) in modes.iter().zip(&placed) {
        for (i, _) in placed {
            let emitted = match *m {
                Mode::Compiled | Mode::Fast { cold: false, .. } => true,
                Mode::Fast { k, cold: true } => {
                    !fasts[k].in_table[*i] && fasts[k].inline[*i].is_none()
                }
                Mode::Cold => false,
            };
            if emitted {
                compiled_cost[*i] = cost(&rules[*i]);
            }
        }
    }
    let mut segments = Vec::new();
    let (mut start, mut spent) = (0, 0);
    for (i, c) in compiled_cost.iter().enumerate() {
        if i > start && spent + c > SEGMENT_BUDGET {
            segments.push(start..i);
            start = i;
            spent = 0;
        }
        spent += c;
    }
    segments.push(start..rules.len());
    if segments.len() > MAX_PROGRAMS {
        return Err(CompileError::TooMany {
            rules: rules.len(),
            programs: segments.len(),
        });
    }
    let cold_maps = cold.as_ref().map(|_| {
        // After the counters, the program array and the tables (see
        // `Compiled::cold_code_map`).
        let first = 2 + fasts.iter().map(Fast::maps).sum::<usize>() as u64;
        cold::Emit {
            code_map: first,
            state_map: first + 1,
            counters_map: COUNTERS_MAP_INDEX,
            default,
            default_index: rules.len() as u32,
        }
    });
    let mut programs = Vec::new();
    let mut chains: Vec<ChainSize> = Vec::new();
    let mut rule_insns = vec![0usize; rules.len()];
    for (k, seg) in segments.iter().enumerate() {
        let last = k + 1 == segments.len();
        let (insns, placed_here) = program(
            Shared {
                rules,
                facts: &facts,
                placed: &placed,
                modes: &modes,
                fasts: &fasts,
                cold: cold.as_ref().zip(cold_maps.as_ref()),
                vlan: &splits,
            },
            seg.clone(),
            default,
            (!last).then_some(k as i32 + 1),
            k == 0,
            &mut rule_insns,
        )?;
        programs.push(insns);
        for (n, (name, count, len)) in placed_here.into_iter().enumerate() {
            match chains.get_mut(n) {
                Some(c) => {
                    c.1 += count;
                    c.2 += len;
                }
                None => chains.push((name, count, len)),
            }
        }
    }
    // One line for all of a tag's VLAN ID chains.
    for split in splits.iter().rev() {
        let first = split.ids[0].1;
        let (n, len) = (split.ids.iter()).fold((0, 0), |(n, len), (_, c)| {
            (n + chains[*c].1, len + chains[*c].2)
        });
        let name = facts[split.cut].0.replace(", cut within the tag", "");
        chains[first] = (format!("{name}, {} VLAN IDs", split.ids.len()), n, len);
        chains.drain(first + 1..=split.ids.last().expect("ids").1);
    }
    let cold_classes = (facts.iter().zip(&modes).zip(&placed))
        .filter_map(|(((name, _), m), placed)| match m {
            Mode::Compiled | Mode::Fast { cold: false, .. } => None,
            Mode::Cold => Some((name.clone(), placed.len())),
            Mode::Fast { cold: true, .. } => Some((
                format!("{name}, headers the lookups cannot read"),
                placed.len(),
            )),
        })
        .collect();
    let mut counter_names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
    counter_names.push(DEFAULT_COUNTER.into());
    let table_name = |f: &Fast, g: usize| format!("tuples_{}", f.first_map + g);
    let bitmap_name = |f: &Fast, role: &str| format!("{}_{role}", bitmap_prefix(f.family));
    let mut tables = Vec::new();
    for f in &fasts {
        tables.extend(f.tables.iter().enumerate().map(|(g, (shape, entries))| {
            Table {
                name: table_name(f, g),
                family: f.family,
                map_type: BPF_MAP_TYPE_HASH,
                map_flags: 0,
                key_size: shape.key_size() as u32,
                value_size: 8,
                presence_of: (f.presence.iter().find(|p| p.1 == g)).map(|p| {
                    if p.0 {
                        "source"
                    } else {
                        "destination"
                    }
                }),
                entries: (entries.iter())
                    .map(|(k, (decide, cand))| {
                        let v = u64::from(*decide) | u64::from(*cand) << 32;
                        (k.clone(), v.to_le_bytes().to_vec())
                    })
                    .collect(),
            }
        }));
        tables.extend(f.bitmap_maps().into_iter().map(|(_, m)| Table {
            name: bitmap_name(f, m.role),
            family: f.family,
            map_type: m.map_type,
            map_flags: m.map_flags,
            key_size: m.key_size,
            value_size: m.value_size,
            presence_of: None,
            entries: m.entries,
        }));
    }
    let plans: Vec<RulePlan> = (0..rules.len())
        .map(|i| {
            let (mut tables, mut guard_tables, mut reason) = (vec![], vec![], None);
            let mut in_any = false;
            for f in &fasts {
                if !f.in_family(i) {
                    continue;
                }
                in_any = true;
                let names = f.rule_tables[i].iter().map(|g| table_name(f, *g));
                let bitmaps = (f.bitmap.iter())
                    .filter(|b| b.holds[i])
                    .flat_map(|b| b.roles())
                    .map(|role| bitmap_name(f, role));
                match (f.in_table[i], f.guarded[i]) {
                    (true, _) => tables.extend(names.chain(bitmaps)),
                    (_, true) => guard_tables.extend(names),
                    _ => {}
                }
                if !f.in_table[i] {
                    reason = reason.or(f.why_not[i]);
                }
            }
            RulePlan {
                tables,
                guard_tables,
                chain_reason: if in_any {
                    reason
                } else {
                    Some(NotInTable::NotInFamily)
                },
                insns: rule_insns[i],
                inline: fasts.iter().any(|f| f.active() && f.inline[i].is_some()),
            }
        })
        .collect();
    let fast_rules = plans.iter().filter(|p| p.chain_reason.is_none()).count();
    Ok(Compiled {
        programs,
        segments,
        counter_names,
        chains,
        tables,
        fast_rules,
        plans,
        cold,
        cold_classes,
    })
}

/// One chain per dispatched ethertype, then "other" and "short" (then,
/// appended by `vlan::split`, the VLAN IDs' chains).
fn chain_facts() -> Vec<(String, Fact)> {
    let mut chains: Vec<(String, Fact)> = DISPATCHED
        .iter()
        .map(|t| (format!("ethertype {t:#06x}"), Fact::EtherType(*t)))
        .collect();
    chains.push((
        "other ethertypes".into(),
        Fact::EtherTypeNotIn(DISPATCHED.to_vec()),
    ));
    chains.push(("shorter than 14 bytes".into(), Fact::Short));
    chains
}

/// A protocol and a run's inline rules for it (see `Fast::proto_groups`).
type Group<'t> = (Option<u8>, Vec<(usize, &'t [Term])>);

/// What every program of the ruleset shares.
#[derive(Clone, Copy)]
struct Shared<'r> {
    rules: &'r [Rule],
    facts: &'r [(String, Fact)],
    /// Per chain, the rules that can match, specialized.
    placed: &'r [Vec<(usize, Vec<crate::cbpf::Insn>)>],
    modes: &'r [Mode],
    fasts: &'r [Fast],
    cold: Option<(&'r ColdCode, &'r cold::Emit)>,
    /// The tag types dispatched on their VLAN ID.
    vlan: &'r [vlan::Split],
}

/// One program: the rules of `seg`, then a tail call to program `next`
/// (or the default when this is the last). Only the `first` program
/// holds the cold path: frames go there before any rule ran.
fn program(
    sh: Shared<'_>,
    seg: std::ops::Range<usize>,
    default: Verdict,
    next: Option<i32>,
    first: bool,
    rule_insns: &mut [usize],
) -> Result<(Vec<Insn>, Vec<ChainSize>), CompileError> {
    let mut a = Asm::new();
    let tail_pass = a.label();
    let tail_drop = a.label();
    let cold_run = a.label();
    let cold_abort = a.label();
    let callback = a.label();
    let mut p = ProgramGen {
        a,
        sh,
        seg,
        default,
        next,
        tail_pass,
        tail_drop,
        cold_run,
        cold_abort,
        first,
        rule_insns,
    };
    let labels: Vec<Label> = sh.facts.iter().map(|_| p.a.label()).collect();
    p.prologue(&labels);
    let mut placed = Vec::new();
    for (c, label) in labels.iter().enumerate() {
        p.a.bind(*label);
        let start = p.a.len();
        let count = p.chain(c)?;
        placed.push((sh.facts[c].0.clone(), count, p.a.len() - start));
    }
    p.counted_exit();
    // The cold path: in the first program it runs the lists; in the
    // others no frame can reach it.
    p.a.bind(cold_abort);
    p.a.mov64(
        Reg::R0,
        Operand::Imm(crate::translate::Actions::XDP_ABORTED as i32),
    );
    p.a.exit();
    if let (Some((_, emit)), true) = (sh.cold, first) {
        emit.run(
            &mut p.a,
            cold_run,
            callback,
            (tail_pass, tail_drop),
            KEY_SLOT,
            COLD_CTX,
        );
        emit.callback(&mut p.a, callback);
    } else {
        p.a.bind(cold_run);
        p.a.ja(cold_abort);
    }
    let insns = crate::ebpf::prune::unreachable(&p.a.assemble()?)?;
    Ok((insns, placed))
}

/// The state of [`program`] while it emits.
struct ProgramGen<'r> {
    a: Asm,
    sh: Shared<'r>,
    seg: std::ops::Range<usize>,
    default: Verdict,
    next: Option<i32>,
    /// Where a deciding rule jumps, with its counter index in r8.
    tail_pass: Label,
    tail_drop: Label,
    /// The cold path's entry (list slot in r9), and a frame's end
    /// `XDP_ABORTED`.
    cold_run: Label,
    cold_abort: Label,
    first: bool,
    /// Per rule: the assembler items its inlined tests took.
    rule_insns: &'r mut [usize],
}

impl ProgramGen<'_> {
    fn tail(&self, v: Verdict) -> Label {
        if v == Verdict::Pass {
            self.tail_pass
        } else {
            self.tail_drop
        }
    }

    /// The default's counter index: after the rules'.
    fn default_index(&self) -> i32 {
        self.sh.rules.len() as i32
    }

    /// The context to r6, then a jump to the frame's chain (one label per
    /// [`chain_facts`] entry).
    fn prologue(&mut self, chains: &[Label]) {
        let a = &mut self.a;
        a.mov64(CTX, Operand::Reg(Reg::R1));
        a.ldx(Size::W, Reg::R2, CTX, xdp::DATA as i16);
        a.ldx(Size::W, Reg::R3, CTX, xdp::DATA_END as i16);
        a.mov64(Reg::R1, Operand::Reg(Reg::R2));
        a.alu64(AluOp::Add, Reg::R1, Operand::Imm(14));
        let short = chains[DISPATCHED.len() + 1];
        let typed = a.label();
        a.jmp(true, JmpOp::Jle, Reg::R1, Operand::Reg(Reg::R3), typed);
        a.ja(short);
        a.bind(typed);
        a.ldx(Size::H, Reg::R7, Reg::R2, 12);
        a.push(Op::End {
            dst: Reg::R7,
            endian: Endian::ToBe,
            bits: 16,
        });
        let mut switches = Vec::new();
        for (i, t) in DISPATCHED.iter().enumerate() {
            let skip = a.label();
            a.jmp(false, JmpOp::Jne, Reg::R7, Operand::Imm(*t as i32), skip);
            match self.sh.vlan.iter().find(|s| s.cut == i) {
                Some(split) => {
                    let at = a.label();
                    switches.push((at, split));
                    a.ja(at);
                }
                None => {
                    a.ja(chains[i]);
                }
            }
            a.bind(skip);
        }
        a.ja(chains[DISPATCHED.len()]);
        for (at, split) in switches {
            vlan::emit_switch(a, at, split, chains);
        }
    }

    /// Chain `c`: the rules that can match its frames, then the way on;
    /// or the cold path. Returns how many rules it compiled.
    fn chain(&mut self, c: usize) -> Result<usize, CompileError> {
        let sh = self.sh;
        let (f, cold) = match sh.modes[c] {
            Mode::Cold => {
                self.enter_cold(c);
                return Ok(0);
            }
            Mode::Fast { k, cold } => (Some(&sh.fasts[k]), cold),
            Mode::Compiled => (None, false),
        };
        let decide = self.a.label();
        let unserved = self.a.label();
        if let Some(f) = f {
            f.emit_lookups(&mut self.a, unserved);
        }
        let count = self.chain_rules(c, f, decide)?;
        if let Some(f) = f {
            self.after_fast_rules(f, decide);
        }
        let after = self.a.label();
        if let Some(f) = f {
            self.a.ja(after);
            self.a.bind(decide);
            f.emit_decide(&mut self.a, (self.tail_pass, self.tail_drop));
        }
        self.a.bind(after);
        self.chain_end();
        if f.is_some() {
            // A frame the lookups cannot serve: every rule, interpreted or
            // compiled.
            self.a.bind(unserved);
            if cold {
                self.enter_cold(c);
            } else {
                self.chain_rules(c, None, decide)?;
                self.chain_end();
            }
        }
        Ok(count)
    }

    /// To the cold path with chain `c`'s list (only the first program
    /// runs it; the others' frames cannot get here).
    fn enter_cold(&mut self, c: usize) {
        let list = (self.sh.cold).and_then(|(code, _)| code.lists[c]);
        match list {
            Some(slot) if self.first => {
                self.a.mov64(Reg::R9, Operand::Imm(slot as i32));
                self.a.ja(self.cold_run);
            }
            _ => {
                self.a.ja(self.cold_abort);
            }
        }
    }

    /// The segment's rules that can match chain `c`'s frames, in order.
    /// With the fast path, table rules have no code (the lookups find
    /// them), a rule outside the tables first lets a table rule before it
    /// decide, and a run of guarded rules is skipped when the lookups
    /// found none of it. Returns how many rules it compiled.
    fn chain_rules(
        &mut self,
        c: usize,
        f: Option<&Fast>,
        decide: Label,
    ) -> Result<usize, CompileError> {
        let all = &self.sh.placed[c];
        let lo = all.partition_point(|(i, _)| *i < self.seg.start);
        let hi = all.partition_point(|(i, _)| *i < self.seg.end);
        let placed = &all[lo..hi];
        // Per placed rule: the last guarded rule of the run of table and
        // guarded rules that starts there (for its first guarded rule).
        let mut run_last = vec![None; placed.len()];
        if let Some(f) = f {
            let mut last = None;
            for (k, (i, _)) in placed.iter().enumerate().rev() {
                if f.guarded[*i] {
                    last = last.or(Some(*i));
                } else if !f.in_table[*i] {
                    last = None;
                }
                run_last[k] = last;
            }
        }
        let mut guard_run_end: Option<Label> = None;
        let mut count = 0;
        // Placed rules before this are done (a run of inline rules).
        let mut run_done = 0;
        for (k, (i, prog)) in placed.iter().enumerate() {
            let i = *i;
            let mut skip = None;
            if let Some(f) = f {
                if f.in_table[i] {
                    continue;
                }
                if f.inline[i].is_some() {
                    if k < run_done {
                        continue;
                    }
                    if let Some(l) = guard_run_end.take() {
                        self.a.bind(l);
                    }
                    // The run of inline rules from here (table rules
                    // between them have no code).
                    let mut run = Vec::new();
                    let mut m = k;
                    while let Some((j, _)) = placed.get(m) {
                        match &f.inline[*j] {
                            _ if f.in_table[*j] => {}
                            Some(t) => run.push((*j, t.as_slice())),
                            None => break,
                        }
                        m += 1;
                    }
                    run_done = m;
                    count += run.len();
                    self.inline_run(f, &run, decide);
                    continue;
                }
                if !f.guarded[i] {
                    if let Some(l) = guard_run_end.take() {
                        self.a.bind(l);
                    }
                } else if guard_run_end.is_none() {
                    // No guarded rule of the whole run can match.
                    let l = self.a.label();
                    let last = run_last[k].unwrap_or(i);
                    f.emit_skip_unless_candidate(&mut self.a, last, l);
                    guard_run_end = Some(l);
                }
                f.emit_best_before(&mut self.a, Some(i), decide);
                if f.guarded[i] {
                    let l = self.a.label();
                    f.emit_skip_unless_candidate(&mut self.a, i, l);
                    skip = Some(l);
                }
            }
            self.rule(i, prog)?;
            count += 1;
            if let Some(l) = skip {
                self.a.bind(l);
            }
            // The run ends after its last guarded rule.
            if f.is_some_and(|f| f.guarded[i]) && run_last[k] == Some(i) {
                if let Some(l) = guard_run_end.take() {
                    self.a.bind(l);
                }
            }
        }
        if let Some(l) = guard_run_end.take() {
            self.a.bind(l);
        }
        Ok(count)
    }

    /// A run of inline rules, in order: split by the frame's protocol
    /// where that pays (see [`Fast::proto_groups`]).
    fn inline_run(&mut self, f: &Fast, run: &[(usize, &[Term])], decide: Label) {
        let owned;
        let groups: Vec<Group<'_>> = match Fast::proto_groups(run) {
            None => vec![(None, run.to_vec())],
            Some(g) => {
                owned = g;
                (owned.iter())
                    .map(|(p, rules)| (*p, rules.iter().map(|(i, t)| (*i, t.as_slice())).collect()))
                    .collect()
            }
        };
        let end = self.a.label();
        let labels: Vec<Label> = groups.iter().map(|_| self.a.label()).collect();
        // Worth three loads when the run tests enough words.
        let words: usize = (run.iter())
            .flat_map(|(_, t)| t.iter())
            .map(|t| t.shape().words().len())
            .sum();
        let regs = words > 6 && f.emit_field_regs(&mut self.a);
        if groups.len() > 1 {
            let protos: Vec<u8> = groups.iter().filter_map(|g| g.0).collect();
            f.emit_proto_dispatch(&mut self.a, &protos, &labels, labels[groups.len() - 1]);
        }
        for ((_, rules), label) in groups.iter().zip(&labels) {
            self.a.bind(*label);
            for (i, terms) in rules {
                if terms.is_empty() {
                    // No term can match a frame of the group's protocol.
                    continue;
                }
                let start = self.a.len();
                f.emit_best_before(&mut self.a, Some(*i), decide);
                let (hit, next) = (self.a.label(), self.a.label());
                f.emit_inline(&mut self.a, terms, hit, next, regs);
                self.a.bind(hit);
                self.matched(*i);
                self.a.bind(next);
                self.rule_insns[*i] += self.a.len() - start;
            }
            self.a.ja(end);
        }
        self.a.bind(end);
    }

    /// Rule `i`, specialized to `prog`, inlined: no match falls through.
    fn rule(&mut self, i: usize, prog: &[crate::cbpf::Insn]) -> Result<(), CompileError> {
        let rule = &self.sh.rules[i];
        let start = self.a.len();
        let hit = self.a.label();
        let next = self.a.label();
        translate::inline(&mut self.a, prog, Target::xdp(), hit, next).map_err(|source| {
            CompileError::Rule {
                name: rule.name.clone(),
                source,
            }
        })?;
        self.a.bind(hit);
        self.matched(i);
        self.a.bind(next);
        self.rule_insns[i] += self.a.len() - start;
        Ok(())
    }

    /// Rule `i` matched: a count rule counts and falls through; a pass or
    /// drop rule decides.
    fn matched(&mut self, i: usize) {
        match self.sh.rules[i].action {
            Action::Count => count_packet(&mut self.a, Operand::Imm(i as i32)),
            action => {
                let v = if action == Action::Pass {
                    Verdict::Pass
                } else {
                    Verdict::Drop
                };
                self.a.mov64(Reg::R8, Operand::Imm(i as i32));
                self.a.ja(self.tail(v));
            }
        }
    }

    /// After the chain's rules, with the fast path: the table rule that
    /// matched decides, unless a later program's rule outside the tables
    /// may come first; with no such rule, nothing looked up means the
    /// default.
    fn after_fast_rules(&mut self, f: &Fast, decide: Label) {
        // Later programs: only their rules outside the tables can come
        // before a table rule that matched.
        let n = self.sh.rules.len();
        let later = (self.seg.end..n).find(|&j| !f.in_table[j] && f.in_family(j));
        f.emit_best_before(&mut self.a, later, decide);
        if later.is_none() {
            self.decide_default();
            return;
        }
        // When the lookups found no guarded rule, the guarded rules before
        // the first plain one cannot match either.
        let plain = (self.seg.end..n).find(|&j| !f.in_table[j] && !f.guarded[j] && f.in_family(j));
        let last_guarded = (self.seg.end..plain.unwrap_or(n))
            .rev()
            .find(|&j| f.guarded[j] && f.in_family(j));
        if let Some(g) = last_guarded {
            let (none_found, go_on) = (self.a.label(), self.a.label());
            f.emit_skip_unless_candidate(&mut self.a, g, none_found);
            self.a.ja(go_on);
            self.a.bind(none_found);
            f.emit_best_before(&mut self.a, plain, decide);
            if plain.is_none() {
                self.decide_default();
            }
            self.a.bind(go_on);
        }
    }

    /// The default decides (the lookups ran: frames they cannot serve
    /// left before the rules).
    fn decide_default(&mut self) {
        self.a.mov64(Reg::R8, Operand::Imm(self.default_index()));
        self.a.ja(self.tail(self.default));
    }

    /// No rule decided: on to the next program, or the default.
    fn chain_end(&mut self) {
        match self.next {
            Some(k) => {
                // Only a program array without program `k` fails the tail
                // call; that is a loader bug, and XDP_ABORTED says so in the
                // `xdp:xdp_exception` tracepoint rather than guessing.
                let a = &mut self.a;
                a.mov64(Reg::R1, Operand::Reg(CTX));
                a.push(Op::LdImm64 {
                    dst: Reg::R2,
                    pseudo: Pseudo::MapFd,
                    src_reg: 1,
                    imm: PROGRAMS_MAP_INDEX,
                });
                a.mov64(Reg::R3, Operand::Imm(k));
                a.push(Op::Call(CallTarget::Helper(HELPER_TAIL_CALL)));
                a.mov64(
                    Reg::R0,
                    Operand::Imm(crate::translate::Actions::XDP_ABORTED as i32),
                );
                a.exit();
            }
            None => {
                self.a.mov64(Reg::R8, Operand::Imm(self.default_index()));
                self.a.ja(self.tail(self.default));
            }
        }
    }

    /// `tail_pass` and `tail_drop`: count the packet against r8's counter
    /// and return the verdict.
    fn counted_exit(&mut self) {
        let a = &mut self.a;
        let counted_exit = a.label();
        a.bind(self.tail_pass);
        a.mov64(Reg::R7, Operand::Imm(Verdict::Pass.xdp() as i32));
        a.ja(counted_exit);
        a.bind(self.tail_drop);
        a.mov64(Reg::R7, Operand::Imm(Verdict::Drop.xdp() as i32));
        a.bind(counted_exit);
        count_packet(a, Operand::Reg(Reg::R8));
        a.mov64(Reg::R0, Operand::Reg(Reg::R7));
        a.exit();
    }
}

/// The program array's definition for `entries` programs.
pub fn programs_map(entries: u32) -> MapBtf {
    MapBtf {
        name: PROGRAMS_MAP.into(),
        map_type: BPF_MAP_TYPE_PROG_ARRAY,
        max_entries: entries,
        value: ValueLayout::Opaque {
            key_size: 4,
            value_size: 4,
        },
        map_flags: 0,
    }
}

/// The counters map's definition for `entries` counters.
pub fn counters_map(entries: u32) -> MapBtf {
    MapBtf {
        name: COUNTERS_MAP.into(),
        map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
        max_entries: entries,
        value: ValueLayout::U64Struct {
            name: "counter".into(),
            fields: vec!["packets".into(), "bytes".into()],
        },
        map_flags: 0,
    }
}

/// `counters[key].packets += 1; .bytes += frame length`. Clobbers r0-r5;
/// keeps r6-r9 (inline rules hold fields there).
fn count_packet(a: &mut Asm, key: Operand) {
    // The frame's length: `data_end - data` without a call, when that is
    // all of it. A program without multi-buffer support (ours: section
    // `xdp`) sees a linear frame once attached, but a test run puts what
    // passes the first page's room (3,520 bytes) in fragments, which only
    // `bpf_xdp_get_buff_len` counts. (The verifier lets a pointer be
    // subtracted from another with CAP_PERFMON, which filterd holds.)
    let have = a.label();
    a.ldx(Size::W, Reg::R1, CTX, xdp::DATA_END as i16);
    a.ldx(Size::W, Reg::R2, CTX, xdp::DATA as i16);
    a.alu64(AluOp::Sub, Reg::R1, Operand::Reg(Reg::R2));
    a.jmp(true, JmpOp::Jlt, Reg::R1, Operand::Imm(LINEAR_ONLY), have);
    a.mov64(Reg::R1, Operand::Reg(CTX));
    a.push(Op::Call(CallTarget::Helper(HELPER_XDP_BUFF_LEN)));
    a.mov64(Reg::R1, Operand::Reg(Reg::R0));
    a.bind(have);
    a.stx(Size::DW, Reg::R10, Reg::R1, LEN_SLOT);
    match key {
        Operand::Imm(k) => a.push(Op::St {
            size: Size::W,
            dst: Reg::R10,
            off: KEY_SLOT,
            imm: k,
        }),
        Operand::Reg(r) => a.stx(Size::W, Reg::R10, r, KEY_SLOT),
    };
    a.map_lookup(COUNTERS_MAP_INDEX, KEY_SLOT);
    let skip = a.label();
    a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), skip);
    a.ldx(Size::DW, Reg::R1, Reg::R0, 0);
    a.alu64(AluOp::Add, Reg::R1, Operand::Imm(1));
    a.stx(Size::DW, Reg::R0, Reg::R1, 0);
    a.ldx(Size::DW, Reg::R1, Reg::R0, 8);
    a.ldx(Size::DW, Reg::R2, Reg::R10, LEN_SLOT);
    a.alu64(AluOp::Add, Reg::R1, Operand::Reg(Reg::R2));
    a.stx(Size::DW, Reg::R0, Reg::R1, 8);
    a.bind(skip);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::parse;

    fn rules(exprs: &[&str]) -> Vec<Rule> {
        let mut t = String::new();
        for (i, e) in exprs.iter().enumerate() {
            t.push_str(&format!(
                "[[rule]]\nname = \"r{i}\"\nmatch = \"{e}\"\naction = \"drop\"\n"
            ));
        }
        parse(&t).unwrap().rules
    }

    /// The cost model: a handful of rules is straight-line code with no
    /// lookup; many rules of one shape share a table.
    #[test]
    fn tables_only_where_they_pay() {
        let few = rules(&["host 10.1.2.3", "tcp dst port 22", "src net 172.16.5.0/24"]);
        let c = compile(&few, Verdict::Pass).unwrap();
        assert_eq!((c.tables.len(), c.fast_rules), (0, 0));
        let forced = compile_with(&few, Verdict::Pass, &Options::forced()).unwrap();
        assert_eq!(forced.fast_rules, 3);
        let hosts: Vec<String> = (0..40).map(|i| format!("src host 10.0.0.{i}")).collect();
        let mut exprs: Vec<&str> = hosts.iter().map(String::as_str).collect();
        exprs.push("tcp dst port 22");
        let c = compile(&rules(&exprs), Verdict::Pass).unwrap();
        // `host` matches ARP frames too: an IPv4 and an ARP table.
        assert_eq!(
            (c.tables.len(), c.fast_rules),
            (2, 40),
            "only the hosts' tables pay"
        );
    }

    /// Three or more source-address shapes get a presence table, and
    /// the dry run (which checks every verdict against the rules) agrees
    /// on frames whose source prefix is present and absent.
    #[test]
    fn presence_tables_gate_their_direction() {
        let mut exprs = Vec::new();
        for i in 0..30 {
            exprs.push(format!("src net 2001:db8:{i:x}::/48"));
            exprs.push(format!("src net 2001:db8:{i:x}:100::/56"));
            exprs.push(format!("src net 2001:db8:{i:x}:200::/64"));
            exprs.push(format!("src host 2001:db8:{i:x}:300::1"));
        }
        let refs: Vec<&str> = exprs.iter().map(String::as_str).collect();
        let rs = rules(&refs);
        let c = compile(&rs, Verdict::Pass).unwrap();
        let presence: Vec<_> = c.tables.iter().filter_map(|t| t.presence_of).collect();
        assert_eq!(presence, ["source"]);
        let mut dry = crate::ruleset::dryrun::DryRun::new(&c, &rs, Verdict::Pass).unwrap();
        let frame = |src: [u16; 8]| {
            let mut f = vec![0u8; 14 + 40 + 8];
            f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            f[14] = 0x60;
            f[20] = 17;
            for (k, w) in src.iter().enumerate() {
                f[22 + 2 * k..24 + 2 * k].copy_from_slice(&w.to_be_bytes());
            }
            f
        };
        let cases = [
            ([0x2001, 0xdb8, 7, 0x100, 0, 0, 0, 9], Some(4 * 7)), // the /48 first
            ([0x2001, 0xdb8, 0x40, 0, 0, 0, 0, 1], None),         // absent prefix
            ([0x2001, 0xdb9, 7, 0, 0, 0, 0, 1], None),
        ];
        for (src, want) in cases {
            let f = frame(src);
            let o = dry.packet(&f, f.len() as u32).unwrap();
            assert_eq!(o.rule, want, "{src:x?}");
        }
    }

    /// However many shapes the rules have, the program's maps stay within
    /// the kernel's 64.
    #[test]
    fn maps_stay_within_the_kernels_limit() {
        let mut exprs = Vec::new();
        for len in 1..=32u32 {
            for k in 0..3u32 {
                let a = (0x0a00_0000 | k << 30 | k) & (u32::MAX << (32 - len));
                let a = std::net::Ipv4Addr::from(a);
                exprs.push(format!("src net {a}/{len}"));
                exprs.push(format!("dst net {a}/{len}"));
            }
        }
        for len in (16..=128u32).step_by(4) {
            for k in 0..3u128 {
                let a = (0x2001_0db8u128 << 96 | k << 126 | k) & (u128::MAX << (128 - len));
                let a = std::net::Ipv6Addr::from(a);
                exprs.push(format!("src net {a}/{len}"));
                exprs.push(format!("dst net {a}/{len}"));
            }
        }
        let refs: Vec<&str> = exprs.iter().map(String::as_str).collect();
        let c = compile_with(&rules(&refs), Verdict::Pass, &Options::forced()).unwrap();
        let maps = 2 + c.tables.len() + if c.cold.is_some() { 2 } else { 0 };
        assert!(maps <= 64, "{maps} maps");
        assert!(c.tables.iter().any(|t| t.family == Family::Arp));
    }

    #[test]
    fn typical_rules_stay_small() {
        let shapes = [
            "host 10.1.2.3",
            "src net 172.16.5.0/24",
            "tcp dst port 22",
            "udp port 53 and dst net 192.168.1.0/24",
            "tcp dst port 443 and src host 10.9.8.7",
            "dst net 10.3.0.0/16 and not udp",
        ];
        for s in shapes {
            let c = compile(&rules(&[s]), Verdict::Pass).unwrap();
            let base = compile(&[], Verdict::Pass).unwrap().len();
            eprintln!(
                "{s}: {} instructions; {:?}",
                c.len() - base,
                c.chains.iter().filter(|c| c.1 > 0).collect::<Vec<_>>()
            );
        }
    }
}
