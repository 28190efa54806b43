//! Engines: each runs one program on packets and returns the filter's
//! return value. The replay compares their verdicts packet by packet.
//!
//! An engine is built for one program (and may refuse it, e.g. a program
//! libpcap's validator rejects), then run on many packets. `run` takes
//! `&mut self` and sees the packet's link type so that later engines can
//! keep per-link-type state: an expression compiled by libpcap for each
//! link type met, an eBPF translation, or a kernel program fd.

mod cbpf;
mod ebpf;
mod expr;
mod kernel;
mod libpcap;
mod plan;

pub use plan::{plan, LeftOut, Plan};

use filter_programs::translate::Target;
use filter_programs::Hook;

use crate::program::{Code, Program};
use capfile::LinkType;

/// A packet as an engine sees it.
#[derive(Clone, Copy, Debug)]
pub struct PacketRef<'a> {
    /// The captured bytes.
    pub data: &'a [u8],
    /// The length on the wire (at least `data.len()` in a sane capture).
    pub wire_len: u32,
    pub linktype: LinkType,
}

/// One engine's answer for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The program's raw return value: classic BPF's snap length, or an
    /// XDP / tc action for those hooks.
    pub ret: u32,
    /// Whether the packet matched the filter. For classic BPF and socket
    /// programs that is `ret != 0`; for XDP and tc it is the match action.
    pub matched: bool,
}

impl Verdict {
    /// A classic-BPF-style return value: 0 rejects, anything else accepts.
    pub fn classic(ret: u32) -> Verdict {
        Verdict {
            ret,
            matched: ret != 0,
        }
    }
}

/// Runs one program.
pub trait Engine: Send {
    /// The engine's name in reports (`cbpf`, `libpcap`, ...).
    fn name(&self) -> &'static str;

    /// The filter's return value for one packet: 0 rejects, anything else
    /// accepts (classic BPF returns the number of bytes to keep).
    /// `None` when the engine cannot run this packet (it is then left out
    /// of the comparison and counted as skipped).
    fn run(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError>;

    /// Gets ready for packets of `linktype`, so that what would fail at
    /// the first packet (an expression that does not compile for it) fails
    /// here, also for a capture with no packet. Engines built for one
    /// program have nothing to do.
    fn prepare(&mut self, linktype: LinkType) -> Result<(), EngineError> {
        let _ = linktype;
        Ok(())
    }

    /// Why the last packet `run` returned `None` for was skipped.
    fn skip_reason(&self) -> Skip {
        Skip::Refused
    }
}

/// Why an engine left a packet out: the JSON's `skipped_reasons` keys and
/// the table's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// A kernel test run takes only Ethernet frames.
    NotEthernet,
    /// Shorter than an Ethernet header.
    Runt,
    /// Cut short in the capture, and the program reads the wire length,
    /// which the kernel cannot be told.
    Truncated,
    /// Longer than the kernel's test run takes (for XDP, one buffer).
    TooLarge,
    /// Refused by the kernel's test run for another reason (EINVAL).
    Refused,
    /// A loop that libpcap's `bpf_filter` would run without end on this
    /// packet (our interpreter spent its step budget on it).
    Endless,
}

impl Skip {
    pub const ALL: [Skip; 6] = [
        Skip::NotEthernet,
        Skip::Runt,
        Skip::Truncated,
        Skip::TooLarge,
        Skip::Refused,
        Skip::Endless,
    ];

    /// The JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Skip::NotEthernet => "not_ethernet",
            Skip::Runt => "runt",
            Skip::Truncated => "truncated",
            Skip::TooLarge => "too_large",
            Skip::Refused => "refused",
            Skip::Endless => "endless_loop",
        }
    }

    /// The table's words.
    pub fn describe(self) -> &'static str {
        match self {
            Skip::NotEthernet => "not Ethernet",
            Skip::Runt => "shorter than an Ethernet header",
            Skip::Truncated => "truncated, and the program reads the wire length",
            Skip::TooLarge => "too large for the kernel's test run",
            Skip::Refused => "refused by the kernel's test run",
            Skip::Endless => "a loop libpcap's bpf_filter would never leave",
        }
    }
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

/// The error for an engine handed an expression it must not compile itself.
fn uncompiled(engine: &'static str, program: &Program) -> EngineError {
    EngineError::Invalid {
        engine,
        program: program.label.clone(),
        reason: "an expression must be compiled before it runs".into(),
    }
}

/// The engines a run may use, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// Our classic BPF interpreter (filter_programs::cbpf::interp).
    Cbpf,
    /// libpcap's bpf_filter on the same instructions: the oracle.
    Libpcap,
    /// The translation for a hook in our eBPF VM (`ebpf-socket`,
    /// `ebpf-xdp`, `ebpf-tc`).
    Ebpf(Hook),
    /// The translation for a hook in the kernel, through
    /// BPF_PROG_TEST_RUN (`kernel-socket`, `kernel-xdp`, `kernel-tc`).
    Kernel(Hook),
}

impl EngineKind {
    pub const ALL: [EngineKind; 9] = [
        EngineKind::Cbpf,
        EngineKind::Libpcap,
        EngineKind::Ebpf(Hook::Socket),
        EngineKind::Ebpf(Hook::Xdp),
        EngineKind::Ebpf(Hook::Tc),
        EngineKind::Ebpf(Hook::Trace),
        EngineKind::Kernel(Hook::Socket),
        EngineKind::Kernel(Hook::Xdp),
        EngineKind::Kernel(Hook::Tc),
    ];

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Cbpf => "cbpf",
            EngineKind::Libpcap => "libpcap",
            EngineKind::Ebpf(Hook::Socket) => "ebpf-socket",
            EngineKind::Ebpf(Hook::Xdp) => "ebpf-xdp",
            EngineKind::Ebpf(Hook::Tc) => "ebpf-tc",
            EngineKind::Ebpf(Hook::Trace) => "ebpf-trace",
            EngineKind::Kernel(Hook::Socket) => "kernel-socket",
            EngineKind::Kernel(Hook::Xdp) => "kernel-xdp",
            EngineKind::Kernel(Hook::Tc) => "kernel-tc",
            // Not an engine: a test run does not run a tracing program on
            // a packet (`filterd trace` runs it on live traffic).
            EngineKind::Kernel(Hook::Trace) => "kernel-trace",
        }
    }

    /// What `--help` says of the engine.
    fn help(self) -> &'static str {
        match self {
            EngineKind::Cbpf => "Our classic BPF interpreter (filter_programs::cbpf::interp)",
            EngineKind::Libpcap => "libpcap's bpf_filter on the same instructions: the oracle",
            EngineKind::Ebpf(Hook::Socket) => "The socket-filter translation in our eBPF VM",
            EngineKind::Ebpf(Hook::Xdp) => "The XDP translation in our eBPF VM (match: XDP_PASS)",
            EngineKind::Ebpf(Hook::Tc) => "The tc translation in our eBPF VM (match: TC_ACT_OK)",
            EngineKind::Ebpf(Hook::Trace) => {
                "The tracepoint translation in our eBPF VM, on a synthetic struct sk_buff (match: 1)"
            }
            EngineKind::Kernel(Hook::Socket) => {
                "The socket-filter translation in the kernel (BPF_PROG_TEST_RUN; root)"
            }
            EngineKind::Kernel(Hook::Xdp) => {
                "The XDP translation in the kernel (BPF_PROG_TEST_RUN; root)"
            }
            EngineKind::Kernel(Hook::Tc) => {
                "The tc translation in the kernel (BPF_PROG_TEST_RUN; root)"
            }
            EngineKind::Kernel(Hook::Trace) => "Not available: a test run runs no tracepoint",
        }
    }

    /// The hook of an eBPF engine (`None` for cbpf and libpcap).
    pub fn hook(self) -> Option<Hook> {
        match self {
            EngineKind::Cbpf | EngineKind::Libpcap => None,
            EngineKind::Ebpf(hook) | EngineKind::Kernel(hook) => Some(hook),
        }
    }

    /// Whether the engine runs in the kernel (needs bpf()).
    pub fn is_kernel(self) -> bool {
        matches!(self, EngineKind::Kernel(_))
    }

    /// Prepares this engine for `program`.
    pub fn build(self, program: &Program) -> Result<Box<dyn Engine>, EngineError> {
        let n = self.name();
        match &program.code {
            Code::Expr(text) => return Ok(Box::new(expr::ExprEngine::new(self, program, text))),
            Code::Ebpf { insns, hook } => {
                if self.hook() != Some(*hook) {
                    return Err(EngineError::Unsupported {
                        engine: n,
                        program: program.label.clone(),
                        reason: not_for_hook(self, *hook),
                    });
                }
                let target = Target::new(*hook);
                return Ok(if self.is_kernel() {
                    // Whether the program reads the length cannot be told
                    // from eBPF, so truncated packets are always skipped.
                    Box::new(kernel::KernelEngine::from_ebpf(
                        n, program, insns, target, true,
                    )?)
                } else {
                    Box::new(ebpf::EbpfEngine::from_ebpf(n, program, insns, target)?)
                });
            }
            Code::Cbpf(_) => {}
        }
        Ok(match self {
            EngineKind::Cbpf => Box::new(cbpf::CbpfEngine::new(program)?),
            EngineKind::Libpcap => Box::new(libpcap::LibpcapEngine::new(program)?),
            EngineKind::Ebpf(hook) => {
                Box::new(ebpf::EbpfEngine::new(n, program, Target::new(hook))?)
            }
            EngineKind::Kernel(hook) => Box::new(kernel::KernelEngine::new(
                n,
                program,
                Target::new(hook).with_loops(bpf_kernel::loops()),
            )?),
        })
    }
}

/// `--engines` takes the engines by name.
impl clap::ValueEnum for EngineKind {
    fn value_variants<'a>() -> &'a [Self] {
        &EngineKind::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.help()))
    }
}

/// Why `kind` cannot run an eBPF object's program for `hook`.
fn not_for_hook(kind: EngineKind, hook: Hook) -> String {
    match kind.hook() {
        None => "no classic program (the program is eBPF from an ELF object)".into(),
        Some(h) => format!(
            "the object's program is for the {} hook, not {}",
            hook.name(),
            h.name()
        ),
    }
}

/// Whether this process may use the kernel engines; `Err` says why not.
pub fn kernel_probe() -> Result<(), String> {
    kernel::probe()
}

#[cfg(test)]
mod tests;
