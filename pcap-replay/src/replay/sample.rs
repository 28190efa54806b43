//! What the report keeps about a packet the engines disagree on: enough to
//! explain it without the capture at hand.
//!
//! The bytes the program loaded come from our classic interpreter's trace
//! of the program the `cbpf` engine runs: the `--cbpf` program itself, or
//! our compiler's program for an expression at the packet's link type. An
//! eBPF object has no classic program, so its report has no marks.

use std::collections::HashMap;

use filter_programs::cbpf::interp::{self, TraceStep};
use filter_programs::cbpf::text;
use filter_programs::codegen::{self, Dlt};
use serde::Serialize;

use crate::engine::Verdict;
use crate::program::{Code, Program};
use crate::report::EngineMap;
use capfile::{LinkType, Packet};

/// How many leading bytes of the packet the report keeps for its dump.
pub const HEAD_BYTES: usize = 256;

/// A packet load the program made: `size` bytes at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Load {
    pub offset: u64,
    pub size: u32,
}

/// A packet the engines disagree on.
#[derive(Clone, Debug, Serialize)]
pub struct Mismatch {
    pub index: u64,
    /// Byte offset of its record in the file.
    pub offset: u64,
    pub ts_ns: u64,
    pub caplen: u32,
    pub wire_len: u32,
    pub decode: String,
    /// Each engine's return value.
    #[serde(rename = "ret")]
    pub rets: EngineMap<u32>,
    /// Each engine's verdict (an XDP or tc return value is an action).
    #[serde(rename = "match")]
    pub matched: EngineMap<bool>,
    /// The packet loads of our interpreter's run, in order.
    pub loads: Vec<Load>,
    /// The first bytes of the packet.
    #[serde(skip)]
    pub head: Vec<u8>,
    /// `--trace`: one line per executed instruction.
    #[serde(skip)]
    pub trace: Vec<String>,
    /// Why there are no loads or trace, when there are none.
    #[serde(skip)]
    pub untraced: Option<String>,
}

/// Traces the classic program for mismatching packets.
pub struct Tracer {
    source: Source,
    /// Keep the instruction trace, not only the loads.
    full: bool,
}

enum Source {
    Classic(interp::Program),
    /// Compiled per link type on first need; `Err` says why it cannot be.
    Expr {
        expr: String,
        per_linktype: HashMap<LinkType, Result<interp::Program, String>>,
    },
    None(String),
}

impl Tracer {
    pub fn new(program: &Program, full: bool) -> Tracer {
        let source = match &program.code {
            Code::Cbpf(insns) => Source::Classic(interp::Program::new_unvalidated(insns)),
            Code::Expr(e) => Source::Expr {
                expr: e.clone(),
                per_linktype: HashMap::new(),
            },
            Code::Ebpf { .. } => {
                Source::None("no classic program to trace (an eBPF object)".into())
            }
        };
        Tracer { source, full }
    }

    fn program(&mut self, lt: LinkType) -> Result<&interp::Program, String> {
        match &mut self.source {
            Source::Classic(p) => Ok(p),
            Source::None(why) => Err(why.clone()),
            Source::Expr { expr, per_linktype } => per_linktype
                .entry(lt)
                .or_insert_with(|| {
                    let cg = Dlt::from_dlt(lt.to_dlt())
                        .ok_or_else(|| format!("our compiler has no link type {lt}"))?;
                    let insns = codegen::compile(expr, &codegen::Options::new(cg))
                        .map_err(|e| e.render())?;
                    Ok(interp::Program::new_unvalidated(&insns))
                })
                .as_ref()
                .map_err(Clone::clone),
        }
    }

    /// The report's record of `packet`, given each engine's return value.
    pub fn explain(&mut self, packet: &Packet, verdicts: &[(&'static str, Verdict)]) -> Mismatch {
        let full = self.full;
        let mut m = Mismatch {
            index: packet.index,
            offset: packet.offset,
            ts_ns: packet.ts_ns,
            caplen: packet.data.len() as u32,
            wire_len: packet.wire_len,
            decode: packet_summary::describe(packet.linktype, &packet.data),
            rets: EngineMap(verdicts.iter().map(|(n, v)| (*n, v.ret)).collect()),
            matched: EngineMap(verdicts.iter().map(|(n, v)| (*n, v.matched)).collect()),
            loads: Vec::new(),
            head: packet.data[..packet.data.len().min(HEAD_BYTES)].to_vec(),
            trace: Vec::new(),
            untraced: None,
        };
        match self.program(packet.linktype) {
            Ok(prog) => {
                let (ret, steps) = prog.trace(&packet.data, packet.wire_len);
                m.loads = steps
                    .iter()
                    .filter_map(|s| s.load)
                    .map(|l| Load {
                        offset: l.offset,
                        size: l.size,
                    })
                    .collect();
                if full {
                    m.trace = steps.iter().map(step_line).collect();
                    m.trace.push(format!("returns {ret}"));
                }
            }
            Err(why) => m.untraced = Some(why),
        }
        m
    }
}

/// One trace line: the instruction as `tcpdump -d` prints it, the
/// registers after it, and the bytes it loaded.
fn step_line(s: &TraceStep) -> String {
    // tcpdump separates the jump targets with a tab; spaces keep columns.
    let image = text::image(&s.insn, s.pc).replace('\t', "  ");
    let mut line = format!("{image:<44} A={:#x} X={:#x}", s.a, s.x);
    if let Some(l) = s.load {
        line.push_str(&format!(" load {}@{}", l.size, l.offset));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_programs::cbpf::Insn;

    #[test]
    fn loads_and_trace_of_a_classic_program() {
        // ldh [12]; jeq #0x800 jt 2 jf 3; ret #96; ret #0
        let insns = vec![
            Insn::new(0x28, 0, 0, 12),
            Insn::new(0x15, 0, 1, 0x800),
            Insn::new(0x06, 0, 0, 96),
            Insn::new(0x06, 0, 0, 0),
        ];
        let program = Program {
            label: "p".into(),
            expression: None,
            code: Code::Cbpf(insns),
        };
        let mut data = vec![0u8; 34];
        data[12] = 8;
        let packet = Packet {
            index: 3,
            offset: 100,
            ts_ns: 5,
            data,
            wire_len: 60,
            linktype: LinkType::ETHERNET,
        };
        let m = Tracer::new(&program, true).explain(
            &packet,
            &[("cbpf", Verdict::classic(96)), ("x", Verdict::classic(0))],
        );
        assert_eq!(m.matched.0, [("cbpf", true), ("x", false)]);
        assert_eq!(
            m.loads,
            [Load {
                offset: 12,
                size: 2
            }]
        );
        assert_eq!((m.caplen, m.wire_len, m.index), (34, 60, 3));
        assert_eq!(m.trace.len(), 4);
        assert!(
            m.trace[0].starts_with("(000) ldh      [12]"),
            "{}",
            m.trace[0]
        );
        assert!(
            m.trace[0].ends_with("A=0x800 X=0x0 load 2@12"),
            "{}",
            m.trace[0]
        );
        assert_eq!(m.trace[3], "returns 96");
        assert!(m.decode.starts_with("Ethernet"));
        // Without --trace only the loads are kept.
        let m = Tracer::new(&program, false).explain(&packet, &[]);
        assert!(m.trace.is_empty() && m.loads.len() == 1);
    }

    #[test]
    fn expressions_are_traced_through_our_compiler() {
        let program = crate::program::from_expression("ip", "-e");
        let packet = Packet {
            index: 0,
            offset: 24,
            ts_ns: 0,
            data: vec![0; 14],
            wire_len: 14,
            linktype: LinkType::ETHERNET,
        };
        let m = Tracer::new(&program, false).explain(&packet, &[]);
        assert_eq!(
            m.loads,
            [Load {
                offset: 12,
                size: 2
            }]
        );
        let m = Tracer::new(&program, false).explain(
            &Packet {
                linktype: LinkType(147),
                ..packet
            },
            &[],
        );
        assert!(m.untraced.is_some());
    }
}
