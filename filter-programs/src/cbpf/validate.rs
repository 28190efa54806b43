//! Program validation, under the kernel's classic checks or libpcap's
//! `bpf_validate`.
//!
//! The two differ more than one would guess, and each rule set here is
//! exactly what its owner accepts (the oracle tests in `filterd` and
//! `pcap-replay` hold them to that):
//!
//! | | kernel (`SO_ATTACH_FILTER`) | libpcap 1.10 `bpf_validate` |
//! |---|---|---|
//! | length | 1..=4096 | at least 1, no maximum |
//! | opcodes | an exact list (no `ret x`, no stray bits) | class, mode and op fields only; size and high bits are ignored |
//! | ancillary loads | `ld [k]` with `k >= -0x1000` must name a known field | no check |
//! | constant shifts | `k < 32` | no check |
//! | scratch reads | must follow a write on every path | no check |
//! | `ja` | in range; fits the eBPF conversion | in range, with 32-bit wrap-around |
//! | last instruction | `ret #k` or `ret a` | any `ret` class code |

mod kernel;
mod libpcap;
#[cfg(test)]
mod tests;

use std::fmt;

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
    pub rule: Rule,
}

/// Which branch of a jump went out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Branch {
    /// The `k` of `ja`.
    Always,
    /// `jt`.
    True,
    /// `jf`.
    False,
}

/// One rule of a rule set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    EmptyProgram,
    TooLong {
        len: usize,
    },
    /// Not an instruction at all under this rule set.
    UnknownOpcode {
        code: u16,
    },
    /// `ret x`: a real classic BPF opcode that the kernel never implemented.
    RetXUnsupported,
    /// A jump whose target is past the last instruction. `target` is the
    /// 0-based index it would land on.
    JumpOutOfRange {
        branch: Branch,
        target: u64,
        len: usize,
    },
    /// `ld M[k]`, `ldx M[k]`, `st M[k]` or `stx M[k]` with `k >= 16`.
    ScratchIndex {
        k: u32,
    },
    /// `div #0` or `mod #0`.
    DivideByZero,
    /// `lsh #k` or `rsh #k` with `k >= 32`.
    ShiftTooLarge {
        k: u32,
    },
    /// `ld [k]` with `k` at or above `SKF_AD_OFF` that names no field.
    UnknownAncillary {
        k: u32,
    },
    NoFinalReturn {
        code: u16,
    },
    /// A scratch cell read before some path to it wrote the cell.
    LoadOfUninitializedScratch {
        k: u32,
    },
    /// A `ja` that jumps over more eBPF instructions than the kernel's
    /// translation can encode in a 16-bit offset.
    JumpTooFarAfterConversion {
        ebpf_offset: u64,
    },
}

impl fmt::Display for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Branch::Always => "ja",
            Branch::True => "jt",
            Branch::False => "jf",
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rule::EmptyProgram => write!(f, "empty program: a filter needs at least one instruction"),
            Rule::TooLong { len } => write!(
                f,
                "program too long: {len} instructions, the kernel accepts at most {}",
                super::MAXINSNS
            ),
            Rule::UnknownOpcode { code } => {
                write!(f, "unknown opcode {code:#06x}: not a classic BPF instruction")
            }
            Rule::RetXUnsupported => {
                write!(f, "ret x is not supported by the kernel: return a constant or A")
            }
            Rule::JumpOutOfRange { branch, target, len } => write!(
                f,
                "jump out of range: the {branch} branch lands on instruction {target}, but the \
                 last instruction is {}",
                len.saturating_sub(1)
            ),
            Rule::ScratchIndex { k } => write!(
                f,
                "scratch memory index {k} out of range: M[] has 16 cells, M[0] to M[15]"
            ),
            Rule::DivideByZero => write!(f, "division by zero: div or mod by the constant 0"),
            Rule::ShiftTooLarge { k } => {
                write!(f, "shift by {k}: the kernel accepts constant shifts of 0 to 31 only")
            }
            Rule::UnknownAncillary { k } => write!(
                f,
                "unknown ancillary load: offset {} (SKF_AD_OFF{:+}) names no field the kernel knows",
                k as i32,
                (k as i32).wrapping_sub(super::skf::SKF_AD_OFF)
            ),
            Rule::NoFinalReturn { code } => write!(
                f,
                "no final return: the last instruction (code {code:#06x}) must be a ret"
            ),
            Rule::LoadOfUninitializedScratch { k } => write!(
                f,
                "load of uninitialized scratch memory: M[{k}] is not written on every path \
                 before this load"
            ),
            Rule::JumpTooFarAfterConversion { ebpf_offset } => write!(
                f,
                "jump too far: the kernel translates this ja into one over {ebpf_offset} eBPF \
                 instructions, more than the 32767 an eBPF jump can encode"
            ),
        }
    }
}

impl Rule {
    fn at(self, index: usize) -> ValidateError {
        ValidateError { index, rule: self }
    }
}

/// Checks `prog` under `rules`. The error names the first rule broken, in
/// the order the kernel or libpcap checks them.
pub fn validate(prog: &[Insn], rules: RuleSet) -> Result<(), ValidateError> {
    match rules {
        RuleSet::Kernel => kernel::validate(prog),
        RuleSet::Libpcap => libpcap::validate(prog),
    }
}
