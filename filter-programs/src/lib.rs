//! The pure compiler library: pcap-filter expressions and classic BPF in,
//! classic BPF, eBPF and ELF objects out, plus the interpreters that define
//! what those programs mean. Nothing here makes a syscall.

#![forbid(unsafe_code)]

pub mod cbpf;
pub mod codegen;
pub mod ebpf;
pub mod elf;
pub mod expr;
pub mod hook;
pub mod kernel_btf;
pub mod kernel_skb;
pub mod optimize;
pub mod ruleset;
pub mod tracer;
pub mod translate;

pub use hook::Hook;
