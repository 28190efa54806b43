use super::*;
use crate::engine::{EngineError, EngineKind};
use crate::program::Code;
use crate::report::NdjsonVerdicts;
use capfile::{Format, Record, Writer};
use filter_programs::cbpf::Insn;

/// Accepts every packet: disagrees with a real filter on purpose.
struct AcceptAll;

impl Engine for AcceptAll {
    fn name(&self) -> &'static str {
        "accept-all"
    }
    fn run(&mut self, _: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        Ok(Some(Verdict::classic(1)))
    }
}

/// Two Ethernet frames (IPv4, then ARP) and a truncated third record.
fn capture() -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), Format::Pcap, LinkType::ETHERNET, 262_144, "").unwrap();
    for ethertype in [[0x08, 0x00], [0x08, 0x06]] {
        let mut frame = [0u8; 14];
        frame[12..].copy_from_slice(&ethertype);
        w.write(&Record {
            ts_ns: 0,
            wire_len: 60,
            data: &frame,
        })
        .unwrap();
    }
    let mut f = w.finish().unwrap();
    f.extend([0; 5]);
    f
}

#[test]
fn counts_mismatches_and_keeps_packets_before_a_fault() {
    let ip = vec![
        Insn::new(0x28, 0, 0, 12),
        Insn::new(0x15, 0, 1, 0x800),
        Insn::new(0x06, 0, 0, 96),
        Insn::new(0x06, 0, 0, 0),
    ];
    let program = Program {
        label: "ip".into(),
        expression: None,
        code: Code::Cbpf(ip),
    };
    let mut engines = vec![
        EngineKind::Libpcap.build(&program).unwrap(),
        Box::new(AcceptAll) as Box<dyn Engine>,
    ];
    let mut sink = NdjsonVerdicts::new(Vec::new());
    let bytes = capture();
    let r = replay(
        "c.pcap",
        &bytes[..],
        &program,
        &mut engines,
        ReplayOptions::default(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(r.packets, 2);
    assert_eq!(
        r.engines.0,
        [
            (
                "libpcap",
                Matched {
                    matched: 1,
                    skipped: 0,
                    ..Default::default()
                }
            ),
            (
                "accept-all",
                Matched {
                    matched: 2,
                    skipped: 0,
                    ..Default::default()
                }
            )
        ]
    );
    assert_eq!(r.mismatches, 1);
    assert_eq!(r.mismatch_samples.len(), 1);
    assert_eq!(
        (r.mismatch_samples[0].index, r.mismatch_samples[0].offset),
        (1, 54)
    );
    assert_eq!(
        r.mismatch_samples[0].rets.0,
        [("libpcap", 0), ("accept-all", 1)]
    );
    assert_eq!(r.linktype, Some(LinkType::ETHERNET));
    assert_eq!(
        r.error.as_deref(),
        Some("c.pcap: byte 84: truncated record header: need 16 bytes, file ends after 5")
    );
    let lines = String::from_utf8(sink.into_inner()).unwrap();
    assert_eq!(lines.lines().count(), 2);
    assert!(lines.contains(r#""index":1,"match":{"libpcap":false,"accept-all":true},"ret":{"libpcap":0,"accept-all":1}"#));
}

#[test]
fn linktype_override_applies_to_every_packet() {
    let program = Program {
        label: "p".into(),
        expression: None,
        code: Code::Cbpf(vec![Insn::new(0x06, 0, 0, 1)]),
    };
    let mut engines = vec![EngineKind::Libpcap.build(&program).unwrap()];
    let options = ReplayOptions {
        linktype: Some(LinkType::RAW),
        ..Default::default()
    };
    let bytes = capture();
    let r = replay(
        "c.pcap",
        &bytes[..],
        &program,
        &mut engines,
        options,
        &mut crate::report::NoVerdicts,
    )
    .unwrap();
    assert_eq!(r.linktype, Some(LinkType::RAW));
    assert_eq!(r.engines.0[0].1.matched, 2);
}

/// Fails on its `n`th packet: ends its program's file there.
struct FailAt(u64, u64);

impl Engine for FailAt {
    fn name(&self) -> &'static str {
        "fail-at"
    }
    fn run(&mut self, _: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        self.1 += 1;
        if self.1 == self.0 {
            return Err(EngineError::Run {
                engine: "fail-at",
                reason: "on purpose".into(),
            });
        }
        Ok(Some(Verdict::classic(1)))
    }
}

/// 150 IPv4 and ARP frames of varied ports and lengths, some cut short,
/// 20 of them padded to 60,000 bytes (a batch full by its bytes before
/// its count), then a truncated record: more than two batches, and an
/// error in the last.
fn long_capture() -> Vec<u8> {
    let mut rng = e2e::rng::Rng(0x2545_f491_4f6c_dd1d);
    let mut w = Writer::new(Vec::new(), Format::Pcap, LinkType::ETHERNET, 262_144, "").unwrap();
    for i in 0..150 {
        let mut f = vec![
            0u8;
            if (40..60).contains(&i) {
                60_000
            } else {
                14 + 20 + 8
            }
        ];
        let arp = rng.below(5) == 0;
        f[12..14].copy_from_slice(if arp { &[0x08, 0x06] } else { &[0x08, 0x00] });
        f[14] = 0x45;
        f[23] = rng.pick(&[6, 17, 1]);
        f[26..34].copy_from_slice(&rng.next_u64().to_be_bytes());
        f[34..36].copy_from_slice(&(rng.pick(&[22u16, 53, 80, 443])).to_be_bytes());
        f[36..38].copy_from_slice(&(rng.pick(&[22u16, 53, 80, 443])).to_be_bytes());
        let keep = if rng.below(6) == 0 { 20 } else { f.len() };
        w.write(&Record {
            ts_ns: 0,
            wire_len: f.len() as u32,
            data: &f[..keep],
        })
        .unwrap();
    }
    let mut f = w.finish().unwrap();
    f.extend([0; 7]);
    f
}

/// Many programs over one capture run in batches, program by program:
/// each program's result (counts, mismatches, where it ended and why) and
/// verdict lines are what replaying it alone gives.
#[test]
fn many_programs_in_batches_give_what_each_alone_gives() {
    let exprs = [
        "ip",
        "arp",
        "tcp",
        "udp",
        "icmp",
        "port 80",
        "tcp dst port 443",
        "udp port 53",
        "src net 10.0.0.0/8",
        "host 1.2.3.4 or port 22",
        "not tcp",
        "ip[2:2] > 30",
    ];
    assert!(exprs.len() >= Batch::PROGRAMS);
    let programs: Vec<Program> = exprs
        .iter()
        .map(|e| Program {
            label: e.to_string(),
            expression: Some(e.to_string()),
            code: Code::Expr(e.to_string()),
        })
        .collect();
    // Our interpreter and libpcap; the third program's third engine fails
    // on its 100th packet (in the second batch), the fifth's on its 10th.
    let engines = |k: usize, p: &Program| -> Vec<Box<dyn Engine>> {
        let mut e = vec![
            EngineKind::Cbpf.build(p).unwrap(),
            EngineKind::Libpcap.build(p).unwrap(),
        ];
        match k {
            2 => e.push(Box::new(FailAt(100, 0))),
            4 => e.push(Box::new(FailAt(10, 0))),
            _ => e.push(Box::new(AcceptAll)),
        }
        e
    };
    let bytes = long_capture();
    let mut sets: Vec<_> = (programs.iter().enumerate())
        .map(|(k, p)| engines(k, p))
        .collect();
    let mut sinks: Vec<_> = programs
        .iter()
        .map(|_| NdjsonVerdicts::new(Vec::new()))
        .collect();
    let mut jobs: Vec<Job<'_, '_>> = (programs.iter().zip(&mut sets).zip(&mut sinks))
        .map(|((p, e), s)| Job {
            result: FileResult::empty("c.pcap", p, e, None),
            program: p,
            engines: e,
            sink: Some(s as &mut dyn VerdictSink),
        })
        .collect();
    replay_many("c.pcap", &bytes[..], &mut jobs, ReplayOptions::default()).unwrap();
    let together: Vec<FileResult> = jobs.into_iter().map(|j| j.result).collect();
    let lines: Vec<Vec<u8>> = sinks.into_iter().map(NdjsonVerdicts::into_inner).collect();
    for (k, p) in programs.iter().enumerate() {
        let mut alone_sink = NdjsonVerdicts::new(Vec::new());
        let alone = replay(
            "c.pcap",
            &bytes[..],
            p,
            &mut engines(k, p),
            ReplayOptions::default(),
            &mut alone_sink,
        )
        .unwrap();
        let r = &together[k];
        assert_eq!(
            (r.packets, &r.engines, r.mismatches, &r.error),
            (
                alone.packets,
                &alone.engines,
                alone.mismatches,
                &alone.error
            ),
            "{}",
            p.label
        );
        let samples = |r: &FileResult| -> Vec<(u64, u64)> {
            r.mismatch_samples
                .iter()
                .map(|m| (m.index, m.offset))
                .collect()
        };
        assert_eq!(samples(r), samples(&alone), "{}", p.label);
        assert_eq!(lines[k], alone_sink.into_inner(), "{}", p.label);
    }
    assert_eq!(together[0].packets, 150);
    assert_eq!(together[2].packets, 99);
    assert_eq!(together[4].packets, 9);
    assert!(together[0]
        .error
        .as_deref()
        .unwrap()
        .contains("truncated record header"));
    assert!(together[2].error.as_deref().unwrap().contains("on purpose"));
}
