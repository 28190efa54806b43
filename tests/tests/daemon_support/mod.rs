//! Shared by the `filterd run` tests: a daemon started inside a test's
//! network namespace (nsenter keeps the host's /sys, so its bpffs pins are
//! visible to the test), its metrics and stats, and cleanup of its pins and
//! state even when the test panics. A module of each of those tests (not
//! of the support library) because it reaches filterd, which the library
//! must not depend on.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::net::Netns;

pub const METRICS: &str = "127.0.0.1:9977";

/// Pin and state directories of one test, removed on drop.
pub struct Dirs {
    pub pin: PathBuf,
    pub state: PathBuf,
    pub work: PathBuf,
}

impl Dirs {
    pub fn new(tag: &str) -> Dirs {
        let id = format!("filterd-test-{tag}-{}", std::process::id());
        let d = Dirs {
            pin: Path::new("/sys/fs/bpf").join(&id),
            state: std::env::temp_dir().join(format!("{id}-state")),
            work: std::env::temp_dir().join(format!("{id}-work")),
        };
        d.cleanup();
        std::fs::create_dir_all(&d.work).expect("work dir");
        d
    }

    pub fn config(&self) -> PathBuf {
        self.work.join("filterd.toml")
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.pin);
        let _ = std::fs::remove_dir_all(&self.state);
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        self.cleanup();
    }
}

pub fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A config for interface v1 of the test's namespace.
pub fn config_text(dirs: &Dirs, mode: &str, default: &str, rules: &[(&str, &str, &str)]) -> String {
    let mut t = format!(
        "[daemon]\npin = {}\nmetrics = {}\n\n[[interface]]\nname = \"v1\"\nmode = \"{mode}\"\ndefault = \"{default}\"\n",
        quoted(&dirs.pin.display().to_string()),
        quoted(METRICS)
    );
    for (name, expr, action) in rules {
        t.push_str(&format!(
            "\n[[rule]]\nname = {}\nmatch = {}\naction = \"{action}\"\n",
            quoted(name),
            quoted(expr)
        ));
    }
    t
}

/// `filterd run` in the namespace; SIGTERM and a wait on drop.
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(ns: &Netns, dirs: &Dirs, extra: &[&str]) -> Daemon {
        Daemon::start_with_env(ns, dirs, extra, &[])
    }

    /// [`Daemon::start`] with environment variables (`NOTIFY_SOCKET`).
    pub fn start_with_env(ns: &Netns, dirs: &Dirs, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_wrapped(ns, dirs, extra, env, &[])
    }

    /// [`Daemon::start_with_env`] under a wrapper command (`wrapper[0]`
    /// with its arguments, then `nsenter ... filterd run ...`).
    pub fn start_wrapped(
        ns: &Netns,
        dirs: &Dirs,
        extra: &[&str],
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Daemon {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = dirs.work.join(format!("daemon-{n}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg("nsenter");
                c
            }
            None => Command::new("nsenter"),
        };
        let child = cmd
            .arg(format!("--net={}", ns.path()))
            .arg(e2e::bin("filterd"))
            .args(["run", "--log-format", "json", "--state-dir"])
            .arg(&dirs.state)
            .args(extra)
            .arg(dirs.config())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn nsenter filterd run");
        let mut d = Daemon {
            child: Some(child),
            log,
        };
        d.wait_ready(ns);
        d
    }

    fn wait_ready(&mut self, ns: &Netns) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "filterd run exited with {status} at start:\n{}",
                        self.log_text()
                    );
                }
            }
            if scrape(ns).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("filterd run never served metrics:\n{}", self.log_text());
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("running")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let mut c = self.child.take().expect("running");
        let t = Instant::now();
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = c.kill();
                panic!("filterd did not stop on SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One GET of `path` from the daemon's HTTP endpoint: status line and body.
pub fn http_get(ns: &Netns, path: &str) -> Option<(String, String)> {
    ns.enter(|| {
        let mut s = std::net::TcpStream::connect(METRICS).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        Some((head.lines().next()?.to_string(), body.to_string()))
    })
}

pub fn scrape(ns: &Netns) -> Option<String> {
    http_get(ns, "/metrics").map(|(_, body)| body)
}

/// The value of the sample `name{labels}` (labels exactly as rendered,
/// or "" for none).
pub fn metric(text: &str, name: &str, labels: &str) -> Option<u64> {
    let key = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

/// `filterd stats --json` for the test's pins.
pub fn stats(dirs: &Dirs) -> serde_json::Value {
    let out = Command::new(e2e::bin("filterd"))
        .args(["stats", "--json", "--pin"])
        .arg(&dirs.pin)
        .arg("--state-dir")
        .arg(&dirs.state)
        .output()
        .expect("filterd stats");
    assert!(
        out.status.success(),
        "filterd stats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stats JSON")
}

/// Per rule name: (packets, bytes) of interface v1 in a stats document.
pub fn stats_counts(doc: &serde_json::Value) -> Vec<(String, u64, u64)> {
    doc["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["interface"] == "v1"))
        .and_then(|i| i["rules"].as_array())
        .map(|rules| {
            rules
                .iter()
                .map(|r| {
                    let n = |k: &str| r[k].as_u64().unwrap_or(0);
                    (
                        r["name"].as_str().unwrap_or("").to_string(),
                        n("packets"),
                        n("bytes"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The XDP program id the kernel reports on v1, if any.
pub fn xdp_prog_id(ns: &Netns) -> Option<u32> {
    ns.enter(|| {
        let links = bpf_kernel::netlink::links().expect("netlink");
        links
            .into_iter()
            .find(|l| l.name == "v1")
            .and_then(|l| l.xdp.first().map(|(_, id)| *id))
    })
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An Ethernet/IPv4/UDP frame from 10.1.0.1 to 10.2.0.2 with the test's
/// source MAC (sequence `seq`).
pub fn udp_frame(seq: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0x5e, 0xff, 0, 0, 1];
    f.extend_from_slice(&e2e::frames::SRC_OUI);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0x08, 0x00]);
    let ip = [
        0x45, 0, 0, 36, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 1, 10, 2, 0, 2,
    ];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&4000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 16, 0, 0]);
    f.extend_from_slice(&[0xab; 8]);
    f
}

/// The UDP destination port of a frame made by [`udp_frame`].
pub fn udp_dport(frame: &[u8]) -> Option<u16> {
    (frame.len() >= 38 && frame[12..14] == [0x08, 0x00] && frame[23] == 17)
        .then(|| u16::from_be_bytes([frame[36], frame[37]]))
}
