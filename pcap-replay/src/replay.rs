//! One program over one capture, in every engine, packet by packet.

use std::io::Read;

use serde::Serialize;

use crate::capture::{self, LinkType, Packet};
use crate::engine::{Engine, PacketRef, Verdict};
use crate::program::Program;
use crate::report::{EngineMap, Matched, VerdictSink};

/// How many disagreeing packets a result keeps for the human report.
const MISMATCH_SAMPLES: usize = 10;

/// The outcome of one program over one capture. Serializes as one entry
/// of the JSON report's `results`, in this field order.
#[derive(Clone, Debug, Serialize)]
pub struct FileResult {
    pub file: String,
    pub expression: Option<String>,
    pub program: String,
    pub linktype: Option<LinkType>,
    pub packets: u64,
    pub engines: EngineMap<Matched>,
    pub mismatches: u64,
    /// Why reading (or an engine) stopped early. Packets before the fault
    /// are counted above.
    pub error: Option<String>,
    /// The first few disagreeing packets.
    #[serde(skip)]
    pub mismatch_samples: Vec<Mismatch>,
}

impl FileResult {
    /// A result before any packet: every count zero.
    pub fn empty(
        file: &str,
        program: &Program,
        engines: &[Box<dyn Engine>],
        linktype: Option<LinkType>,
    ) -> FileResult {
        FileResult {
            file: file.to_string(),
            expression: program.expression.clone(),
            program: program.label.clone(),
            linktype,
            packets: 0,
            engines: EngineMap(
                engines
                    .iter()
                    .map(|e| (e.name(), Matched { matched: 0, skipped: 0 }))
                    .collect(),
            ),
            mismatches: 0,
            error: None,
            mismatch_samples: Vec::new(),
        }
    }
}

/// A packet the engines disagree on.
#[derive(Clone, Debug)]
pub struct Mismatch {
    pub index: u64,
    pub offset: u64,
    pub rets: EngineMap<u32>,
}

/// Settings shared by every file of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplayOptions {
    /// Treat every packet as this link type, whatever the capture says.
    pub linktype: Option<LinkType>,
    pub capture: capture::Options,
}

/// Replays `program` over the capture in `reader` (called `file` in
/// reports and errors) through `engines`, sending each packet's verdicts
/// to `sink`. Never fails: a capture error ends the file and is recorded
/// in the result; a sink error is returned for the caller to stop on.
pub fn replay<R: Read>(
    file: &str,
    reader: R,
    program: &Program,
    engines: &mut [Box<dyn Engine>],
    options: ReplayOptions,
    sink: &mut dyn VerdictSink,
) -> std::io::Result<FileResult> {
    let mut result = FileResult::empty(file, program, engines, options.linktype);
    let capture = match capture::open_with(file, reader, options.capture) {
        Ok(c) => c,
        Err(e) => {
            result.error = Some(e.to_string());
            return Ok(result);
        }
    };
    if result.linktype.is_none() {
        result.linktype = capture.linktype();
    }
    let mut rets = Vec::with_capacity(engines.len());
    for item in capture {
        let mut packet = match item {
            Ok(p) => p,
            Err(e) => {
                result.error = Some(e.to_string());
                break;
            }
        };
        if let Some(lt) = options.linktype {
            packet.linktype = lt;
        }
        note_linktype(&mut result, &packet);
        rets.clear();
        let view = PacketRef {
            data: &packet.data,
            wire_len: packet.wire_len,
            linktype: packet.linktype,
        };
        for engine in engines.iter_mut() {
            match engine.run(&view) {
                Ok(Some(v)) => rets.push((engine.name(), v)),
                Ok(None) => skip(&mut result, engine.name()),
                Err(e) => {
                    result.error = Some(format!("{file}: packet {}: {e}", packet.index));
                    return Ok(result);
                }
            }
        }
        result.packets += 1;
        tally(&mut result, &packet, &rets);
        sink.verdict(&result, packet.index, &rets)?;
    }
    Ok(result)
}

/// The result's link type is the first packet's; mixed link types in one
/// pcapng file are legal but worth a warning, since one cBPF program
/// assumes one layout.
fn note_linktype(result: &mut FileResult, packet: &Packet) {
    match result.linktype {
        None => result.linktype = Some(packet.linktype),
        Some(lt) if lt != packet.linktype => {
            tracing::warn!(
                file = result.file,
                packet = packet.index,
                "link type {} differs from the file's first ({lt})",
                packet.linktype
            );
        }
        Some(_) => {}
    }
}

fn skip(result: &mut FileResult, engine: &str) {
    if let Some((_, count)) = result.engines.0.iter_mut().find(|(n, _)| *n == engine) {
        count.skipped += 1;
    }
}

fn tally(result: &mut FileResult, packet: &Packet, rets: &[(&'static str, Verdict)]) {
    for (name, v) in rets {
        let count = result.engines.0.iter_mut().find(|(n, _)| n == name);
        if let (Some((_, count)), true) = (count, v.matched) {
            count.matched += 1;
        }
    }
    let first = rets.first().map(|(_, v)| v.matched);
    if rets.iter().any(|(_, v)| Some(v.matched) != first) {
        result.mismatches += 1;
        tracing::debug!(
            file = result.file,
            packet = packet.index,
            ?rets,
            "engines disagree"
        );
        if result.mismatch_samples.len() < MISMATCH_SAMPLES {
            let rets = EngineMap(rets.iter().map(|(n, v)| (*n, v.ret)).collect());
            result.mismatch_samples.push(Mismatch {
                index: packet.index,
                offset: packet.offset,
                rets,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineError, EngineKind};
    use crate::program::Code;
    use crate::report::NdjsonVerdicts;
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
        let mut f = vec![
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0,
        ];
        for ethertype in [[0x08, 0x00], [0x08, 0x06]] {
            let mut frame = [0u8; 14];
            frame[12..].copy_from_slice(&ethertype);
            for x in [0u32, 0, 14, 60] {
                f.extend(x.to_le_bytes());
            }
            f.extend(frame);
        }
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
                ("libpcap", Matched { matched: 1, skipped: 0 }),
                ("accept-all", Matched { matched: 2, skipped: 0 })
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
}
