//! Compile latency, expression text to optimized classic BPF: our
//! `codegen::compile` (parse, generate, optimize) against libpcap 1.10.3's
//! `pcap_compile` (through `libpcap_oracle::compile`, which opens a
//! dead handle per call as any caller without a live capture must).
//!
//! Run: `cargo bench -p filter-programs --bench compile_latency`.
//!
//! - `corpus`: one iteration compiles every corpus expression (accept.tsv
//!   and common.txt, every link type both compilers support, each with its
//!   own snaplen and netmask) once; throughput is in expressions.
//! - one benchmark per typical expression.
//!
//! Expressions that name hosts are left out: both sides would then time
//! the resolver (getaddrinfo, /etc/hosts), not the compiler.
//!
//! After Criterion, a paired measurement alternates the two sides over
//! the corpus in short rounds and prints the median of the per-round
//! ratios: Criterion measures the sides seconds apart, and on a shared
//! machine the load changes in between (see `interpreter.rs`).

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{paired_rounds, thread_cpu_now, ThreadCpuTime, EXPRESSIONS};
use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use filter_programs::codegen::{compile, Dlt, Options, DEFAULT_SNAPLEN};
use libpcap_oracle::{self as libpcap, CompileOptions};

struct Job {
    expr: String,
    ours: Options,
    theirs: CompileOptions,
}

fn job(
    expr: &str,
    dlt_name: &str,
    snaplen: Option<i32>,
    netmask: Option<u32>,
    optimize: bool,
) -> Option<Job> {
    let lt = Dlt::from_name(dlt_name)?;
    let dlt = libpcap::dlt_from_name(dlt_name)?;
    let snaplen = snaplen.map_or(DEFAULT_SNAPLEN, |s| s as u32);
    let ours = Options {
        snaplen,
        netmask,
        optimize,
        // What libpcap 1.10's dead handle generates (Linux ancillary loads).
        linux_ext: true,
        ..Options::new(lt)
    };
    let theirs = CompileOptions {
        dlt,
        snaplen: snaplen as i32,
        optimize,
        netmask: netmask.unwrap_or(libpcap::NETMASK_UNKNOWN),
    };
    Some(Job {
        expr: expr.to_string(),
        ours,
        theirs,
    })
}

/// Whether the expression may need a name lookup: a word that is a host
/// name rather than a keyword, number or address. Conservative: a false
/// positive only drops an expression from the set.
fn names_a_host(expr: &str) -> bool {
    let words: Vec<&str> = expr
        .split(|c: char| c.is_whitespace() || "()!".contains(c))
        .collect();
    words.windows(2).any(|w| {
        matches!(w[0], "host" | "src" | "dst" | "gateway" | "net")
            && w[1].chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && !w[1].contains(':')
            && !matches!(
                w[1],
                "host" | "net" | "port" | "portrange" | "or" | "and" | "not"
            )
    })
}

/// Every corpus expression that both compilers compile, with its options.
fn corpus_jobs() -> Vec<Job> {
    let mut jobs = Vec::new();
    for e in e2e::corpus::expressions() {
        if e.expr.trim().is_empty() || names_a_host(&e.expr) {
            continue;
        }
        let Some(j) = job(&e.expr, &e.dlt, e.snaplen, e.netmask, e.optimize) else {
            continue;
        };
        if compile(&j.expr, &j.ours).is_ok() && libpcap::compile(&j.expr, j.theirs).is_ok() {
            jobs.push(j);
        }
    }
    jobs
}

fn compile_latency(c: &mut Criterion<ThreadCpuTime>) {
    let jobs = corpus_jobs();
    assert!(
        jobs.len() > 500,
        "only {} corpus expressions compile on both sides",
        jobs.len()
    );
    eprintln!("corpus: {} expressions", jobs.len());
    let mut group = c.benchmark_group("compile_latency");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(jobs.len() as u64));
    let id = format!("corpus ({})", jobs.len());
    group.bench_function(BenchmarkId::new("ours", &id), |b| {
        b.iter(|| {
            let mut n = 0usize;
            for j in &jobs {
                n += compile(black_box(&j.expr), &j.ours).map_or(0, |p| p.len());
            }
            n
        })
    });
    group.bench_function(BenchmarkId::new("libpcap", &id), |b| {
        b.iter(|| {
            let mut n = 0usize;
            for j in &jobs {
                n += libpcap::compile(black_box(&j.expr), j.theirs).map_or(0, |p| p.len());
            }
            n
        })
    });
    group.throughput(Throughput::Elements(1));
    for expr in EXPRESSIONS {
        let j = job(expr, "EN10MB", None, None, true).expect("EN10MB is supported");
        assert!(
            compile(expr, &j.ours).is_ok() && libpcap::compile(expr, j.theirs).is_ok(),
            "{expr}"
        );
        group.bench_function(BenchmarkId::new("ours", expr), |b| {
            b.iter(|| compile(black_box(expr), &j.ours))
        });
        group.bench_function(BenchmarkId::new("libpcap", expr), |b| {
            b.iter(|| libpcap::compile(black_box(expr), j.theirs))
        });
    }
    group.finish();
}

/// Thread CPU time of one corpus pass of `f`, in ms.
fn pass_ms(jobs: &[Job], f: impl Fn(&Job) -> usize) -> f64 {
    let start = thread_cpu_now();
    let n: usize = jobs.iter().map(|j| f(black_box(j))).sum();
    black_box(n);
    thread_cpu_now().saturating_sub(start).as_secs_f64() * 1e3
}

/// Rounds of the paired measurement (one corpus pass per side each).
const ROUNDS: usize = 60;

fn paired() {
    let jobs = corpus_jobs();
    let ours = |j: &Job| compile(&j.expr, &j.ours).map_or(0, |p| p.len());
    let theirs = |j: &Job| libpcap::compile(&j.expr, j.theirs).map_or(0, |p| p.len());
    let p = paired_rounds(ROUNDS, || pass_ms(&jobs, ours), || pass_ms(&jobs, theirs));
    println!("\npaired ({ROUNDS} rounds, one pass over {} corpus expressions per side, thread CPU time):", jobs.len());
    println!("| case | ours (ms) | libpcap (ms) | ratio (median of rounds) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| corpus, {} expressions | {:.1} | {:.1} | {:.2} |",
        jobs.len(),
        p.ours,
        p.theirs,
        p.ratio
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime(WallTime));
    targets = compile_latency
}

fn main() {
    common::criterion_then(benches, paired);
}
