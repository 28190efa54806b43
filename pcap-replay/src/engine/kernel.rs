//! The same eBPF in the kernel, through `BPF_PROG_TEST_RUN`
//! (`kernel-socket`, `kernel-xdp`, `kernel-tc`). Needs root (or CAP_BPF).
//!
//! The kernel is handed the captured bytes as a whole Ethernet frame, so
//! it runs only frames of 14 bytes and more, of Ethernet captures, that fit
//! a test run (about a page); others are skipped and counted, with the
//! reason ([`Skip`]). The kernel cannot know a truncated packet's wire
//! length, so a truncated packet is skipped too when the program reads
//! `len`.
//!
//! An XDP test run takes a frame longer than one buffer as a multi-buffer
//! frame (kernel 5.18 and later): its linear part is the first
//! [`XDP_LINEAR_MAX`] bytes, and the translated program, loaded without
//! XDP frags, sees only those; past about 17 pages the run fails with
//! ENOMEM. Such frames are left out of `kernel-xdp` rather than judged on
//! a part of their bytes, or ending the file.

use bpf_kernel::{load, LoadError, Loaded};
use filter_programs::cbpf::Op;
use filter_programs::translate::{translate_with, Options, Target};
use filter_programs::Hook;

use super::ebpf::{matched, translate_error};
use super::{Engine, EngineError, PacketRef, Skip, Verdict};
use crate::program::{Code, Program};
use capfile::LinkType;

/// What `eth_type_trans` pulls before a socket filter's test run: the
/// program's `skb->len` starts after it.
const ETH_HLEN: u32 = 14;
const EINVAL: i32 = 22;
const ENOMEM: i32 = 12;
const EMSGSIZE: i32 = 90;

/// Longest frame an XDP test run holds in one buffer: a page less the
/// headroom (`XDP_PACKET_HEADROOM`, 256) and the tail room for
/// `struct skb_shared_info` (320 bytes on 64-bit kernels), as
/// `bpf_prog_test_run_xdp` counts.
pub const XDP_LINEAR_MAX: usize = 4096 - 256 - 320;

pub struct KernelEngine {
    name: &'static str,
    target: Target,
    prog: Loaded,
    reads_len: bool,
    /// Why the last skipped packet was skipped.
    last_skip: Skip,
}

impl KernelEngine {
    pub fn new(
        name: &'static str,
        program: &Program,
        target: Target,
    ) -> Result<KernelEngine, EngineError> {
        let Code::Cbpf(insns) = &program.code else {
            return Err(super::uncompiled(name, program));
        };
        let options = Options {
            socket_len_offset: if target.hook == Hook::Socket {
                ETH_HLEN
            } else {
                0
            },
            ..Options::default()
        };
        let ebpf = translate_with(insns, target, &options)
            .map_err(|e| translate_error(name, program, e))?;
        let reads_len = insns
            .iter()
            .any(|i| matches!(i.decode(), Ok(Op::LdLen | Op::LdxLen)));
        KernelEngine::from_ebpf(name, program, &ebpf, target, reads_len)
    }

    /// Loads eBPF as given (an ELF object's program) for `target`'s hook.
    /// `reads_len`: whether the program may read the packet's length, so
    /// that truncated packets, whose wire length the kernel cannot know,
    /// are skipped.
    pub fn from_ebpf(
        name: &'static str,
        program: &Program,
        ebpf: &[filter_programs::ebpf::insn::Insn],
        target: Target,
        reads_len: bool,
    ) -> Result<KernelEngine, EngineError> {
        let prog = load(target.hook, ebpf, "pcap_replay").map_err(|e| match e {
            LoadError::Verifier { log, .. } => EngineError::Invalid {
                engine: name,
                program: program.label.clone(),
                reason: format!("the kernel verifier refused the program:\n{log}"),
            },
            LoadError::Syscall(err) => EngineError::Unsupported {
                engine: name,
                program: program.label.clone(),
                reason: format!("bpf(BPF_PROG_LOAD): {err} (kernel engines need root or CAP_BPF)"),
            },
        })?;
        Ok(KernelEngine {
            name,
            target,
            prog,
            reads_len,
            last_skip: Skip::Refused,
        })
    }
}

/// Whether this process may load and test-run BPF programs: loads the
/// smallest socket filter. `Err` says why not.
pub fn probe() -> Result<(), String> {
    use filter_programs::ebpf::insn::Insn;
    // mov r0, 0; exit
    let insns = [Insn::new(0xb7, 0, 0, 0, 0), Insn::new(0x95, 0, 0, 0, 0)];
    match load(Hook::Socket, &insns, "pcap_replay_probe") {
        Ok(_) => Ok(()),
        Err(LoadError::Syscall(e)) => Err(format!(
            "bpf() is not available here: {e} (needs root or CAP_BPF)"
        )),
        Err(e) => Err(format!("bpf() refused a trivial program: {e}")),
    }
}

impl Engine for KernelEngine {
    fn name(&self) -> &'static str {
        self.name
    }

    fn skip_reason(&self) -> Skip {
        self.last_skip
    }

    fn run(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        let truncated = (packet.data.len() as u32) < packet.wire_len;
        let skip = if packet.linktype != LinkType::ETHERNET {
            Some(Skip::NotEthernet)
        } else if packet.data.len() < ETH_HLEN as usize {
            Some(Skip::Runt)
        } else if truncated && self.reads_len {
            Some(Skip::Truncated)
        } else if self.target.hook == Hook::Xdp && packet.data.len() > XDP_LINEAR_MAX {
            Some(Skip::TooLarge)
        } else {
            None
        };
        if let Some(skip) = skip {
            self.last_skip = skip;
            return Ok(None);
        }
        match self.prog.test_run(packet.data, 1) {
            Ok(r) => Ok(Some(Verdict {
                ret: r.retval,
                matched: matched(self.target, r.retval),
            })),
            // An skb test run refuses a frame over about a page with
            // EINVAL (as it refuses some others); a large one may also run
            // out of fragments (ENOMEM) or be refused (EMSGSIZE). None
            // ends the file.
            Err(e) if e.raw_os_error() == Some(EINVAL) => {
                self.last_skip = if packet.data.len() > XDP_LINEAR_MAX {
                    Skip::TooLarge
                } else {
                    Skip::Refused
                };
                Ok(None)
            }
            Err(e)
                if matches!(e.raw_os_error(), Some(ENOMEM | EMSGSIZE))
                    && packet.data.len() > XDP_LINEAR_MAX =>
            {
                self.last_skip = Skip::TooLarge;
                Ok(None)
            }
            Err(e) => Err(EngineError::Run {
                engine: self.name,
                reason: format!("BPF_PROG_TEST_RUN: {e}"),
            }),
        }
    }
}
