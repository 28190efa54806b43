//! Any number of programs over many captures in one pass per capture
//! (issue 19): each capture file is opened once, and the report, the
//! counts and the `--verdicts` lines are those of the programs run one by
//! one, in the command line's order (program by program, capture by
//! capture).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The corpus's Ethernet captures from tcpdump's tests, and the first `n`
/// of its common expressions.
fn corpus(n: usize) -> (Vec<PathBuf>, Vec<String>) {
    let dir = e2e::corpus_dir();
    let mut caps: Vec<PathBuf> = std::fs::read_dir(dir.join("pcaps/tcpdump"))
        .expect("corpus pcaps")
        .map(|e| e.unwrap().path())
        .collect();
    caps.sort();
    let exprs = std::fs::read_to_string(dir.join("expressions/common.txt")).expect("common.txt");
    (caps, exprs.lines().take(n).map(str::to_string).collect())
}

fn replay(args: &[String]) -> (Value, String) {
    let out = Command::new(e2e::bin("pcap-replay"))
        .args(args)
        .output()
        .expect("pcap-replay");
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    (json, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A result without its timing, which differs run to run.
fn timeless(mut v: Value) -> Value {
    v.as_object_mut().map(|o| o.remove("seconds"));
    v
}

#[test]
fn many_programs_report_what_each_alone_reports() {
    let (caps, exprs) = corpus(12);
    let dir = std::env::temp_dir().join(format!("pcap-replay-onepass-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let caps_args: Vec<String> = caps.iter().map(|c| c.display().to_string()).collect();
    let engines = "cbpf,libpcap,ebpf-xdp,ebpf-socket".to_string();
    let all_verdicts = dir.join("all.ndjson");
    let mut args: Vec<String> = vec!["--json".into(), "--engines".into(), engines.clone()];
    for e in &exprs {
        args.extend(["-e".into(), e.clone()]);
    }
    args.extend(["--verdicts".into(), all_verdicts.display().to_string()]);
    args.extend(caps_args.iter().cloned());
    let (all, _) = replay(&args);
    let all_results = all["results"].as_array().expect("results").clone();
    assert_eq!(all_results.len(), exprs.len() * caps.len());

    let mut one_by_one = Vec::new();
    let mut verdicts = String::new();
    for (i, e) in exprs.iter().enumerate() {
        let v = dir.join(format!("{i}.ndjson"));
        let mut args = vec![
            "--json".into(),
            "--engines".into(),
            engines.clone(),
            "-e".into(),
            e.clone(),
        ];
        args.extend(["--verdicts".into(), v.display().to_string()]);
        args.extend(caps_args.iter().cloned());
        let (alone, _) = replay(&args);
        one_by_one.extend(
            alone["results"]
                .as_array()
                .expect("results")
                .iter()
                .cloned(),
        );
        verdicts.push_str(&std::fs::read_to_string(&v).unwrap());
    }
    for (k, (a, b)) in all_results.into_iter().zip(one_by_one).enumerate() {
        assert_eq!(timeless(a), timeless(b), "result {k}");
    }
    assert_eq!(std::fs::read_to_string(&all_verdicts).unwrap(), verdicts);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// strace counts every `open`/`openat` of each capture: one, for 100
/// programs.
#[test]
fn each_capture_is_opened_once_for_a_hundred_programs() {
    let (caps, exprs) = corpus(100);
    assert_eq!(exprs.len(), 100);
    let dir = std::env::temp_dir().join(format!("pcap-replay-opens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("exprs.txt");
    std::fs::write(&file, exprs.join("\n")).unwrap();
    let trace = dir.join("strace.txt");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(&trace)
        .arg(e2e::bin("pcap-replay"))
        .args(["--engines", "cbpf", "--count", "-F"])
        .arg(&file)
        .args(&caps)
        .output()
        .expect("strace (./x test installs it)");
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        100 * caps.len(),
        "a count per program and capture"
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut opens: BTreeMap<String, usize> = BTreeMap::new();
    for c in &caps {
        let name = c.display().to_string();
        let n = text
            .lines()
            .filter(|l| l.contains(&format!("\"{name}\"")))
            .count();
        opens.insert(name, n);
    }
    let wrong: Vec<_> = opens.iter().filter(|(_, n)| **n != 1).collect();
    assert!(wrong.is_empty(), "opened other than once: {wrong:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Standard input, read once, serves several programs too.
#[test]
fn standard_input_serves_several_programs() {
    let (caps, _) = corpus(0);
    let cap = caps
        .iter()
        .find(|c| c.ends_with("print-flags.pcap"))
        .unwrap_or(&caps[0]);
    let run = |input: Option<&PathBuf>| {
        let mut cmd = Command::new(e2e::bin("pcap-replay"));
        cmd.args([
            "--engines",
            "cbpf,libpcap",
            "--count",
            "-e",
            "tcp",
            "-e",
            "udp",
            "-e",
            "ip6",
        ]);
        match input {
            Some(p) => {
                cmd.arg(p);
            }
            None => {
                cmd.arg("-").stdin(std::fs::File::open(cap).unwrap());
            }
        }
        let out = cmd.output().expect("pcap-replay");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let from_file = run(Some(cap));
    assert_eq!(from_file.lines().count(), 3);
    assert_eq!(run(None), from_file);
}

/// The kernel engines make one `BPF_PROG_TEST_RUN` per packet they run,
/// per program: the floor (strace counts them against the report).
#[test]
fn kernel_engines_make_one_test_run_per_packet_and_program() {
    if !e2e::kernel_available("kernel_engines_make_one_test_run_per_packet_and_program") {
        return;
    }
    let (caps, _) = corpus(0);
    let dir = std::env::temp_dir().join(format!("pcap-replay-testruns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("strace.txt");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=bpf", "-o"])
        .arg(&trace)
        .arg(e2e::bin("pcap-replay"))
        .args(["--engines", "kernel-xdp,kernel-tc,kernel-socket", "--json"])
        .args(["-e", "tcp port 80", "-e", "udp or arp"])
        .args(&caps[..8])
        .output()
        .expect("strace (./x test installs it)");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut ran = 0u64;
    for r in report["results"].as_array().expect("results") {
        let packets = r["packets"].as_u64().unwrap();
        for (_, e) in r["engines"].as_object().unwrap() {
            ran += packets - e["skipped"].as_u64().unwrap_or(0);
        }
    }
    assert!(ran > 100, "{ran} runs");
    let text = std::fs::read_to_string(&trace).unwrap();
    let calls = text
        .lines()
        .filter(|l| l.contains("bpf(BPF_PROG_TEST_RUN"))
        .count() as u64;
    assert_eq!(calls, ran, "test runs against packets run");
    std::fs::remove_dir_all(&dir).unwrap();
}
