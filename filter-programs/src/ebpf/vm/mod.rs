//! A user-space eBPF interpreter with the kernel's semantics, for socket
//! filter, tc and XDP programs.
//!
//! Programs are decoded once; a run allocates nothing (registers, stack and
//! context live on the host stack). Every memory access goes through the
//! region checks of [`memory`], so a wrong program gets a [`VmError`], never
//! undefined behaviour, and every run has an instruction budget.

pub mod context;
mod exec;
pub mod maps;
pub mod memory;

pub use context::{Input, SkbMeta};
pub use maps::{MapDef, MapKind, Maps};

use super::insn::{DecodeError, Insn, Op, Pseudo};

/// Stack bytes per frame, as in the kernel.
pub const STACK_SIZE: usize = 512;
/// Deepest BPF-to-BPF call chain the kernel allows.
pub const MAX_FRAMES: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VmError {
    #[error("slot {pc}: {kind} of {size} bytes at {addr:#x} is outside every region it may touch")]
    OutOfBounds { pc: usize, addr: u64, size: usize, kind: &'static str },
    #[error("slot {pc}: jump lands outside the program or inside an ld_imm64")]
    BadJump { pc: usize },
    #[error("slot {pc}: program ran past its end without exit")]
    FellOff { pc: usize },
    #[error("instruction budget of {0} exhausted (a loop?)")]
    Budget(u64),
    #[error("slot {pc}: helper #{id} is not implemented by the VM")]
    UnknownHelper { pc: usize, id: i32 },
    #[error("slot {pc}: {what}")]
    Unsupported { pc: usize, what: String },
    #[error("slot {pc}: call depth exceeds {MAX_FRAMES} frames")]
    CallDepth { pc: usize },
    #[error("slot {pc}: map #{map} does not exist")]
    NoSuchMap { pc: usize, map: u64 },
}

/// Per-run settings that are not part of the packet.
#[derive(Clone, Copy, Debug)]
pub struct Env {
    /// Most instructions one run may execute.
    pub budget: u64,
    /// What `bpf_ktime_get_ns` returns.
    pub ktime_ns: u64,
    /// Seed of `bpf_get_prandom_u32`'s sequence.
    pub prandom_seed: u32,
    /// The packet's length on the wire, when the frame holds only its first
    /// (captured) bytes: `skb->len` and `bpf_xdp_get_buff_len` count the
    /// bytes the program cannot read, as for a non-linear buffer. `None`:
    /// the frame is the whole packet.
    pub wire_len: Option<u32>,
}

impl Default for Env {
    fn default() -> Env {
        Env { budget: 1 << 20, ktime_ns: 0, prandom_seed: 0x2545_f491, wire_len: None }
    }
}

/// A decoded program. `slots[i]` is the op starting at slot `i`; the second
/// slot of an `LD_IMM64` is `None` and may not be jumped to.
#[derive(Clone, Debug)]
pub struct Program {
    slots: Vec<Option<Op>>,
}

impl Program {
    pub fn new(insns: &[Insn]) -> Result<Program, DecodeError> {
        let mut slots = vec![None; insns.len()];
        for (slot, op) in super::insn::decode_all(insns)? {
            slots[slot] = Some(op);
        }
        Ok(Program { slots })
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The highest map index the program references, plus one.
    pub fn map_count(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter_map(|op| match op {
                Op::LdImm64 { pseudo: Pseudo::MapFd | Pseudo::MapIdx | Pseudo::MapValue | Pseudo::MapIdxValue, imm, .. } => {
                    Some(*imm as u32 as usize + 1)
                }
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Runs once; returns r0 at the final `exit`.
    pub fn run(&self, input: &Input, maps: &mut Maps, env: &Env) -> Result<u64, VmError> {
        exec::run(&[&self.slots], input, maps, env)
    }

    /// Runs `programs[0]`, which may tail-call the others through a
    /// program-array map (see `MapKind::ProgArray`).
    pub fn run_chain(programs: &[Program], input: &Input, maps: &mut Maps, env: &Env) -> Result<u64, VmError> {
        let slots: Vec<&[Option<Op>]> = programs.iter().map(|p| p.slots.as_slice()).collect();
        exec::run(&slots, input, maps, env)
    }
}

#[cfg(test)]
mod tests;
