//! What the side-by-side benchmarks share: a CPU-time measurement for
//! Criterion, the corpus's Ethernet packets, and the typical expressions.
//! Included with `mod common;` (each bench is its own crate, so not every
//! item is used by every bench).
#![allow(dead_code)]

use std::os::fd::BorrowedFd;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// Typical expressions: ports, hosts, nets, protocols, VLAN, TCP flags
/// (the interpreter benchmark's set, so the tables line up).
pub const EXPRESSIONS: [&str; 10] = [
    "tcp port 80",
    "host 10.0.0.1",
    "ip6 and udp",
    "vlan and tcp",
    "tcp[tcpflags] & tcp-syn != 0",
    "net 192.168.0.0/16",
    "portrange 1000-2000",
    "udp dst port 53",
    "icmp or arp",
    "ether multicast",
];

/// CPU time of the calling thread, formatted like wall time. On a machine
/// shared with other jobs, time spent descheduled would otherwise land on
/// whichever side happened to be running.
pub struct ThreadCpuTime(pub WallTime);

pub fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

/// Every packet (captured bytes, wire length) of the corpus's Ethernet
/// captures, in file order.
pub fn ethernet_packets() -> Vec<(Vec<u8>, u32)> {
    e2e::corpus::captures()
        .into_iter()
        .filter(|c| c.dlt == 1)
        .flat_map(|c| c.packets.into_iter().map(|p| (p.data, p.wirelen)))
        .collect()
}

/// Median of a non-empty sample (sorted in place).
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Mean nanoseconds per run of one program over some packets.
pub struct Timing {
    /// What `BPF_PROG_TEST_RUN` reports (whole ns per run, truncated).
    pub kernel_ns: f64,
    /// This thread's CPU time for the syscalls over the runs.
    pub cpu_ns: f64,
}

/// One pass over the packets: mean kernel-reported ns per run and mean
/// CPU ns per run.
pub fn time_pass(prog: BorrowedFd<'_>, packets: &[&[u8]], repeat: u32) -> Timing {
    let (mut kernel, mut cpu) = (0f64, 0f64);
    for pkt in packets {
        let t = thread_cpu_now();
        let r = bpf_kernel::test_run(prog, pkt, repeat).unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}"));
        cpu += (thread_cpu_now() - t).as_nanos() as f64 / repeat as f64;
        kernel += r.duration_ns as f64;
    }
    Timing { kernel_ns: kernel / packets.len() as f64, cpu_ns: cpu / packets.len() as f64 }
}

/// Medians over `rounds` passes, the sides interleaved so that a change in
/// the machine's load hits all of them alike.
pub fn race(progs: &[BorrowedFd<'_>], packets: &[&[u8]], repeat: u32, rounds: u32) -> Vec<Timing> {
    let mut kernel = vec![Vec::new(); progs.len()];
    let mut cpu = vec![Vec::new(); progs.len()];
    for _ in 0..rounds {
        for (i, p) in progs.iter().enumerate() {
            let t = time_pass(*p, packets, repeat);
            kernel[i].push(t.kernel_ns);
            cpu[i].push(t.cpu_ns);
        }
    }
    kernel
        .iter_mut()
        .zip(cpu.iter_mut())
        .map(|(k, c)| Timing { kernel_ns: median(k), cpu_ns: median(c) })
        .collect()
}

/// An XDP program that only returns `XDP_PASS`: what a test run costs
/// before any filtering.
pub fn pass_program() -> bpf_kernel::Loaded {
    use filter_programs::ebpf::asm::Asm;
    use filter_programs::ebpf::insn::{Operand, Reg};
    let mut a = Asm::new();
    a.mov64(Reg::R0, Operand::Imm(2));
    a.exit();
    let insns = a.assemble().expect("two instructions assemble");
    bpf_kernel::load(filter_programs::Hook::Xdp, &insns, "bench_pass").unwrap_or_else(|e| panic!("{e}"))
}

/// A numeric setting from the environment.
pub fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// [`race`] interleaved per packet: each packet runs on every program in
/// turn before the next packet, so the programs' calls are milliseconds
/// apart and a change in the machine's load lands on all of them alike.
/// Medians over `rounds` of the mean ns per run over the packets.
pub fn race_interleaved(progs: &[BorrowedFd<'_>], packets: &[&[u8]], repeat: u32, rounds: u32) -> Vec<Timing> {
    let mut kernel = vec![Vec::new(); progs.len()];
    let mut cpu = vec![Vec::new(); progs.len()];
    for _ in 0..rounds {
        let mut sums = vec![(0f64, 0f64); progs.len()];
        for pkt in packets {
            for (i, p) in progs.iter().enumerate() {
                let t = time_pass(*p, &[pkt], repeat);
                sums[i].0 += t.kernel_ns;
                sums[i].1 += t.cpu_ns;
            }
        }
        for (i, (k, c)) in sums.into_iter().enumerate() {
            kernel[i].push(k / packets.len() as f64);
            cpu[i].push(c / packets.len() as f64);
        }
    }
    kernel
        .iter_mut()
        .zip(cpu.iter_mut())
        .map(|(k, c)| Timing { kernel_ns: median(k), cpu_ns: median(c) })
        .collect()
}

/// Medians of a paired measurement: each side's time per round and the
/// per-round ratio ours / theirs.
pub struct Paired {
    pub ours: f64,
    pub theirs: f64,
    pub ratio: f64,
}

/// Runs both sides back to back in each of `rounds` rounds, alternating
/// which goes first, so that both see the same machine; each closure
/// returns the time it measured. One untimed warm-up run of each first.
pub fn paired_rounds(rounds: usize, mut ours: impl FnMut() -> f64, mut theirs: impl FnMut() -> f64) -> Paired {
    ours();
    theirs();
    let (mut o, mut t, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = ours();
            (a, theirs())
        } else {
            let b = theirs();
            (ours(), b)
        };
        o.push(a);
        t.push(b);
        r.push(a / b);
    }
    Paired { ours: median(&mut o), theirs: median(&mut t), ratio: median(&mut r) }
}

/// A bench's `main`: the Criterion groups, then `paired` (the side-by-side
/// rounds), except under `cargo test --benches` (one quick run of each
/// benchmark) or when only listing benchmarks.
pub fn criterion_then(groups: fn(), paired: fn()) {
    groups();
    criterion::Criterion::default().configure_from_args().final_summary();
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--test" || a == "--list") {
        paired();
    }
}
