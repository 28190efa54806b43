//! What the compiler's side-by-side benchmarks share: a CPU-time
//! measurement for Criterion, the typical expressions, paired rounds.
//! Included with `mod common;` (each bench is its own crate, so not every
//! item is used by every bench). What the kernel benches need too is in
//! `e2e::bench`.
#![allow(dead_code)]

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use e2e::bench::median;
pub use e2e::bench::thread_cpu_now;

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

/// [`thread_cpu_now`] as Criterion's measurement, formatted like wall time.
pub struct ThreadCpuTime(pub WallTime);

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
pub fn paired_rounds(
    rounds: usize,
    mut ours: impl FnMut() -> f64,
    mut theirs: impl FnMut() -> f64,
) -> Paired {
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
    Paired {
        ours: median(&mut o),
        theirs: median(&mut t),
        ratio: median(&mut r),
    }
}

/// A bench's `main`: the Criterion groups, then `paired` (the side-by-side
/// rounds), except under `cargo test --benches` (one quick run of each
/// benchmark) or when only listing benchmarks.
pub fn criterion_then(groups: fn(), paired: fn()) {
    groups();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--test" || a == "--list") {
        paired();
    }
}
