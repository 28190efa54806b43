//! `filterd run` in a network namespace: verdicts and counters equal the
//! dry run's, metrics, a bad reload keeps the running program, a `--keep`
//! restart adopts the program with no gap, and the systemd unit verifies.

mod daemon_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use daemon_support::*;
use e2e::frames::{self, seq_of};
use e2e::net::{ifindex, Netns, PacketSocket};
use filter_programs::ruleset::{self, dryrun::DryRun};

const TWENTY: [(&str, &str, &str); 20] = [
    (
        "admin-ssh",
        "tcp dst port 22 and src net 10.0.0.0/8",
        "pass",
    ),
    ("no-ssh", "tcp dst port 22", "drop"),
    ("udp-seen", "udp", "count"),
    ("dns", "udp port 53", "pass"),
    ("web", "tcp port 80 or tcp port 443", "pass"),
    ("arp-seen", "arp", "count"),
    ("arp-to-5", "arp and host 192.168.1.5", "drop"),
    ("v6-tcp", "ip6 and tcp", "count"),
    ("later-fragments", "ip[6:2] & 0x1fff != 0", "drop"),
    (
        "syn-8080",
        "tcp[tcpflags] & tcp-syn != 0 and dst port 8080",
        "drop",
    ),
    ("echo", "icmp[icmptype] == icmp-echo", "pass"),
    ("other-icmp", "icmp", "drop"),
    ("tagged", "vlan", "count"),
    ("vlan-100", "vlan 100", "drop"),
    ("resolver", "host 8.8.8.8", "drop"),
    ("private-172", "src net 172.16.0.0/12", "pass"),
    ("ttl-1", "ip[8] = 1", "drop"),
    ("high-ports", "tcp dst portrange 40000-65535", "drop"),
    ("v6-host", "ip6 dst host 2001:db8::1", "drop"),
    ("broadcast", "ether broadcast", "count"),
];

/// Frames on v1 that came from the test, by sequence number.
fn drain(rx: &PacketSocket, got: &mut BTreeSet<u16>) {
    while let Some((bytes, _)) = rx.recv().expect("recv") {
        if let Some(seq) = seq_of(&bytes) {
            got.insert(seq);
        }
    }
}

#[test]
fn twenty_rules_enforced_as_the_dry_run_predicts_with_matching_counters_and_metrics() {
    if !e2e::kernel_available("twenty_rules_enforced") {
        return;
    }
    let ns = Netns::with_veth("dm20");
    ns.ip(&["link", "set", "lo", "up"]);
    let dirs = Dirs::new("dm20");
    let text = config_text(&dirs, "skb", "pass", &TWENTY);
    std::fs::write(dirs.config(), &text).expect("config");

    // The prediction: the compiled program in our VM, checked rule by rule.
    let config = filterd::daemon::config::parse(&text).expect("valid config");
    let compiled = ruleset::compile(&config.rules, ruleset::Verdict::Pass).expect("compiles");
    let mut dry = DryRun::new(&compiled, &config.rules, ruleset::Verdict::Pass).expect("dry run");
    let frames = frames::all();
    let mut predicted_pass = BTreeSet::new();
    for f in &frames {
        let out = dry
            .packet(&f.bytes, f.bytes.len() as u32)
            .expect("dry run packet");
        if out.verdict == ruleset::Verdict::Pass {
            predicted_pass.insert(f.seq);
        }
    }
    assert!(
        predicted_pass.len() > 20 && predicted_pass.len() + 20 < frames.len(),
        "a ruleset that decides both ways"
    );

    let daemon = Daemon::start(&ns, &dirs, &[]);
    let got = ns.enter(|| {
        let (v0, v1) = (ifindex("v0"), ifindex("v1"));
        let rx = PacketSocket::new().expect("rx");
        rx.bind_all(v1).expect("bind v1");
        let tx = PacketSocket::new().expect("tx");
        let mut got = BTreeSet::new();
        for f in &frames {
            tx.send(v0, &f.bytes).expect("send");
            std::thread::sleep(Duration::from_micros(200));
            drain(&rx, &mut got);
        }
        std::thread::sleep(Duration::from_millis(300));
        drain(&rx, &mut got);
        assert_eq!(
            rx.drops().expect("stats"),
            0,
            "the receiving socket lost frames"
        );
        got
    });
    let wrong: Vec<String> = frames
        .iter()
        .filter(|f| got.contains(&f.seq) != predicted_pass.contains(&f.seq))
        .map(|f| {
            format!(
                "#{} {} predicted {}",
                f.seq,
                f.kind,
                if predicted_pass.contains(&f.seq) {
                    "pass"
                } else {
                    "drop"
                }
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} frames fared otherwise than predicted:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Counters: `filterd stats` reads the pins the daemon made.
    let expected: Vec<(String, u64, u64)> = dry
        .counters()
        .into_iter()
        .map(|c| (c.name, c.packets, c.bytes))
        .collect();
    let doc = stats(&dirs);
    assert_eq!(stats_counts(&doc), expected, "filterd stats vs the dry run");
    assert_eq!(
        doc["interfaces"][0]["prog_id"].as_u64(),
        xdp_prog_id(&ns).map(u64::from)
    );

    // Metrics: the same numbers, with rule, interface and action labels.
    let (status, body) = http_get(&ns, "/metrics").expect("scrape");
    assert!(status.contains("200"), "{status}");
    for (i, (name, packets, bytes)) in expected.iter().enumerate() {
        let action = TWENTY.get(i).map(|r| r.2).unwrap_or("pass");
        let labels = format!("interface=\"v1\",rule=\"{name}\",action=\"{action}\"");
        assert_eq!(
            metric(&body, "filterd_rule_packets_total", &labels),
            Some(*packets),
            "{labels}\n{body}"
        );
        assert_eq!(
            metric(&body, "filterd_rule_bytes_total", &labels),
            Some(*bytes),
            "{labels}"
        );
    }
    assert!(body.contains("# TYPE filterd_rule_packets_total counter"));
    assert_eq!(metric(&body, "filterd_reloads_total", ""), Some(0));
    assert_eq!(metric(&body, "filterd_reload_failures_total", ""), Some(0));
    let (status, _) = http_get(&ns, "/nothing").expect("404");
    assert!(status.contains("404"), "{status}");

    // `filterd status` names the daemon's program and its own pin
    // directory (recorded in the namespace's scope), and the record goes
    // with the daemon.
    let status = filterd_status(&ns);
    let xdp = status["attached"]
        .as_array()
        .and_then(|l| l.iter().find(|a| a["hook"] == "xdp"))
        .unwrap_or_else(|| panic!("no XDP program in {status}"));
    assert_eq!(xdp["filterd"], true, "{xdp}");
    assert_eq!(xdp["pin"].as_str(), dirs.pin.join("v1").to_str(), "{xdp}");

    assert!(daemon.stop().success());
    assert_eq!(xdp_prog_id(&ns), None, "SIGTERM without --keep detaches");
    assert!(!dirs.pin.join("v1").exists(), "pins removed");
    assert_eq!(filterd_status(&ns)["attached"], serde_json::json!([]));
    let scope = format!("/sys/fs/bpf/filterd/netns-{}", ns_inode(&ns));
    assert!(
        !Path::new(&scope).join("v1").exists(),
        "the record of the pin is removed"
    );
}

fn filterd_status(ns: &Netns) -> serde_json::Value {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .arg(e2e::bin("filterd"))
        .args(["status", "--json"])
        .output()
        .expect("filterd status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

fn ns_inode(ns: &Netns) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(ns.path()).expect("netns file"))
}

#[test]
fn a_bad_config_by_sighup_keeps_the_running_program_and_is_logged() {
    if !e2e::kernel_available("bad_config_by_sighup") {
        return;
    }
    let ns = Netns::with_veth("dmbad");
    ns.ip(&["link", "set", "lo", "up"]);
    let dirs = Dirs::new("dmbad");
    let good = config_text(
        &dirs,
        "skb",
        "pass",
        &[("forbidden", "udp dst port 9999", "drop")],
    );
    std::fs::write(dirs.config(), &good).expect("config");
    let daemon = Daemon::start(&ns, &dirs, &[]);
    let before = xdp_prog_id(&ns).expect("attached");

    let mut bad = good.clone();
    bad.push_str("\n[[rule]]\nname = \"broken\"\nmatch = \"tcp port\"\naction = \"drop\"\ncolour = \"red\"\n");
    std::fs::write(dirs.config(), &bad).expect("bad config");
    daemon.signal(libc::SIGHUP);
    wait_until("the failure metric", Duration::from_secs(20), || {
        scrape(&ns)
            .and_then(|m| metric(&m, "filterd_reload_failures_total", ""))
            .unwrap_or(0)
            >= 1
    });
    let m = scrape(&ns).expect("scrape");
    assert_eq!(
        metric(&m, "filterd_reloads_total", ""),
        Some(0),
        "nothing was swapped"
    );
    assert_eq!(
        xdp_prog_id(&ns),
        Some(before),
        "the old program is still attached"
    );
    let errors: Vec<String> = daemon
        .log_lines()
        .into_iter()
        .filter(|l| l["level"] == "ERROR")
        .map(|l| l["error"].as_str().unwrap_or("").to_string())
        .collect();
    let e = errors
        .first()
        .unwrap_or_else(|| panic!("no error logged:\n{}", daemon.log_text()));
    assert!(
        e.contains("rule \"broken\"")
            && e.contains("unknown key `colour`")
            && e.contains("tcp port"),
        "{e}"
    );

    // Still filtering: the forbidden flow is dropped, another passes.
    let (forbidden, other) = ns.enter(|| {
        let (v0, v1) = (ifindex("v0"), ifindex("v1"));
        let rx = PacketSocket::new().expect("rx");
        rx.bind_all(v1).expect("bind");
        let tx = PacketSocket::new().expect("tx");
        for i in 0..50u16 {
            tx.send(v0, &udp_frame(i, if i % 2 == 0 { 9999 } else { 7777 }))
                .expect("send");
        }
        std::thread::sleep(Duration::from_millis(300));
        let (mut forbidden, mut other) = (0, 0);
        while let Some((b, _)) = rx.recv().expect("recv") {
            match (seq_of(&b), udp_dport(&b)) {
                (Some(_), Some(9999)) => forbidden += 1,
                (Some(_), Some(7777)) => other += 1,
                _ => {}
            }
        }
        (forbidden, other)
    });
    assert_eq!((forbidden, other), (0, 25));
    let counts = stats_counts(&stats(&dirs));
    assert_eq!(
        counts.first().map(|c| (c.0.as_str(), c.1)),
        Some(("forbidden", 25))
    );

    // Fixed, the next reload goes through.
    std::fs::write(dirs.config(), &good).expect("config");
    daemon.signal(libc::SIGHUP);
    wait_until("a reload", Duration::from_secs(20), || {
        scrape(&ns)
            .and_then(|m| metric(&m, "filterd_reloads_total", ""))
            .unwrap_or(0)
            >= 1
    });
    assert_ne!(xdp_prog_id(&ns), Some(before), "swapped");
    assert!(daemon.stop().success());
}

#[test]
fn a_keep_restart_adopts_the_running_program_without_a_gap() {
    if !e2e::kernel_available("keep_restart_adopts") {
        return;
    }
    let ns = Netns::with_veth("dmkeep");
    ns.ip(&["link", "set", "lo", "up"]);
    let dirs = Dirs::new("dmkeep");
    let rules = [
        ("forbidden", "udp dst port 9999", "drop"),
        ("seen", "udp", "count"),
    ];
    std::fs::write(dirs.config(), config_text(&dirs, "drv", "pass", &rules)).expect("config");
    let send = |n: u16| {
        ns.enter(|| {
            let tx = PacketSocket::new().expect("tx");
            for i in 0..n {
                tx.send(ifindex("v0"), &udp_frame(i, 9999)).expect("send");
            }
            std::thread::sleep(Duration::from_millis(100));
        })
    };
    let first = Daemon::start(&ns, &dirs, &["--keep"]);
    let id = xdp_prog_id(&ns).expect("attached");
    send(10);
    assert!(first.stop().success());
    // Between the two daemons: still attached, still pinned, still counting.
    assert_eq!(
        xdp_prog_id(&ns),
        Some(id),
        "--keep left the program attached"
    );
    send(5);
    assert_eq!(
        stats_counts(&stats(&dirs))[0],
        (
            "forbidden".to_string(),
            15,
            15 * udp_frame(0, 9999).len() as u64
        )
    );

    // A poller watches the interface through the whole restart.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let seen = std::thread::scope(|s| {
        let poll = s.spawn(|| {
            let mut seen = BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.insert(xdp_prog_id(&ns));
            }
            seen
        });
        let second = Daemon::start(&ns, &dirs, &["--keep"]);
        let adopted = second
            .log_lines()
            .iter()
            .any(|l| l["message"] == "adopted the running program");
        assert!(adopted, "{}", second.log_text());
        assert!(second.stop().success());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        poll.join().expect("poller")
    });
    assert_eq!(
        seen,
        BTreeSet::from([Some(id)]),
        "the program never changed or went away"
    );

    // A changed config: adopted, then replaced through the link; counters
    // of the rule that stays carry on.
    let changed = [
        ("forbidden", "udp dst port 9999", "drop"),
        ("web", "tcp port 80", "pass"),
    ];
    std::fs::write(dirs.config(), config_text(&dirs, "drv", "pass", &changed)).expect("config");
    let third = Daemon::start(&ns, &dirs, &[]);
    let replaced = third.log_lines().iter().any(|l| {
        l["message"] == "adopted the running program and replaced it (the config changed)"
            && l["old_prog_id"] == id
    });
    assert!(replaced, "{}", third.log_text());
    let new_id = xdp_prog_id(&ns).expect("attached");
    assert_ne!(new_id, id);
    send(1);
    assert_eq!(
        stats_counts(&stats(&dirs))[0].1,
        16,
        "counters follow the rule name across the restart"
    );
    assert!(third.stop().success());
    assert_eq!(xdp_prog_id(&ns), None, "detached without --keep");
    assert!(!dirs.pin.join("v1").exists(), "pins removed");
    assert!(stats(&dirs)["interfaces"]
        .as_array()
        .is_some_and(|a| a.is_empty()));
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = e2e::repo_root().join("configs/filterd.service");
    let text = std::fs::read_to_string(&unit).expect("configs/filterd.service");
    for needed in [
        "CAP_BPF",
        "CAP_NET_ADMIN",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecReload=",
    ] {
        assert!(text.contains(needed), "the unit lacks {needed}");
    }
    let caps = text
        .lines()
        .find(|l| l.starts_with("CapabilityBoundingSet="))
        .expect("a bounding set");
    assert!(!caps.contains("CAP_SYS_ADMIN"), "{caps}");
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "the_systemd_unit_verifies: systemd-analyze is not installed; checked the text only"
        );
        return;
    }
    // verify wants ExecStart's binary to exist: point it at the built one.
    let dir = std::env::temp_dir().join(format!("filterd-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = e2e::bin("filterd");
    let path = dir.join("filterd.service");
    std::fs::write(
        &path,
        text.replace("/usr/local/bin/filterd", &bin.display().to_string()),
    )
    .expect("unit");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("filterd.service"),
        "systemd-analyze verify:\n{err}"
    );
}
