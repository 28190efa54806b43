//! tcpdump's three dump formats (`-d`, `-dd`, `-ddd`) and the raw
//! `struct sock_filter` byte array. (Being written: see issue 3.)

use super::Insn;

/// Which of tcpdump's dump formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `-d`: `(000) ldh      [12]`
    Asm,
    /// `-dd`: `{ 0x28, 0, 0, 0x0000000c },`
    C,
    /// `-ddd`: a count line, then `40 0 0 12`
    Decimal,
}

/// A malformed dump, with 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct TextError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses any of the three formats, detecting which.
pub fn parse(_text: &str) -> Result<Vec<Insn>, TextError> {
    todo!("issue 3: text formats")
}

/// Prints exactly as tcpdump does, including the trailing newline.
pub fn print(_prog: &[Insn], _format: Format) -> String {
    todo!("issue 3: text formats")
}
