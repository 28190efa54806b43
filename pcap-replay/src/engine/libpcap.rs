//! libpcap's interpreter, `bpf_filter`, on the program's instructions.
//!
//! `bpf_filter` trusts its program, so the engine takes only what
//! [`Validated`] lets through: our validator's verdict under libpcap's
//! rules, then `bpf_validate`, then only opcodes `bpf_filter` implements
//! (it aborts on `ret x` and on codes with stray bits, which
//! `bpf_validate` passes), and no loop without a way out (`ja` back to
//! itself), on which `bpf_filter` would run forever. A refused program
//! leaves the engine out, with the reason.

use filter_programs::cbpf::validate::{validate, RuleSet};
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
        // What libpcap's validator refuses is invalid for every engine.
        validate(insns, RuleSet::Libpcap).map_err(|e| EngineError::Invalid {
            engine: "libpcap",
            program: program.label.clone(),
            reason: format!("bpf_validate refuses the program: {e}"),
        })?;
        let validated = Validated::check(insns).map_err(|e| EngineError::Unsupported {
            engine: "libpcap",
            program: program.label.clone(),
            reason: format!("libpcap's bpf_filter cannot run it safely: {e}"),
        })?;
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
