//! `filterd attach xdp|tc`, `filterd detach`, `filterd status`.
//! PLACEHOLDER owned by the XDP/tc helper: replaced before commit.

use std::io::Write;

use clap::Args;

use super::{fail, Failure, EXIT_ERROR};

#[derive(Args, Debug)]
pub struct XdpArgs {}
#[derive(Args, Debug)]
pub struct TcArgs {}
#[derive(Args, Debug)]
pub struct DetachXdpArgs {}
#[derive(Args, Debug)]
pub struct DetachTcArgs {}
#[derive(Args, Debug)]
pub struct StatusArgs {}

pub fn run_xdp(_: XdpArgs, _: &mut dyn Write) -> Result<(), Failure> {
    Err(fail(EXIT_ERROR, "not yet"))
}
pub fn run_tc(_: TcArgs, _: &mut dyn Write) -> Result<(), Failure> {
    Err(fail(EXIT_ERROR, "not yet"))
}
pub fn detach_xdp(_: DetachXdpArgs, _: &mut dyn Write) -> Result<(), Failure> {
    Err(fail(EXIT_ERROR, "not yet"))
}
pub fn detach_tc(_: DetachTcArgs, _: &mut dyn Write) -> Result<(), Failure> {
    Err(fail(EXIT_ERROR, "not yet"))
}
pub fn status(_: StatusArgs, _: &mut dyn Write) -> Result<(), Failure> {
    Err(fail(EXIT_ERROR, "not yet"))
}
