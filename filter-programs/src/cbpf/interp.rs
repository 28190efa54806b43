//! The reference classic BPF interpreter. (Being written: see issue 3.)

use super::validate::ValidateError;
use super::Insn;

/// A validated, decoded program, ready to run on many packets.
pub struct Program {}

impl Program {
    /// Validates (libpcap's rules) and decodes once.
    pub fn new(_insns: &[Insn]) -> Result<Program, ValidateError> {
        todo!("issue 3: interpreter")
    }

    /// Runs on one packet as `pcap_offline_filter` does: `pkt` holds the
    /// captured bytes, `wirelen` the original length. Returns the filter's
    /// return value (0 = reject, else the snap length).
    pub fn run(&self, _pkt: &[u8], _wirelen: u32) -> u32 {
        todo!("issue 3: interpreter")
    }
}
