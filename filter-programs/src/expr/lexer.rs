//! The scanner. It reproduces libpcap's flex rules: at each position every
//! rule is tried, the longest match wins and, on a tie, the rule listed
//! first (keywords, then operators, `$XX`, MAC, number, dotted IPv4, IPv6,
//! malformed MAC, named constants, names, `\`-escaped names). So `10.1.2.3.4`
//! is a name, `1-2` a name (a port range), `08` a bad octal number and
//! `aabbccddeeff` a MAC address.

use super::diag::{ErrorKind, ParseError};
use super::names;
use super::number;
use super::pattern;
use super::span::Span;
use super::token::{self, Tok, Token};

/// Rules in flex order; on equal length the smaller one wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    Keyword,
    Space,
    Op1,
    Op2,
    Mac8,
    Mac,
    Number,
    Dotted,
    Ipv6,
    BadMac,
    NamedNum,
    Name,
    Escaped,
}

pub fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let Some((rule, len)) = best_rule(rest) else {
            let ch = src[at..].chars().next().unwrap_or('\u{fffd}');
            let span = Span::new(at, at + ch.len_utf8());
            return Err(ParseError::new(
                ErrorKind::Lexical,
                span,
                format!("illegal character {ch:?} in filter expression"),
            )
            .with_label("not part of the filter language"));
        };
        let span = Span::new(at, at + len);
        let text = span.text(src);
        at += len;
        if let Some(tok) = token_for(rule, text, span)? {
            out.push(Token { tok, span });
        }
    }
    Ok(out)
}

fn best_rule(rest: &[u8]) -> Option<(Rule, usize)> {
    let c = rest[0];
    // The address shapes only start with a hex digit (or ':' for IPv6), and
    // IPv6 and malformed MACs need a ':' early on; skipping hopeless
    // patterns keeps the scanner fast.
    // Scanned only where an address may start: at every `-` of a long
    // run of them (`- - - 1`, unary minuses) it would rescan the rest of
    // the run, quadratic in the input.
    let may_start_addr = c.is_ascii_hexdigit() || c == b':';
    let addr_run = &rest[..rest
        .iter()
        .take_while(|b| {
            may_start_addr
                && (b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'-' | b'x' | b'X'))
        })
        .count()];
    // Each address pattern matches only inside `addr_run`, and each needs
    // a separator in it, except the bare 12-digit MAC.
    let has_colon = addr_run.contains(&b':');
    let has_dot = addr_run.contains(&b'.');
    let may_be_mac = has_colon
        || has_dot
        || addr_run.contains(&b'-')
        || addr_run
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count()
            >= 12;
    let try_pat = |ok: bool, p: &pattern::Pat| if ok { p.longest(addr_run) } else { 0 };
    let candidates = [
        (Rule::Keyword, token::longest_keyword_prefix(rest)),
        (
            Rule::Space,
            usize::from(matches!(c, b' ' | b'\r' | b'\n' | b'\t')),
        ),
        (Rule::Op1, usize::from(b"+-*/%:[]!<>()&|^=".contains(&c))),
        (Rule::Op2, two_char_op(rest)),
        (Rule::Mac8, mac8_len(rest)),
        (
            Rule::Mac,
            try_pat(may_be_mac && c.is_ascii_hexdigit(), pattern::mac()),
        ),
        (Rule::Number, number_len(rest)),
        (
            Rule::Dotted,
            try_pat(has_dot && c.is_ascii_digit(), pattern::dotted()),
        ),
        (Rule::Ipv6, if has_colon { ipv6_len(addr_run) } else { 0 }),
        (
            Rule::BadMac,
            try_pat(has_colon && c.is_ascii_hexdigit(), pattern::bad_mac()),
        ),
        (Rule::NamedNum, names::longest_named_number_prefix(rest)),
        (Rule::Name, name_len(rest)),
        (Rule::Escaped, escaped_len(rest)),
    ];
    let mut best: Option<(Rule, usize)> = None;
    for (rule, len) in candidates {
        if len > 0 && best.is_none_or(|(_, l)| len > l) {
            best = Some((rule, len));
        }
    }
    best
}

/// The IPv6 rule's longest match in `run`. Every address the standard
/// library parses is one of the rule's shapes (the rule also takes forms
/// it rejects, such as a hex or long final dotted part), and the rule
/// never reaches past `run`, so a run that parses whole is the match: the
/// common case, without the pattern's many alternatives.
fn ipv6_len(run: &[u8]) -> usize {
    let whole = std::str::from_utf8(run).is_ok_and(|t| t.parse::<std::net::Ipv6Addr>().is_ok());
    if whole {
        run.len()
    } else {
        pattern::ipv6().longest(run)
    }
}

fn two_char_op(rest: &[u8]) -> usize {
    match rest {
        [b'>', b'=', ..]
        | [b'<', b'=', ..]
        | [b'!', b'=', ..]
        | [b'=', b'=', ..]
        | [b'<', b'<', ..]
        | [b'>', b'>', ..]
        | [b'&', b'&', ..]
        | [b'|', b'|', ..] => 2,
        _ => 0,
    }
}

fn mac8_len(rest: &[u8]) -> usize {
    if rest[0] != b'$' {
        return 0;
    }
    let hex = rest[1..]
        .iter()
        .take(2)
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    if hex == 0 {
        0
    } else {
        1 + hex
    }
}

fn number_len(rest: &[u8]) -> usize {
    match rest {
        [b'0', b'x' | b'X', h, ..] if h.is_ascii_hexdigit() => {
            2 + rest[2..]
                .iter()
                .take_while(|b| b.is_ascii_hexdigit())
                .count()
        }
        _ => rest.iter().take_while(|b| b.is_ascii_digit()).count(),
    }
}

/// `[A-Za-z0-9]([-_.A-Za-z0-9]*[.A-Za-z0-9])?`
fn name_len(rest: &[u8]) -> usize {
    if !rest[0].is_ascii_alphanumeric() {
        return 0;
    }
    let run = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        .count();
    let mut len = run;
    while len > 1 && matches!(rest[len - 1], b'-' | b'_') {
        len -= 1;
    }
    len
}

/// `\` and everything up to a blank, `!`, `(` or `)`.
fn escaped_len(rest: &[u8]) -> usize {
    if rest[0] != b'\\' {
        return 0;
    }
    let run = rest[1..]
        .iter()
        .take_while(|b| !matches!(b, b' ' | b'!' | b'(' | b')' | b'\n' | b'\t'))
        .count();
    if run == 0 {
        0
    } else {
        1 + run
    }
}

fn token_for(rule: Rule, text: &str, span: Span) -> Result<Option<Tok>, ParseError> {
    let lexical = |msg: String, label: &str| {
        Err(ParseError::new(ErrorKind::Lexical, span, msg).with_label(label.to_string()))
    };
    let tok = match rule {
        Rule::Space => return Ok(None),
        Rule::Keyword => match token::keyword(text) {
            Some(t) => t,
            None => return lexical(format!("unknown keyword '{text}'"), "here"),
        },
        Rule::Op1 | Rule::Op2 => match op(text) {
            Some(t) => t,
            None => return lexical(format!("unknown operator '{text}'"), "here"),
        },
        Rule::Mac8 => match u8::from_str_radix(&text[1..], 16) {
            Ok(v) => Tok::Mac8(v),
            Err(_) => return lexical(format!("invalid link-layer address '{text}'"), "here"),
        },
        Rule::Mac => Tok::Mac(parse_mac(text)),
        Rule::Number => match number::parse_u32(text) {
            Ok(v) => Tok::Num(v),
            Err(e) => return lexical(e.message(text), "not a valid 32-bit number"),
        },
        Rule::Dotted => Tok::Ipv4(text.to_string()),
        Rule::Ipv6 => match text.parse::<std::net::Ipv6Addr>() {
            Ok(a) => Tok::Ipv6(a),
            Err(_) => {
                return lexical(
                    format!("invalid IPv6 address {text}"),
                    "not a valid IPv6 address",
                )
            }
        },
        Rule::BadMac => {
            return lexical(
                format!("invalid Ethernet address {text}"),
                "a MAC address has six hex octets, e.g. 00:11:22:33:44:55",
            )
        }
        Rule::NamedNum => match names::named_number(text) {
            Some(v) => Tok::Num(v),
            None => return lexical(format!("unknown constant '{text}'"), "here"),
        },
        Rule::Name => Tok::Name {
            text: text.to_string(),
            escaped: false,
        },
        Rule::Escaped => Tok::Name {
            text: text[1..].to_string(),
            escaped: true,
        },
    };
    Ok(Some(tok))
}

fn op(text: &str) -> Option<Tok> {
    Some(match text {
        "+" => Tok::Plus,
        "-" => Tok::Minus,
        "*" => Tok::Star,
        "/" => Tok::Slash,
        "%" => Tok::Percent,
        ":" => Tok::Colon,
        "[" => Tok::LBracket,
        "]" => Tok::RBracket,
        "!" => Tok::Not,
        "<" => Tok::Lt,
        ">" => Tok::Gt,
        "(" => Tok::LParen,
        ")" => Tok::RParen,
        "&" => Tok::Amp,
        "|" => Tok::Pipe,
        "^" => Tok::Caret,
        "=" | "==" => Tok::Eq,
        ">=" => Tok::Ge,
        "<=" => Tok::Le,
        "!=" => Tok::Ne,
        "<<" => Tok::Shl,
        ">>" => Tok::Shr,
        "&&" => Tok::And,
        "||" => Tok::Or,
        _ => return None,
    })
}

/// Reads the octets of a MAC token the way libpcap does: skip one
/// separator, then take one hex digit and a second if it follows.
fn parse_mac(text: &str) -> [u8; 6] {
    let b = text.as_bytes();
    let mut out = [0u8; 6];
    let mut i = 0;
    let mut n = 0;
    let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
    while i < b.len() && n < 6 {
        if matches!(b[i], b':' | b'.' | b'-') {
            i += 1;
            continue;
        }
        let mut d = digit(b[i]);
        i += 1;
        if i < b.len() && b[i].is_ascii_hexdigit() {
            d = (d << 4) | digit(b[i]);
            i += 1;
        }
        out[n] = d;
        n += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn name(s: &str) -> Tok {
        Tok::Name {
            text: s.into(),
            escaped: false,
        }
    }

    #[test]
    fn longest_match_rules() {
        assert_eq!(toks("hosts"), vec![name("hosts")]);
        assert_eq!(toks("10.1.2.3.4"), vec![name("10.1.2.3.4")]);
        assert_eq!(toks("1-2"), vec![name("1-2")]);
        assert_eq!(toks("len-1"), vec![name("len-1")]);
        assert_eq!(toks("23-"), vec![Tok::Num(23), Tok::Minus]);
        assert_eq!(toks("0x1.2"), vec![Tok::Ipv4("0x1.2".into())]);
        assert_eq!(toks("tcp-syn"), vec![Tok::Num(2)]);
        assert_eq!(toks("icmp-echoreply"), vec![Tok::Num(0)]);
        assert_eq!(toks("$c0"), vec![Tok::Mac8(0xc0)]);
        assert_eq!(toks("$123"), vec![Tok::Mac8(0x12), Tok::Num(3)]);
        assert_eq!(
            toks("\\tcp"),
            vec![Tok::Name {
                text: "tcp".into(),
                escaped: true
            }]
        );
        assert_eq!(
            toks("a&&b||!c"),
            vec![name("a"), Tok::And, name("b"), Tok::Or, Tok::Not, name("c")]
        );
        assert_eq!(
            toks("== != <= >= << >>"),
            vec![Tok::Eq, Tok::Ne, Tok::Le, Tok::Ge, Tok::Shl, Tok::Shr]
        );
        assert_eq!(toks("Host"), vec![name("Host")]);
    }

    #[test]
    fn macs() {
        let m = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        for s in [
            "aa:bb:cc:dd:ee:ff",
            "aa-bb-cc-dd-ee-ff",
            "aa.bb.cc.dd.ee.ff",
            "aabb.ccdd.eeff",
            "aabbccddeeff",
        ] {
            assert_eq!(toks(s), vec![Tok::Mac(m)], "{s}");
        }
        assert_eq!(
            toks("a:b:c:d:e:f"),
            vec![Tok::Mac([10, 11, 12, 13, 14, 15])]
        );
        let e = tokenize("ab:cd:ef:0g:00:00").unwrap_err();
        assert_eq!(e.message(), "invalid Ethernet address ab:cd:ef:");
        assert_eq!(e.span(), Span::new(0, 9));
    }

    #[test]
    fn ipv6_and_errors() {
        assert_eq!(toks("fe80::1"), vec![Tok::Ipv6("fe80::1".parse().unwrap())]);
        assert_eq!(
            toks("::ffff:10.0.0.1"),
            vec![Tok::Ipv6("::ffff:10.0.0.1".parse().unwrap())]
        );
        assert_eq!(
            toks("1:2:3:4:5:6:7::"),
            vec![Tok::Ipv6("1:2:3:4:5:6:7:0".parse().unwrap())]
        );
        let e = tokenize("ip6 host fe80::256.20.30.40").unwrap_err();
        assert_eq!(e.message(), "invalid IPv6 address fe80::256.20.30.40");
        assert_eq!(e.span(), Span::new(9, 27));
        let e = tokenize("host a ` b").unwrap_err();
        assert_eq!(e.span(), Span::new(7, 8));
        let e = tokenize("port 08").unwrap_err();
        assert_eq!(e.message(), "number 08 contains non-octal digit");
        assert_eq!(e.span(), Span::new(5, 7));
        let e = tokenize("host é").unwrap_err();
        assert_eq!(e.span(), Span::new(5, 7));
    }

    /// The shortcut agrees with the full pattern on every shape the
    /// standard parser takes, and falls back to it on the others.
    #[test]
    fn ipv6_shortcut_matches_the_pattern() {
        let cases = [
            "::",
            "::1",
            "1::",
            "fe80::1",
            "fe80::1:2:3:4:5:6",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::ffff:1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1::5:6:1.2.3.4",
            "1:2:3:4:5::1.2.3.4",
            "2001:db8:0:0:1:0:0:1",
            "ABCD:ef01::0",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7:8::",
            "::1.2.3.0x4",
            "::999.1.1.1",
            "fe80:::1",
            "12345::1",
            "1:2",
            "a:b:c:d:e:f",
        ];
        for c in cases {
            let run = c.as_bytes();
            assert_eq!(ipv6_len(run), pattern::ipv6().longest(run), "{c}");
        }
    }
}
