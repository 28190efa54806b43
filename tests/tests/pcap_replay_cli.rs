//! End to end through the `pcap-replay` binary: tcpdump-compiled programs
//! over the corpus captures, the JSON and NDJSON schemas, exit codes, the
//! table, and corrupt captures.
//!
//! The binary must be built first, in the same target directory:
//! `cargo build -p pcap-replay --bins` (or `./x test`, which builds every
//! binary). `e2e::bin` says so when it is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

fn data_dir() -> PathBuf {
    e2e::repo_root().join("tests/data")
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pcap-replay-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn replay(args: &[&str]) -> Output {
    let out = Command::new(e2e::bin("pcap-replay"))
        .args(args)
        .output()
        .expect("run pcap-replay");
    eprintln!(
        "pcap-replay {}\n--- stderr:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout_json_str(s: &str) -> Value {
    serde_json::from_str(s).expect("one JSON object")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `tcpdump -d`/`-dd`/`-ddd` output for `expr`, compiled for the link type
/// of `capture`, written to `dir`.
fn tcpdump_program(dir: &Path, name: &str, flag: &str, expr: &str, capture: &Path) -> PathBuf {
    let out = Command::new("tcpdump")
        .arg(flag)
        .arg("-r")
        .arg(capture)
        .arg(expr)
        .stderr(Stdio::null())
        .output()
        .expect("tcpdump is installed");
    assert!(out.status.success(), "tcpdump {flag} {expr:?} failed");
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// Per (pcap, expression): (matched, total, bits) from libpcap 1.10.3.
fn libpcap_verdicts() -> BTreeMap<(String, String), (u64, u64, String)> {
    let tsv = e2e::corpus_dir().join("expressions/verdicts/common_1.10.3.tsv");
    let text = std::fs::read_to_string(tsv).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            // The TSV doubles backslashes (`ip proto \\ospf`) that common.txt
            // has single; the expression is the common.txt form.
            let key = (c[0].to_string(), c[1].replace("\\\\", "\\"));
            (
                key,
                (
                    c[2].parse().unwrap(),
                    c[3].parse().unwrap(),
                    c[4].to_string(),
                ),
            )
        })
        .collect()
}

fn check_result_keys(r: &Value) {
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    let mut want = vec![
        "file",
        "expression",
        "program",
        "linktype",
        "packets",
        "engines",
        "mismatches",
        "error",
        "seconds",
    ];
    want.sort();
    assert_eq!(keys, want, "{r}");
}

#[test]
fn common_expressions_match_libpcap_counts_in_every_format() {
    let corpus = e2e::corpus_dir();
    let verdicts = libpcap_verdicts();
    let mut pcaps: Vec<String> = verdicts.keys().map(|(p, _)| p.clone()).collect();
    pcaps.dedup();
    let exprs: Vec<String> = std::fs::read_to_string(corpus.join("expressions/common.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(pcaps.len() >= 40 && exprs.len() >= 150);
    let dir = scratch("common");
    let paths: Vec<String> = pcaps
        .iter()
        .map(|p| corpus.join("pcaps").join(p).display().to_string())
        .collect();
    let flags = ["-d", "-dd", "-ddd"];
    for (n, expr) in exprs.iter().enumerate() {
        let flag = flags[n % 3];
        let prog = tcpdump_program(&dir, &format!("{n}.txt"), flag, expr, Path::new(&paths[0]));
        let ndjson = dir.join(format!("{n}.ndjson"));
        let mut args = vec![
            "--engines",
            "cbpf,libpcap",
            "--cbpf",
            prog.to_str().unwrap(),
            "--json",
            "--verdicts",
            ndjson.to_str().unwrap(),
        ];
        args.extend(paths.iter().map(String::as_str));
        let out = replay(&args);
        assert_eq!(code(&out), 0, "{expr:?} ({flag})");
        let report = stdout_json(&out);
        assert_eq!(report["agree"], true);
        let results = report["results"].as_array().unwrap();
        assert_eq!(results.len(), pcaps.len());
        let lines = std::fs::read_to_string(&ndjson).unwrap();
        let mut lines = lines.lines();
        for (r, pcap) in results.iter().zip(&pcaps) {
            check_result_keys(r);
            let (matched, total, bits) = &verdicts[&(pcap.clone(), expr.clone())];
            let ctx = format!("{pcap} {expr:?} ({flag})");
            assert_eq!(r["packets"], *total, "{ctx}");
            assert_eq!(r["engines"]["cbpf"]["matched"], *matched, "{ctx}");
            assert_eq!(r["engines"]["libpcap"]["matched"], *matched, "{ctx}");
            assert_eq!(r["mismatches"], 0, "{ctx}");
            assert_eq!(r["linktype"], 1, "{ctx}");
            assert_eq!(r["error"], Value::Null, "{ctx}");
            for (i, bit) in bits.chars().enumerate() {
                let line: Value =
                    serde_json::from_str(lines.next().expect("a verdict line")).unwrap();
                assert_eq!(line["file"], r["file"]);
                assert_eq!(line["index"], i);
                assert_eq!(line["match"]["cbpf"], bit == '1', "{ctx} packet {i}");
                assert_eq!(line["match"]["libpcap"], bit == '1', "{ctx} packet {i}");
            }
        }
        assert!(
            lines.next().is_none(),
            "more verdict lines than packets for {expr:?}"
        );
    }
}

#[test]
fn json_and_verdicts_have_the_documented_shape() {
    let dir = scratch("shape");
    let pcap = data_dir().join("print-flags.pcap");
    let prog = data_dir().join("tcp-port-80.ddd");
    let ndjson = dir.join("v.ndjson");
    let (pcap_s, prog_s) = (pcap.to_str().unwrap(), prog.to_str().unwrap());
    let out = replay(&[
        "--engines",
        "cbpf,libpcap",
        "--cbpf",
        prog_s,
        "--json",
        "--verdicts",
        ndjson.to_str().unwrap(),
        pcap_s,
    ]);
    assert_eq!(code(&out), 0);
    // Byte for byte up to `error`: the field order is part of the
    // interface; fields added later (the run's time) come after it.
    let (file, program) = (Value::from(pcap_s), Value::from(prog_s));
    let expected = format!(
        r#"{{"results":[{{"file":{file},"expression":null,"program":{program},"linktype":1,"packets":10,"engines":{{"cbpf":{{"matched":10}},"libpcap":{{"matched":10}}}},"mismatches":0,"error":null,"seconds":"#
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with(&expected), "{stdout}");
    assert!(stdout.ends_with("}],\"agree\":true}\n"), "{stdout}");
    assert!(
        stdout_json_str(&stdout)["results"][0]["seconds"]
            .as_f64()
            .unwrap()
            >= 0.0
    );
    let lines = std::fs::read_to_string(&ndjson).unwrap();
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 10);
    let first = format!(
        r#"{{"file":{file},"expression":null,"program":{program},"index":0,"match":{{"cbpf":true,"libpcap":true}},"ret":{{"cbpf":65535,"libpcap":65535}}}}"#
    );
    assert_eq!(lines[0], first);
    assert!(lines[9].contains(r#""index":9,"#));

    // One engine only: one key in engines, match and ret.
    let out = replay(&[
        "--cbpf",
        prog_s,
        "--engines",
        "libpcap",
        "--json",
        "--verdicts",
        ndjson.to_str().unwrap(),
        pcap_s,
    ]);
    assert_eq!(code(&out), 0);
    let report = stdout_json(&out);
    assert_eq!(
        report["results"][0]["engines"],
        json!({"libpcap":{"matched":10}})
    );
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(&ndjson)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["ret"], json!({"libpcap":65535}));
}

#[test]
fn table_lists_every_capture() {
    let prog = data_dir().join("tcp-port-80.ddd");
    let mut args = vec![
        "--engines".to_string(),
        "cbpf,libpcap".to_string(),
        "--cbpf".to_string(),
        prog.display().to_string(),
    ];
    for f in [
        "print-flags.pcap",
        "ldp-common-session.pcap",
        "icmpv6.pcap",
        "OSPFv2_Capture_FINAL.pcapng",
    ] {
        args.push(data_dir().join(f).display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = replay(&args);
    assert_eq!(code(&out), 0);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("program {}", prog.display()));
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "file",
            "linktype",
            "packets",
            "cbpf",
            "libpcap",
            "mismatches",
            "time",
            "status"
        ]
    );
    let row = |name: &str| -> Vec<String> {
        let line = lines
            .iter()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
        // Every column but the file name and the time.
        let cells: Vec<&str> = line.split_whitespace().skip(1).collect();
        cells
            .iter()
            .filter(|c| !c.ends_with('s') || c.parse::<u64>().is_ok())
            .map(|c| c.to_string())
            .collect()
    };
    assert_eq!(
        row("print-flags.pcap"),
        ["EN10MB", "10", "10", "10", "0", "ok"]
    );
    assert_eq!(
        row("ldp-common-session.pcap"),
        ["EN10MB", "22", "0", "0", "0", "ok"]
    );
    assert_eq!(row("icmpv6.pcap"), ["EN10MB", "5", "0", "0", "0", "ok"]);
    assert_eq!(
        row("OSPFv2_Capture_FINAL.pcapng"),
        ["EN10MB", "30", "0", "0", "0", "ok"]
    );
    assert_eq!(row("total"), ["67", "10", "10", "0"]);
    assert_eq!(lines.last().unwrap(), &"all engines agree on every packet");
}

#[test]
fn vlan_and_ipv6_programs_in_all_formats_on_sample_data() {
    let dir = scratch("samples");
    let cases = [
        ("vlan", "ldp-common-session.pcap", 5),
        ("ip6", "icmpv6.pcap", 5),
        ("ip proto \\ospf", "OSPFv2_Capture_FINAL.pcapng", 30),
    ];
    for (expr, file, matched) in cases {
        let capture = data_dir().join(file);
        for flag in ["-d", "-dd", "-ddd"] {
            let prog = tcpdump_program(&dir, "p", flag, expr, &capture);
            let out = replay(&[
                "--engines",
                "cbpf,libpcap",
                "--cbpf",
                prog.to_str().unwrap(),
                "--json",
                capture.to_str().unwrap(),
            ]);
            assert_eq!(code(&out), 0, "{expr} {flag}");
            let r = &stdout_json(&out)["results"][0];
            assert_eq!(r["engines"]["cbpf"]["matched"], matched, "{expr} {flag}");
            assert_eq!(r["engines"]["libpcap"]["matched"], matched, "{expr} {flag}");
        }
    }
}

/// A broken capture derived from a real one, and what reading it must say.
struct Broken {
    path: PathBuf,
    /// Where the error is, when the test can compute it.
    offset: Option<u64>,
    /// Packets read before the fault.
    packets: u64,
    message: &'static str,
}

fn broken_captures(dir: &Path) -> Vec<Broken> {
    let good = std::fs::read(data_dir().join("print-flags.pcap")).unwrap();
    let ng = std::fs::read(data_dir().join("OSPFv2_Capture_FINAL.pcapng")).unwrap();
    // The file header is 24 bytes; the first record's header is at 24 and
    // its caplen at 32, so the second record starts after its data.
    let first_caplen = u32::from_le_bytes(good[32..36].try_into().unwrap()) as usize;
    let second = 24 + 16 + first_caplen;
    let mut bad_magic = good.clone();
    bad_magic[..4].copy_from_slice(b"GIF8");
    // (file name, bytes, error offset, packets before it, message)
    type Case = (&'static str, Vec<u8>, Option<usize>, u64, &'static str);
    let cases: Vec<Case> = vec![
        ("empty.pcap", vec![], Some(0), 0, "empty file"),
        (
            "bad-magic.pcap",
            bad_magic,
            Some(0),
            0,
            "unknown file magic",
        ),
        (
            "short-file-header.pcap",
            good[..20].to_vec(),
            Some(0),
            0,
            "truncated file header",
        ),
        (
            "short-record-header.pcap",
            good[..second + 10].to_vec(),
            Some(second),
            1,
            "truncated record header",
        ),
        (
            "short-data.pcap",
            good[..second + 21].to_vec(),
            Some(second + 16),
            1,
            "truncated packet data",
        ),
        // Cuts the last packet block.
        (
            "short-block.pcapng",
            ng[..ng.len() - 10].to_vec(),
            None,
            29,
            "truncated pcapng block",
        ),
    ];
    cases
        .into_iter()
        .map(|(name, bytes, offset, packets, message)| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            Broken {
                path,
                offset: offset.map(|o| o as u64),
                packets,
                message,
            }
        })
        .collect()
}

#[test]
fn corrupt_captures_exit_2_with_file_and_offset_after_replaying_what_was_read() {
    let dir = scratch("corrupt");
    let prog = data_dir().join("tcp-port-80.ddd");
    let good = data_dir().join("print-flags.pcap");
    for broken in broken_captures(&dir) {
        let path_s = broken.path.to_str().unwrap();
        // A good capture after the bad one is still replayed.
        let out = replay(&[
            "--cbpf",
            prog.to_str().unwrap(),
            "--json",
            path_s,
            good.to_str().unwrap(),
        ]);
        assert_eq!(code(&out), 2, "{path_s}");
        let report = stdout_json(&out);
        let bad = &report["results"][0];
        check_result_keys(bad);
        assert_eq!(bad["packets"], broken.packets, "{path_s}");
        let err = bad["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{path_s}: no error"));
        let prefix = match broken.offset {
            Some(offset) => format!("{path_s}: byte {offset}: "),
            None => format!("{path_s}: byte "),
        };
        assert!(err.starts_with(&prefix), "{err}");
        assert!(err.contains(broken.message), "{err}");
        assert_eq!(report["results"][1]["packets"], 10);
        assert_eq!(report["results"][1]["error"], Value::Null);
        assert_eq!(report["agree"], true);
        // The error is on stderr too, and under the table without --json.
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(err),
            "{path_s}"
        );
        let out = replay(&["--cbpf", prog.to_str().unwrap(), path_s]);
        assert_eq!(code(&out), 2);
        let table = String::from_utf8(out.stdout).unwrap();
        assert!(table.contains(&format!("  error: {err}")), "{table}");
    }
}

#[test]
fn missing_capture_exits_2_and_names_it() {
    let prog = data_dir().join("tcp-port-80.ddd");
    let out = replay(&[
        "--cbpf",
        prog.to_str().unwrap(),
        "--json",
        "/nonexistent/x.pcap",
    ]);
    assert_eq!(code(&out), 2);
    let err = stdout_json(&out)["results"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.starts_with("/nonexistent/x.pcap: cannot open"), "{err}");
}

#[test]
fn bad_programs_exit_2_before_any_capture() {
    let dir = scratch("badprog");
    let pcap = data_dir().join("print-flags.pcap");
    let cases = [
        ("garbage.txt", "this is not bpf\n", "not a tcpdump"),
        ("jump.ddd", "2\n21 0 5 2048\n6 0 0 0\n", "past the end"),
        // Parses, but does not end in a return: the validators refuse it.
        ("noret.ddd", "1\n40 0 0 12\n", "rejects"),
        ("empty.ddd", "", ""),
    ];
    for (name, text, msg) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = replay(&[
            "--cbpf",
            path.to_str().unwrap(),
            "--json",
            pcap.to_str().unwrap(),
        ]);
        assert_eq!(code(&out), 2, "{name}");
        assert!(out.stdout.is_empty(), "{name}: no report for a bad program");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(path.to_str().unwrap()), "{name}: {stderr}");
        assert!(stderr.contains(msg), "{name}: {stderr}");
    }
    let out = replay(&["--cbpf", "/nonexistent/p.ddd", pcap.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    // Usage errors are exit 2 as well (clap's convention).
    assert_eq!(code(&replay(&[pcap.to_str().unwrap()])), 2);
    assert_eq!(
        code(&replay(&[
            "--cbpf",
            "x",
            "--engines",
            "nosuch",
            pcap.to_str().unwrap()
        ])),
        2
    );
}

#[test]
fn stdin_linktype_override_and_quiet() {
    let prog = data_dir().join("tcp-port-80.ddd");
    let pcap = std::fs::read(data_dir().join("print-flags.pcap")).unwrap();
    let mut child = Command::new(e2e::bin("pcap-replay"))
        .args(["--cbpf", prog.to_str().unwrap(), "--json", "-y", "RAW", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &pcap).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0);
    let r = &stdout_json(&out)["results"][0];
    assert_eq!(r["file"], "-");
    assert_eq!(r["linktype"], 101);
    assert_eq!(r["packets"], 10);

    let out = replay(&[
        "--cbpf",
        prog.to_str().unwrap(),
        "--quiet",
        data_dir().join("icmpv6.pcap").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0);
    assert!(out.stdout.is_empty());
}

#[test]
fn help_has_an_example() {
    let out = replay(&["--help"]);
    assert_eq!(code(&out), 0);
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "--cbpf <FILE>",
        "--engines",
        "--json",
        "--verdicts",
        "tcpdump -ddd",
        "Exit status",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}

/// tcpdump's `-r FILE` (repeatable, after the positional captures) and
/// `-F FILE` read what the positional captures and `--expr-file` read.
#[test]
fn tcpdump_style_r_and_f_read_the_same() {
    let dir = scratch("r_and_f");
    let exprs = dir.join("exprs.txt");
    std::fs::write(&exprs, "tcp\nudp\n# a comment\nip6\n").unwrap();
    let data = data_dir();
    let (a, b) = (data.join("print-flags.pcap"), data.join("icmpv6.pcap"));
    let (a, b, e) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        exprs.to_str().unwrap(),
    );
    let engines = ["--engines", "cbpf,libpcap", "--count"];
    let long = replay(&[&engines[..], &["--expr-file", e, a, b]].concat());
    let short = replay(&[&engines[..], &["-F", e, "-r", a, "-r", b]].concat());
    let mixed = replay(&[&engines[..], &["-F", e, a, "-r", b]].concat());
    assert_eq!(code(&long), 0);
    let counts = String::from_utf8_lossy(&long.stdout).into_owned();
    assert_eq!(counts.lines().count(), 6, "{counts}");
    assert!(counts.lines().any(|l| l != "0"), "{counts}");
    for other in [&short, &mixed] {
        assert_eq!(code(other), 0);
        assert_eq!(String::from_utf8_lossy(&other.stdout), counts);
    }
    // Some capture is needed, positional or -r.
    assert_eq!(code(&replay(&["-e", "tcp"])), 2);
}
