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
