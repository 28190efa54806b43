//! Kernel XDP: our translation of five typical expressions against the
//! same filters written by hand in C (`benches/xdp_c/*.c`, compiled here
//! with `clang -O2 -target bpf`), both run by the kernel through
//! `BPF_PROG_TEST_RUN` with a repeat count, on the same corpus packets.
//!
//! Run (root): `cargo bench -p filterd --bench kernel_xdp`.
//! `BENCH_REPEAT` (default 200,000) sets the repeat count per packet and
//! `BENCH_ROUNDS` (default 11) how many times each side runs; the medians
//! are reported. The sides take turns packet by packet.
//!
//! Not a Criterion benchmark: the kernel measures the runs itself. Two
//! figures per side:
//! - `kernel`: the `duration` the kernel reports (mean ns per run of its
//!   own loop, truncated to whole nanoseconds, so a few ns per run carry
//!   up to 1 ns of error), averaged over the packets;
//! - `cpu`: this thread's CPU time for the whole syscall divided by the
//!   runs, with sub-nanosecond resolution; it includes the per-call setup
//!   (amortized over the repeat count) and the test loop's own overhead.
//!   `base` is the same for a program that only returns `XDP_PASS`, and
//!   the `net` ratio subtracts it from both sides: what the filters
//!   themselves cost.
//!
//! Before timing, every packet's verdict must be the same on both sides
//! and equal to libpcap's: the corpus's Ethernet packets, and the crafted
//! frames of `e2e::frames` (truncations, fragments, IPv6 extension headers,
//! VLAN tags, ARP; the corpus has no packet of `host 10.0.0.1`).

mod common;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{env_u32, pass_program, race_interleaved};
use e2e::bench::ethernet_packets;
use filter_programs::codegen::{compile, Dlt, Options};
use filter_programs::ebpf::insn::Insn;
use filter_programs::translate::{translate, Target};

use bpf_kernel::load;
use filter_programs::Hook;
use libpcap_oracle::{self as libpcap, CompileOptions};

/// The five expressions and the C file that means the same.
const FILTERS: [(&str, &str); 5] = [
    ("tcp port 80", "tcp_port_80.c"),
    ("host 10.0.0.1", "host_10_0_0_1.c"),
    ("udp dst port 53", "udp_dst_port_53.c"),
    ("net 192.168.0.0/16", "net_192_168.c"),
    ("tcp[tcpflags] & tcp-syn != 0", "tcp_syn.c"),
];

/// Packets timed per filter: every n-th corpus packet, so that the repeat
/// count stays high and a run stays short.
const SAMPLE_EVERY: usize = 24;

/// Compiles one C file to an object and returns the `xdp` section's code.
fn clang_xdp(src: &Path, out_dir: &Path) -> Vec<Insn> {
    let obj = out_dir.join(src.with_extension("o").file_name().expect("file name"));
    let out = Command::new("clang")
        .args(["-O2", "-target", "bpf", "-c"])
        .arg(src)
        .arg("-o")
        .arg(&obj)
        .output()
        .unwrap_or_else(|e| panic!("cannot run clang ({e})"));
    assert!(
        out.status.success(),
        "clang {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&obj).unwrap_or_else(|e| panic!("{}: {e}", obj.display()));
    let progs = filter_programs::elf::read::programs(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", obj.display()));
    let xdp = progs
        .into_iter()
        .find(|p| p.name == "xdp")
        .unwrap_or_else(|| panic!("{}: no xdp section", src.display()));
    assert_eq!(
        xdp.relocations,
        0,
        "{}: the C programs use no maps",
        src.display()
    );
    xdp.insns
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter here.
    if !e2e::kernel_available("kernel_xdp bench") {
        return;
    }
    let repeat = env_u32("BENCH_REPEAT", 200_000);
    let rounds = env_u32("BENCH_ROUNDS", 11).max(1);
    let c_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/xdp_c");
    let out_dir = std::env::temp_dir().join(format!("kernel_xdp_bench_{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap_or_else(|e| panic!("{}: {e}", out_dir.display()));

    // The kernel's XDP test run refuses frames shorter than an Ethernet header.
    let frames: Vec<Vec<u8>> = ethernet_packets()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.len() >= 14)
        .collect();
    let all: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let sample: Vec<&[u8]> = all.iter().copied().step_by(SAMPLE_EVERY).collect();
    let crafted: Vec<Vec<u8>> = e2e::frames::all()
        .into_iter()
        .map(|f| f.bytes)
        .filter(|p| p.len() >= 14)
        .collect();
    let checked: Vec<&[u8]> = all
        .iter()
        .copied()
        .chain(crafted.iter().map(Vec::as_slice))
        .collect();

    let base = pass_program();

    println!(
        "kernel XDP, {} packets timed (every {SAMPLE_EVERY}th of {}), repeat {repeat}, median of {rounds} rounds",
        sample.len(),
        all.len()
    );
    println!("| expression | ours insns | C insns | ours kernel ns | C kernel ns | base kernel ns | ratio | ours cpu ns | C cpu ns | base cpu ns | ratio | net ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut net_ratios = Vec::new();
    let mut sizes = Vec::new();
    for (expr, c_file) in FILTERS {
        let cbpf =
            compile(expr, &Options::new(Dlt::En10mb)).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let ours_insns = translate(&cbpf, Target::xdp()).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let c_insns = clang_xdp(&c_dir.join(c_file), &out_dir);
        let ours =
            load(Hook::Xdp, &ours_insns, "bench_ours").unwrap_or_else(|e| panic!("{expr}: {e}"));
        let c = load(Hook::Xdp, &c_insns, "bench_c").unwrap_or_else(|e| panic!("{c_file}: {e}"));
        let reference = libpcap::compile(expr, CompileOptions::new(1))
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        let mut matched = 0;
        for (n, pkt) in checked.iter().enumerate() {
            let want = Target::xdp().verdict(libpcap::filter(&reference, pkt, pkt.len() as u32));
            let o = ours
                .test_run(pkt, 1)
                .unwrap_or_else(|e| panic!("{expr}: {e}"))
                .retval;
            let got = c
                .test_run(pkt, 1)
                .unwrap_or_else(|e| panic!("{c_file}: {e}"))
                .retval;
            assert_eq!(o, want, "{expr}: packet {n}: our translation vs libpcap");
            assert_eq!(
                got, want,
                "{expr}: packet {n}: C program {c_file} vs libpcap"
            );
            matched += (want == 2) as usize;
        }
        let socket = translate(&cbpf, Target::socket()).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let libpcap_len = reference.len();
        sizes.push(format!(
            "| `{expr}` | {libpcap_len} | {} | {} | {} | {} |",
            cbpf.len(),
            socket.len(),
            ours_insns.len(),
            c_insns.len()
        ));
        let t = race_interleaved(
            &[ours.fd().as_fd(), c.fd().as_fd(), base.fd().as_fd()],
            &sample,
            repeat,
            rounds,
        );
        let (o, cc, b) = (&t[0], &t[1], &t[2]);
        let net = (o.cpu_ns - b.cpu_ns) / (cc.cpu_ns - b.cpu_ns);
        net_ratios.push(net);
        println!(
            "| `{expr}` | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {net:.2} |",
            ours_insns.len(),
            c_insns.len(),
            o.kernel_ns,
            cc.kernel_ns,
            b.kernel_ns,
            o.kernel_ns / cc.kernel_ns,
            o.cpu_ns,
            cc.cpu_ns,
            b.cpu_ns,
            o.cpu_ns / cc.cpu_ns,
        );
        eprintln!(
            "{expr}: same verdict as libpcap on all {} corpus packets and {} crafted frames ({matched} pass)",
            all.len(),
            crafted.len()
        );
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    println!("\ninstructions: classic (libpcap -O, ours) and eBPF (our socket and XDP translations, clang -O2 C)");
    println!(
        "| expression | libpcap cBPF | our cBPF | our socket eBPF | our XDP eBPF | C XDP eBPF |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &sizes {
        println!("{row}");
    }
    let worst = net_ratios.iter().copied().fold(f64::MIN, f64::max);
    println!("worst net ratio {worst:.2} (goal <= 1.1)");
}
