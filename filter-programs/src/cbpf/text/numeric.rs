//! tcpdump `-dd` (a C initializer per instruction) and `-ddd` (a count line,
//! then `code jt jf k` in decimal): libpcap's `bpf_dump()` options 2 and 3.
//!
//! Parsing takes either base in every field (`0x` for hex) and a negative
//! decimal `k`, so hand-edited dumps need not match printf's choice.

use super::lex::{self, Line, Tok};
use super::TextError;
use crate::cbpf::Insn;

/// Where an instruction's fields were written, for range errors that are
/// found only once the whole program is read.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fields {
    pub line: usize,
    /// Columns of code, jt, jf, k.
    pub cols: [usize; 4],
}

pub(super) fn print_c(prog: &[Insn]) -> String {
    let mut out = String::new();
    for i in prog {
        out.push_str(&format!(
            "{{ {:#x}, {}, {}, 0x{:08x} }},\n",
            i.code, i.jt, i.jf, i.k
        ));
    }
    out
}

pub(super) fn print_decimal(prog: &[Insn]) -> String {
    let mut out = format!("{}\n", prog.len());
    for i in prog {
        out.push_str(&format!("{} {} {} {}\n", i.code, i.jt, i.jf, i.k));
    }
    out
}

const NAMES: [&str; 4] = ["code", "jt", "jf", "k"];

/// Builds an instruction from its four written fields.
fn insn(line: usize, fields: [Tok; 4]) -> Result<(Insn, Fields), TextError> {
    let max = [u16::MAX as u64, 255, 255, u32::MAX as u64];
    let mut v = [0u64; 4];
    for (i, f) in fields.iter().enumerate() {
        let parsed = if i == 3 {
            lex::word(f.text).map(u64::from)
        } else {
            lex::unsigned(f.text, max[i])
        };
        v[i] = parsed.map_err(|m| lex::err(line, f.col, format!("bad {}: {m}", NAMES[i])))?;
    }
    let insn = Insn::new(v[0] as u16, v[1] as u8, v[2] as u8, v[3] as u32);
    Ok((
        insn,
        Fields {
            line,
            cols: fields.map(|f| f.col),
        },
    ))
}

/// One `{ code, jt, jf, k },` line; the trailing comma is optional.
fn c_line(line: &Line) -> Result<(Insn, Fields), TextError> {
    let text = line.text;
    let at = |byte: usize, m: String| lex::err(line.no, lex::col_at(text, byte), m);
    let start = text.len() - text.trim_start().len();
    if !text[start..].starts_with('{') {
        return Err(at(
            start,
            "expected `{ code, jt, jf, k },` (tcpdump -dd)".into(),
        ));
    }
    let Some(close) = text.rfind('}') else {
        return Err(at(text.trim_end().len(), "missing `}`".into()));
    };
    let after = text[close + 1..].trim();
    if !(after.is_empty() || after == ",") {
        let off = close + 1 + (text[close + 1..].len() - text[close + 1..].trim_start().len());
        return Err(at(off, format!("unexpected `{after}` after `}}`")));
    }
    let inner_start = start + 1;
    let inner = &text[inner_start..close];
    let mut fields: Vec<Tok> = Vec::with_capacity(4);
    let mut from = 0;
    for part in inner.split(',') {
        let lead = part.len() - part.trim_start().len();
        let tok = part.trim();
        let byte = inner_start + from + lead;
        if tok.is_empty() {
            return Err(at(
                byte,
                format!(
                    "empty field; expected {}",
                    NAMES.get(fields.len()).unwrap_or(&"`}`")
                ),
            ));
        }
        if fields.len() == 4 {
            return Err(at(byte, "too many fields: expected code, jt, jf, k".into()));
        }
        fields.push(Tok {
            text: tok,
            col: lex::col_at(text, byte),
        });
        from += part.len() + 1;
    }
    match <[Tok; 4]>::try_from(fields) {
        Ok(f) => insn(line.no, f),
        Err(f) => Err(at(
            close,
            format!("only {} fields: expected code, jt, jf, k", f.len()),
        )),
    }
}

pub(super) fn parse_c(lines: &[Line]) -> Result<(Vec<Insn>, Vec<Fields>), TextError> {
    lines
        .iter()
        .map(c_line)
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.into_iter().unzip())
}

pub(super) fn parse_decimal(lines: &[Line]) -> Result<(Vec<Insn>, Vec<Fields>), TextError> {
    let Some((head, body)) = lines.split_first() else {
        return Err(lex::err(
            1,
            1,
            "empty input: expected the instruction count",
        ));
    };
    let count_tok = match lex::tokens(head.text, 0, head.text).as_slice() {
        [t] => *t,
        toks => {
            let col = toks.get(1).map_or(1, |t| t.col);
            return Err(lex::err(
                head.no,
                col,
                "the first line of tcpdump -ddd is the instruction count alone",
            ));
        }
    };
    let count = lex::unsigned(count_tok.text, u64::MAX >> 1).map_err(|m| {
        lex::err(
            head.no,
            count_tok.col,
            format!("bad instruction count: {m}"),
        )
    })?;
    let mut prog = Vec::with_capacity(body.len());
    let mut fields = Vec::with_capacity(body.len());
    for line in body {
        let toks = lex::tokens(line.text, 0, line.text);
        let f = match <[Tok; 4]>::try_from(toks.as_slice()) {
            Ok(f) => f,
            Err(_) => {
                // Too many: the first extra number; too few: just past the last.
                let col = match (toks.get(4), toks.last()) {
                    (Some(extra), _) => extra.col,
                    (None, Some(last)) => last.col + last.text.chars().count(),
                    (None, None) => 1,
                };
                return Err(lex::err(
                    line.no,
                    col,
                    format!("expected 4 numbers `code jt jf k`, found {}", toks.len()),
                ));
            }
        };
        let (i, f) = insn(line.no, f)?;
        prog.push(i);
        fields.push(f);
    }
    if count != prog.len() as u64 {
        return Err(lex::err(
            head.no,
            count_tok.col,
            format!(
                "the count line says {count} instructions but {} follow",
                prog.len()
            ),
        ));
    }
    Ok((prog, fields))
}
