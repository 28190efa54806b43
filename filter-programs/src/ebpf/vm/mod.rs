//! A user-space eBPF interpreter with the kernel's semantics, for socket
//! filter, tc and XDP programs.
//!
//! Programs are lowered once into micro-ops (see `micro`), and the common
//! sequences fused (see `fuse`). A run that ends with a verdict allocates
//! nothing: registers live on the host stack; the stack, call frames and
//! context bytes are reused per thread (see `scratch`). Only a failing run
//! allocates, for its error. Every memory access goes through the region
//! checks of [`memory`], so a wrong program gets a [`VmError`], never
//! undefined behaviour, and every run has a budget: a bound on the
//! instructions it executes (see [`Env::budget`]). Maps are checked against
//! the VM's limits before anything is allocated for them (see [`maps`]).

pub mod context;
mod exec;
mod functions;
mod fuse;
mod machine;
pub mod maps;
pub mod memory;
mod micro;
mod scratch;

pub use context::{Input, SkbMeta};
pub use maps::{MapDef, MapError, MapKind, Maps};

use super::insn::{DecodeError, Insn, Op, Pseudo};

/// Stack bytes per frame, as in the kernel.
pub const STACK_SIZE: usize = 512;
/// Deepest BPF-to-BPF call chain the kernel allows.
pub const MAX_FRAMES: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VmError {
    #[error("slot {pc}: {kind} of {size} bytes at {addr:#x} is outside every region it may touch")]
    OutOfBounds {
        pc: usize,
        addr: u64,
        size: usize,
        kind: &'static str,
    },
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
    /// The most instructions one run may execute; a run that could go past
    /// it fails with [`VmError::Budget`]. The default, `1 << 20`
    /// (1,048,576), is the kernel verifier's complexity limit: the most
    /// instructions it walks for one program.
    ///
    /// Nothing is counted per instruction. A run spends, in advance:
    /// - a function's length when it enters the function: the entry
    ///   function's when it starts, the callee's on every BPF-to-BPF call,
    ///   the new program's entry function's on a tail call (a function runs
    ///   from slot 0 or a call's target to the next such slot or the end);
    /// - the rest of a function that a forward jump or a fall-through
    ///   enters from another one (the kernel refuses such programs; the VM
    ///   runs them, so they pay);
    /// - the slots every taken backward jump goes back over, from its
    ///   target through the jump;
    /// - for a helper that copies bytes (map keys and values,
    ///   `bpf_skb_load_bytes`), one per 8 bytes it may copy.
    ///
    /// Why that bounds what runs: within one activation of a function, pc
    /// goes down only at a backward jump. So every run of a slot after its
    /// first follows a taken backward jump over the slot since its last
    /// run, a different jump for each rerun. A first run follows such a
    /// jump too, or else the activation reached the slot going forward
    /// from where it last entered the slot's function: a stretch it paid
    /// for. So executed ≤ lengths paid + Σ spans ≤ spent.
    ///
    /// A program of N slots that only runs forward spends N, whichever way
    /// its branches go: a typical translated filter, under 100. A function
    /// longer than the budget fails every run that enters it, as the
    /// kernel refuses to load a program of more than 1M instructions.
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
        Env {
            budget: 1 << 20,
            ktime_ns: 0,
            prandom_seed: 0x2545_f491,
            wire_len: None,
        }
    }
}

/// A decoded program: `code[i]` runs the instruction starting at slot `i`
/// (the second slot of an `LD_IMM64` may not be jumped to), and one more
/// entry past the last slot fails the run that reaches it.
#[derive(Clone, Debug)]
pub struct Program {
    code: Vec<micro::Micro>,
    /// What the budget charges at each slot (see [`functions::rest`]).
    rest: Vec<u32>,
}

impl Program {
    pub fn new(insns: &[Insn]) -> Result<Program, DecodeError> {
        let slots = Self::slots(insns)?;
        let rest = functions::rest(&slots);
        Ok(Program {
            code: micro::compile(&slots, &rest),
            rest,
        })
    }

    fn view(&self) -> exec::Code<'_> {
        exec::Code {
            ops: &self.code,
            rest: &self.rest,
        }
    }

    /// The decoded op starting at each slot (`None`: an `LD_IMM64` tail).
    fn slots(insns: &[Insn]) -> Result<Vec<Option<Op>>, DecodeError> {
        let mut slots = vec![None; insns.len()];
        for (slot, op) in super::insn::decode_all(insns)? {
            slots[slot] = Some(op);
        }
        Ok(slots)
    }

    /// Slots, as in the instructions it was built from.
    pub fn len(&self) -> usize {
        self.code.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The highest map index the program references, plus one.
    pub fn map_count(&self) -> usize {
        self.code
            .iter()
            .filter_map(micro::op_of)
            .filter_map(|op| match op {
                Op::LdImm64 {
                    pseudo: Pseudo::MapFd | Pseudo::MapIdx | Pseudo::MapValue | Pseudo::MapIdxValue,
                    imm,
                    ..
                } => Some(imm as u32 as usize + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Runs once; returns r0 at the final `exit`.
    pub fn run(&self, input: &Input, maps: &mut Maps, env: &Env) -> Result<u64, VmError> {
        exec::run(&[self.view()], input, maps, env)
    }

    /// Runs `programs[0]`, which may tail-call the others through a
    /// program-array map (see `MapKind::ProgArray`).
    pub fn run_chain(
        programs: &[Program],
        input: &Input,
        maps: &mut Maps,
        env: &Env,
    ) -> Result<u64, VmError> {
        let code: Vec<exec::Code> = programs.iter().map(Program::view).collect();
        exec::run(&code, input, maps, env)
    }
}

#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod tests;
