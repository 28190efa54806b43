//! `filterd attach socket --pid PID --fd FD EXPR`.
//! PLACEHOLDER owned by the capture helper: replaced before commit.

use std::io::Write;

use clap::Args;

use super::{fail, Failure, EXIT_ERROR};

#[derive(Args, Debug)]
pub struct SocketArgs {}

pub fn run(_: SocketArgs, _: &mut dyn Write) -> Result<(), Failure> {
    Err(fail(EXIT_ERROR, "not yet"))
}
