//! Numeric literals: decimal, `0x` hex and leading-zero octal, 32 bits,
//! with libpcap's overflow and bad-digit rules and messages.

/// Why a number token was refused; the message names the literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NumberError {
    Overflow { base: &'static str },
    BadDigit { base: &'static str },
}

impl NumberError {
    pub fn message(&self, text: &str) -> String {
        match self {
            NumberError::Overflow { base } => format!("{base} number {text} overflows 32 bits"),
            NumberError::BadDigit { base } => format!("number {text} contains non-{base} digit"),
        }
    }
}

/// Value of a literal matched by `[0-9]+ | 0[xX][0-9a-fA-F]+`.
///
/// The digit checks come before the overflow checks, digit by digit, so
/// `0037777777778` is a bad digit but `003777777777778` an overflow, as in
/// libpcap.
pub fn parse_u32(text: &str) -> Result<u32, NumberError> {
    let b = text.as_bytes();
    let (digits, radix, name): (&[u8], u32, &'static str) = match b {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16, "hexadecimal"),
        [b'0', rest @ ..] => (rest, 8, "octal"),
        _ => (b, 10, "decimal"),
    };
    let mut n: u32 = 0;
    for &c in digits {
        let d = match (c as char).to_digit(radix) {
            Some(d) => d,
            None => {
                let base = match radix {
                    16 => "hex",
                    8 => "octal",
                    _ => "decimal",
                };
                return Err(NumberError::BadDigit { base });
            }
        };
        n = n
            .checked_mul(radix)
            .and_then(|m| m.checked_add(d))
            .ok_or(NumberError::Overflow { base: name })?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_and_limits() {
        assert_eq!(parse_u32("0"), Ok(0));
        assert_eq!(parse_u32("4294967295"), Ok(u32::MAX));
        assert_eq!(parse_u32("0xFFFFFFFF"), Ok(u32::MAX));
        assert_eq!(parse_u32("037777777777"), Ok(u32::MAX));
        assert_eq!(parse_u32("010"), Ok(8));
        assert_eq!(parse_u32("0x1f"), Ok(31));
        let e = parse_u32("4294967296").unwrap_err();
        assert_eq!(
            e.message("4294967296"),
            "decimal number 4294967296 overflows 32 bits"
        );
        let e = parse_u32("0x100000000").unwrap_err();
        assert_eq!(
            e.message("0x100000000"),
            "hexadecimal number 0x100000000 overflows 32 bits"
        );
        assert_eq!(
            parse_u32("08").unwrap_err().message("08"),
            "number 08 contains non-octal digit"
        );
        assert_eq!(
            parse_u32("0037777777778")
                .unwrap_err()
                .message("0037777777778"),
            "number 0037777777778 contains non-octal digit"
        );
        assert_eq!(
            parse_u32("003777777777778")
                .unwrap_err()
                .message("003777777777778"),
            "octal number 003777777777778 overflows 32 bits"
        );
        assert_eq!(
            parse_u32("0040000000000")
                .unwrap_err()
                .message("0040000000000"),
            "octal number 0040000000000 overflows 32 bits"
        );
    }
}
