//! Our classic BPF interpreter (`Program::run`) against libpcap's
//! `bpf_filter` (what `pcap_offline_filter` runs), on the same programs
//! (compiled by libpcap) over every packet of the corpus's Ethernet pcaps.
//!
//! Run: `cargo bench -p filter-programs --bench interpreter`. Each benchmark
//! runs one program over all packets once per iteration; the throughput
//! is in packets, so time / packets is the cost of one verdict.
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not
//! wall time: on a machine shared with other jobs, time spent descheduled
//! would otherwise land on whichever side happened to be running.
//!
//! CPU time still varies with what the other jobs do to caches and shared
//! cores, and Criterion measures the two sides seconds apart. So after the
//! Criterion runs a second, paired measurement alternates the two sides in
//! short rounds and prints the median of the per-round ratios, which such
//! drift affects far less (`paired` below).

mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{paired_rounds, thread_cpu_now, ThreadCpuTime, EXPRESSIONS};
use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use filter_programs::cbpf::interp::Program;
use libpcap_oracle::{self as libpcap, CompileOptions};

fn pcaps(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() && p.file_name().is_some_and(|n| n != "invalid") {
            pcaps(&p, out);
        } else if p.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
            out.push(p);
        }
    }
}

/// Every packet (bytes, wire length) of the corpus's DLT_EN10MB captures.
fn ethernet_packets() -> Vec<(Vec<u8>, u32)> {
    let mut files = Vec::new();
    pcaps(&e2e::corpus_dir().join("pcaps"), &mut files);
    let mut packets = Vec::new();
    for path in files {
        let Ok(mut cap) = pcap::Capture::from_file(&path) else {
            continue;
        };
        if cap.get_datalink() != pcap::Linktype::ETHERNET {
            continue;
        }
        while let Ok(p) = cap.next_packet() {
            packets.push((p.data.to_vec(), p.header.len));
        }
    }
    packets
}

fn interpreter(c: &mut Criterion<ThreadCpuTime>) {
    let packets = ethernet_packets();
    assert!(
        packets.len() > 1000,
        "only {} Ethernet packets in the corpus",
        packets.len()
    );
    let mut group = c.benchmark_group("interpreter");
    group
        .throughput(Throughput::Elements(packets.len() as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for expr in EXPRESSIONS {
        let insns = libpcap::compile(expr, CompileOptions::new(1))
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        let validated =
            libpcap::Validated::new(&insns).expect("bpf_validate accepts libpcap's program");
        let prog = Program::new(&insns).unwrap_or_else(|e| panic!("{expr}: {e}"));
        // Same verdicts, or the comparison means nothing.
        for (pkt, len) in &packets {
            assert_eq!(prog.run(pkt, *len), validated.filter(pkt, *len), "{expr}");
        }
        group.bench_with_input(BenchmarkId::new("ours", expr), &packets, |b, packets| {
            b.iter(|| over(packets, |p, l| prog.run(p, l)))
        });
        group.bench_with_input(BenchmarkId::new("libpcap", expr), &packets, |b, packets| {
            b.iter(|| over(packets, |p, l| validated.filter(p, l)))
        });
    }
    group.finish();
}

/// One pass of `f` over all packets; the sum of its results.
fn over(packets: &[(Vec<u8>, u32)], f: impl Fn(&[u8], u32) -> u32) -> u32 {
    let mut n = 0u32;
    for (pkt, len) in packets {
        n = n.wrapping_add(f(black_box(pkt), *len));
    }
    n
}

/// CPU time of `passes` runs of `f` over all packets, in ns per packet.
fn pass_ns(packets: &[(Vec<u8>, u32)], passes: u32, f: impl Fn(&[u8], u32) -> u32) -> f64 {
    let start = thread_cpu_now();
    let mut n = 0u32;
    for _ in 0..passes {
        n = n.wrapping_add(over(packets, &f));
    }
    black_box(n);
    let spent = thread_cpu_now().saturating_sub(start);
    spent.as_nanos() as f64 / (f64::from(passes) * packets.len() as f64)
}

/// Rounds of the paired measurement, and passes over the packets per side
/// in one round (a round takes about a millisecond).
const ROUNDS: usize = 400;
const PASSES: u32 = 20;

/// The paired measurement: per round, both sides back to back (alternating
/// which goes first), so that both see the same machine. Prints medians of
/// the per-side times and of the per-round ratios.
fn paired() {
    let packets = ethernet_packets();
    println!(
        "\npaired ({ROUNDS} rounds of {PASSES} passes over {} packets, thread CPU time):",
        packets.len()
    );
    println!("| expression | ours (ns/packet) | libpcap (ns/packet) | ratio |");
    println!("|---|---:|---:|---:|");
    for expr in EXPRESSIONS {
        let insns = libpcap::compile(expr, CompileOptions::new(1))
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        let validated =
            libpcap::Validated::new(&insns).expect("bpf_validate accepts libpcap's program");
        let prog = Program::new(&insns).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let ours = |p: &[u8], l: u32| prog.run(p, l);
        let theirs = |p: &[u8], l: u32| validated.filter(p, l);
        let p = paired_rounds(
            ROUNDS,
            || pass_ns(&packets, PASSES, ours),
            || pass_ns(&packets, PASSES, theirs),
        );
        println!(
            "| `{expr}` | {:.1} | {:.1} | {:.2} |",
            p.ours, p.theirs, p.ratio
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime(WallTime));
    targets = interpreter
}

fn main() {
    common::criterion_then(benches, paired);
}
