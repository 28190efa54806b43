//! tcpdump's three dump formats (`-d`, `-dd`, `-ddd`) and the raw
//! `struct sock_filter` byte array.
//!
//! [`print`] is byte-identical to tcpdump 4.99.3 with libpcap 1.10.3
//! (`bpf_dump()` and `bpf_image()`), including `-d`'s trailing blanks
//! (`"(004) txa      "`) and its `unimp 0x<code>` for opcodes 1.10.3 cannot
//! name: `ret x` (0x0e), `ldx #pktlen` (0x81) and every invalid code.
//!
//! [`parse`] reads all three and detects which from the first line. It is
//! lenient about layout (blank lines, indentation, `\r\n`, spacing inside
//! operands, an optional trailing comma in `-dd`, libpcap master's
//! `; 0x<code>` comments in `-d`, hex or decimal in any number field) and
//! strict about meaning: unknown mnemonics, operands a mnemonic does not
//! take, numbers out of range, an out-of-sequence `(NNN)`, a `-ddd` count
//! that disagrees with the lines, a conditional jump that does not land on
//! a later instruction and a `ja` that lands outside the program are errors,
//! with the line and column of the offending token. A backward `ja` is
//! accepted: libpcap's `protochain` code loops with one (k wraps around
//! 2^32, which libpcap's validator allows and the kernel's refuses).
//!
//! `-d` carries less than the other two. A parse gives `jt = jf = 0` for
//! non-jumps and `k = 0` where no `k` is printed (`tax`, `ret`, `#pktlen`,
//! `unimp`): [`asm_visible`] of the original. libpcap's optimizer sometimes
//! leaves a stale k in `tax`, so compare a `-d` parse with a `-dd` one
//! through [`asm_visible`]. `unimp 0x<code>` parses back to that
//! code; it is refused for codes bpf_image names, which would lose `k`. For
//! input from newer libpcap or hand-written code, `-d` also takes
//! `ldx #pktlen`, `ret x` and `ret a`, which 1.10.3 never prints.

mod asm;
mod lex;
mod numeric;

use super::{Insn, Op};

pub use asm::image;

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

impl Format {
    pub const ALL: [Format; 3] = [Format::Asm, Format::C, Format::Decimal];

    /// The tcpdump flag that prints this format.
    pub fn flag(self) -> &'static str {
        match self {
            Format::Asm => "-d",
            Format::C => "-dd",
            Format::Decimal => "-ddd",
        }
    }
}

/// A malformed dump, with 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct TextError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A raw `struct sock_filter` array whose length is not a multiple of 8.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "raw cBPF is {len} bytes, not a multiple of 8: the instruction at byte offset {offset} is \
     cut short"
)]
pub struct RawError {
    /// Byte offset of the incomplete last instruction.
    pub offset: usize,
    pub len: usize,
}

/// The format of a dump, told from its first non-blank line; `None` when it
/// looks like none of them.
pub fn detect(text: &str) -> Option<Format> {
    let lines = lex::lines(text);
    let first = lines.first()?.text.trim_start();
    match first.chars().next()? {
        '(' => Some(Format::Asm),
        '{' => Some(Format::C),
        c if c.is_ascii_digit() => Some(Format::Decimal),
        _ => None,
    }
}

/// Parses any of the three formats, detecting which.
pub fn parse(text: &str) -> Result<Vec<Insn>, TextError> {
    match detect(text) {
        Some(format) => parse_as(text, format),
        None => {
            let lines = lex::lines(text);
            let (line, col) = match lines.first() {
                Some(l) => (
                    l.no,
                    lex::col_at(l.text, l.text.len() - l.text.trim_start().len()),
                ),
                None => return Err(lex::err(1, 1, "empty input: no instructions")),
            };
            Err(lex::err(
                line,
                col,
                "not a tcpdump dump: expected `(000) ...` (-d), `{ 0x.., .. },` (-dd) or an \
                 instruction count (-ddd)",
            ))
        }
    }
}

/// Parses text known to be in `format`.
pub fn parse_as(text: &str, format: Format) -> Result<Vec<Insn>, TextError> {
    let lines = lex::lines(text);
    match format {
        Format::Asm => {
            if lines.is_empty() {
                return Err(lex::err(1, 1, "empty input: no instructions"));
            }
            let (prog, targets) = asm::parse(&lines)?;
            for t in targets {
                check_target(prog.len(), t.target, t.line, t.col)?;
            }
            Ok(prog)
        }
        Format::C | Format::Decimal => {
            let (prog, fields) = if format == Format::C {
                if lines.is_empty() {
                    return Err(lex::err(1, 1, "empty input: no instructions"));
                }
                numeric::parse_c(&lines)?
            } else {
                numeric::parse_decimal(&lines)?
            };
            for (pc, (insn, f)) in prog.iter().zip(&fields).enumerate() {
                let next = pc as u64 + 1;
                // The same instructions as -d checks: jt/jf wherever
                // bpf_image prints them, even on an unknown jump-class code.
                if asm::has_targets(insn.code) {
                    check_target(prog.len(), next + insn.jt as u64, f.line, f.cols[1])?;
                    check_target(prog.len(), next + insn.jf as u64, f.line, f.cols[2])?;
                } else if let Ok(Op::Ja { k }) = insn.decode() {
                    // Wraps as libpcap's bpf_validate computes it: a
                    // backward `ja` (protochain's loop) is in range.
                    let target = (next as u32).wrapping_add(k) as u64;
                    check_target(prog.len(), target, f.line, f.cols[3])?;
                }
            }
            Ok(prog)
        }
    }
}

/// The instruction with the fields `-d` does not print set to zero: jt/jf
/// of non-jumps, k where no operand shows it, and everything but the code
/// (and targets) of an `unimp`. `parse(print(p, Asm))` gives this for each
/// instruction of `p` (when its jumps are in range); libpcap's optimizer
/// leaves stale k in `tax`/`txa`, which this hides.
pub fn asm_visible(insn: &Insn) -> Insn {
    match insn.decode() {
        Ok(op) => Insn::from(op),
        Err(_) if asm::has_targets(insn.code) => Insn::new(insn.code, insn.jt, insn.jf, 0),
        Err(_) => Insn::new(insn.code, 0, 0, 0),
    }
}

fn check_target(len: usize, target: u64, line: usize, col: usize) -> Result<(), TextError> {
    if target < len as u64 {
        return Ok(());
    }
    Err(lex::err(
        line,
        col,
        format!("jump to instruction {target}, past the end of the program ({len} instructions)"),
    ))
}

/// Prints exactly as tcpdump does, including the trailing newline.
pub fn print(prog: &[Insn], format: Format) -> String {
    match format {
        Format::Asm => asm::print(prog),
        Format::C => numeric::print_c(prog),
        Format::Decimal => numeric::print_decimal(prog),
    }
}

/// Reads a raw `struct sock_filter` array in host byte order (what
/// `SO_ATTACH_FILTER` takes).
pub fn from_raw(bytes: &[u8]) -> Result<Vec<Insn>, RawError> {
    let chunks = bytes.chunks_exact(8);
    if !chunks.remainder().is_empty() {
        return Err(RawError {
            offset: bytes.len() - chunks.remainder().len(),
            len: bytes.len(),
        });
    }
    Ok(chunks
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            Insn::from_bytes(b)
        })
        .collect())
}

/// The raw `struct sock_filter` array in host byte order.
pub fn to_raw(prog: &[Insn]) -> Vec<u8> {
    prog.iter().flat_map(|i| i.to_bytes()).collect()
}

#[cfg(test)]
mod tests;
