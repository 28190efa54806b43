//! `pcap-replay`: see `pcap-replay --help`. Everything lives in the
//! library's `cli` module; this only parses and hands over.

use std::process::ExitCode;

use clap::Parser;
use pcap_replay::cli::{self, Cli};

fn main() -> ExitCode {
    cli::keep_memory();
    let args = Cli::parse().with_reads_as_captures();
    cli::init_logging();
    cli::run(&args)
}
