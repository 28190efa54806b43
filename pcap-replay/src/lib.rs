//! pcap-replay: run filter programs over captures in several engines and
//! prove, packet by packet, that their verdicts agree.

pub mod cli;
pub mod engine;
pub mod file_reader;
pub mod program;
pub mod replay;
pub mod report;
