//! filterd: loading, attaching and the daemon. Everything that makes a
//! syscall lives here; the compiler in `filter-programs` stays pure.

pub mod attach_socket;
pub mod capture;
pub mod attach;
pub mod classic;
pub mod bpf;
pub mod cli;
pub mod daemon;
pub mod dryrun;
pub mod object;
pub mod ruleset;
pub mod socket;
