//! What `filterd check` reports: the program as a whole (instructions,
//! chains, tables, compile and load time, the verifier's processed
//! instructions) and each rule's classification and share of the code,
//! as text or as one JSON document (`--json`; fields are only ever added).

use std::io::Write;

use filter_programs::ebpf::vm::maps::MapKind;
use filter_programs::ruleset::cold;
use filter_programs::ruleset::compile::{bitmap_prefix, Compiled};
use filter_programs::ruleset::fast::NotInTable;
use filter_programs::ruleset::tuple::Family;
use serde_json::{json, Value};

use crate::daemon::config::Config;

/// Rules outside the tables that an IPv4 frame may have to pass in the
/// chain before a warning names the rewrite that would classify them.
pub const CHAIN_WARN: usize = 100;

struct Bitmaps {
    family: Family,
    maps: Vec<String>,
    rules: usize,
    terms: usize,
}

pub struct Report<'a> {
    config: &'a Config,
    compiled: &'a Compiled,
    compile_ms: f64,
    /// Load time (ms) and the verifier's processed instructions, when the
    /// program was loaded.
    verifier: Option<(f64, Option<u64>)>,
}

impl<'a> Report<'a> {
    pub fn new(
        config: &'a Config,
        compiled: &'a Compiled,
        compile_ms: f64,
        verifier: Option<(f64, Option<u64>)>,
    ) -> Report<'a> {
        Report {
            config,
            compiled,
            compile_ms,
            verifier,
        }
    }

    /// Warnings: each rule tested in the chain because of its shape and
    /// with no guard, once more than [`CHAIN_WARN`] such rules come before
    /// it.
    fn warnings(&self) -> Vec<String> {
        let mut seen = 0;
        let mut out = Vec::new();
        for (r, plan) in self.config.rules.iter().zip(&self.compiled.plans) {
            if plan.chain_reason != Some(NotInTable::Shape) || !plan.guard_tables.is_empty() {
                continue;
            }
            seen += 1;
            if seen > CHAIN_WARN {
                out.push(format!(
                    "rule {:?} is tested in order after {} other chain rules: every IPv4 frame \
                     pays for them. Rules of IPv4 host, net and numeric port tests (with \
                     tcp/udp/sctp) joined by and/or are found by one lookup per table; split \
                     {:?} into such rules where you can",
                    r.name,
                    seen - 1,
                    r.expr
                ));
            }
        }
        out
    }

    /// Per family with bitmaps: their maps, the rules they find and their
    /// terms (the rules map's entries).
    fn bitmaps(&self) -> Vec<Bitmaps> {
        let c = self.compiled;
        Family::ALL
            .into_iter()
            .filter_map(|family| {
                let prefix = bitmap_prefix(family);
                let maps: Vec<String> = (c.tables.iter())
                    .filter(|t| t.name.starts_with(prefix))
                    .map(|t| t.name.clone())
                    .collect();
                let rules_map = format!("{prefix}_rules");
                let terms = c.tables.iter().find(|t| t.name == rules_map)?.entries.len();
                let rules = (c.plans.iter())
                    .filter(|p| p.tables.contains(&rules_map))
                    .count();
                Some(Bitmaps {
                    family,
                    maps,
                    rules,
                    terms,
                })
            })
            .collect()
    }

    fn total_rule_insns(&self) -> usize {
        self.compiled
            .plans
            .iter()
            .map(|p| p.insns)
            .sum::<usize>()
            .max(1)
    }

    pub fn print(&self, out: &mut dyn Write) {
        let c = self.compiled;
        let _ = writeln!(
            out,
            "ok: {} rules, {} interfaces; {} XDP program{} of {} eBPF instructions (compiled in {:.0} ms)",
            self.config.rules.len(),
            self.config.interfaces.len(),
            c.programs.len(),
            if c.programs.len() == 1 {
                ""
            } else {
                "s (chained by tail calls)"
            },
            c.len(),
            self.compile_ms,
        );
        for (chain, n, len) in &c.chains {
            let _ = writeln!(out, "  {chain}: {n} rules, about {len} instructions");
        }
        let tuples = |f: Family| {
            (c.tables.iter())
                .filter(|t| t.family == f && t.name.starts_with("tuples_"))
                .count()
        };
        let _ = writeln!(
            out,
            "  lookup tables: {} IPv4, {} IPv6, {} ARP; {} rules found by lookups alone",
            tuples(Family::V4),
            tuples(Family::V6),
            tuples(Family::Arp),
            c.fast_rules
        );
        for b in self.bitmaps() {
            let _ = writeln!(
                out,
                "  {} bitmaps ({}): {} rules of shapes past the tables, {} terms, found by {} lookups and a scan of {} words",
                b.family.name(),
                b.maps.join(", "),
                b.rules,
                b.terms,
                b.maps.len() - 1,
                b.terms.div_ceil(64)
            );
        }
        if let Some(cold) = &c.cold {
            let classes: Vec<String> = (c.cold_classes.iter())
                .map(|(name, n)| format!("{name} ({n} rules)"))
                .collect();
            let _ = writeln!(
                out,
                "  interpreted (the cold path, {} classic instructions in map {}): {}",
                cold.slots.len(),
                cold::CODE_MAP,
                classes.join("; ")
            );
        }
        let total = self.total_rule_insns();
        let width = self
            .config
            .rules
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "  {:<width$}  {:<6} {:>7} {:>6}  classified",
            "rule", "action", "insns", "share"
        );
        for (r, p) in self.config.rules.iter().zip(&c.plans) {
            let how = match (p.chain_reason, p.guard_tables.is_empty()) {
                (None, _) => format!("lookup ({})", p.tables.join(", ")),
                // Found by one family's lookups, tested in order in another's.
                (Some(why), true) if !p.tables.is_empty() => format!(
                    "lookup ({}); in the chain for frames of another family: {}",
                    p.tables.join(", "),
                    why.text()
                ),
                (Some(why), true) => format!("chain: {}", why.text()),
                (Some(why), false) => format!(
                    "chain, tested only when {} finds it: {}",
                    p.guard_tables.join(", "),
                    why.text()
                ),
            };
            let _ = writeln!(
                out,
                "  {:<width$}  {:<6} {:>7} {:>5.1}%  {how}",
                r.name,
                r.action.name(),
                p.insns,
                100.0 * p.insns as f64 / total as f64
            );
        }
        for w in self.warnings() {
            let _ = writeln!(out, "warning: {w}");
        }
        if let Some((ms, processed)) = self.verifier {
            let processed =
                processed.map_or(String::new(), |n| format!("; {n} instructions processed"));
            let _ = writeln!(out, "verifier: accepted in {ms:.0} ms{processed}");
        }
    }

    pub fn json(&self) -> Value {
        let c = self.compiled;
        let total = self.total_rule_insns();
        let plans: Vec<Value> = self
            .config
            .rules
            .iter()
            .zip(&c.plans)
            .map(|(r, p)| {
                json!({
                    "name": r.name,
                    "action": r.action.name(),
                    "classified": if p.chain_reason.is_none() { "table" } else { "chain" },
                    "tables": p.tables,
                    "guard_tables": p.guard_tables,
                    "reason_key": p.chain_reason.map(NotInTable::key),
                    "reason": p.chain_reason.map(NotInTable::text),
                    "instructions": p.insns,
                    "share": p.insns as f64 / total as f64,
                })
            })
            .collect();
        json!({
            "ok": true,
            "rules": self.config.rules.len(),
            "interfaces": self.config.interfaces.len(),
            "programs": c.programs.len(),
            "instructions": c.len(),
            "compile_ms": self.compile_ms,
            "chains": c.chains.iter().map(|(name, n, len)| json!({
                "name": name, "rules": n, "instructions": len,
            })).collect::<Vec<_>>(),
            "tables": c.tables.iter().map(|t| json!({
                "name": t.name,
                "family": t.family.name(),
                "map_type": MapKind::from_bpf(t.map_type).map_or("other", MapKind::bpf_name),
                "key_bytes": t.key_size,
                "value_bytes": t.value_size,
                "presence_of": t.presence_of,
                "entries": t.entries.len(),
            })).collect::<Vec<_>>(),
            "bitmaps": self.bitmaps().iter().map(|b| json!({
                "family": b.family.name(),
                "maps": b.maps,
                "rules": b.rules,
                "terms": b.terms,
            })).collect::<Vec<_>>(),
            "table_rules": c.fast_rules,
            "cold_path": c.cold.as_ref().map(|cold| json!({
                "map": cold::CODE_MAP,
                "slots": cold.slots.len(),
                "classes": c.cold_classes.iter().map(|(name, n)| json!({
                    "name": name, "rules": n,
                })).collect::<Vec<_>>(),
            })),
            "rule_plans": plans,
            "warnings": self.warnings(),
            "verifier": self.verifier.map(|(ms, processed)| json!({
                "accepted": true,
                "load_ms": ms,
                "processed_instructions": processed,
            })),
        })
    }
}
