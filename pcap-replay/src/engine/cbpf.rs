//! Our reference interpreter.

use std::sync::Arc;

use filter_programs::cbpf::interp;

use super::{Engine, EngineError, PacketRef, Verdict};
use crate::program::{Code, Program};

pub struct CbpfEngine {
    /// Shared: the engines of every capture replayed with this program
    /// and link type run one compiled form (see `expr`).
    program: Arc<interp::Program>,
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
        Ok(CbpfEngine {
            program: Arc::new(compiled),
        })
    }

    /// An engine over an interpreter program already built.
    pub fn shared(program: Arc<interp::Program>) -> CbpfEngine {
        CbpfEngine { program }
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
