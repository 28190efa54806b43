//! The filterd ruleset program against its three references, on every
//! Ethernet packet of the shared corpus:
//! - the dry run (our VM running the compiled program, with its counters),
//! - the kernel running the same ELF object (`BPF_PROG_TEST_RUN`, counters
//!   read back from the per-CPU map),
//! - libpcap: each rule's expression compiled and run by libpcap, the rules
//!   then taken one by one in order (first pass/drop wins, count falls
//!   through).
//!
//! Frames shorter than 14 bytes go to the VM and libpcap only: the kernel's
//! XDP test run refuses them. Lengths are the captured lengths on all
//! sides, because the kernel sees no more than the bytes it is given.

use std::time::Instant;

use capfile::LinkType;
use e2e::corpus::{captures, expressions, Capture};
use e2e::rng::Rng;
use filter_programs::ruleset::compile::{compile_with, Options};
use filter_programs::ruleset::tuple::Family;
use filter_programs::ruleset::{self, decide, dryrun::DryRun, Action, Verdict};
use filterd::ruleset::LoadedRuleset;
use libpcap_oracle::{self as libpcap, CompileOptions};

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn config_text(rules: &[(String, &'static str)], default: Verdict) -> String {
    let mut t = format!(
        "[[interface]]\nname = \"lo\"\ndefault = \"{}\"\n",
        default.name()
    );
    for (i, (expr, action)) in rules.iter().enumerate() {
        t.push_str(&format!(
            "\n[[rule]]\nname = \"r{i}\"\nmatch = {}\naction = \"{action}\"\n",
            quoted(expr)
        ));
    }
    t
}

fn libpcap_program(expr: &str, optimize: bool) -> Vec<filter_programs::cbpf::Insn> {
    let opts = CompileOptions {
        dlt: LinkType::ETHERNET.to_dlt(),
        snaplen: 262_144,
        optimize,
        netmask: 0xffff_ff00,
    };
    libpcap::compile(expr, opts).unwrap_or_else(|e| panic!("libpcap refuses {expr:?}: {e}"))
}

/// Runs one ruleset over the captures on all three sides; returns the
/// number of kernel test runs. `optimize`: libpcap's optimizer on, whose
/// programs differ from ours (and from its unoptimized ones) only on
/// packets cut inside a header a rule reads (docs/LIBPCAP_DIFFERENCES.md).
fn prove(config: &str, caps: &[Capture], optimize: bool, opts: &Options) -> usize {
    let cfg = ruleset::parse(config).unwrap_or_else(|e| panic!("{e}\n{config}"));
    let default = cfg.interfaces[0].default;
    let compiled = compile_with(&cfg.rules, default, opts).unwrap();
    let loaded = LoadedRuleset::load(&compiled).unwrap_or_else(|e| panic!("{e}"));
    let mut dry = DryRun::new(&compiled, &cfg.rules, default).unwrap();
    let pcap_progs: Vec<_> = cfg
        .rules
        .iter()
        .map(|r| libpcap_program(&r.expr, optimize))
        .collect();
    let actions: Vec<Action> = cfg.rules.iter().map(|r| r.action).collect();
    let mut runs = 0;
    for cap in caps {
        for (n, p) in cap.packets.iter().enumerate() {
            let len = p.data.len() as u32;
            let want = decide(&actions, default, |i| {
                libpcap::filter(&pcap_progs[i], &p.data, len) != 0
            });
            if p.data.len() < 14 {
                // Checked against libpcap only (the kernel needs 14 bytes); a
                // dry run would count it where the kernel cannot.
                let mut scratch = DryRun::new(&compiled, &cfg.rules, default).unwrap();
                let got = scratch.packet(&p.data, len).unwrap();
                assert_eq!(got, want, "{} packet {n}", cap.name);
                continue;
            }
            let got = dry
                .packet(&p.data, len)
                .unwrap_or_else(|e| panic!("{} packet {n}: {e}\n{config}", cap.name));
            assert_eq!(
                got, want,
                "{} packet {n}: dry run vs libpcap rule by rule\n{config}",
                cap.name
            );
            let kernel = loaded.test_run(&p.data, 1).unwrap();
            assert_eq!(
                kernel.retval,
                want.verdict.xdp(),
                "{} packet {n}: kernel vs libpcap\n{config}",
                cap.name
            );
            runs += 1;
        }
    }
    assert_eq!(
        loaded.counters().unwrap(),
        dry.counters(),
        "counters after the run\n{config}"
    );
    runs
}

#[test]
fn dry_run_equals_kernel_and_libpcap_on_the_corpus() {
    if !e2e::kernel_available("ruleset_kernel") {
        return;
    }
    let caps: Vec<Capture> = captures()
        .into_iter()
        .filter(|c| c.dlt == LinkType::ETHERNET.to_dlt())
        .collect();
    let exprs: Vec<String> = expressions()
        .into_iter()
        .filter(|e| e.dlt == "EN10MB" && e.netmask.is_none())
        .map(|e| e.expr)
        .filter(|e| {
            !e.trim().is_empty()
                && ruleset::parse(&config_text(&[(e.clone(), "pass")], Verdict::Pass)).is_ok()
        })
        .collect();
    assert!(exprs.len() > 300, "only {} corpus expressions", exprs.len());
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut runs = 0;
    let rulesets = 24;
    for k in 0..rulesets {
        let n = 5 + rng.below(20) as usize;
        let rules: Vec<(String, &str)> = (0..n)
            .map(|_| {
                let action = ["pass", "drop", "count"][rng.below(3) as usize];
                (
                    exprs[rng.below(exprs.len() as u64) as usize].clone(),
                    action,
                )
            })
            .collect();
        let default = if k % 2 == 0 {
            Verdict::Pass
        } else {
            Verdict::Drop
        };
        // Every third ruleset with every table its shapes allow and every
        // rare frame (ARP, other ethertypes, headers the lookups cannot
        // read) run by the cold path's interpreter.
        // Every third other one with few shape tables, the rest of the
        // table shapes in per-field bitmaps.
        let opts = match k % 3 {
            0 => Options::forced(),
            1 => Options::default(),
            _ => Options::bitmaps(6),
        };
        runs += prove(&config_text(&rules, default), &caps, true, &opts);
    }
    eprintln!(
        "{rulesets} rulesets over {} captures: {runs} kernel test runs, all equal",
        caps.len()
    );
}

/// Rules of the typical shapes (host, net, port and their combinations),
/// drawn so that some of the test packets hit.
fn typical_rules(n: usize, rng: &mut Rng) -> Vec<(String, &'static str)> {
    (0..n)
        .map(|i| {
            let (a, b, c) = (
                rng.below(256) as usize,
                rng.below(256) as usize,
                1 + rng.below(254) as usize,
            );
            let port = 1 + rng.below(65000) as usize;
            let expr = match i % 6 {
                0 => format!("host 10.{a}.{b}.{c}"),
                1 => format!("src net 172.{}.{a}.0/24", 16 + b % 16),
                2 => format!("tcp dst port {port}"),
                3 => format!("udp port {port} and dst net 192.168.{a}.0/24"),
                4 => format!("tcp dst port {port} and src host 10.{a}.{b}.{c}"),
                _ => format!("dst net 10.{a}.0.0/16 and tcp"),
            };
            (
                expr,
                if rng.below(10) as usize == 0 {
                    "pass"
                } else {
                    "drop"
                },
            )
        })
        .collect()
}

#[test]
fn ten_thousand_rules_load_and_agree() {
    if !e2e::kernel_available("ruleset_kernel") {
        return;
    }
    let mut rng = Rng(0x1000_0000_0000_0001);
    let rules = typical_rules(10_000, &mut rng);
    let config = config_text(&rules, Verdict::Pass);
    let cfg = ruleset::parse(&config).unwrap();
    let t = Instant::now();
    let compiled = ruleset::compile(&cfg.rules, Verdict::Pass).unwrap();
    let compile_time = t.elapsed();
    eprintln!(
        "10,000 rules: {} programs, {} eBPF instructions, compiled in {compile_time:?}",
        compiled.programs.len(),
        compiled.len()
    );
    let t = Instant::now();
    let loaded = LoadedRuleset::load(&compiled).unwrap_or_else(|e| {
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        panic!(
            "{}\n...\n{}",
            lines[..lines.len().min(5)].join("\n"),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    });
    eprintln!(
        "10,000 rules: {} eBPF instructions, compiled in {compile_time:?}, verified and loaded in {:?}; chains {:?}",
        compiled.len(),
        t.elapsed(),
        compiled.chains
    );
    assert_eq!(
        compiled.fast_rules, 10_000,
        "every rule of the common shapes is in the tuple tables"
    );
    // One table per IPv4 shape (six expressions, some two shapes), the
    // ARP tables of the address-only ones, and presence tables.
    let shapes = |f: Family| {
        (compiled.tables.iter())
            .filter(|t| t.family == f && t.presence_of.is_none())
            .count()
    };
    assert!(
        shapes(Family::V4) <= 12 && shapes(Family::Arp) <= 4,
        "{} IPv4, {} ARP shape tables",
        shapes(Family::V4),
        shapes(Family::Arp)
    );
    // Frames aimed at rules near the start, the middle and the end.
    let mut dry = DryRun::new(&compiled, &cfg.rules, Verdict::Pass).unwrap();
    let mut hits = 0;
    for i in (0..10_000).step_by(97) {
        let frame = frame_for(&rules[i].0, &mut rng);
        let want = dry.packet(&frame, frame.len() as u32).unwrap();
        hits += want.rule.is_some() as usize;
        assert_eq!(
            loaded.test_run(&frame, 1).unwrap().retval,
            want.verdict.xdp(),
            "frame for {}",
            rules[i].0
        );
    }
    assert!(hits > 40, "only {hits} frames hit a rule");
    assert_eq!(loaded.counters().unwrap(), dry.counters());
}

/// An Ethernet/IPv4 TCP or UDP frame that the rule's addresses and port
/// suggest (a rule earlier in the list may decide it first).
fn frame_for(expr: &str, rng: &mut Rng) -> Vec<u8> {
    let words: Vec<&str> = expr.split_whitespace().collect();
    let after = |w: &str| words.iter().position(|x| *x == w).map(|i| words[i + 1]);
    let mut addr = |s: &str| -> [u8; 4] {
        let ip = s.split('/').next().unwrap_or("0.0.0.0");
        let mut o = [0u8; 4];
        for (i, p) in ip.split('.').enumerate().take(4) {
            o[i] = p.parse().unwrap_or(1);
        }
        if s.contains('/') {
            o[3] = 1 + (rng.next_u64() % 200) as u8;
        }
        o
    };
    let mut src = [198, 51, 100, 7];
    let mut dst = [203, 0, 113, 9];
    if let Some(h) = after("host") {
        if expr.starts_with("tcp") {
            src = addr(h)
        } else {
            dst = addr(h)
        }
    }
    if let Some(n) = after("net") {
        if expr.contains("src net") {
            src = addr(n)
        } else {
            dst = addr(n)
        }
    }
    let port: u16 = after("port").and_then(|p| p.parse().ok()).unwrap_or(9);
    let udp = expr.starts_with("udp");
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12] = 0x08;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&50u16.to_be_bytes());
    f[22] = 64;
    f[23] = if udp { 17 } else { 6 };
    f[26..30].copy_from_slice(&src);
    f[30..34].copy_from_slice(&dst);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&port.to_be_bytes());
    f
}

/// Shapes the verifier finds heavier per rule (more tests and bounds
/// checks each): the segment budget must still keep every program under
/// its limit on pending branches, and long jumps must survive the
/// verifier's rewriting (both failed before, at 1,400 and 1,500 rules).
#[test]
fn heavy_rule_shapes_load_at_scale() {
    if !e2e::kernel_available("ruleset_kernel") {
        return;
    }
    let mut rng = Rng(0x2000_0000_0000_0003);
    for shape in 0..2 {
        let rules: Vec<(String, &str)> = (0..1_500)
            .map(|i| {
                let (k, port) = (rng.below(255), 1 + rng.below(65000));
                let expr = if shape == 0 {
                    format!("tcp dst port {port} or udp src port {port} and ip[8] > {k}")
                } else {
                    format!("ip[8] = {k} and udp src port {port}")
                };
                (expr, if i % 7 == 0 { "count" } else { "drop" })
            })
            .collect();
        let config = config_text(&rules, Verdict::Pass);
        let cfg = ruleset::parse(&config).unwrap();
        let compiled = ruleset::compile(&cfg.rules, Verdict::Pass).unwrap();
        let loaded =
            LoadedRuleset::load(&compiled).unwrap_or_else(|e| panic!("shape {shape}: {e}"));
        let mut dry = DryRun::new(&compiled, &cfg.rules, Verdict::Pass).unwrap();
        for i in (0..1_500).step_by(50) {
            let mut frame = frame_for(&rules[i].0, &mut rng);
            frame[22] = rng.below(256) as u8;
            let want = dry.packet(&frame, frame.len() as u32).unwrap();
            assert_eq!(
                loaded.test_run(&frame, 1).unwrap().retval,
                want.verdict.xdp()
            );
        }
        assert_eq!(loaded.counters().unwrap(), dry.counters());
        eprintln!(
            "shape {shape}: 1,500 rules in {} programs",
            compiled.programs.len()
        );
    }
}

/// Issue 17's mix at 2,000 rules (IPv4 and IPv6 blocks, services with
/// port ranges, ICMP and ICMPv6 types, disjunctions, VLAN, TCP flags,
/// fragments): the dry run, the kernel and libpcap rule by rule agree on
/// every Ethernet packet of the corpus and on a frame aimed at each rule,
/// whole and cut short (a cut frame must not be decided by a lookup of
/// fields it does not hold).
#[test]
fn mixed_ruleset_of_2000_agrees_with_libpcap() {
    if !e2e::kernel_available("ruleset_kernel") {
        return;
    }
    let t = Instant::now();
    let runs = prove_mixed(
        &e2e::mixed::rules(2_000, 0x0017_2000, 97),
        &Options::default(),
    );
    eprintln!(
        "2,000 mixed rules: {runs} kernel test runs, all equal, in {:?}",
        t.elapsed()
    );
}

/// 2,000 rules of many shapes (nets of every length with ports or ICMP
/// types): past the shape tables, most are found through per-field
/// bitmaps (LPM tries and a field hash, `ruleset::bitmap`); the program
/// loads, and the kernel, the dry run and libpcap rule by rule agree. So
/// do the 2,000 mixed rules with almost every rule in the bitmaps.
#[test]
fn many_shaped_rules_through_bitmaps_agree_with_libpcap() {
    if !e2e::kernel_available("ruleset_kernel") {
        return;
    }
    let t = Instant::now();
    let rules = e2e::mixed::many_shapes(2_000, 0x0017_b175);
    let cfg = ruleset::parse(&e2e::mixed::config(&rules, "lo")).unwrap();
    let compiled = compile_with(&cfg.rules, Verdict::Pass, &Options::default()).unwrap();
    let held = compiled
        .plans
        .iter()
        .filter(|p| p.tables.iter().any(|t| t.starts_with("lbvs")))
        .count();
    assert!(held > 1_000, "only {held} of 2,000 rules in the bitmaps");
    let runs = prove_mixed(&rules, &Options::default());
    eprintln!(
        "2,000 many-shaped rules ({held} in bitmaps): {runs} kernel test runs, all equal, in {:?}",
        t.elapsed()
    );
    let runs = prove_mixed(
        &e2e::mixed::rules(2_000, 0x0017_2000, 97),
        &Options::bitmaps(14),
    );
    eprintln!(
        "2,000 mixed rules, bitmaps for the table shapes: {runs} kernel test runs, all equal"
    );
    // A third of them with `not` (excluded hosts, nets, ports, ICMP
    // types), which only the bitmaps hold.
    let rules = e2e::mixed::with_negations(rules, 0x0017_b175);
    let cfg = ruleset::parse(&e2e::mixed::config(&rules, "lo")).unwrap();
    let compiled = compile_with(&cfg.rules, Verdict::Pass, &Options::default()).unwrap();
    let negated = (compiled.plans.iter().zip(&rules))
        .filter(|(p, r)| r.expr.contains("not ") && p.tables.iter().any(|t| t.starts_with("lbvs")))
        .count();
    assert!(
        negated > 400,
        "only {negated} rules with `not` in the bitmaps"
    );
    let runs = prove_mixed(&rules, &Options::default());
    eprintln!(
        "2,000 many-shaped rules, {negated} with `not` in the bitmaps: {runs} kernel test runs, all equal"
    );
}

/// Issue 17's ten typical rules (two count rules), as above: straight-line
/// code by the cost model (the dry-run tests force the tables too).
#[test]
fn typical_ten_rules_agree_with_libpcap() {
    if !e2e::kernel_available("ruleset_kernel") {
        return;
    }
    let runs = prove_mixed(&e2e::mixed::typical_10(), &Options::default());
    eprintln!("10 typical rules: {runs} kernel test runs, all equal");
    let runs = prove_mixed(&e2e::mixed::typical_10(), &Options::forced());
    eprintln!("10 typical rules, tables and cold path forced: {runs} kernel test runs, all equal");
}

/// [`prove`] for a generated ruleset, over the corpus's Ethernet packets
/// and a frame aimed at each rule, whole and cut.
fn prove_mixed(mixed: &[e2e::mixed::MixedRule], opts: &Options) -> usize {
    let config = e2e::mixed::config(mixed, "lo");
    let mut caps: Vec<Capture> = captures()
        .into_iter()
        .filter(|c| c.dlt == LinkType::ETHERNET.to_dlt())
        .collect();
    let mut rng = Rng(0x0017_0002);
    let mut aimed = Vec::new();
    for r in mixed {
        let f = r.aim.frame();
        let cut = 14 + rng.below(f.len() as u64 - 13) as usize;
        aimed.push(e2e::corpus::Packet {
            wirelen: f.len() as u32,
            data: f[..cut].to_vec(),
        });
        aimed.push(e2e::corpus::Packet {
            wirelen: f.len() as u32,
            data: f,
        });
    }
    caps.push(Capture {
        name: "frames aimed at the rules".into(),
        path: Default::default(),
        dlt: LinkType::ETHERNET.to_dlt(),
        packets: aimed,
    });
    // Frames cut inside a header: our programs mean what libpcap's
    // unoptimized ones mean.
    prove(&config, &caps, false, opts)
}
