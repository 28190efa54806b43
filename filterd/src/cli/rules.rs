//! `filterd check` and `filterd test`.
//! PLACEHOLDER owned by the lead: replaced before commit.

use std::io::Write;

use clap::Args;

use super::{fail, Failure, EXIT_ERROR};

#[derive(Args, Debug)]
pub struct CheckArgs {}
#[derive(Args, Debug)]
pub struct TestArgs {}

pub fn check(_: CheckArgs, _: &mut dyn Write) -> Result<(), Failure> {
    Err(fail(EXIT_ERROR, "not yet"))
}
pub fn test(_: TestArgs, _: &mut dyn Write) -> Result<(), Failure> {
    Err(fail(EXIT_ERROR, "not yet"))
}
