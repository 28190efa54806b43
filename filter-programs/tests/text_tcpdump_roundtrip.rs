//! Oracle test: for every Ethernet expression in the shared corpus, real
//! `tcpdump -d`, `-dd` and `-ddd` (optimized and with `-O`) must come back
//! byte for byte from `print(parse(dump))`, and the three formats of one
//! compile must parse to the same program.

use filter_programs::cbpf::text::{self, Format};
use filter_programs::cbpf::Insn;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One compile: the expression, its snaplen, and whether to optimize.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Job {
    expr: String,
    snaplen: Option<String>,
    optimize: bool,
}

fn read_tsv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("TSV header").split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(l.split('\t').map(String::from))
                .collect()
        })
        .collect()
}

fn field<'a>(row: &'a HashMap<String, String>, name: &str) -> &'a str {
    row.get(name).map(String::as_str).unwrap_or("")
}

/// Every EN10MB accept row that runs on Linux and compiles with 1.10.3, and
/// every common.txt line, each optimized and not (only unoptimized where
/// the suite says the optimizer must fail).
fn jobs(corpus: &Path) -> (Vec<Job>, usize) {
    let exprs = corpus.join("expressions");
    // Keyed by (source, id, dlt), not by expression: compile_1.10.3.tsv
    // writes a backslash as `\\` where accept.tsv and common.txt have `\`.
    let compiled: BTreeSet<(String, String, String)> = read_tsv(&exprs.join("compile_1.10.3.tsv"))
        .iter()
        .filter(|r| field(r, "status") == "ok")
        .map(|r| {
            (
                field(r, "source").into(),
                field(r, "id").into(),
                field(r, "dlt").into(),
            )
        })
        .collect();
    let is_ok =
        |source: &str, id: &str| compiled.contains(&(source.into(), id.into(), "EN10MB".into()));
    let mut jobs = BTreeSet::new();
    let mut rows = 0;
    for r in read_tsv(&exprs.join("accept.tsv")) {
        if field(&r, "dlt") != "EN10MB"
            || !field(&r, "skip").is_empty()
            || !is_ok("accept", field(&r, "id"))
        {
            continue;
        }
        rows += 1;
        let expr = field(&r, "expression").to_string();
        let snaplen = Some(field(&r, "snaplen"))
            .filter(|s| !s.is_empty())
            .map(String::from);
        let opt_fails = field(&r, "flags").split(',').any(|f| f == "opt_fails");
        for optimize in [false, true] {
            if !(optimize && opt_fails) {
                jobs.insert(Job {
                    expr: expr.clone(),
                    snaplen: snaplen.clone(),
                    optimize,
                });
            }
        }
    }
    let common = std::fs::read_to_string(exprs.join("common.txt")).expect("common.txt");
    for (i, line) in common.lines().enumerate() {
        assert!(
            is_ok("common", &format!("common#{}", i + 1)),
            "common.txt line {}: no ok row",
            i + 1
        );
        rows += 1;
        for optimize in [false, true] {
            jobs.insert(Job {
                expr: line.to_string(),
                snaplen: None,
                optimize,
            });
        }
    }
    (jobs.into_iter().collect(), rows)
}

fn tcpdump(job: &Job, format: Format) -> Result<String, String> {
    let mut cmd = Command::new("tcpdump");
    cmd.arg(format.flag()).args(["-y", "EN10MB"]);
    if !job.optimize {
        cmd.arg("-O");
    }
    if let Some(s) = &job.snaplen {
        cmd.args(["-s", s]);
    }
    cmd.arg("--");
    if !job.expr.is_empty() {
        cmd.arg(&job.expr);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run tcpdump: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tcpdump failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("tcpdump printed non-UTF-8: {e}"))
}

/// Instructions whose -d text hides a non-zero field -dd shows.
static HIDDEN: AtomicUsize = AtomicUsize::new(0);

/// Checks one compile in all three formats; returns the number of dumps.
fn check(job: &Job) -> Result<usize, String> {
    let mut progs: Vec<(Format, Vec<Insn>)> = Vec::new();
    for format in Format::ALL {
        let dump = tcpdump(job, format)?;
        if dump.is_empty() {
            return Err(format!("tcpdump {} printed nothing", format.flag()));
        }
        let prog = text::parse(&dump).map_err(|e| format!("{}: {e}\n{dump}", format.flag()))?;
        let again = text::print(&prog, format);
        if again != dump {
            let diff = again
                .lines()
                .zip(dump.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("ours   {a:?}\ntcpdump {b:?}"))
                .unwrap_or_else(|| "line counts differ".into());
            return Err(format!("{}: print(parse(x)) != x\n{diff}", format.flag()));
        }
        progs.push((format, prog));
    }
    // -dd and -ddd carry every field; -d shows less (libpcap's optimizer
    // leaves stale k in `tax`/`txa`), so it must agree on what it shows.
    let [(_, asm), (_, c), (_, dec)] = &progs[..] else {
        return Err("expected three formats".into());
    };
    if dec != c {
        return Err(format!("-ddd parses to {dec:?}, -dd to {c:?}"));
    }
    let visible: Vec<Insn> = c.iter().map(text::asm_visible).collect();
    if *asm != visible {
        return Err(format!("-d parses to {asm:?}, -dd shows {visible:?}"));
    }
    let hidden = c.iter().zip(asm).filter(|(c, a)| c != a).count();
    HIDDEN.fetch_add(hidden, Ordering::Relaxed);
    Ok(progs.len())
}

#[test]
fn tcpdump_dumps_round_trip_byte_for_byte() {
    let version = Command::new("tcpdump").arg("--version").output();
    match version {
        Ok(out) if out.status.success() => {
            let v = String::from_utf8_lossy(&out.stdout);
            eprintln!("{}", v.lines().take(2).collect::<Vec<_>>().join(", "));
        }
        _ => panic!("tcpdump is needed for this test and was not found: apt-get install tcpdump"),
    }
    let (jobs, rows) = jobs(&e2e::corpus_dir());
    let next = AtomicUsize::new(0);
    let dumps = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 3);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                match check(job) {
                    Ok(n) => {
                        dumps.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{job:?}: {e}")),
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    let expressions: BTreeSet<_> = jobs.iter().map(|j| (&j.expr, &j.snaplen)).collect();
    let dumps = dumps.into_inner();
    eprintln!(
        "checked {} corpus rows = {} distinct expressions, {} compiles (optimized and -O) x 3 formats \
         = {dumps} tcpdump dumps; {} failed; {} instructions had fields -d does not show",
        rows,
        expressions.len(),
        jobs.len(),
        failures.len(),
        HIDDEN.load(Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        expressions.len() >= 400,
        "only {} expressions: corpus filter broken?",
        expressions.len()
    );
    assert_eq!(dumps, 3 * jobs.len());
}
