//! Program validation, under the kernel's classic checks or libpcap's
//! `bpf_validate`. (Being written: see issue 3.)

use super::Insn;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleSet {
    /// `bpf_check_classic` and friends in the kernel's net/core/filter.c.
    Kernel,
    /// libpcap's `bpf_validate`.
    Libpcap,
}

/// Which rule an instruction broke, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instruction {index}: {rule}")]
pub struct ValidateError {
    /// 0-based index of the offending instruction (the program length for
    /// errors about the whole program, such as an empty one).
    pub index: usize,
    pub rule: String,
}

pub fn validate(_prog: &[Insn], _rules: RuleSet) -> Result<(), ValidateError> {
    todo!("issue 3: validator")
}
