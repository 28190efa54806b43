//! Kernel cost of a filterd ruleset against one compiled filter of
//! comparable work, run by the kernel through `BPF_PROG_TEST_RUN` with a
//! repeat count (issue 17's figures).
//!
//! Run (root): `cargo bench -p filterd --bench ruleset_kernel`.
//! `BENCH_REPEAT` (default 1,000,000) and `BENCH_ROUNDS` (default 5) as in
//! the kernel_xdp bench; `BENCH_SETS=typical-10,shapes-2000` runs only
//! those rulesets; medians of this thread's CPU ns per run are
//! reported, the three programs of a row interleaved round by round:
//! - `ruleset`: the filterd program;
//! - `one filter`: `filterd compile --target xdp` of
//!   `tcp dst port 22 and src net 10.0.0.0/8`, on the same frame;
//! - `XDP_PASS`: the test loop's own cost.
//!
//! The ratio is ruleset / one filter, loop included (issue 17's goals:
//! 10 typical rules at most 2, 10,000 mixed rules at most 10, and 10,000
//! at most 2× 1,000).
//!
//! Rulesets:
//! - `typical-10`: the six typical shapes (host, net, port and their
//!   conjunctions) with two count rules (`e2e::mixed::typical_10`);
//! - `mixed-N`: N rules of the mixed realistic ruleset of `e2e::mixed`
//!   (IPv4 and IPv6 blocks, services, ICMP, VLAN, flags, fragments);
//! - `shapes-2000`: rules of many shapes (`e2e::mixed::many_shapes`: nets
//!   of every length with a port or ICMP type), past what the shape
//!   tables hold, most found through per-field bitmaps (`ruleset::bitmap`).
//!
//! Frames, each checked against the dry run first: `v4-none` and
//! `v6-none` match no rule (every rule is considered, the default
//! decides); `last` is aimed at the last deciding rule; for the mixed
//! rulesets, `last-v4-block` and `last-v6-block` at the last IPv4 and
//! IPv6 address rule (host or net), whose prefix the presence tables
//! hold, so that every lookup of its direction runs; `arp`, an ARP
//! request (ARP's own lookups); `last-vlan`, an 802.1Q-tagged frame aimed
//! at the last `vlan N and ...` rule, and `vlan-none`, one of a VLAN ID
//! no rule names (the chains split by VLAN ID, `ruleset::vlan`); and
//! `v4-cut (cold)`, an IPv4 frame cut inside its header, which the cold
//! path (`ruleset::cold`) interprets (timed with a thousandth of the
//! repeats).

mod common;

use std::os::fd::AsFd;
use std::time::Instant;

use common::{env_u32, pass_program, race};
use e2e::mixed::{self, Aim, MixedRule};
use filter_programs::codegen::{compile as compile_expr, Dlt, Options};
use filter_programs::ruleset::{self, compile, dryrun::DryRun, Verdict};
use filter_programs::translate::{translate, Target};
use filterd::ruleset::LoadedRuleset;

/// The one filter the rulesets are held against.
const ONE: &str = "tcp dst port 22 and src net 10.0.0.0/8";

/// A broadcast ARP request between documentation addresses, padded to
/// Ethernet's 60 bytes.
fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 192, 0, 2, 1]);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 192, 0, 2, 2]);
    f.resize(60, 0);
    f
}

struct Row {
    rules: usize,
    ratio: f64,
    frame: &'static str,
}

fn main() {
    if !e2e::kernel_available("ruleset_kernel bench") {
        return;
    }
    let repeat = env_u32("BENCH_REPEAT", 1_000_000);
    let rounds = env_u32("BENCH_ROUNDS", 5).max(1);
    let base = pass_program();
    let cbpf = compile_expr(ONE, &Options::new(Dlt::En10mb)).expect("the one filter compiles");
    let one_insns = translate(&cbpf, Target::xdp()).expect("the one filter translates");
    let one = bpf_kernel::load(filter_programs::Hook::Xdp, &one_insns, "bench_one")
        .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "ruleset in the kernel, repeat {repeat}, median of {rounds} rounds; CPU ns per packet"
    );
    println!("one filter: `{ONE}`, {} eBPF instructions", one_insns.len());
    println!();
    println!("| ruleset | eBPF insns | programs | tables | compile ms | load ms | frame | decided by | ruleset ns | one filter ns | XDP_PASS ns | ruleset / one |");
    println!("|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|");
    let sets: Vec<(String, Vec<MixedRule>)> = vec![
        ("typical-10".into(), mixed::typical_10()),
        (
            "mixed-1000".into(),
            mixed::rules(1_000, mixed::EXAMPLE_SEED, 0),
        ),
        (
            "mixed-10000".into(),
            mixed::rules(10_000, mixed::EXAMPLE_SEED, 0),
        ),
        (
            "shapes-2000".into(),
            mixed::many_shapes(2_000, mixed::EXAMPLE_SEED),
        ),
    ];
    let only = std::env::var("BENCH_SETS").ok();
    let mut rows = Vec::new();
    for (name, rules) in &sets {
        if only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|s| s == name))
        {
            continue;
        }
        let cfg =
            ruleset::parse(&mixed::config(rules, "lo")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let t = Instant::now();
        let compiled = compile(&cfg.rules, Verdict::Pass).unwrap_or_else(|e| panic!("{name}: {e}"));
        let compile_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let loaded = LoadedRuleset::load(&compiled).unwrap_or_else(|e| panic!("{name}: {e}"));
        let load_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut dry =
            DryRun::new(&compiled, &cfg.rules, Verdict::Pass).unwrap_or_else(|e| panic!("{e}"));
        let last = rules
            .iter()
            .rposition(|r| r.action != "count")
            .expect("a deciding rule");
        // Frames aimed at the last address rule of each family: their
        // prefix is in the tables, so every lookup of that direction runs.
        let last_block = |v6: bool| {
            rules.iter().rposition(|r| {
                r.action != "count"
                    && matches!(r.aim.ip, mixed::Ip::V6 { .. }) == v6
                    && (r.expr.contains("net ") || r.expr.contains("host "))
                    && !r.expr.contains(" and ")
                    && !r.expr.contains(" or ")
            })
        };
        let mut frames = vec![
            ("v4-none", Aim::nowhere(false).frame()),
            ("v6-none", Aim::nowhere(true).frame()),
            ("last", rules[last].aim.frame()),
        ];
        if rules.len() > 10 {
            for (kind, v6) in [("last-v4-block", false), ("last-v6-block", true)] {
                if let Some(i) = last_block(v6) {
                    frames.push((kind, rules[i].aim.frame()));
                }
            }
            // An ARP request (its own lookups), and a frame of the cold
            // path: an IPv4 header cut short, run through every rule that
            // can match it.
            frames.push(("arp", arp_request()));
            if let Some(i) = rules
                .iter()
                .rposition(|r| r.aim.vlan.is_some() && r.action != "count")
            {
                frames.push(("last-vlan", rules[i].aim.frame()));
                let named: std::collections::BTreeSet<u16> =
                    rules.iter().filter_map(|r| r.aim.vlan).collect();
                let mut none = Aim::nowhere(false);
                none.vlan = (1..4095).find(|id| !named.contains(id));
                frames.push(("vlan-none", none.frame()));
            }
            frames.push(("v4-cut (cold)", Aim::nowhere(false).frame()[..30].to_vec()));
        }
        for (kind, f) in &frames {
            let want = dry
                .packet(f, f.len() as u32)
                .unwrap_or_else(|e| panic!("{e}"));
            let got = loaded
                .test_run(f, 1)
                .unwrap_or_else(|e| panic!("{e}"))
                .retval;
            assert_eq!(
                got,
                want.verdict.xdp(),
                "{name}, frame {kind}: kernel vs dry run"
            );
            let expected = match (kind.ends_with("-none"), kind.starts_with("last")) {
                (true, _) => want.rule.is_none(),
                (_, true) => want.rule.is_some(),
                _ => true,
            };
            assert!(expected, "{name}: frame {kind} decided by {:?}", want.rule);
            let fd = loaded.program_fd().unwrap_or_else(|e| panic!("{e}"));
            // A cold frame takes microseconds: fewer repeats.
            let reps = if kind.contains("cold") {
                (repeat / 1000).max(10)
            } else {
                repeat
            };
            let t = race(
                &[fd, one.fd().as_fd(), base.fd().as_fd()],
                &[f.as_slice()],
                reps,
                rounds,
            );
            let ratio = t[0].cpu_ns / t[1].cpu_ns;
            rows.push(Row {
                rules: rules.len(),
                ratio,
                frame: kind,
            });
            println!(
                "| {name} | {} | {} | {} | {compile_ms:.0} | {load_ms:.0} | {kind} | {} | {:.1} | {:.1} | {:.1} | {ratio:.2} |",
                compiled.len(),
                compiled.programs.len(),
                compiled.tables.len(),
                want.rule
                    .map_or("default".to_string(), |r| format!("rule {r}")),
                t[0].cpu_ns,
                t[1].cpu_ns,
                t[2].cpu_ns,
            );
        }
    }
    println!();
    let ratio = |n: usize, frame: &str| {
        rows.iter()
            .find(|r| r.rules == n && r.frame == frame)
            .map_or(f64::NAN, |r| r.ratio)
    };
    println!(
        "typical-10 / one filter: v4-none {:.2}, last {:.2} (goal <= 2)",
        ratio(10, "v4-none"),
        ratio(10, "last")
    );
    for frame in ["v4-none", "v6-none", "last"] {
        println!(
            "mixed-10000 / one filter, {frame}: {:.2} (goal <= 10); mixed-10000 / mixed-1000: {:.2} (goal <= 2)",
            ratio(10_000, frame),
            ratio(10_000, frame) / ratio(1_000, frame)
        );
    }
    println!(
        "shapes-2000 (most rules in bitmaps) / one filter: v4-none {:.2}, v6-none {:.2}, last {:.2}",
        ratio(2_000, "v4-none"),
        ratio(2_000, "v6-none"),
        ratio(2_000, "last")
    );
}
