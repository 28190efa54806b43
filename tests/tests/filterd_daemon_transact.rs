//! A reload of several interfaces is all or nothing. Two interfaces, v1
//! then w1 in the config; the reload fails on w1, and v1 must still run
//! the program it ran before:
//! - failing before any swap (w1's pin directory is gone, so its new
//!   generation cannot be pinned): v1 was staged, never swapped, and its
//!   staged pins are gone;
//! - failing after v1 was swapped (w1's link was detached behind the
//!   daemon's back, so `BPF_LINK_UPDATE` on it fails): v1 gets its old
//!   program back through the link.

mod daemon_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use daemon_support::*;
use e2e::net::Netns;

/// The XDP program id on `name` in the test's namespace, if any.
fn prog_on(ns: &Netns, name: &str) -> Option<u32> {
    ns.enter(|| {
        bpf_kernel::netlink::links()
            .expect("netlink")
            .into_iter()
            .find(|l| l.name == name)
            .and_then(|l| l.xdp.first().map(|(_, id)| *id))
    })
}

/// v1 and w1 (a second veth pair), both skb mode, default pass.
fn config(dirs: &Dirs, rules: &[(&str, &str, &str)]) -> String {
    let mut t = config_text(dirs, "skb", "pass", rules);
    t.push_str("\n[[interface]]\nname = \"w1\"\nmode = \"skb\"\ndefault = \"pass\"\n");
    t
}

fn setup(tag: &str) -> (Netns, Dirs, Daemon, u32, u32) {
    let ns = Netns::with_veth(tag);
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["link", "add", "w0", "type", "veth", "peer", "name", "w1"]);
    ns.ip(&["link", "set", "w0", "up"]);
    ns.ip(&["link", "set", "w1", "up"]);
    let dirs = Dirs::new(tag);
    std::fs::write(
        dirs.config(),
        config(&dirs, &[("a", "udp dst port 9999", "drop")]),
    )
    .expect("config");
    let daemon = Daemon::start(&ns, &dirs, &[]);
    let v1 = prog_on(&ns, "v1").expect("v1 attached");
    let w1 = prog_on(&ns, "w1").expect("w1 attached");
    (ns, dirs, daemon, v1, w1)
}

/// Writes a changed config (the watcher reloads it) and waits for the failure.
fn failing_reload(ns: &Netns, dirs: &Dirs, daemon: &Daemon) -> String {
    let changed = config(
        dirs,
        &[
            ("a", "udp dst port 9999", "drop"),
            ("b", "tcp port 23", "drop"),
        ],
    );
    // The watcher's reload alone: a SIGHUP as well made a second reload
    // that could swap v1 again while the test looked at it.
    std::fs::write(dirs.config(), changed).expect("config");
    wait_until("the failure metric", Duration::from_secs(20), || {
        scrape(ns)
            .and_then(|m| metric(&m, "filterd_reload_failures_total", ""))
            .unwrap_or(0)
            >= 1
    });
    let m = scrape(ns).expect("scrape");
    assert_eq!(metric(&m, "filterd_reloads_total", ""), Some(0));
    daemon
        .log_lines()
        .into_iter()
        .filter(|l| l["level"] == "ERROR")
        .map(|l| l["error"].as_str().unwrap_or("").to_string())
        .next()
        .unwrap_or_else(|| panic!("no error logged:\n{}", daemon.log_text()))
}

fn pins(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("pin dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_failure_on_the_second_interface_before_any_swap_leaves_the_first_untouched() {
    if !e2e::kernel_available("transact_before_swap") {
        return;
    }
    let (ns, dirs, daemon, v1, w1) = setup("dmtxa");
    let v1_pins = pins(&dirs.pin.join("v1"));
    // The daemon holds its own fd on each link: w1 stays attached.
    std::fs::remove_dir_all(dirs.pin.join("w1")).expect("remove w1's pins");
    let error = failing_reload(&ns, &dirs, &daemon);
    assert!(
        error.contains("\"w1\"") && error.contains("pinning"),
        "{error}"
    );
    assert_eq!(
        prog_on(&ns, "v1"),
        Some(v1),
        "v1 was swapped:\n{}",
        daemon.log_text()
    );
    assert_eq!(prog_on(&ns, "w1"), Some(w1));
    assert_eq!(
        pins(&dirs.pin.join("v1")),
        v1_pins,
        "v1's staged pins were left behind"
    );
    assert!(daemon.stop().success());
}

#[test]
fn a_failure_on_the_second_interface_after_the_first_swap_puts_the_first_back() {
    if !e2e::kernel_available("transact_after_swap") {
        return;
    }
    let (ns, dirs, daemon, v1, _) = setup("dmtxb");
    let link = dirs.pin.join("w1").join("link");
    let out = Command::new("bpftool")
        .args(["link", "detach", "pinned"])
        .arg(&link)
        .output()
        .expect("bpftool");
    assert!(
        out.status.success(),
        "bpftool link detach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(prog_on(&ns, "w1"), None, "w1 detached");
    let error = failing_reload(&ns, &dirs, &daemon);
    assert!(
        error.contains("\"w1\"") && error.contains("BPF_LINK_UPDATE"),
        "{error}"
    );
    assert_eq!(
        prog_on(&ns, "v1"),
        Some(v1),
        "v1 did not get its program back:\n{}",
        daemon.log_text()
    );
    let put_back = daemon
        .log_lines()
        .into_iter()
        .any(|l| l["level"] == "WARN" && l["interface"] == "v1" && l["prog_id"] == v1);
    assert!(
        put_back,
        "no warning that v1 was put back:\n{}",
        daemon.log_text()
    );
    // v1 still filters with the old program: its counters are live in
    // `filterd stats` under the old rule names only.
    let names: Vec<String> = stats_counts(&stats(&dirs))
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert!(
        names.contains(&"a".to_string()) && !names.contains(&"b".to_string()),
        "{names:?}"
    );
    let _ = daemon.stop();
}
