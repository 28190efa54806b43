//! `filterd run` and `filterd stats`.
//! PLACEHOLDER owned by the daemon helper: replaced before commit.

use std::io::Write;

use clap::Args;

use super::{fail, Failure, EXIT_ERROR};

#[derive(Args, Debug)]
pub struct RunArgs {}
#[derive(Args, Debug)]
pub struct StatsArgs {}

pub fn run(_: RunArgs, _: &mut dyn Write) -> Result<(), Failure> {
    Err(fail(EXIT_ERROR, "not yet"))
}
pub fn stats(_: StatsArgs, _: &mut dyn Write) -> Result<(), Failure> {
    Err(fail(EXIT_ERROR, "not yet"))
}
