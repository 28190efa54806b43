//! `filterd capture`.
//! PLACEHOLDER owned by the capture helper: replaced before commit.

use std::io::Write;

use clap::Args;

use super::{fail, Failure, EXIT_ERROR};

#[derive(Args, Debug)]
pub struct CaptureArgs {}

pub fn run(_: CaptureArgs, _: &mut dyn Write) -> Result<(), Failure> {
    Err(fail(EXIT_ERROR, "not yet"))
}
