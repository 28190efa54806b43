//! libpcap's interpreter, `bpf_filter`, on the program's instructions.
//!
//! `bpf_filter` trusts its program, so the engine takes only what
//! [`Validated`] lets through: our validator's verdict under libpcap's
//! rules, then `bpf_validate`, then only opcodes `bpf_filter` implements
//! (it aborts on `ret x` and on codes with stray bits, which
//! `bpf_validate` passes), and no loop without a way out (`ja` back to
//! itself), on which `bpf_filter` would run forever. A refused program
//! leaves the engine out, with the reason.
//!
//! A loop with a way out can still keep a packet in it for ever (its state
//! repeats). For a program with a backward jump, our interpreter, which
//! computes exactly what `bpf_filter` computes, runs each packet first
//! with its step budget; a packet that spends it is left out
//! ([`Skip::Endless`]) instead of hanging the run.

use filter_programs::cbpf::interp::Program as Interpreter;
use filter_programs::cbpf::validate::{validate, RuleSet};
use libpcap_oracle::Validated;

use super::{Engine, EngineError, PacketRef, Skip, Verdict};
use crate::program::{Code, Program};

pub struct LibpcapEngine {
    program: Validated,
    /// For a program that can loop: the guard run first on each packet.
    guard: Option<Interpreter>,
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
        // Only `ja` jumps backward, with a k that takes it before itself.
        let loops = insns.iter().any(|i| i.code == 0x05 && (i.k as i32) < 0);
        let guard = match loops {
            true => Some(Interpreter::new(insns).map_err(|e| EngineError::Invalid {
                engine: "libpcap",
                program: program.label.clone(),
                reason: e.to_string(),
            })?),
            false => None,
        };
        Ok(LibpcapEngine {
            program: validated,
            guard,
        })
    }
}

impl Engine for LibpcapEngine {
    fn name(&self) -> &'static str {
        "libpcap"
    }

    fn skip_reason(&self) -> Skip {
        Skip::Endless
    }

    fn run(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        if let Some(guard) = &self.guard {
            if guard.run_bounded(packet.data, packet.wire_len).is_none() {
                return Ok(None);
            }
        }
        Ok(Some(Verdict::classic(
            self.program.filter(packet.data, packet.wire_len),
        )))
    }
}
