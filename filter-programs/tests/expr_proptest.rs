//! Property tests: the parser never panics, and every error carries a span
//! inside the input that renders.

use std::sync::OnceLock;

use filter_programs::expr::parse;
use proptest::prelude::*;

fn check(text: &str) {
    match parse(text) {
        Ok(ast) => {
            if let Some(root) = &ast.root {
                assert!(root.span.end <= text.len(), "root span outside {text:?}");
            }
            let _ = ast.to_sexp();
        }
        Err(e) => {
            let s = e.span();
            assert!(
                s.start <= s.end && s.end <= text.len(),
                "span {s:?} outside {text:?}"
            );
            assert!(
                text.is_char_boundary(s.start) && text.is_char_boundary(s.end),
                "span {s:?} splits a character of {text:?}"
            );
            let r = e.render();
            assert!(r.contains(e.message()), "rendering lost the message: {r}");
        }
    }
}

fn corpus() -> &'static Vec<String> {
    static C: OnceLock<Vec<String>> = OnceLock::new();
    C.get_or_init(|| {
        let dir = e2e::corpus_dir().join("expressions");
        let common = std::fs::read_to_string(dir.join("common.txt")).expect("common.txt");
        let accept = std::fs::read_to_string(dir.join("accept.tsv")).expect("accept.tsv");
        common
            .lines()
            .map(String::from)
            .chain(
                accept
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split('\t').nth(1).map(String::from)),
            )
            .filter(|l| !l.is_empty())
            .collect()
    })
}

const PIECES: &[&str] = &[
    "host ",
    "net ",
    "port ",
    "portrange ",
    "src ",
    "dst ",
    "or ",
    "and ",
    "not ",
    "!",
    "(",
    ")",
    "[",
    "]",
    ":",
    "/",
    "-",
    "+",
    "*",
    "%",
    "^",
    "&",
    "|",
    "<<",
    ">>",
    "=",
    "!=",
    "<=",
    ">=",
    "tcp",
    "ip",
    "ip6",
    "ether",
    "vlan",
    "mpls",
    "proto",
    "mask",
    "10.1",
    "1.2.3.4",
    "fe80::1",
    "::",
    "aa:bb:cc:dd:ee:ff",
    "a:b:",
    "$c0",
    "$",
    "\\tcp",
    "\\",
    "0x",
    "08",
    "4294967296",
    "1-2",
    "len",
    "type",
    "subtype",
    "dir",
    "llc",
    "vpi",
    "sio",
    "byte",
    " ",
    "é",
    "\u{0}",
    "tcp-syn",
    "icmp-echo",
    "geneve",
    "reason",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,40}") {
        check(&s);
    }

    #[test]
    fn token_soup_never_panics(parts in prop::collection::vec(prop::sample::select(PIECES), 0..14)) {
        check(&parts.concat());
    }

    #[test]
    fn mutated_corpus_never_panics(
        idx in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(PIECES)), 1..4),
    ) {
        let mut text = idx.get(corpus()).clone();
        for (at, op, piece) in edits {
            let boundaries: Vec<usize> = (0..=text.len()).filter(|i| text.is_char_boundary(*i)).collect();
            let pos = *at.get(&boundaries);
            match op {
                0 => text.insert_str(pos, piece),
                1 => {
                    let end = text[pos..].chars().next().map_or(pos, |c| pos + c.len_utf8());
                    text.replace_range(pos..end, "");
                }
                _ => text.replace_range(pos.., &text[pos..].replacen(' ', piece, 1)),
            }
        }
        check(&text);
    }
}
