//! libpcap's interpreter, `bpf_filter`, on the program's instructions.

use filter_programs::cbpf::Insn;

use super::{Engine, EngineError, PacketRef, Verdict};
use crate::libpcap;
use crate::program::{Code, Program};

pub struct LibpcapEngine {
    insns: Vec<Insn>,
}

impl LibpcapEngine {
    pub fn new(program: &Program) -> Result<LibpcapEngine, EngineError> {
        let Code::Cbpf(insns) = &program.code else {
            return Err(super::uncompiled("libpcap", program));
        };
        // bpf_filter trusts its program; bpf_validate is what makes the
        // unchecked call below sound.
        if !libpcap::validate(insns) {
            return Err(EngineError::Invalid {
                engine: "libpcap",
                program: program.label.clone(),
                reason: "bpf_validate refuses the program".into(),
            });
        }
        Ok(LibpcapEngine {
            insns: insns.clone(),
        })
    }
}

impl Engine for LibpcapEngine {
    fn name(&self) -> &'static str {
        "libpcap"
    }

    fn run(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        Ok(Some(Verdict::classic(libpcap::filter_validated(
            &self.insns,
            packet.data,
            packet.wire_len,
        ))))
    }
}
