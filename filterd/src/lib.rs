//! filterd: loading, attaching and the daemon. The raw kernel calls it
//! builds on are in `bpf-kernel`; the compiler in `filter-programs` stays
//! pure.

pub mod attach;
pub mod attach_socket;
pub mod capture;
pub mod cli;
pub mod daemon;
pub mod dryrun;
pub mod object;
pub mod ruleset;
pub mod socket;
pub mod trace;
