//! What `filterd trace` costs a packet (issue 20): UDP datagrams over
//! loopback (64 bytes each, to a socket that reads them), timed with no
//! tracing, with every skb tracepoint tracing an expression the datagrams
//! match (`udp port 9`: an event at each point they pass; through ring
//! buffers and through perf buffers), and with one they do not (`tcp port
//! 443`: the filter only). While a round runs, this thread reads the
//! events as `filterd trace` does, so a match's cost includes its event
//! being written and read (events the buffers had no room for are
//! counted and printed). The rounds alternate; the figure is the median
//! of the rounds, in ns per datagram. The kernel's own count of each
//! program's runs and time (`BPF_ENABLE_STATS`) gives what one run of the
//! program costs.
//!
//! ```text
//! cargo bench -p filterd --bench trace_overhead      # as root
//! ```

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use filter_programs::tracer::Buffer;
use filterd::trace::{self, Tracer};

const DATAGRAMS: u32 = 50_000;
/// A point's name, the kernel's count of its program's runs, their time.
type RunStats = Vec<(String, u64, Duration)>;
const ROUNDS: usize = 5;

fn round(tx: &UdpSocket, rx: &UdpSocket) -> f64 {
    let payload = [0x5au8; 64];
    let mut buf = [0u8; 128];
    let t = Instant::now();
    for _ in 0..DATAGRAMS {
        tx.send(&payload).expect("send");
        rx.recv(&mut buf).expect("recv");
    }
    t.elapsed().as_nanos() as f64 / f64::from(DATAGRAMS)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("trace_overhead: skipped, needs root for bpf()");
        return;
    }
    let rx = UdpSocket::bind("127.0.0.1:9").expect("bind 127.0.0.1:9");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
    tx.connect("127.0.0.1:9").expect("connect");
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).expect("BPF_ENABLE_STATS");
    let points = trace::points(None).expect("points");
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("no tracing", vec![]),
        ("tracing udp port 9 (matches)", vec![]),
        ("same, perf buffers", vec![]),
        ("tracing tcp port 443 (does not)", vec![]),
    ];
    let modes = [
        (1, "udp port 9", Buffer::Ring),
        (2, "udp port 9", Buffer::Perf),
        (3, "tcp port 443", Buffer::Ring),
    ];
    let mut per_run: Vec<(String, RunStats)> = Vec::new();
    let (mut read, mut lost) = ([0u64; 4], [0u64; 4]);
    round(&tx, &rx);
    for _ in 0..ROUNDS {
        rows[0].1.push(round(&tx, &rx));
        for (k, expr, buffer) in modes {
            let filters = trace::filters(expr).expect("compiles");
            let mut t = Tracer::attach(&filters, &points, buffer).expect("attaches");
            let ns = std::thread::scope(|s| {
                let sending = s.spawn(|| round(&tx, &rx));
                while !sending.is_finished() {
                    read[k] += t.poll(Duration::from_millis(1)).len() as u64;
                }
                sending.join().expect("the round")
            });
            read[k] += t.poll(Duration::ZERO).len() as u64;
            lost[k] += t.lost();
            rows[k].1.push(ns);
            let stats = t.run_stats();
            if k != 2 && per_run.len() < 2 {
                per_run.push((
                    expr.to_string(),
                    stats
                        .into_iter()
                        .map(|(p, n, d)| (p.name.to_string(), n, d))
                        .collect(),
                ));
            }
        }
    }
    let base = median(rows[0].1.clone());
    println!("{DATAGRAMS} datagrams per round, {ROUNDS} rounds; ns per datagram (median; min-max)");
    for (name, v) in &rows {
        let (lo, hi) = (
            v.iter().cloned().fold(f64::MAX, f64::min),
            v.iter().cloned().fold(0.0, f64::max),
        );
        let m = median(v.clone());
        println!(
            "{name:<34} {m:8.0}  ({lo:.0}-{hi:.0})  {:+.0} ns, x{:.2}",
            m - base,
            m / base
        );
    }
    for (k, _, buffer) in modes {
        println!(
            "{:<34} events read {}, lost {}",
            format!("{} ({buffer:?})", rows[k].0),
            read[k],
            lost[k]
        );
    }
    for (expr, stats) in per_run {
        println!("one round tracing {expr:?}: per program run (kernel's count)");
        for (p, n, d) in stats {
            if n > 0 {
                println!(
                    "  {p:<24} {n:>8} runs  {:6.0} ns a run",
                    d.as_nanos() as f64 / n as f64
                );
            }
        }
    }
}
