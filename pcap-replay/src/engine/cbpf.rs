//! Our reference interpreter.

use filter_programs::cbpf::interp;

use super::{Engine, EngineError, PacketRef, Verdict};
use crate::program::{Code, Program};

pub struct CbpfEngine {
    program: interp::Program,
}

impl CbpfEngine {
    pub fn new(program: &Program) -> Result<CbpfEngine, EngineError> {
        let Code::Cbpf(insns) = &program.code else {
            return Err(super::uncompiled("cbpf", program));
        };
        let compiled = interp::Program::new(insns).map_err(|e| EngineError::Invalid {
            engine: "cbpf",
            program: program.label.clone(),
            reason: e.to_string(),
        })?;
        Ok(CbpfEngine { program: compiled })
    }
}

impl Engine for CbpfEngine {
    fn name(&self) -> &'static str {
        "cbpf"
    }

    fn run(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        Ok(Some(Verdict::classic(
            self.program.run(packet.data, packet.wire_len),
        )))
    }
}
