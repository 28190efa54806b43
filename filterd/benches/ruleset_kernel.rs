//! Kernel cost of a filterd ruleset as it grows: 10, 100, 1,000 and 10,000
//! rules of the typical shapes (host, net, port and their combinations),
//! each compiled to its one XDP program and run by the kernel through
//! `BPF_PROG_TEST_RUN` with a repeat count.
//!
//! Run (root): `cargo bench -p filterd --bench ruleset_kernel`.
//! `BENCH_REPEAT` (default 1,000,000) and `BENCH_ROUNDS` (default 5) as in
//! the kernel_xdp bench; medians are reported.
//!
//! Frames per ruleset, each checked against the dry run first:
//! - `none`: matches no rule, so every rule is considered and the default
//!   decides (the worst case for a chain of filters);
//! - `first`: matches rule 0;
//! - `last`: aimed at the last rule (the earliest rule it matches decides).

mod common;

use std::os::fd::AsFd;

use common::{env_u32, pass_program, race};
use e2e::rng::Rng;
use filter_programs::ruleset::{self, compile, dryrun::DryRun, Verdict};
use filterd::ruleset::LoadedRuleset;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// One rule: its expression and the addresses and port a frame needs to
/// hit it (source, destination, protocol, destination port).
struct RuleSpec {
    expr: String,
    frame: ([u8; 4], [u8; 4], u8, u16),
}

const TCP: u8 = 6;
const UDP: u8 = 17;
/// Addresses no generated rule names (TEST-NET-2 and -3).
const NOWHERE_SRC: [u8; 4] = [198, 51, 100, 7];
const NOWHERE_DST: [u8; 4] = [203, 0, 113, 9];

/// Rules of six shapes in turn, as `tests/tests/ruleset_kernel.rs` draws them.
fn typical_rules(n: usize, rng: &mut Rng) -> Vec<RuleSpec> {
    (0..n)
        .map(|i| {
            let (a, b, c) = (
                rng.below(256) as u8,
                rng.below(256) as u8,
                1 + rng.below(254) as u8,
            );
            let port = 1 + rng.below(65000) as u16;
            let (expr, frame) = match i % 6 {
                0 => (
                    format!("host 10.{a}.{b}.{c}"),
                    (NOWHERE_SRC, [10, a, b, c], TCP, 9),
                ),
                1 => {
                    let second = 16 + b % 16;
                    (
                        format!("src net 172.{second}.{a}.0/24"),
                        ([172, second, a, 1], NOWHERE_DST, TCP, 9),
                    )
                }
                2 => (
                    format!("tcp dst port {port}"),
                    (NOWHERE_SRC, NOWHERE_DST, TCP, port),
                ),
                3 => (
                    format!("udp port {port} and dst net 192.168.{a}.0/24"),
                    (NOWHERE_SRC, [192, 168, a, 1], UDP, port),
                ),
                4 => (
                    format!("tcp dst port {port} and src host 10.{a}.{b}.{c}"),
                    ([10, a, b, c], NOWHERE_DST, TCP, port),
                ),
                _ => (
                    format!("dst net 10.{a}.0.0/16 and tcp"),
                    (NOWHERE_SRC, [10, a, 0, 1], TCP, 9),
                ),
            };
            RuleSpec { expr, frame }
        })
        .collect()
}

fn config_text(rules: &[RuleSpec]) -> String {
    let mut t = String::from("[[interface]]\nname = \"lo\"\ndefault = \"pass\"\n");
    for (i, r) in rules.iter().enumerate() {
        // Mostly drops with a few passes, as a firewall's list looks.
        let action = if i % 10 == 9 { "pass" } else { "drop" };
        t.push_str(&format!(
            "\n[[rule]]\nname = \"r{i}\"\nmatch = \"{}\"\naction = \"{action}\"\n",
            r.expr
        ));
    }
    t
}

/// A 64-byte Ethernet/IPv4 TCP or UDP frame.
fn frame((src, dst, proto, dport): ([u8; 4], [u8; 4], u8, u16)) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&50u16.to_be_bytes());
    f[22] = 64;
    f[23] = proto;
    f[26..30].copy_from_slice(&src);
    f[30..34].copy_from_slice(&dst);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    if proto == TCP {
        f[46] = 0x50;
        f[47] = 0x02;
    }
    f
}

fn main() {
    if !e2e::kernel_available("ruleset_kernel bench") {
        return;
    }
    let repeat = env_u32("BENCH_REPEAT", 1_000_000);
    let rounds = env_u32("BENCH_ROUNDS", 5).max(1);
    let base = pass_program();
    println!("ruleset in the kernel, repeat {repeat}, median of {rounds} rounds; ns per packet (cpu / kernel-reported)");
    println!("| rules | eBPF insns | programs | tables | fast-path rules | frame | decided by | cpu ns | kernel ns | base cpu ns | net cpu ns |");
    println!("|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|");
    let mut none_cpu = Vec::new();
    let mut none_net = Vec::new();
    for n in SIZES {
        let rules = typical_rules(n, &mut Rng(0x5eed_0000_0000_0000 + n as u64));
        let cfg = ruleset::parse(&config_text(&rules)).unwrap_or_else(|e| panic!("{n} rules: {e}"));
        let compiled =
            compile(&cfg.rules, Verdict::Pass).unwrap_or_else(|e| panic!("{n} rules: {e}"));
        let loaded = LoadedRuleset::load(&compiled).unwrap_or_else(|e| panic!("{n} rules: {e}"));
        let mut dry =
            DryRun::new(&compiled, &cfg.rules, Verdict::Pass).unwrap_or_else(|e| panic!("{e}"));
        let frames = [
            ("none", frame((NOWHERE_SRC, NOWHERE_DST, TCP, 9))),
            ("first", frame(rules[0].frame)),
            ("last", frame(rules[n - 1].frame)),
        ];
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
                "{n} rules, frame {kind}: kernel vs dry run"
            );
            match (*kind, want.rule) {
                ("none", None) => {}
                ("first", Some(0)) => {}
                ("last", Some(_)) => {}
                (k, r) => panic!("{n} rules: frame {k} decided by {r:?}"),
            }
            let fd = loaded.program_fd().unwrap_or_else(|e| panic!("{e}"));
            let t = race(&[fd, base.fd().as_fd()], &[f.as_slice()], repeat, rounds);
            let net = t[0].cpu_ns - t[1].cpu_ns;
            if *kind == "none" {
                none_cpu.push(t[0].cpu_ns);
                none_net.push(net);
            }
            println!(
                "| {n} | {} | {} | {} | {} | {kind} | {} | {:.2} | {:.2} | {:.2} | {net:.2} |",
                compiled.len(),
                compiled.programs.len(),
                compiled.tables.len(),
                compiled.fast_rules,
                want.rule
                    .map_or("default".to_string(), |r| format!("rule {r}")),
                t[0].cpu_ns,
                t[0].kernel_ns,
                t[1].cpu_ns,
            );
        }
    }
    if let (Some(first), Some(last)) = (none_cpu.first(), none_cpu.last()) {
        println!(
            "no-match frame: 10,000 rules / 10 rules = {:.2} (goal <= 2)",
            last / first
        );
    }
    if let (Some(first), Some(last)) = (none_net.first(), none_net.last()) {
        println!(
            "no-match frame, test-run overhead (base) subtracted: {:.2}",
            last / first
        );
    }
}
