//! eBPF: the instruction model, an assembler with symbolic labels, and a
//! disassembler in bpftool's syntax.

pub mod asm;
pub mod check;
pub mod disasm;
pub mod insn;
pub mod prune;
pub mod vm;
