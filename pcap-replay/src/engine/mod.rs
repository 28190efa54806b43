//! Engines: each runs one program on packets and returns the filter's
//! return value. The replay compares their verdicts packet by packet.
//!
//! An engine is built for one program (and may refuse it, e.g. a program
//! libpcap's validator rejects), then run on many packets. `run` takes
//! `&mut self` and sees the packet's link type so that later engines can
//! keep per-link-type state: an expression compiled by libpcap for each
//! link type met, an eBPF translation, or a kernel program fd.

mod cbpf;
mod libpcap;

use crate::capture::LinkType;
use crate::program::Program;

/// A packet as an engine sees it.
#[derive(Clone, Copy, Debug)]
pub struct PacketRef<'a> {
    /// The captured bytes.
    pub data: &'a [u8],
    /// The length on the wire (at least `data.len()` in a sane capture).
    pub wire_len: u32,
    pub linktype: LinkType,
}

/// Runs one program.
pub trait Engine: Send {
    /// The engine's name in reports (`cbpf`, `libpcap`, ...).
    fn name(&self) -> &'static str;

    /// The filter's return value for one packet: 0 rejects, anything else
    /// accepts (classic BPF returns the number of bytes to keep).
    fn run(&mut self, packet: &PacketRef<'_>) -> Result<u32, EngineError>;
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("engine {engine} cannot run {program}: {reason}")]
    Unsupported {
        engine: &'static str,
        program: String,
        reason: String,
    },
    #[error("engine {engine} rejects {program}: {reason}")]
    Invalid {
        engine: &'static str,
        program: String,
        reason: String,
    },
    #[error("engine {engine} failed on a packet: {reason}")]
    Run {
        engine: &'static str,
        reason: String,
    },
}

/// The engines a run may use, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum EngineKind {
    /// Our classic BPF interpreter (filter_programs::cbpf::interp).
    Cbpf,
    /// libpcap's bpf_filter on the same instructions: the oracle.
    Libpcap,
}

impl EngineKind {
    pub const ALL: [EngineKind; 2] = [EngineKind::Cbpf, EngineKind::Libpcap];

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Cbpf => "cbpf",
            EngineKind::Libpcap => "libpcap",
        }
    }

    /// Prepares this engine for `program`.
    pub fn build(self, program: &Program) -> Result<Box<dyn Engine>, EngineError> {
        Ok(match self {
            EngineKind::Cbpf => Box::new(cbpf::CbpfEngine::new(program)?),
            EngineKind::Libpcap => Box::new(libpcap::LibpcapEngine::new(program)?),
        })
    }
}

#[cfg(test)]
mod tests;
