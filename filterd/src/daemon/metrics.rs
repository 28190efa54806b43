//! Prometheus metrics over plain HTTP: one thread, one connection at a
//! time (a scrape is small and rare), `GET /metrics`.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
        "filterd_program_id",
        "gauge",
        "The kernel's id of the program attached to each interface.",
        &programs,
    );
    out
}

fn serve_one(mut stream: TcpStream, shared: &Mutex<Shared>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
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
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
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
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

/// Serves metrics from `listener` on a thread of its own, logging with
/// `dispatch` (the daemon's subscriber is per thread).
pub fn spawn(listener: TcpListener, shared: Arc<Mutex<Shared>>, dispatch: tracing::Dispatch) {
    std::thread::spawn(move || {
        let _log = tracing::dispatcher::set_default(&dispatch);
        for stream in listener.incoming() {
            match stream {
                Ok(s) => {
                    if let Err(e) = serve_one(s, &shared) {
                        tracing::debug!(error = %e, "metrics connection");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "accepting a metrics connection"),
            }
        }
    });
}
