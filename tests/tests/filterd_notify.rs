//! `filterd run` under systemd's notification protocol, with a fake
//! `NOTIFY_SOCKET` (a datagram socket the test binds): READY=1 once the
//! program is attached; RELOADING=1 (with MONOTONIC_USEC) then READY=1
//! around each reload, with a STATUS= that says whether it was swapped in
//! or refused; STOPPING=1 at the end. And `filterd reload` (the unit's
//! ExecReload) exits 0 for a good reload and 1 for a refused one, so
//! `systemctl reload` fails when the config is refused. The metrics follow
//! the last reload and parse as the exposition format (prometheus_client's
//! parser), no series twice, a rule name with a quote and a backslash read
//! back whole.

mod daemon_support;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use daemon_support::*;
use e2e::net::Netns;

/// A rule name with characters the exposition format escapes.
const ODD_NAME: &str = "no \"9999\" \\ port";

/// The next notification, as its lines.
fn next(rx: &UnixDatagram) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let n = rx
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .map(str::to_string)
        .collect()
}

fn field<'a>(msg: &'a [String], key: &str) -> Option<&'a str> {
    msg.iter().find_map(|l| l.strip_prefix(&format!("{key}=")))
}

/// `filterd reload --pid P --state-dir D`: (exit code, stdout, stderr).
fn filterd_reload(pid: i32, dirs: &Dirs) -> (i32, String, String) {
    let out = std::process::Command::new(e2e::bin("filterd"))
        .args([
            "reload",
            "--timeout",
            "30",
            "--pid",
            &pid.to_string(),
            "--state-dir",
        ])
        .arg(&dirs.state)
        .output()
        .expect("filterd reload");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One reload's two notifications: RELOADING=1 with its monotonic time,
/// then READY=1; returns the READY's STATUS.
fn reload_messages(rx: &UnixDatagram) -> String {
    let reloading = next(rx);
    assert_eq!(
        reloading.first().map(String::as_str),
        Some("RELOADING=1"),
        "{reloading:?}"
    );
    let usec: u64 = field(&reloading, "MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec > 0);
    let ready = next(rx);
    assert_eq!(
        ready.first().map(String::as_str),
        Some("READY=1"),
        "{ready:?}"
    );
    field(&ready, "STATUS").unwrap_or_default().to_string()
}

#[test]
fn systemd_hears_start_reloads_refusals_and_stop_in_order() {
    if !e2e::kernel_available("systemd_notify") {
        return;
    }
    let ns = Netns::with_veth("dmnot");
    ns.ip(&["link", "set", "lo", "up"]);
    let dirs = Dirs::new("dmnot");
    let sock = dirs.work.join("notify");
    let _ = std::fs::remove_file(&sock);
    let rx = UnixDatagram::bind(&sock).expect("bind the fake NOTIFY_SOCKET");
    rx.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let good = config_text(
        &dirs,
        "skb",
        "pass",
        // A name the exposition format must escape (a quote, a backslash).
        &[(ODD_NAME, "udp dst port 9999", "drop")],
    );
    std::fs::write(dirs.config(), &good).expect("config");
    let sock_text = sock.display().to_string();
    let daemon = Daemon::start_with_env(&ns, &dirs, &[], &[("NOTIFY_SOCKET", &sock_text)]);

    // Started: READY=1 only once the program is attached.
    let ready = next(&rx);
    assert_eq!(
        ready.first().map(String::as_str),
        Some("READY=1"),
        "{ready:?}"
    );
    assert!(
        xdp_prog_id(&ns).is_some(),
        "READY=1 before the program was attached"
    );
    let status = field(&ready, "STATUS").unwrap_or_default();
    assert!(
        status.contains("enforcing 1 rules on 1 interfaces"),
        "{status}"
    );

    // A good reload through `filterd reload`: exit 0, and the pair.
    let before = xdp_prog_id(&ns);
    let (code, out, err) = filterd_reload(daemon.pid(), &dirs);
    assert_eq!(code, 0, "stdout {out}\nstderr {err}");
    assert!(out.starts_with("reloaded: 1 rules"), "{out}");
    let status = reload_messages(&rx);
    assert!(status.contains("swapped in"), "{status}");
    assert_ne!(xdp_prog_id(&ns), before, "a new program");
    let m = scrape(&ns).expect("scrape");
    well_formed(&m);
    assert!(
        parse_exposition(&m).iter().any(|(_, _, name, labels)| {
            name == "filterd_rule_packets_total"
                && labels.get("rule").map(String::as_str) == Some(ODD_NAME)
        }),
        "the rule label does not read back as {ODD_NAME:?}:\n{m}"
    );
    assert_eq!(metric(&m, "filterd_reload_last_success", ""), Some(1));
    assert!(m.contains("filterd_reload_last_timestamp_seconds "), "{m}");
    let info = format!(
        "filterd_program_info{{interface=\"v1\",mode=\"skb\",prog_id=\"{}\"}} 1",
        xdp_prog_id(&ns).unwrap_or(0)
    );
    assert!(m.lines().any(|l| l == info), "no {info} in\n{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("filterd_build_info{version=\"") && l.ends_with("\"} 1")),
        "{m}"
    );

    // A refused config: the file watcher's reload, then ours; both pairs
    // say refused, `filterd reload` exits 1 with the reason, and the
    // running program stays.
    let running = xdp_prog_id(&ns);
    let mut bad = good.clone();
    bad.push_str("\n[[rule]]\nname = \"broken\"\nmatch = \"tcp port\"\naction = \"drop\"\n");
    std::fs::write(dirs.config(), &bad).expect("bad config");
    let status = reload_messages(&rx);
    assert!(
        status.contains("refused") && status.contains("config file changed"),
        "{status}"
    );
    // The watcher may see the write more than once: let it settle, and
    // take only our reload's pair below.
    wait_until(
        "the watcher's refusal recorded",
        Duration::from_secs(20),
        || filterd::daemon::outcome::read(&dirs.state).is_some_and(|o| !o.ok),
    );
    std::thread::sleep(Duration::from_millis(500));
    rx.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 4096];
    while rx.recv(&mut buf).is_ok() {}
    rx.set_nonblocking(false).expect("blocking");
    let (code, out, err) = filterd_reload(daemon.pid(), &dirs);
    assert_eq!(code, 1, "stdout {out}\nstderr {err}");
    assert!(
        err.contains("reload refused") && err.contains("broken"),
        "{err}"
    );
    let status = reload_messages(&rx);
    assert!(
        status.contains("refused") && status.contains("SIGHUP"),
        "{status}"
    );
    assert_eq!(xdp_prog_id(&ns), running, "the running program stays");
    let m = scrape(&ns).expect("scrape");
    well_formed(&m);
    assert_eq!(metric(&m, "filterd_reload_last_success", ""), Some(0));
    // The watcher's reload (perhaps more than one) and ours.
    let failures = metric(&m, "filterd_reload_attempts_total", "result=\"failure\"");
    assert!(failures >= Some(2), "{m}");
    assert_eq!(failures, metric(&m, "filterd_reload_failures_total", ""));
    assert_eq!(
        metric(&m, "filterd_reload_attempts_total", "result=\"success\""),
        Some(1)
    );

    assert!(daemon.stop().success());
    let stopping = next(&rx);
    assert_eq!(
        stopping.first().map(String::as_str),
        Some("STOPPING=1"),
        "{stopping:?}"
    );
}

/// The text exposition format, strictly: `# HELP`/`# TYPE` lines naming
/// the metric the samples that follow belong to, each sample `name` or
/// `name{label="value",...}` then a number, and no series twice.
fn well_formed(text: &str) {
    let mut series = std::collections::BTreeSet::new();
    let mut typed = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_string()), "TYPE twice: {line}");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("not a number: {line:?}"));
        let name = key.split('{').next().unwrap_or(key);
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && name.starts_with("filterd_"),
            "{line}"
        );
        let base = name.trim_end_matches("_total");
        assert!(
            typed.contains(name) || typed.contains(base),
            "sample before its TYPE: {line}"
        );
        if let Some(labels) = key.strip_prefix(name).filter(|l| !l.is_empty()) {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
        }
        assert!(series.insert(key.to_string()), "duplicate series: {line}");
    }
    // And through a real parser of the format: prometheus_client's (in
    // Debian's Python, where `./x test` installs it), which must read every
    // sample, each of a family with a type, no name and label set twice.
    let parsed = parse_exposition(text);
    let mut seen = std::collections::BTreeSet::new();
    for (family, kind, name, labels) in &parsed {
        assert_ne!(kind, "unknown", "{family} has no TYPE");
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        assert!(
            seen.insert((name.clone(), labels.clone())),
            "duplicate series: {name} {labels:?}"
        );
    }
    assert_eq!(seen.len(), series.len(), "the parser read every sample");
}

/// A parsed sample: its family, the family's type, its name and labels.
type Parsed = (
    String,
    String,
    String,
    std::collections::BTreeMap<String, String>,
);

/// The samples prometheus_client's text parser reads from `text`.
fn parse_exposition(text: &str) -> Vec<Parsed> {
    use std::io::Write;
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = [[f.name, f.type, s.name, s.labels] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]\n\
        print(json.dumps(out))";
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (./x test installs python3-prometheus-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the parser's JSON")
}

/// `filterd reload` for a process that is not there fails with exit 2
/// and says so.
#[test]
fn reload_of_no_daemon_is_a_system_error() {
    let dirs = Dirs::new("dmnone");
    let (code, _, err) = filterd_reload(i32::MAX, &dirs);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("signalling filterd"), "{err}");
}
