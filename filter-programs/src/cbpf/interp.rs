//! The reference classic BPF interpreter.
//!
//! [`Program::run`] is libpcap 1.10.3's `bpf_filter` (what
//! `pcap_offline_filter` runs), verdict for verdict; the differential tests
//! in `pcap-replay/tests/interp_*.rs` hold it to that against the real
//! library. [`Program::run_with`] runs the same program with the kernel's
//! meaning of the instructions where it differs, given the socket-buffer
//! metadata in a [`KernelCtx`].
//!
//! `run` executes a form compiled once per program into closures
//! (`threaded.rs`, about twice as fast); everything else, and the programs
//! that form leaves out, runs on the dispatch loop in `exec.rs`.
//!
//! Where `run` and `run_with` differ:
//!
//! | what | `run` (libpcap 1.10.3) | `run_with` (Linux, net/core/filter.c) |
//! |---|---|---|
//! | `ld [k]`, `k >= 2^31` | an offset past the capture: returns 0 | `SKF_AD_OFF + n`: ancillary field n (unknown n: 0); `SKF_NET_OFF + n` / `SKF_LL_OFF + n`: relative to the network / MAC header; below `SKF_LL_OFF`: 0 |
//! | `ld [x + k]` | `X + k` without wrap-around: past the capture returns 0 | `X + k` wraps to 32 bits and is then signed, so it can land at a small offset or in the SKF ranges |
//! | `ldx 4*([k]&0xf)`, `k >= 2^31` | returns 0 | relative loads as above (ancillary offsets fail) |
//! | `lsh x` / `rsh x`, `X >= 32` | `A = 0` | the count is `X & 31` (eBPF ALU32) |
//! | `lsh #k` / `rsh #k`, `k >= 32` | C's `A <<= k`, undefined; the x86-64 build masks the count to `k & 31`, and so do we | refused by the kernel's checker; `k & 31` here |
//! | `ld len` | the wire length | `skb->len`: wire length minus `KernelCtx::data_offset` |
//! | packet offset 0 | the first captured byte | `skb->data`: `data_offset` bytes into the capture |
//! | `ld #ifidx` / `#hatype` without a device | (offset past the capture) 0 | the program ends, returning A |
//! | `ja` backwards (32-bit wrap) | runs (libpcap's `ip6 protochain` needs it) | refused by the kernel's checker; runs here as in `run` |
//!
//! Shared by both, and not quite either:
//! - Division or modulo by `X == 0` returns 0 (both do this).
//! - Scratch memory starts zeroed. libpcap leaves it uninitialized; the
//!   kernel refuses programs that read a cell before writing it.
//! - An instruction libpcap's interpreter does not implement (codes that
//!   its `bpf_validate` lets through, such as `ret x` or stray size bits)
//!   makes libpcap `abort()`; here it returns 0. Jumps out of the program
//!   and falling off its end (only possible without validation) return 0.
//! - A loop through backward `ja`s that does not end within about
//!   [`STEP_BUDGET`] instructions returns 0; libpcap would never return.
//! - `run_with` sees only the captured bytes: a load past them fails even
//!   where the kernel would read non-linear data. `nlattr` treats a capture
//!   shorter than the wire length as a non-linear skb (result 0), as the
//!   kernel does.

mod decode;
mod exec;
#[cfg(test)]
mod tests;
mod threaded;
#[cfg(test)]
mod threaded_proptests;
#[cfg(test)]
mod threaded_tests;

use super::kernel_ctx::Kernel;
use super::validate::{validate, RuleSet, ValidateError};
use super::Insn;
use decode::Ins;
use exec::{exec, Libpcap, NoTrace, Recorder, Watch};
use threaded::{Node, Regs};

pub use super::kernel_ctx::{KernelCtx, NetDevice};
pub(in crate::cbpf) use exec::{be, Env};
pub use exec::{MAX_TRACE_STEPS, STEP_BUDGET};

/// A validated, decoded program, ready to run on many packets.
#[derive(Clone)]
pub struct Program {
    insns: Vec<Insn>,
    /// One op per instruction plus the end sentinel.
    plain: Vec<Ins>,
    /// `plain` with loads fused into the jumps after them (same indices).
    fast: Vec<Ins>,
    /// `plain` compiled to closures for `run`; `None` for the programs
    /// only the loop runs (backward jumps, very long programs).
    threaded: Option<Node>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("insns", &self.insns)
            .field("fast", &self.fast)
            .field("threaded", &self.threaded.is_some())
            .finish()
    }
}

/// One executed instruction, as [`Program::trace`] records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceStep {
    /// Index of the instruction.
    pub pc: usize,
    pub insn: Insn,
    /// The registers after the instruction ran.
    pub a: u32,
    pub x: u32,
    /// The packet bytes the instruction read (or tried to: a load that
    /// fails is the last step).
    pub load: Option<PacketLoad>,
}

/// A packet load: `size` bytes at `offset` of the captured bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketLoad {
    /// `k`, or `X + k` without wrap-around, as libpcap computes it.
    pub offset: u64,
    pub size: u32,
}

impl Program {
    /// Validates (libpcap's rules) and decodes once.
    pub fn new(insns: &[Insn]) -> Result<Program, ValidateError> {
        validate(insns, RuleSet::Libpcap)?;
        Ok(Program::new_unvalidated(insns))
    }

    /// [`Program::new`] without the closures `run` would call: it runs on
    /// the dispatch loop instead, and builds in about half the time, for
    /// programs that run on few packets.
    pub fn new_looped(insns: &[Insn]) -> Result<Program, ValidateError> {
        validate(insns, RuleSet::Libpcap)?;
        let plain = decode::decode(insns);
        let fast = decode::fuse(&plain);
        Ok(Program {
            insns: insns.to_vec(),
            plain,
            fast,
            threaded: None,
        })
    }

    /// Decodes without validating, for programs meant to be run as they
    /// are (fuzzing, or a rule set other than libpcap's). Never panics and
    /// never runs forever: anything invalid rejects the packet when reached.
    pub fn new_unvalidated(insns: &[Insn]) -> Program {
        let plain = decode::decode(insns);
        let fast = decode::fuse(&plain);
        let threaded = threaded::compile(&plain);
        Program {
            insns: insns.to_vec(),
            plain,
            fast,
            threaded,
        }
    }

    /// The instructions this program was made from.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Runs on one packet as `pcap_offline_filter` does: `pkt` holds the
    /// captured bytes, `wirelen` the original length. Returns the filter's
    /// return value (0 = reject, else the snap length).
    #[inline]
    pub fn run(&self, pkt: &[u8], wirelen: u32) -> u32 {
        match &self.threaded {
            Some(root) => root(
                pkt,
                0,
                0,
                &mut Regs {
                    mem: [0; 16],
                    wirelen,
                },
            ),
            None => self.run_loop(pkt, wirelen),
        }
    }

    /// [`Program::run`] on the dispatch loop. Kept out of line so that
    /// `run` stays a few instructions around one call: inlined, the loop's
    /// register pressure made every call save and restore six registers.
    #[inline(never)]
    /// [`Program::run`], or `None` when the run spends its
    /// [`STEP_BUDGET`] (only a loop can): a packet on which libpcap's
    /// `bpf_filter`, which has no budget, would not return in that many
    /// steps, and on a loop that keeps its state, never.
    pub fn run_bounded(&self, pkt: &[u8], wirelen: u32) -> Option<u32> {
        let mut watch = Watch { exhausted: false };
        let verdict = exec(&self.fast, &Libpcap { pkt, wirelen }, &mut watch);
        (!watch.exhausted).then_some(verdict)
    }

    fn run_loop(&self, pkt: &[u8], wirelen: u32) -> u32 {
        exec(&self.fast, &Libpcap { pkt, wirelen }, &mut NoTrace)
    }

    /// Runs with the kernel's semantics (see the module table): `pkt` is
    /// the captured frame from its first byte, `ctx` the socket buffer's
    /// metadata and where `skb->data` and the headers are in `pkt`.
    pub fn run_with(&self, pkt: &[u8], wirelen: u32, ctx: &KernelCtx) -> u32 {
        exec(&self.fast, &Kernel::new(pkt, wirelen, ctx), &mut NoTrace)
    }

    /// [`Program::run`], recording every step (at most
    /// [`MAX_TRACE_STEPS`]; the verdict is exact even past that).
    pub fn trace(&self, pkt: &[u8], wirelen: u32) -> (u32, Vec<TraceStep>) {
        let mut rec = Recorder {
            insns: &self.insns,
            steps: Vec::new(),
        };
        let verdict = exec(&self.plain, &Libpcap { pkt, wirelen }, &mut rec);
        (verdict, rec.steps)
    }

    /// [`Program::run_with`], recording every step. Load offsets are `k`
    /// or `X + k` as written, before the kernel maps them.
    pub fn trace_with(&self, pkt: &[u8], wirelen: u32, ctx: &KernelCtx) -> (u32, Vec<TraceStep>) {
        let mut rec = Recorder {
            insns: &self.insns,
            steps: Vec::new(),
        };
        let verdict = exec(&self.plain, &Kernel::new(pkt, wirelen, ctx), &mut rec);
        (verdict, rec.steps)
    }
}
