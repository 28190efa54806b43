//! libpcap's interpreter, `bpf_filter`, on the program's instructions.

use libpcap_oracle::Validated;

use super::{Engine, EngineError, PacketRef, Verdict};
use crate::program::{Code, Program};

pub struct LibpcapEngine {
    program: Validated,
}

impl LibpcapEngine {
    pub fn new(program: &Program) -> Result<LibpcapEngine, EngineError> {
        let Code::Cbpf(insns) = &program.code else {
            return Err(super::uncompiled("libpcap", program));
        };
        // bpf_filter trusts its program; only what bpf_validate accepts runs.
        let Some(validated) = Validated::new(insns) else {
            return Err(EngineError::Invalid {
                engine: "libpcap",
                program: program.label.clone(),
                reason: "bpf_validate refuses the program".into(),
            });
        };
        Ok(LibpcapEngine { program: validated })
    }
}

impl Engine for LibpcapEngine {
    fn name(&self) -> &'static str {
        "libpcap"
    }

    fn run(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        Ok(Some(Verdict::classic(
            self.program.filter(packet.data, packet.wire_len),
        )))
    }
}
