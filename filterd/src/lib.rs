//! filterd: loading, attaching and the daemon. Everything that makes a
//! syscall lives here; the compiler in `filter-programs` stays pure.

pub mod classic;
pub mod bpf;
pub mod cli;
pub mod socket;
