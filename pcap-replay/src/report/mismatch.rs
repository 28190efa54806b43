//! The human report of one packet the engines disagree on.
//!
//! ```text
//!   mismatch: a.pcap packet 1 (byte 24): cbpf=0 ebpf-socket=96
//!     time 1.000000000  caplen 60  wire 60
//!     Ethernet 00:01:02:03:04:05 > ff:ff:ff:ff:ff:ff, IPv4 10.0.0.1 > 10.0.0.2 ...
//!     0000  ff ff ff ff ff ff 00 01 02 03 04 05 08 00 45 00
//!                                               ^^ ^^
//!     loads: 2@12
//! ```
//!
//! The `^^` marks sit under the bytes our classic interpreter loaded.

use std::fmt::Write;

use crate::replay::Mismatch;

/// Rows of the dump shown at least, and bytes per row.
const MIN_BYTES: usize = 64;
const ROW: usize = 16;

/// The mismatch's lines, each ending in a newline.
pub fn render_mismatch(file: &str, m: &Mismatch) -> String {
    let mut out = String::new();
    let rets: Vec<String> = m.rets.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let _ = writeln!(
        out,
        "  mismatch: {file} packet {} (byte {}): {}",
        m.index,
        m.offset,
        rets.join(" ")
    );
    let _ = writeln!(
        out,
        "    time {}.{:09}  caplen {}  wire {}",
        m.ts_ns / 1_000_000_000,
        m.ts_ns % 1_000_000_000,
        m.caplen,
        m.wire_len
    );
    let side = |want: bool| -> String {
        let names: Vec<&str> = m
            .matched
            .0
            .iter()
            .filter(|(_, v)| *v == want)
            .map(|(n, _)| *n)
            .collect();
        if names.is_empty() {
            "-".into()
        } else {
            names.join(" ")
        }
    };
    let _ = writeln!(out, "    match: {}  no match: {}", side(true), side(false));
    let _ = writeln!(out, "    {}", m.decode);
    let marked = |i: usize| {
        m.loads
            .iter()
            .any(|l| (l.offset..l.offset + u64::from(l.size)).contains(&(i as u64)))
    };
    let last_load = m
        .loads
        .iter()
        .map(|l| (l.offset + u64::from(l.size)) as usize)
        .filter(|end| *end <= m.head.len())
        .max()
        .unwrap_or(0);
    let shown = m
        .head
        .len()
        .min(MIN_BYTES.max(last_load.div_ceil(ROW) * ROW));
    for (row, chunk) in m.head[..shown].chunks(ROW).enumerate() {
        let base = row * ROW;
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "    {base:04x}  {}", hex.join(" "));
        if (base..base + chunk.len()).any(marked) {
            let marks: Vec<&str> = (base..base + chunk.len())
                .map(|i| if marked(i) { "^^" } else { "  " })
                .collect();
            let _ = writeln!(out, "          {}", marks.join(" ").trim_end());
        }
    }
    if m.head.len() < m.caplen as usize {
        let _ = writeln!(
            out,
            "    ({} more captured bytes not kept)",
            m.caplen as usize - m.head.len()
        );
    }
    match &m.untraced {
        Some(why) => {
            let _ = writeln!(out, "    loads: unknown: {why}");
        }
        None => {
            let loads: Vec<String> = m
                .loads
                .iter()
                .map(|l| {
                    let past = l.offset + u64::from(l.size) > u64::from(m.caplen);
                    format!(
                        "{}@{}{}",
                        l.size,
                        l.offset,
                        if past { " (past the capture)" } else { "" }
                    )
                })
                .collect();
            let list = if loads.is_empty() {
                "none".to_string()
            } else {
                loads.join(", ")
            };
            let _ = writeln!(out, "    loads: {list}");
        }
    }
    if !m.trace.is_empty() {
        let _ = writeln!(out, "    trace (our cBPF interpreter):");
        for line in &m.trace {
            let _ = writeln!(out, "      {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::Load;
    use crate::report::EngineMap;

    fn mismatch() -> Mismatch {
        let mut head: Vec<u8> = (0..70).collect();
        head[12] = 8;
        Mismatch {
            index: 1,
            offset: 24,
            ts_ns: 1_500_000_001,
            caplen: 70,
            wire_len: 1514,
            decode: "Ethernet 0c:0d:0e:0f:10:11 > 00:01:02:03:04:05, ethertype 0x080d (unknown)"
                .into(),
            rets: EngineMap(vec![("cbpf", 0), ("ebpf-socket", 96)]),
            matched: EngineMap(vec![("cbpf", false), ("ebpf-socket", true)]),
            loads: vec![
                Load {
                    offset: 12,
                    size: 2,
                },
                Load {
                    offset: 66,
                    size: 1,
                },
                Load {
                    offset: 4294963200,
                    size: 4,
                },
            ],
            head,
            trace: vec!["(000) ldh [12]".into(), "returns 0".into()],
            untraced: None,
        }
    }

    #[test]
    fn dump_marks_the_loaded_bytes() {
        let text = render_mismatch("a.pcap", &mismatch());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "  mismatch: a.pcap packet 1 (byte 24): cbpf=0 ebpf-socket=96"
        );
        assert_eq!(lines[1], "    time 1.500000001  caplen 70  wire 1514");
        assert_eq!(lines[2], "    match: ebpf-socket  no match: cbpf");
        assert!(lines[3].starts_with("    Ethernet"));
        assert_eq!(
            lines[4],
            "    0000  00 01 02 03 04 05 06 07 08 09 0a 0b 08 0d 0e 0f"
        );
        assert_eq!(lines[5], format!("{}^^ ^^", " ".repeat(10 + 12 * 3)));
        // The load at 66 extends the dump to its row (64..70) and marks it.
        assert_eq!(lines[9], "    0040  40 41 42 43 44 45");
        assert_eq!(lines[10], format!("{}^^", " ".repeat(10 + 2 * 3)));
        assert_eq!(
            lines[11],
            "    loads: 2@12, 1@66, 4@4294963200 (past the capture)"
        );
        assert_eq!(lines[12], "    trace (our cBPF interpreter):");
        assert_eq!(lines[14], "      returns 0");
    }

    #[test]
    fn untraced_programs_say_why() {
        let m = Mismatch {
            loads: vec![],
            trace: vec![],
            untraced: Some("no classic program".into()),
            ..mismatch()
        };
        let text = render_mismatch("a.pcap", &m);
        assert!(
            text.contains("    loads: unknown: no classic program\n"),
            "{text}"
        );
        assert!(!text.contains("^^"));
        // Short of 64 bytes plus loads, four rows of 16 are shown.
        assert_eq!(text.lines().filter(|l| l.starts_with("    00")).count(), 4);
    }
}
