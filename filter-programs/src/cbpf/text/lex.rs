//! Shared pieces of the three parsers: lines and tokens with 1-based
//! positions, and numbers.
//!
//! Columns count characters (a tab is one column), so an editor's "go to
//! column" lands on the token even when the line holds non-ASCII text.

use super::TextError;

/// A line that holds something, with its 1-based number.
#[derive(Clone, Copy, Debug)]
pub(super) struct Line<'a> {
    pub no: usize,
    pub text: &'a str,
}

/// A whitespace-separated word and the 1-based column of its first character.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tok<'a> {
    pub text: &'a str,
    pub col: usize,
}

pub(super) fn err(line: usize, col: usize, message: impl Into<String>) -> TextError {
    TextError {
        line,
        column: col,
        message: message.into(),
    }
}

/// The non-blank lines. A UTF-8 byte-order mark and `\r` line ends (text
/// pasted from Windows tools) are accepted and ignored.
pub(super) fn lines(text: &str) -> Vec<Line<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.split('\n')
        .enumerate()
        .map(|(i, l)| Line {
            no: i + 1,
            text: l.strip_suffix('\r').unwrap_or(l),
        })
        .filter(|l| !l.text.trim().is_empty())
        .collect()
}

/// 1-based column of byte offset `byte` in `line`.
pub(super) fn col_at(line: &str, byte: usize) -> usize {
    line.get(..byte).map_or(1, |s| s.chars().count() + 1)
}

/// Splits `text` (which starts at byte `base` of `line`) on whitespace.
pub(super) fn tokens<'a>(line: &'a str, base: usize, text: &'a str) -> Vec<Tok<'a>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push(Tok {
                    text: &text[s..i],
                    col: col_at(line, base + s),
                });
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// Parses an unsigned number: decimal, or hexadecimal with `0x`.
pub(super) fn unsigned(s: &str, max: u64) -> Result<u64, String> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (s, 10),
    };
    // from_str_radix alone would also take a leading `+`.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(format!("`{s}` is not a number"));
    }
    match u64::from_str_radix(digits, radix) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(format!("`{s}` is out of range (at most {max})")),
    }
}

/// Parses a 32-bit `k`. libpcap prints many of them with `%d`, so negative
/// decimals (down to `-2147483648`) stand for their two's complement.
pub(super) fn word(s: &str) -> Result<u32, String> {
    match s.strip_prefix('-') {
        Some(abs) => {
            let v = unsigned(abs, 1 << 31).map_err(|_| format!("`{s}` is not a 32-bit number"))?;
            Ok((v as u32).wrapping_neg())
        }
        None => unsigned(s, u32::MAX as u64).map(|v| v as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(word("12"), Ok(12));
        assert_eq!(word("0x0000000c"), Ok(12));
        assert_eq!(word("0XfF"), Ok(255));
        assert_eq!(word("-4096"), Ok(0xffff_f000));
        assert_eq!(word("-2147483648"), Ok(0x8000_0000));
        assert_eq!(word("4294967295"), Ok(u32::MAX));
        assert!(word("-2147483649").is_err());
        assert!(word("4294967296").is_err());
        assert!(word("+5").is_err());
        assert!(word("0x").is_err());
        assert!(word("").is_err());
        assert!(word("1e3").is_err());
        assert!(word("--1").is_err());
        assert_eq!(unsigned("255", 255), Ok(255));
        assert!(unsigned("256", 255).is_err());
    }

    #[test]
    fn token_columns_count_characters() {
        let line = "  é\tab  [x + 1]";
        let toks = tokens(line, 0, line);
        let got: Vec<_> = toks.iter().map(|t| (t.text, t.col)).collect();
        assert_eq!(got, [("é", 3), ("ab", 5), ("[x", 9), ("+", 12), ("1]", 14)]);
    }

    #[test]
    fn blank_lines_and_crlf() {
        let ls = lines("\u{feff}a\r\n\n  \r\nb");
        let got: Vec<_> = ls.iter().map(|l| (l.no, l.text)).collect();
        assert_eq!(got, [(1, "a"), (4, "b")]);
    }
}
