//! `filterd run` under systemd's journal: with `JOURNAL_STREAM` naming its
//! stderr (as systemd sets it), log events reach journald's socket in the
//! native protocol with their levels as priorities (info 5 and error 3
//! here), filterd's identifier and their fields; nothing goes to stderr.
//! Without it, the same events are stderr lines. journald is faked: a
//! datagram socket the test binds, mounted over /run/systemd/journal in a
//! private mount namespace of the daemon's own.

mod daemon_support;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use daemon_support::*;
use e2e::net::Netns;

/// One entry of journald's native protocol: `KEY=value\n`, or for values
/// with newlines `KEY\n`, a little-endian u64 length, the bytes, `\n`.
fn parse_entry(mut b: &[u8]) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    while !b.is_empty() {
        let nl = b
            .iter()
            .position(|&c| c == b'\n')
            .expect("a field ends in a newline");
        let line = &b[..nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            let key = String::from_utf8_lossy(&line[..eq]).into_owned();
            fields.insert(key, String::from_utf8_lossy(&line[eq + 1..]).into_owned());
            b = &b[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let len = u64::from_le_bytes(b[nl + 1..nl + 9].try_into().expect("length")) as usize;
            let value = &b[nl + 9..nl + 9 + len];
            fields.insert(key, String::from_utf8_lossy(value).into_owned());
            assert_eq!(b[nl + 9 + len], b'\n', "a binary field ends in a newline");
            b = &b[nl + 10 + len..];
        }
    }
    fields
}

/// Entries until one satisfies `until` (or the timeout).
fn entries_until(
    rx: &UnixDatagram,
    until: impl Fn(&BTreeMap<String, String>) -> bool,
) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = vec![0u8; 1 << 16];
    while Instant::now() < deadline {
        let Ok(n) = rx.recv(&mut buf) else { continue };
        let e = parse_entry(&buf[..n]);
        let done = until(&e);
        out.push(e);
        if done {
            return out;
        }
    }
    panic!("the awaited entry never came: {out:#?}");
}

fn message_has(e: &BTreeMap<String, String>, text: &str) -> bool {
    e.get("MESSAGE").is_some_and(|m| m.contains(text))
}

#[test]
fn logs_reach_journald_with_their_priorities() {
    if !e2e::kernel_available("journald_priorities") {
        return;
    }
    let ns = Netns::with_veth("dmjr");
    ns.ip(&["link", "set", "lo", "up"]);
    let dirs = Dirs::new("dmjr");
    std::fs::write(
        dirs.config(),
        config_text(&dirs, "skb", "pass", &[("web", "tcp port 80", "drop")]),
    )
    .expect("config");
    let journal = dirs.work.join("journal");
    std::fs::create_dir_all(&journal).expect("journal dir");
    let rx = UnixDatagram::bind(journal.join("socket")).expect("fake journald");
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // As systemd: JOURNAL_STREAM is the device and inode of stderr.
    let script = format!(
        "mkdir -p /run/systemd/journal && mount --bind {} /run/systemd/journal && \
         JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec \"$@\"",
        journal.display()
    );
    let daemon = Daemon::start_wrapped(
        &ns,
        &dirs,
        &[],
        &[],
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ],
    );
    let start = entries_until(&rx, |e| message_has(e, "enforcing"));
    let enforcing = start.last().unwrap();
    assert_eq!(
        enforcing.get("PRIORITY").map(String::as_str),
        Some("5"),
        "{enforcing:?}"
    );
    assert_eq!(
        enforcing.get("SYSLOG_IDENTIFIER").map(String::as_str),
        Some("filterd"),
        "{enforcing:?}"
    );
    assert_eq!(
        enforcing.get("RULES").map(String::as_str),
        Some("1"),
        "{enforcing:?}"
    );

    // A refused reload is an error, priority 3.
    std::fs::write(
        dirs.config(),
        "[[rule]]\nname = \"x\"\nmatch = \"tcp port\"\naction = \"drop\"\n",
    )
    .expect("bad config");
    daemon.signal(libc::SIGHUP);
    let failed = entries_until(&rx, |e| message_has(e, "reload failed"));
    let failed = failed.last().unwrap();
    assert_eq!(
        failed.get("PRIORITY").map(String::as_str),
        Some("3"),
        "{failed:?}"
    );
    assert!(
        failed.get("ERROR").is_some_and(|e| e.contains("tcp port")),
        "{failed:?}"
    );
    let log = daemon.log_text();
    assert!(daemon.stop().success());
    assert!(log.is_empty(), "stderr had lines as well: {log}");
}

/// Without JOURNAL_STREAM (or with one that is not its stderr) the same
/// events are stderr lines.
#[test]
fn without_the_journal_logs_are_stderr_lines() {
    if !e2e::kernel_available("journald_fallback") {
        return;
    }
    let ns = Netns::with_veth("dmjs");
    ns.ip(&["link", "set", "lo", "up"]);
    let dirs = Dirs::new("dmjs");
    std::fs::write(
        dirs.config(),
        config_text(&dirs, "skb", "pass", &[("web", "tcp port 80", "drop")]),
    )
    .expect("config");
    let daemon = Daemon::start_with_env(&ns, &dirs, &[], &[("JOURNAL_STREAM", "1:1")]);
    let t = Instant::now();
    while !daemon.log_text().contains("enforcing") && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = daemon.log_lines();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "enforcing" && l["level"] == "INFO"),
        "{}",
        daemon.log_text()
    );
    assert!(daemon.stop().success());
}
