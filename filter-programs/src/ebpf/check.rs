//! A user-space pre-check of eBPF programs: the structural and safety rules
//! the kernel verifier applies to the code this toolkit emits, with errors
//! that name the slot and the rule, so that a bad program is explained
//! before `bpf(BPF_PROG_LOAD)` answers with a verifier log.
//!
//! The check is conservative: a program it accepts is one the kernel
//! accepts (tests/ebpf_check_kernel.rs proves that on every corpus
//! translation and on thousands of random mutations of them); a program it
//! rejects may still be one the kernel would take, since it is not
//! path-sensitive the way the verifier is (it joins the facts of all paths
//! at each instruction, and takes both sides of every branch whose outcome
//! does not follow from constant ranges).
//!
//! Rules, in the order they are checked:
//! - every slot decodes, and fields the encoding does not use are zero
//!   (the kernel's "uses reserved fields");
//! - jumps land inside the program, never on the second slot of an
//!   `ld_imm64`; the last instruction is `exit` or `goto`, so no path falls
//!   off the end; every instruction is reachable;
//! - loops: a backward jump is allowed only as one of the bounded back
//!   edges the translator emits: a `goto` entered only from a `may_goto`
//!   right before it that leaves the loop forward (Linux 6.9+; the
//!   kernel's hidden counter bounds it), or a 64-bit counter at a fixed
//!   stack slot, loaded, tested for zero, decremented and stored right
//!   before the `goto`, the counter set once to a constant no larger than
//!   the hook's budget ([`Hook::loop_budget`]) and written nowhere else.
//!   Any other loop is refused: the verifier would have to walk it to see
//!   it end;
//! - registers are read only after being written on every path (`r1` and
//!   `r10` are set at entry; a helper call or legacy packet load clobbers
//!   `r1`-`r5` and sets `r0`); `r10` is never written;
//! - stack accesses use `r10` (or a copy of it plus a constant) with a
//!   constant offset inside `[-512, 0)`, aligned to their size (the kernel
//!   insists on that for the stack). Reading stack bytes never written is
//!   allowed by default, as the kernel allows it to a loader with
//!   `CAP_PERFMON` (filterd loads as root); [`Options::strict_stack`]
//!   refuses it, as the kernel does for unprivileged loaders;
//! - packet accesses go through a pointer derived from `ctx->data` and lie
//!   below the end a dominating `if data + N > data_end` check proved;
//! - helper calls are ones the hook offers, with arguments of the right
//!   kinds; legacy `ld_abs`/`ld_ind` only on socket and tc hooks, with the
//!   context in `r6`;
//! - context fields are read (or written) only where the hook allows it,
//!   with an allowed size and alignment;
//! - `r0` holds a number at `exit`.

mod branch;
mod cfg;
mod ctx;
mod flow;
mod state;
mod value;

#[cfg(test)]
mod tests;

use super::insn::{DecodeError, Insn};
use crate::Hook;

/// Choices where the kernel's answer depends on who loads the program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Refuse reads of stack bytes not written on every path, as the
    /// kernel does for loaders without `CAP_PERFMON`.
    pub strict_stack: bool,
}

/// A rule a program breaks, at `slot`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("slot {slot}: {rule}")]
pub struct CheckError {
    pub slot: usize,
    pub rule: Rule,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rule {
    #[error("the program is empty")]
    Empty,
    #[error("does not decode: {0}")]
    Decode(DecodeError),
    #[error("{0} must be zero (the kernel refuses instructions that use reserved fields)")]
    Reserved(&'static str),
    #[error("{0}")]
    Unsupported(String),
    #[error("division by the constant zero")]
    DivByZero,
    #[error("shift by {amount}, outside 0..{bits}")]
    ShiftRange { amount: i32, bits: u32 },
    #[error("jump to slot {target}, outside the program (0..{len})")]
    JumpOutOfRange { target: i64, len: usize },
    #[error("jump to slot {target}, the second half of an ld_imm64")]
    JumpIntoImm64 { target: usize },
    #[error("the last instruction is neither exit nor goto: execution would fall off the end")]
    FallsOffEnd,
    #[error("unreachable instruction (the kernel refuses dead code)")]
    Unreachable,
    #[error("backward jump to slot {target} is not a bounded loop: only the counted back edge the translator emits is allowed")]
    UnboundedLoop { target: usize },
    #[error("loop counter at fp{off}: {why}")]
    LoopCounter { off: i16, why: String },
    #[error("r{reg} is read before it is written on some path")]
    UninitRegister { reg: u8 },
    #[error("r{reg} holds different kinds of value on different paths here")]
    MixedValue { reg: u8 },
    #[error("r10 (the frame pointer) is read-only")]
    FramePointerWrite,
    #[error("stack access at fp{off} of {size} bytes is outside [-512, 0)")]
    StackRange { off: i64, size: usize },
    #[error("stack access at fp{off} of {size} bytes is not aligned to its size")]
    StackAlign { off: i64, size: usize },
    #[error("stack read at fp{off} of {size} bytes reads bytes not written on every path")]
    StackUninit { off: i64, size: usize },
    #[error("a spilled pointer at fp{off} may only be read back whole (8 bytes at its slot)")]
    PartialPointerFill { off: i64 },
    #[error("packet access at offset {off} of {size} bytes through r{reg} is not covered by a bounds check (a dominating `if data + N > data_end` proves only {range} bytes)")]
    PacketRange {
        reg: u8,
        off: i64,
        size: usize,
        range: u32,
    },
    #[error(
        "memory access through r{reg}, which holds {what}, not a pointer that may be dereferenced"
    )]
    BadPointer { reg: u8, what: &'static str },
    #[error("r{reg}: {what}")]
    PointerArith { reg: u8, what: String },
    #[error("the context pointer may be dereferenced only unmodified (it is ctx{off:+})")]
    ModifiedCtx { off: i32 },
    #[error("{access} of {size} bytes at context offset {off} is not allowed in a {kind} program")]
    CtxField {
        access: &'static str,
        off: i64,
        size: usize,
        kind: &'static str,
    },
    #[error("helper {name}#{id} is not available to {kind} programs")]
    Helper {
        id: i32,
        name: &'static str,
        kind: &'static str,
    },
    #[error("helper {name}#{id}, argument r{reg}: {why}")]
    HelperArg {
        id: i32,
        name: &'static str,
        reg: u8,
        why: String,
    },
    #[error("legacy packet loads (ld_abs/ld_ind) are not available to {kind} programs")]
    LegacyLoad { kind: &'static str },
    #[error("legacy packet loads need the unmodified context in r6")]
    LegacyLoadCtx,
    #[error("r0 must hold a number at exit, not {what}")]
    ReturnValue { what: &'static str },
    #[error("the analysis did not settle (the program's control flow is too complex to check)")]
    TooComplex,
}

impl CheckError {
    pub(crate) fn new(slot: usize, rule: Rule) -> CheckError {
        CheckError { slot, rule }
    }
}

/// Checks `insns` for `hook` as a privileged (root) loader's program.
pub fn check(insns: &[Insn], hook: Hook) -> Result<(), CheckError> {
    check_with(insns, hook, Options::default())
}

/// Checks `insns` for `hook` with the given loader-dependent choices.
pub fn check_with(insns: &[Insn], hook: Hook, opts: Options) -> Result<(), CheckError> {
    let prog = cfg::Cfg::build(insns, hook)?;
    flow::run(&prog, hook, opts)
}
