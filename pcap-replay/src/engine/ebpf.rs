//! The eBPF translation of the program, for one hook, in our VM
//! (`ebpf-socket`, `ebpf-xdp`, `ebpf-tc`, `ebpf-trace`).
//!
//! The VM is given the captured bytes as the frame and the wire length as
//! the packet's length, as a non-linear buffer whose tail cannot be read:
//! `len` then means the wire length, as in classic BPF.

use filter_programs::ebpf::vm::{self, Env, Input, Maps, SkbMeta};
use filter_programs::translate::{translate, Target, TranslateError};
use filter_programs::Hook;

use super::{Engine, EngineError, PacketRef, Verdict};
use crate::program::{Code, Program};

pub struct EbpfEngine {
    name: &'static str,
    target: Target,
    vm: vm::Program,
    maps: Maps,
    /// Each run's instruction budget: a translated loop may take
    /// `loop_turns` turns, each at most the program's length, and a run
    /// that long is no runaway.
    budget: u64,
}

/// The engine error for a translation that failed.
pub(super) fn translate_error(
    engine: &'static str,
    program: &Program,
    e: TranslateError,
) -> EngineError {
    match e {
        TranslateError::Unsupported { .. } => EngineError::Unsupported {
            engine,
            program: program.label.clone(),
            reason: e.to_string(),
        },
        _ => EngineError::Invalid {
            engine,
            program: program.label.clone(),
            reason: e.to_string(),
        },
    }
}

/// Whether `ret` from a program for `target` is a match.
pub(super) fn matched(target: Target, ret: u32) -> bool {
    match target.actions() {
        None => ret != 0,
        Some(a) => ret == a.on_match,
    }
}

impl EbpfEngine {
    pub fn new(
        name: &'static str,
        program: &Program,
        target: Target,
    ) -> Result<EbpfEngine, EngineError> {
        let Code::Cbpf(insns) = &program.code else {
            return Err(super::uncompiled(name, program));
        };
        let ebpf = translate(insns, target).map_err(|e| translate_error(name, program, e))?;
        EbpfEngine::from_ebpf(name, program, &ebpf, target)
    }

    /// Runs eBPF as given (an ELF object's program) for `target`'s hook.
    pub fn from_ebpf(
        name: &'static str,
        program: &Program,
        ebpf: &[filter_programs::ebpf::insn::Insn],
        target: Target,
    ) -> Result<EbpfEngine, EngineError> {
        let vm = vm::Program::new(ebpf).map_err(|e| EngineError::Invalid {
            engine: name,
            program: program.label.clone(),
            reason: e.to_string(),
        })?;
        let loops = (vm.len() as u64).saturating_mul(target.loop_turns() as u64 + 2);
        Ok(EbpfEngine {
            name,
            target,
            vm,
            maps: Maps::default(),
            budget: Env::default().budget.max(loops),
        })
    }
}

impl Engine for EbpfEngine {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        let frame = packet.data;
        // A packet socket and tc see the frame from its MAC header; the
        // network header follows a 14-byte Ethernet header.
        let input = match self.target.hook {
            Hook::Xdp => Input::Xdp {
                frame,
                ingress_ifindex: 1,
                rx_queue_index: 0,
            },
            // A received frame's socket buffer as `netif_receive_skb` sees
            // it: the link-layer header set, `data` past it.
            Hook::Trace => Input::Trace {
                frame,
                data_off: 14.min(frame.len()),
                mac_set: true,
                vlan_all: 0,
                skb: Default::default(),
            },
            _ => Input::Skb {
                frame,
                data_off: 0,
                net_off: 14.min(frame.len()),
                meta: SkbMeta::from_ethernet(frame, [0; 6], 1),
            },
        };
        let env = Env {
            wire_len: Some(packet.wire_len),
            budget: self.budget,
            ..Env::default()
        };
        let ret = self
            .vm
            .run(&input, &mut self.maps, &env)
            .map_err(|e| EngineError::Run {
                engine: self.name,
                reason: e.to_string(),
            })? as u32;
        Ok(Some(Verdict {
            ret,
            matched: matched(self.target, ret),
        }))
    }
}
