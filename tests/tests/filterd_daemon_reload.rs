//! 200 reloads of `filterd run` under a flood: three rulesets, rotated by
//! SIGHUP, all drop one flow and differ otherwise. Not one frame of that
//! flow reaches v1 (a packet socket on v1 sees what XDP passed: XDP runs
//! before taps), every reload succeeds, and the counters (metrics and
//! `filterd stats`) never go backwards.

mod daemon_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use daemon_support::*;
use e2e::frames::seq_of;
use e2e::net::{ifindex, Netns, PacketSocket};

const RELOADS: usize = 200;
/// The flood: at least this many frames, half of them forbidden, and on
/// until the reloads are done (bounded by `MAX_FRAMES`).
const MIN_FRAMES: u64 = 200_000;
const MAX_FRAMES: u64 = 20_000_000;
/// Frames the flood may send per reload ahead of the reloads.
const PER_RELOAD: u64 = MAX_FRAMES / (RELOADS as u64 + 2);

/// Sets the flag when dropped, a panic's unwinding included.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
const FORBIDDEN: u16 = 9999;
const ALLOWED: u16 = 7777;

/// Ruleset a is a handful of rules, compiled straight-line; b holds 216
/// more, so its forbidden rule is found by a table lookup; c holds 300
/// rules of many shapes, so its forbidden rule is found through the
/// per-field bitmaps: every reload swaps one classification of the
/// forbidden flow for another.
fn rulesets(dirs: &Dirs) -> [String; 3] {
    let a = [
        ("web", "tcp port 80", "count"),
        ("forbidden", "udp dst port 9999", "drop"),
        ("udp-seen", "udp", "count"),
        ("no-telnet", "tcp dst port 23", "drop"),
    ];
    let mut b: Vec<(String, String, &str)> = [
        ("udp-seen", "udp", "count"),
        ("dns", "udp port 53", "pass"),
        ("forbidden", "udp and dst port 9999", "drop"),
        ("allowed", "udp dst port 7777", "pass"),
        ("resolver", "host 8.8.8.8", "drop"),
    ]
    .iter()
    .map(|(n, e, a)| (n.to_string(), e.to_string(), *a))
    .collect();
    for k in 0..16 {
        b.push((
            format!("block-{k}"),
            format!("udp dst port {}", 20_000 + k),
            "drop",
        ));
    }
    for k in 0..200 {
        b.push((
            format!("h-{k}"),
            format!("src host 198.18.{}.{}", k / 250, 1 + k % 250),
            "drop",
        ));
    }
    let b: Vec<(&str, &str, &str)> = b
        .iter()
        .map(|(n, e, a)| (n.as_str(), e.as_str(), *a))
        .collect();
    let mut c: Vec<(String, String, &str)> = vec![
        ("udp-seen".into(), "udp".into(), "count"),
        ("allowed".into(), "udp dst port 7777".into(), "pass"),
    ];
    for k in 0..300u32 {
        let (ls, ld) = (8 + k % 25, 8 + (k / 25) % 25);
        let src = (23u32 << 24 | k << 8) & (u32::MAX << (32 - ls));
        let dst = (45u32 << 24 | k << 4) & (u32::MAX << (32 - ld));
        let ip = |a: u32| std::net::Ipv4Addr::from(a).to_string();
        c.push((
            format!("shape-{k}"),
            format!(
                "src net {}/{ls} and dst net {}/{ld} and udp dst port {}",
                ip(src),
                ip(dst),
                30_000 + k
            ),
            "drop",
        ));
    }
    c.push(("forbidden".into(), "udp dst port 9999".into(), "drop"));
    let c: Vec<(&str, &str, &str)> = c
        .iter()
        .map(|(n, e, a)| (n.as_str(), e.as_str(), *a))
        .collect();
    [
        config_text(dirs, "drv", "pass", &a),
        config_text(dirs, "drv", "pass", &b),
        config_text(dirs, "drv", "pass", &c),
    ]
}

/// How a config's rule `name` is classified for IPv4 frames: 0 in the
/// chain (compiled or inline), 1 by a tuple table, 2 through the bitmaps.
fn classified(config: &str, name: &str) -> u8 {
    let cfg = filterd::daemon::config::parse(config).expect("the test's config parses");
    let compiled =
        filter_programs::ruleset::compile(&cfg.rules, filter_programs::ruleset::Verdict::Pass)
            .expect("the test's config compiles");
    let i = cfg
        .rules
        .iter()
        .position(|r| r.name == name)
        .expect("the rule");
    // The flow is IPv4: by the IPv4 lookups, whatever IPv6 frames take.
    let tables = &compiled.plans[i].tables;
    if tables.iter().any(|t| t.starts_with("lbvs4")) {
        2
    } else if tables.iter().any(|t| t.starts_with("tuples_")) {
        1
    } else {
        0
    }
}

/// Per `rule` label: packets, from a scrape.
fn packets_by_rule(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("filterd_rule_packets_total{"))
        .filter_map(|l| {
            let (labels, value) = l.split_once("} ")?;
            let rule = labels.split("rule=\"").nth(1)?.split('"').next()?;
            Some((rule.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Remembers the last value of each counter and fails if one goes down.
#[derive(Default)]
struct Monotonic(BTreeMap<String, u64>, usize);

impl Monotonic {
    fn check(&mut self, source: &str, now: impl IntoIterator<Item = (String, u64)>) {
        for (name, v) in now {
            let last = self.0.entry(name.clone()).or_insert(0);
            assert!(
                v >= *last,
                "{source}: counter {name} went from {last} to {v}"
            );
            *last = v;
            self.1 += 1;
        }
    }
}

fn sighup_reloads(d: &Daemon) -> usize {
    d.log_lines()
        .iter()
        .filter(|l| l["message"] == "reloaded" && l["trigger"] == "SIGHUP")
        .count()
}

#[test]
fn two_hundred_reloads_under_a_flood_let_no_forbidden_frame_through() {
    if !e2e::kernel_available("two_hundred_reloads_under_a_flood") {
        return;
    }
    let ns = Netns::with_veth("dmreload");
    ns.ip(&["link", "set", "lo", "up"]);
    let dirs = Dirs::new("dmreload");
    let configs = rulesets(&dirs);
    let classes: Vec<u8> = configs.iter().map(|c| classified(c, "forbidden")).collect();
    assert_eq!(
        classes,
        [0, 1, 2],
        "the rulesets must classify the forbidden flow differently"
    );
    std::fs::write(dirs.config(), &configs[0]).expect("config");
    let daemon = Daemon::start(&ns, &dirs, &[]);

    let done = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    // SIGHUP reloads done: the flood may run at most two reloads ahead of
    // them, so that however slow the reloads (a loaded machine), frames
    // flow through all of them within MAX_FRAMES.
    let reloads_done = AtomicU64::new(0);
    let received = [AtomicU64::new(0), AtomicU64::new(0)];
    let started = Instant::now();
    let mut monotonic = Monotonic::default();
    std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            ns.enter(|| {
                let rx = PacketSocket::new().expect("rx");
                rx.bind_all(ifindex("v1")).expect("bind v1");
                let mut idle_after_done = 0;
                loop {
                    match rx.recv().expect("recv") {
                        Some((b, _)) => match (seq_of(&b), udp_dport(&b)) {
                            (Some(_), Some(FORBIDDEN)) => {
                                received[0].fetch_add(1, Ordering::Relaxed)
                            }
                            (Some(_), Some(ALLOWED)) => received[1].fetch_add(1, Ordering::Relaxed),
                            _ => 0,
                        },
                        None if done.load(Ordering::Relaxed) => {
                            idle_after_done += 1;
                            if idle_after_done > 200 {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(1));
                            0
                        }
                        None => {
                            std::thread::sleep(Duration::from_micros(200));
                            0
                        }
                    };
                }
            })
        });
        let sender = s.spawn(|| {
            ns.enter(|| {
                let tx = PacketSocket::new().expect("tx");
                let v0 = ifindex("v0");
                let frames = [udp_frame(1, FORBIDDEN), udp_frame(2, ALLOWED)];
                let mut n = 0u64;
                while n < MAX_FRAMES && (n < MIN_FRAMES || !done.load(Ordering::Relaxed)) {
                    let ahead = (reloads_done.load(Ordering::Relaxed) + 2) * PER_RELOAD;
                    if n >= ahead && !done.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                    match tx.send(v0, &frames[(n % 2) as usize]) {
                        Ok(()) => n += 1,
                        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                            std::thread::yield_now()
                        }
                        Err(e) => panic!("send: {e}"),
                    }
                    // Paced so veth's ring does not overflow before XDP.
                    if n.is_multiple_of(64) {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                    sent.store(n, Ordering::Relaxed);
                }
            })
        });

        // A panic below (a timeout, an assertion) must still end the two
        // threads, or the scope would wait for them forever.
        let _end_flood = SetOnDrop(&done);
        for i in 0..RELOADS {
            std::fs::write(dirs.config(), &configs[(i + 1) % 3]).expect("rewrite config");
            daemon.signal(libc::SIGHUP);
            wait_until(
                &format!("SIGHUP reload {}", i + 1),
                Duration::from_secs(30),
                || sighup_reloads(&daemon) > i,
            );
            reloads_done.store(i as u64 + 1, Ordering::Relaxed);
            if let Some(m) = scrape(&ns) {
                monotonic.check("metrics", packets_by_rule(&m));
            }
            if i % 20 == 0 {
                let doc = stats(&dirs);
                monotonic.check(
                    "filterd stats",
                    stats_counts(&doc)
                        .into_iter()
                        .map(|(n, p, _)| (format!("stats/{n}"), p)),
                );
            }
        }
        let during = sent.load(Ordering::Relaxed);
        assert!(
            during < MAX_FRAMES,
            "the flood ended before the reloads did"
        );
        // Let the flood reach its minimum under the last ruleset too.
        while sent.load(Ordering::Relaxed) < MIN_FRAMES {
            std::thread::sleep(Duration::from_millis(20));
        }
        done.store(true, Ordering::Relaxed);
        sender.join().expect("sender");
        receiver.join().expect("receiver");
    });
    let sent = sent.load(Ordering::Relaxed);
    let (forbidden_through, allowed_through) = (
        received[0].load(Ordering::Relaxed),
        received[1].load(Ordering::Relaxed),
    );
    eprintln!(
        "{RELOADS} reloads in {:?}; {sent} frames sent, {allowed_through} allowed received, {} counter reads",
        started.elapsed(),
        monotonic.1
    );
    assert_eq!(
        forbidden_through, 0,
        "frames of the forbidden flow got through during reloads"
    );
    assert!(
        allowed_through > sent / 4,
        "the allowed flow passes ({allowed_through} of {})",
        sent / 2
    );

    let m = scrape(&ns).expect("scrape");
    assert_eq!(
        metric(&m, "filterd_reload_failures_total", ""),
        Some(0),
        "{}",
        daemon.log_text()
    );
    assert!(metric(&m, "filterd_reloads_total", "").unwrap_or(0) >= RELOADS as u64);
    assert_eq!(sighup_reloads(&daemon), RELOADS);
    // The forbidden rule counted what it dropped, across every program.
    std::thread::sleep(Duration::from_millis(700));
    let counts = packets_by_rule(&scrape(&ns).expect("scrape"));
    let dropped = counts.get("forbidden").copied().unwrap_or(0);
    assert!(
        dropped > sent / 4 && dropped <= sent / 2 + 1,
        "forbidden counted {dropped} of {} sent",
        sent / 2
    );
    monotonic.check("metrics (final)", counts);
    assert!(daemon.stop().success());
    assert_eq!(xdp_prog_id(&ns), None);
}
