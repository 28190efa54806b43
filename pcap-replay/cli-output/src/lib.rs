//! What both command lines need so that a run ends cleanly and its output
//! is never lost or torn: `pcap-replay -w` and `filterd capture -w` write
//! captures the same way, and stop the same way on SIGINT and SIGTERM.
//!
//! - [`file`]: an output written under a temporary name beside it and
//!   renamed into place once complete; `-` for standard output; a path
//!   that is also an input refused before anything is opened for writing.
//! - [`stop`]: SIGINT and SIGTERM only set a flag, which the tools check
//!   between packets; they then finish their outputs and exit with
//!   128 + the signal's number.
//!
//! - [`docs`]: man pages and shell completions from a clap definition.
//!
//! Neither is a capture format's business (capfile stays pure and writes
//! into any `Write`) nor the kernel layer's (bpf-kernel), and neither tool
//! may depend on the other, so this small crate is their one copy. Its
//! only system calls are file I/O and the signal handlers' `sigaction`.

pub mod docs;
pub mod file;
pub mod stop;

pub use file::{check_not_an_input, Output, OutputError, Sink};
