//! Classic BPF: the instruction model, tcpdump's text formats, the kernel's
//! and libpcap's validation rules, and the reference interpreter.

mod insn;
pub mod interp;
pub mod kernel_ctx;
pub mod skf;
pub mod text;
pub mod validate;

pub use insn::*;
