//! One-line summaries of a packet, decoded through pnet.
//!
//! pcap-replay's mismatch report names every layer of a packet the
//! engines disagreed on ([`describe`]); `filterd capture` prints a
//! tcpdump-like line per packet ([`tcpdump_line`]). The two lines read
//! differently, but they are renderings of one walk over the packet's
//! headers (the private `walk` module), so both decode a packet the same
//! way.
//!
//! pnet's views check lengths on construction: a truncated or lying
//! header gives a shorter line, never a panic.

#![forbid(unsafe_code)]

mod describe;
mod tcpdump;
mod tuple;
mod walk;

pub use describe::describe;
pub use tcpdump::tcpdump_line;
pub use tuple::{five_tuple, FiveTuple};
