//! Classic BPF to eBPF, one mode per attach point.
//!
//! The eBPF returns, for every packet, the verdict the classic program
//! returns in our reference interpreter:
//! - **socket** (`SO_ATTACH_BPF`): the classic return value itself, the
//!   number of bytes to keep. Packet loads are relative to the link-layer
//!   header (`SKF_LL_OFF`), so the program means the same on an AF_PACKET
//!   socket, whose data starts at the MAC header, and in a test run, whose
//!   data starts at the network header. Loads the classic program already
//!   makes relative to `SKF_NET_OFF` (the L3 form for TCP and UDP sockets)
//!   are kept as they are.
//! - **tc** (cls_bpf, direct action): match and no match become two
//!   configurable actions (`TC_ACT_OK` and `TC_ACT_SHOT` by default).
//! - **trace** (a BTF tracepoint given the kernel's socket buffer): reads
//!   the packet with `bpf_probe_read_kernel`, from the link-layer header
//!   or, when the kernel has not set one, the network header (`trace.rs`);
//!   returns 1 for a match and 0 for none.
//! - **xdp**: direct packet access with at most one bounds check per
//!   straight-line block, none where every path into the block has already
//!   checked as many bytes; match and no match become two actions
//!   (`XDP_PASS`, `XDP_DROP`).
//!
//! VLAN: a classic program means the frame as sent, tag in the bytes (as
//! a pcap file holds it). XDP sees it so; on socket and tc hooks the kernel
//! may have moved the outer tag into the socket buffer's metadata, and the
//! translation reads it from there (`vlan.rs`), except in programs that use
//! the kernel's special offsets, which mean what the kernel's own
//! converter makes of them (the frame with the tag moved out).
//!
//! Meaning: a program that uses only ordinary packet offsets means what
//! libpcap's interpreter makes of it (`cbpf::interp::Program::run`); one
//! that uses the kernel's special offsets (`SKF_AD_OFF`, `SKF_NET_OFF`,
//! `SKF_LL_OFF`, which only the kernel defines) means what the kernel makes
//! of it (`Program::run_with`). The two differ in `X + k` wrapping and in
//! shifts by `X >= 32`. A load past the packet rejects it in both.
//!
//! Register use, fixed for the whole program:
//!
//! ```text
//!  r6  context (skb or xdp_md; trace: the kernel's skb); the legacy
//!      packet loads require it there
//!  r7  A (always a zero-extended 32-bit value)
//!  r8  X (likewise)
//!  r9  xdp: the packet's first byte (ctx->data); socket and tc: the
//!      outer VLAN tag and whether the kernel moved it out (`vlan.rs`)
//!  r2  xdp: the packet's end (ctx->data_end), reloaded after helper calls
//!  r0-r5  scratch, clobbered by helper calls and legacy loads
//!  fp-64 .. fp-4   M[0] .. M[15]
//! ```

mod blocks;
mod emit;
mod load;
mod trace;

/// The trace hook's stack slots (8 bytes each): where the packet starts,
/// its captured length and its length (see `trace.rs`).
pub mod trace_slots {
    pub use super::trace::{CAPLEN, START, WIRELEN};
}
mod vlan;

use crate::cbpf::{self, validate, Op};
use crate::ebpf::{self, asm::AsmError};
use crate::Hook;

/// How a classic program's backward jumps (libpcap's `protochain` loop)
/// are bounded for the kernel's verifier, which must see every loop end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Loops {
    /// `may_goto` before each back edge (Linux 6.9+): the verifier checks
    /// the loop's body until its state stops changing instead of walking
    /// every turn, so a loop may take [`Loops::MAY_GOTO_TURNS`] turns, as
    /// many headers as any packet at these hooks has, and walks them as
    /// libpcap's does.
    #[default]
    MayGoto,
    /// A counter of [`Hook::loop_budget`] turns on the stack, for older
    /// kernels: the verifier walks every turn, so the budget is what it
    /// can walk, and a packet that needs more turns does not match.
    Counted,
}

impl Loops {
    /// Turns a `may_goto` loop takes before the packet is rejected: one per
    /// 8 bytes (the smallest IPv6 extension header) of a 64 KiB packet.
    /// It is also what a loop that never ends costs a packet; the kernel's
    /// own bound is 8 million turns.
    pub const MAY_GOTO_TURNS: u32 = 8192;
}

/// Where the program will be attached, and what it returns there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub hook: Hook,
    /// Match and no match on XDP and tc; `None` on the socket hook, whose
    /// program returns the classic program's value itself.
    actions: Option<Actions>,
    loops: Loops,
}

impl Target {
    /// `hook` with its default actions (`XDP_PASS`/`XDP_DROP`,
    /// `TC_ACT_OK`/`TC_ACT_SHOT`).
    pub const fn new(hook: Hook) -> Target {
        let actions = match hook {
            Hook::Socket => None,
            Hook::Xdp => Some(Actions::XDP),
            Hook::Tc => Some(Actions::TC),
            Hook::Trace => Some(Actions::TRACE),
        };
        Target {
            hook,
            actions,
            loops: Loops::MayGoto,
        }
    }
    /// The same target with its loops bounded by `loops`.
    pub const fn with_loops(mut self, loops: Loops) -> Target {
        self.loops = loops;
        self
    }
    pub fn loops(&self) -> Loops {
        self.loops
    }
    /// Most turns a loop takes before the packet is rejected: the hook's
    /// budget when counted, [`Loops::MAY_GOTO_TURNS`] with `may_goto`.
    pub fn loop_turns(&self) -> u32 {
        match self.loops {
            Loops::Counted => self.hook.loop_budget(),
            Loops::MayGoto => Loops::MAY_GOTO_TURNS,
        }
    }
    /// `hook` returning `actions`; a socket filter has none, and ignores them.
    pub const fn with_actions(hook: Hook, actions: Actions) -> Target {
        let mut t = Target::new(hook);
        if t.actions.is_some() {
            t.actions = Some(actions);
        }
        t
    }
    pub const fn socket() -> Target {
        Target::new(Hook::Socket)
    }
    pub const fn xdp() -> Target {
        Target::new(Hook::Xdp)
    }
    pub const fn tc() -> Target {
        Target::new(Hook::Tc)
    }
    pub fn name(&self) -> &'static str {
        self.hook.name()
    }
    /// The actions for a match and no match (`None` on the socket hook).
    pub fn actions(&self) -> Option<Actions> {
        self.actions
    }
    /// What the program returns when the classic program returns `ret`.
    pub fn verdict(&self, ret: u32) -> u32 {
        match self.actions {
            None => ret,
            Some(a) if ret != 0 => a.on_match,
            Some(a) => a.on_nomatch,
        }
    }
}

impl From<Hook> for Target {
    fn from(hook: Hook) -> Target {
        Target::new(hook)
    }
}

/// The return values for a match and for no match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actions {
    pub on_match: u32,
    pub on_nomatch: u32,
}

impl Actions {
    pub const XDP_ABORTED: u32 = 0;
    pub const XDP_DROP: u32 = 1;
    pub const XDP_PASS: u32 = 2;
    pub const XDP_TX: u32 = 3;
    pub const TC_ACT_OK: u32 = 0;
    pub const TC_ACT_SHOT: u32 = 2;

    pub const XDP: Actions = Actions {
        on_match: Actions::XDP_PASS,
        on_nomatch: Actions::XDP_DROP,
    };
    pub const TC: Actions = Actions {
        on_match: Actions::TC_ACT_OK,
        on_nomatch: Actions::TC_ACT_SHOT,
    };
    /// A tracing program decides nothing: 1 for a match, 0 for none
    /// (what a standalone translation returns; the tracer inlines it).
    pub const TRACE: Actions = Actions {
        on_match: 1,
        on_nomatch: 0,
    };
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("invalid classic program: {0}")]
    Invalid(#[from] validate::ValidateError),
    #[error("instruction {index}: {what} is not available on the {target} hook")]
    Unsupported {
        index: usize,
        what: String,
        target: &'static str,
    },
    #[error("assembling the eBPF failed: {0}")]
    Asm(#[from] AsmError),
}

/// Choices that depend on where the program will run, beyond the hook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Bytes to add to `skb->len` for `len` on the socket hook. A packet
    /// socket's data starts at the MAC header, so 0 there; a socket
    /// filter's `BPF_PROG_TEST_RUN` pulls the Ethernet header first, so a
    /// replay engine passes 14 to give `len` the same meaning.
    pub socket_len_offset: u32,
    /// Read the program as the kernel's own converter does even when it
    /// uses none of the kernel's special offsets: on the socket and tc
    /// hooks, every load addresses the frame as the kernel hands it over,
    /// outer VLAN tag moved into metadata. That is how live `tcpdump -i`
    /// filters on Linux (`filterd capture --vlan-view tcpdump`); without
    /// it such a program judges the frame as sent (see the module doc).
    pub kernel_view: bool,
    /// The trace hook: where `struct sk_buff` keeps the fields that find
    /// the packet (the running kernel's, from its BTF; see
    /// [`crate::kernel_skb`]).
    pub skb: crate::kernel_skb::SkbLayout,
    /// The trace hook: the packet starts at the network header even where
    /// the kernel has set a MAC header (the view of a device without a
    /// link-layer header, whose "MAC header" may be the network header or
    /// a tunnel's outer one).
    pub trace_from_network: bool,
}

/// Translates a classic program for `target`.
pub fn translate(
    prog: &[cbpf::Insn],
    target: Target,
) -> Result<Vec<ebpf::insn::Insn>, TranslateError> {
    translate_with(prog, target, &Options::default())
}

/// Appends `prog`, translated for `target`, to `asm` as a fragment that
/// jumps to `on_match` where the classic program would return non-zero and
/// to `on_nomatch` where it would return 0 or reject, instead of exiting.
/// This is how several filters share one program (a filterd ruleset).
///
/// The caller's code must have put the context in r6; the fragment
/// clobbers r0-r5, r7-r9 and the stack at fp-80 and above, and sets up the
/// rest itself (XDP's packet pointer included, so each fragment starts from
/// a fresh state the verifier can prune against).
pub fn inline(
    asm: &mut ebpf::asm::Asm,
    prog: &[cbpf::Insn],
    target: Target,
    on_match: ebpf::asm::Label,
    on_nomatch: ebpf::asm::Label,
) -> Result<(), TranslateError> {
    inline_with(asm, prog, target, &Options::default(), on_match, on_nomatch)
}

/// [`inline`] with [`Options`] (the trace hook's socket buffer layout).
/// On the trace hook the caller puts the skb in r6, and the fragment also
/// uses fp-104 to fp-81.
pub fn inline_with(
    asm: &mut ebpf::asm::Asm,
    prog: &[cbpf::Insn],
    target: Target,
    options: &Options,
    on_match: ebpf::asm::Label,
    on_nomatch: ebpf::asm::Label,
) -> Result<(), TranslateError> {
    let ops = decode_valid(prog)?;
    let taken = std::mem::replace(asm, ebpf::asm::Asm::new());
    *asm = emit::Emitter::inline(&ops, target, *options, taken, on_match, on_nomatch).emit()?;
    Ok(())
}

fn decode_valid(prog: &[cbpf::Insn]) -> Result<Vec<Op>, TranslateError> {
    validate::validate(prog, validate::RuleSet::Libpcap)?;
    prog.iter()
        .enumerate()
        .map(|(index, i)| {
            i.decode().map_err(|e| {
                TranslateError::Invalid(validate::ValidateError {
                    index,
                    rule: validate::Rule::UnknownOpcode { code: e.code },
                })
            })
        })
        .collect()
}

/// [`translate`] with [`Options`].
pub fn translate_with(
    prog: &[cbpf::Insn],
    target: Target,
    options: &Options,
) -> Result<Vec<ebpf::insn::Insn>, TranslateError> {
    let ops = decode_valid(prog)?;
    let asm = emit::Emitter::new(&ops, target, *options).emit()?;
    Ok(asm.assemble()?)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vlan_tests;
