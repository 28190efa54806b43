//! Prometheus metrics over plain HTTP, `GET /metrics`.
//!
//! A scrape is small and rare, but the port is open to whoever can reach
//! it, so a client gets a bounded share: each connection has one deadline
//! for its whole request and response (a client that sends a byte a
//! second cannot stretch it), and at most [`MAX_CONNECTIONS`] are served
//! at once; more are closed at once rather than queued behind a slow one.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time a connection has for its whole request and response.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 4;
/// Longest request head read; a longer one is answered from what came.
const MAX_REQUEST: usize = 8192;

use super::Shared;

/// Escapes a label value as the text exposition format requires.
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// The exposition text of the daemon's state.
pub fn render(shared: &Shared) -> String {
    let mut out = String::new();
    let mut packets = String::new();
    let mut bytes = String::new();
    let mut programs = String::new();
    let mut infos = String::new();
    for e in &shared.interfaces {
        let totals = match e.totals() {
            Ok(t) => t,
            Err(err) => {
                tracing::error!(interface = %e.ifname, error = %err, "reading counters for metrics");
                continue;
            }
        };
        for r in &e.rules {
            let [p, b] = totals.get(&r.name).copied().unwrap_or([0, 0]);
            let labels = format!(
                "interface=\"{}\",rule=\"{}\",action=\"{}\"",
                label(&e.ifname),
                label(&r.name),
                label(&r.action)
            );
            let _ = writeln!(packets, "filterd_rule_packets_total{{{labels}}} {p}");
            let _ = writeln!(bytes, "filterd_rule_bytes_total{{{labels}}} {b}");
        }
        let _ = writeln!(
            programs,
            "filterd_program_id{{interface=\"{}\",mode=\"{}\"}} {}",
            label(&e.ifname),
            e.mode.name(),
            e.prog_id
        );
        let _ = writeln!(
            infos,
            "filterd_program_info{{interface=\"{}\",mode=\"{}\",prog_id=\"{}\"}} 1",
            label(&e.ifname),
            e.mode.name(),
            e.prog_id
        );
    }
    let metric = |out: &mut String, name: &str, kind: &str, help: &str, body: &str| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{body}");
    };
    metric(
        &mut out,
        "filterd_rule_packets_total",
        "counter",
        "Packets a rule matched (the default: none did), across reloads.",
        &packets,
    );
    metric(
        &mut out,
        "filterd_rule_bytes_total",
        "counter",
        "Bytes of the packets a rule matched, across reloads.",
        &bytes,
    );
    metric(
        &mut out,
        "filterd_reloads_total",
        "counter",
        "Reloads that swapped in a new program.",
        &format!("filterd_reloads_total {}\n", shared.reloads),
    );
    metric(
        &mut out,
        "filterd_reload_failures_total",
        "counter",
        "Reloads refused (bad config, verifier, attach); the running program stayed.",
        &format!("filterd_reload_failures_total {}\n", shared.failures),
    );
    metric(
        &mut out,
        "filterd_reload_attempts_total",
        "counter",
        "Reloads by result: success (a new program swapped in) or failure (refused; the running program stayed).",
        &format!(
            "filterd_reload_attempts_total{{result=\"success\"}} {}\n\
             filterd_reload_attempts_total{{result=\"failure\"}} {}\n",
            shared.reloads, shared.failures
        ),
    );
    metric(
        &mut out,
        "filterd_program_id",
        "gauge",
        "The kernel's id of the program attached to each interface (deprecated: filterd_program_info).",
        &programs,
    );
    metric(
        &mut out,
        "filterd_program_info",
        "gauge",
        "The program attached to each interface: its mode and kernel id, as labels; always 1.",
        &infos,
    );
    metric(
        &mut out,
        "filterd_build_info",
        "gauge",
        "The running filterd's version, as a label; always 1.",
        &format!(
            "filterd_build_info{{version=\"{}\"}} 1\n",
            label(env!("CARGO_PKG_VERSION"))
        ),
    );
    if let Some((ok, at)) = shared.last_reload {
        metric(
            &mut out,
            "filterd_reload_last_success",
            "gauge",
            "Whether the last reload swapped in its program (1) or was refused (0).",
            &format!("filterd_reload_last_success {}\n", u8::from(ok)),
        );
        metric(
            &mut out,
            "filterd_reload_last_timestamp_seconds",
            "gauge",
            "When the last reload ended, in seconds since the epoch.",
            &format!("filterd_reload_last_timestamp_seconds {at:.3}\n"),
        );
    }
    out
}

/// `/healthz`: healthy while every interface runs the program the daemon
/// attached (someone's `ip link set dev X xdp off` makes it unhealthy, and
/// a liveness probe then restarts the daemon, which attaches again). One
/// line per interface.
pub fn health(shared: &Shared) -> (bool, String) {
    let mut healthy = !shared.interfaces.is_empty();
    let mut body = String::new();
    for e in &shared.interfaces {
        match e.running_mode() {
            Some(mode) => {
                let _ = writeln!(body, "ok {}: program {} ({mode})", e.ifname, e.prog_id);
            }
            None => {
                healthy = false;
                let _ = writeln!(
                    body,
                    "down {}: program {} is not attached",
                    e.ifname, e.prog_id
                );
            }
        }
    }
    if shared.interfaces.is_empty() {
        body.push_str("down: no interface enforced\n");
    }
    (healthy, body)
}

/// Reads a request head until its blank line, [`MAX_REQUEST`] bytes, the
/// end of the stream or `deadline`, whichever comes first.
fn read_request(stream: &mut TcpStream, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request deadline passed",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

fn serve_one(mut stream: TcpStream, shared: &Mutex<Shared>) -> io::Result<()> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let buf = read_request(&mut stream, deadline)?;
    let request = String::from_utf8_lossy(&buf);
    let mut words = request.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, kind, body) = match (method, path) {
        ("GET", "/metrics") => {
            let body = match shared.lock() {
                Ok(s) => render(&s),
                Err(poisoned) => render(&poisoned.into_inner()),
            };
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
        }
        ("GET", "/healthz") => {
            let (healthy, body) = match shared.lock() {
                Ok(s) => health(&s),
                Err(poisoned) => health(&poisoned.into_inner()),
            };
            let status = if healthy {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            (status, "text/plain; charset=utf-8", body)
        }
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let left = deadline.saturating_duration_since(Instant::now());
    stream.set_write_timeout(Some(left.max(Duration::from_millis(1))))?;
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

/// Counts a served connection for as long as it lives.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(active: &Arc<AtomicUsize>) -> Option<Slot> {
        let taken = active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_CONNECTIONS).then_some(n + 1)
        });
        taken.ok().map(|_| Slot(Arc::clone(active)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves metrics from `listener` on a thread of its own, each connection
/// on a thread of its own up to [`MAX_CONNECTIONS`], logging with
/// `dispatch` (the daemon's subscriber is per thread).
pub fn spawn(listener: TcpListener, shared: Arc<Mutex<Shared>>, dispatch: tracing::Dispatch) {
    std::thread::spawn(move || {
        let _log = tracing::dispatcher::set_default(&dispatch);
        let active = Arc::new(AtomicUsize::new(0));
        for stream in listener.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a metrics connection");
                    continue;
                }
            };
            let Some(slot) = Slot::take(&active) else {
                tracing::debug!("metrics: {MAX_CONNECTIONS} connections busy, one refused");
                continue;
            };
            let (shared, dispatch) = (Arc::clone(&shared), dispatch.clone());
            std::thread::spawn(move || {
                let _log = tracing::dispatcher::set_default(&dispatch);
                let _slot = slot;
                if let Err(e) = serve_one(stream, &shared) {
                    tracing::debug!(error = %e, "metrics connection");
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    fn server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            interfaces: Vec::new(),
            reloads: 3,
            failures: 1,
            last_reload: Some((false, 1_700_000_000.25)),
        };
        spawn(
            listener,
            Arc::new(Mutex::new(shared)),
            tracing::Dispatch::none(),
        );
        addr
    }

    fn scrape(addr: std::net::SocketAddr) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    }

    /// The reload counters, the last reload's result and time, and the
    /// build's version.
    #[test]
    fn reload_state_and_build_info_are_rendered() {
        let m = scrape(server());
        for line in [
            "filterd_reloads_total 3",
            "filterd_reload_failures_total 1",
            "filterd_reload_attempts_total{result=\"success\"} 3",
            "filterd_reload_attempts_total{result=\"failure\"} 1",
            "filterd_reload_last_success 0",
            "filterd_reload_last_timestamp_seconds 1700000000.250",
            "# TYPE filterd_build_info gauge",
            "# TYPE filterd_program_info gauge",
        ] {
            assert!(m.lines().any(|l| l == line), "no {line:?} in\n{m}");
        }
        let build = format!(
            "filterd_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(m.lines().any(|l| l == build), "{m}");
    }

    /// A client that trickles its request is cut off at the deadline,
    /// however often it sends, and never holds up a scrape meanwhile.
    #[test]
    fn a_slow_client_is_cut_off_and_holds_nobody_up() {
        let addr = server();
        let mut slow = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        let trickle = std::thread::spawn(move || {
            for _ in 0..40 {
                if slow.write_all(b"G").is_err() {
                    return Instant::now();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let mut rest = Vec::new();
            let _ = slow.read_to_end(&mut rest);
            Instant::now()
        });
        std::thread::sleep(Duration::from_millis(200));
        let body = scrape(addr);
        assert!(body.contains("filterd_reloads_total 3"), "{body}");
        assert!(
            started.elapsed() < REQUEST_DEADLINE,
            "the scrape waited for the slow client"
        );
        let cut = trickle.join().unwrap().duration_since(started);
        assert!(
            cut < REQUEST_DEADLINE + Duration::from_secs(1),
            "held for {cut:?}"
        );
    }

    /// More idle connections than the cap: the extra ones are closed at
    /// once, and once the idle ones time out the server answers again.
    #[test]
    fn connections_beyond_the_cap_are_closed() {
        let addr = server();
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut extra = TcpStream::connect(addr).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let mut buf = [0u8; 16];
        let n = extra.read(&mut buf);
        assert!(matches!(n, Ok(0)) || n.is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset));
        std::thread::sleep(REQUEST_DEADLINE + Duration::from_millis(300));
        assert!(scrape(addr).contains("200 OK"));
        drop(idle);
    }
}
