//! `filterd check` and `filterd test` through the binary: whole-file
//! validation with every error, and the dry run's JSON against libpcap
//! (rule by rule) and the kernel (`--kernel`) on the bundled captures.

use std::path::PathBuf;
use std::process::{Command, Output};

use filter_programs::ruleset::{decide, Action, Verdict};
use libpcap_oracle::{self as libpcap, CompileOptions};

fn filterd(args: &[&str]) -> Output {
    Command::new(e2e::bin("filterd"))
        .args(args)
        .output()
        .expect("filterd runs")
}

fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("filterd-rules-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const RULES: &[(&str, &str, &str)] = &[
    ("web-count", "tcp port 80", "count"),
    (
        "admin-ssh",
        "tcp dst port 22 and src net 10.0.0.0/8",
        "pass",
    ),
    ("no-ssh", "tcp dst port 22", "drop"),
    ("ldp", "tcp port 646 or udp port 646", "pass"),
    ("icmp6", "icmp6", "count"),
    ("v6", "ip6 and not ip6 multicast", "drop"),
    ("ospf", "ip proto 89", "pass"),
    ("syn", "tcp[tcpflags] & tcp-syn != 0", "drop"),
];

fn config(default: &str) -> String {
    let mut t = format!("[[interface]]\nname = \"lo\"\ndefault = \"{default}\"\n");
    for (name, expr, action) in RULES {
        t.push_str(&format!(
            "\n[[rule]]\nname = \"{name}\"\nmatch = \"{expr}\"\naction = \"{action}\"\n"
        ));
    }
    t
}

#[test]
fn check_lists_every_error_and_exits_1() {
    let bad = write_config(
        "bad.toml",
        "[[interface]]\nname = \"no-such-if0\"\n[[rule]]\nname = \"a\"\nmatch = \"tcp port\"\naction = \"drop\"\n\
         [[rule]]\nname = \"a\"\nmatch = \"\"\naction = \"reject\"\n",
    );
    let out = filterd(&["check", "--no-kernel", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "4 errors",
        "does not compile",
        "found the end of the expression",
        "duplicate rule name",
        "`match` is empty",
        "`action` is \"reject\"",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
    // Rules right, interface unknown: reported too (after the rules).
    let noif = write_config("noif.toml", "[[interface]]\nname = \"no-such-if0\"\n[[rule]]\nname = \"a\"\nmatch = \"udp\"\naction = \"drop\"\n");
    let out = filterd(&["check", "--no-kernel", noif.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such interface"));
}

#[test]
fn check_accepts_and_the_kernel_verifies() {
    if !e2e::kernel_available("filterd_rules_cli") {
        return;
    }
    let good = write_config("good.toml", &config("pass"));
    let out = filterd(&["check", good.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("ok: 8 rules, 1 interfaces") && text.contains("verifier: accepted"),
        "{text}"
    );
}

/// The dry run's per-packet actions and per-rule counts equal libpcap's
/// verdicts taken rule by rule, and (with --kernel) the kernel's.
#[test]
fn test_json_equals_libpcap_rule_by_rule_and_the_kernel() {
    let kernel = e2e::kernel_available("filterd_rules_cli");
    let data = e2e::repo_root().join("tests/data");
    let pcaps: Vec<PathBuf> = [
        "icmpv6.pcap",
        "ldp-common-session.pcap",
        "print-flags.pcap",
        "OSPFv2_Capture_FINAL.pcapng",
    ]
    .iter()
    .map(|f| data.join(f))
    .collect();
    let opts = CompileOptions {
        dlt: 1,
        snaplen: 262_144,
        optimize: true,
        netmask: 0xffff_ff00,
    };
    let progs: Vec<_> = RULES
        .iter()
        .map(|(_, e, _)| libpcap::compile(e, opts).unwrap())
        .collect();
    let actions: Vec<Action> = RULES
        .iter()
        .map(|(_, _, a)| match *a {
            "pass" => Action::Pass,
            "drop" => Action::Drop,
            _ => Action::Count,
        })
        .collect();
    for default in ["pass", "drop"] {
        let cfg = write_config(&format!("cfg-{default}.toml"), &config(default));
        let mut args = vec!["test", "--json"];
        if kernel {
            args.push("--kernel");
        }
        let cfg_s = cfg.to_str().unwrap().to_string();
        args.push(&cfg_s);
        let pcap_s: Vec<String> = pcaps
            .iter()
            .map(|p| p.to_str().unwrap().to_string())
            .collect();
        args.extend(pcap_s.iter().map(String::as_str));
        let out = filterd(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let dv = if default == "pass" {
            Verdict::Pass
        } else {
            Verdict::Drop
        };
        let mut total = 0;
        let mut hit = std::collections::BTreeSet::new();
        for (file, path) in doc["files"].as_array().unwrap().iter().zip(&pcaps) {
            let mut cap = pcap::Capture::from_file(path).unwrap();
            let mut counts = vec![0u64; RULES.len() + 1];
            let mut i = 0;
            while let Ok(p) = cap.next_packet() {
                let want = decide(&actions, dv, |r| {
                    libpcap::filter(&progs[r], p.data, p.header.len) != 0
                });
                let v = &file["verdicts"][i];
                assert_eq!(
                    v["action"],
                    want.verdict.name(),
                    "{} packet {i}",
                    path.display()
                );
                let rule = want.rule.map_or("default", |r| RULES[r].0);
                assert_eq!(v["rule"], rule, "{} packet {i}", path.display());
                let counted: Vec<&str> = want.counted.iter().map(|r| RULES[*r].0).collect();
                assert_eq!(v["counted"], serde_json::json!(counted));
                counts[want.rule.unwrap_or(RULES.len())] += 1;
                hit.insert(rule);
                for c in &want.counted {
                    counts[*c] += 1;
                }
                i += 1;
            }
            assert_eq!(file["packets"], i as u64);
            let got: Vec<u64> = file["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["packets"].as_u64().unwrap())
                .collect();
            assert_eq!(got, counts, "{}", path.display());
            if kernel {
                assert!(file["kernel_checked"].as_u64().unwrap() > 0);
            }
            total += i;
        }
        assert!(total >= 60, "only {total} packets");
        assert!(
            hit.len() >= 4,
            "the captures decide by too few rules: {hit:?}"
        );
    }
}

#[test]
fn test_reports_a_damaged_capture_with_exit_2_and_keeps_what_it_read() {
    let cfg = write_config("cut.toml", &config("pass"));
    let cut = e2e::repo_root().join("tests/data/bad/cut-packet-data.pcap");
    let out = filterd(&[
        "test",
        "--json",
        cfg.to_str().unwrap(),
        cut.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["files"][0]["error"].is_string());
    assert_eq!(
        doc["files"][0]["packets"], 2,
        "the packets before the fault are reported"
    );
}

/// `configs/mixed-10k.toml` is issue 17's mix as `e2e::mixed` draws it, and
/// `filterd check --json` loads it and classifies every rule, with the
/// reason for each rule left to the chain and shares that add up.
#[test]
fn check_classifies_every_rule_of_the_large_example() {
    let path = e2e::repo_root().join("configs/mixed-10k.toml");
    let text = std::fs::read_to_string(&path).expect("configs/mixed-10k.toml");
    let rules = e2e::mixed::rules(10_000, e2e::mixed::EXAMPLE_SEED, 0);
    assert!(
        text == e2e::mixed::config(&rules, "lo"),
        "configs/mixed-10k.toml is stale: cargo run -q -p e2e --example mixed_ruleset -- 10000 > configs/mixed-10k.toml"
    );
    let kernel = e2e::kernel_available("filterd_rules_cli");
    let mut args = vec!["check", "--json"];
    if !kernel {
        args.push("--no-kernel");
    }
    args.push(path.to_str().unwrap());
    let out = filterd(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["rules"], 10_000);
    let plans = doc["rule_plans"].as_array().unwrap();
    assert_eq!(plans.len(), 10_000);
    let mut share = 0.0;
    let mut in_tables = 0;
    for p in plans {
        share += p["share"].as_f64().unwrap();
        match p["classified"].as_str() {
            Some("table") => {
                in_tables += 1;
                assert!(!p["tables"].as_array().unwrap().is_empty(), "{p}");
            }
            Some("chain") => assert!(
                p["reason"].is_string() && p["reason_key"].is_string(),
                "{p}"
            ),
            other => panic!("classified: {other:?}"),
        }
    }
    assert!((share - 1.0).abs() < 1e-6, "shares add up to {share}");
    assert_eq!(doc["table_rules"], in_tables);
    assert!(in_tables > 4_000, "only {in_tables} rules in the tables");
    if kernel {
        assert!(doc["verifier"]["processed_instructions"].as_u64().unwrap() > 0);
        assert!(doc["verifier"]["load_ms"].as_f64().unwrap() > 0.0);
    }
}
