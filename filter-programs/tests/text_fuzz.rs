//! Property tests for the text formats: random and mutated input never
//! panics, anything that parses prints and parses back to itself, and
//! every program with in-range jumps survives print then parse.

use filter_programs::cbpf::text::{self, Format};
use filter_programs::cbpf::Insn;
use proptest::prelude::*;

/// Whether bpf_image prints jt/jf for this code (class JMP, op not JA).
fn has_targets(code: u16) -> bool {
    code & 0x07 == 0x05 && code & 0xf0 != 0
}

/// The codes tcpdump can print, so most generated instructions are real.
const VALID: &[u16] = &[
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0c, 0x0e, 0x14, 0x15, 0x16, 0x1c, 0x1d, 0x20,
    0x24, 0x25, 0x28, 0x2c, 0x2d, 0x30, 0x34, 0x35, 0x3c, 0x3d, 0x40, 0x44, 0x45, 0x48, 0x4c, 0x4d,
    0x50, 0x54, 0x5c, 0x60, 0x61, 0x64, 0x6c, 0x74, 0x7c, 0x80, 0x81, 0x84, 0x87, 0x94, 0x9c, 0xa4,
    0xac, 0xb1,
];

/// A program whose jumps all land inside it (some `ja` backwards, as
/// libpcap's protochain code does).
fn program() -> impl Strategy<Value = Vec<Insn>> {
    let code = prop_oneof![3 => prop::sample::select(VALID), 1 => any::<u16>()];
    let k = prop_oneof![
        any::<u32>(),
        0u32..64,
        (0u32..64).prop_map(|v| 0xffff_f000 + v)
    ];
    prop::collection::vec((code, any::<u8>(), any::<u8>(), k), 1..40).prop_map(|raw| {
        let len = raw.len();
        raw.into_iter()
            .enumerate()
            .map(|(i, (code, jt, jf, k))| {
                let room = (len - i - 1) as u32;
                let mut insn = Insn::new(code, jt, jf, k);
                if has_targets(code) {
                    if room == 0 {
                        return Insn::new(0x06, 0, 0, k);
                    }
                    insn.jt = (jt as u32 % room.min(256)) as u8;
                    insn.jf = (jf as u32 % room.min(256)) as u8;
                } else if code == 0x05 {
                    let target = k % len as u32;
                    insn.k = target.wrapping_sub(i as u32 + 1);
                }
                insn
            })
            .collect()
    })
}

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    DupLine(usize),
    DropLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = prop::sample::select(
        "0123456789abcdefx#[]()+-{},;jtfM*& \t\n\u{e9}"
            .chars()
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        (any::<usize>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<usize>().prop_map(Edit::DupLine),
        any::<usize>().prop_map(Edit::DropLine),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<&str> = text.lines().collect();
    let at = |i: usize, n: usize| if n == 0 { 0 } else { i % n };
    match *e {
        Edit::Delete(i) if !chars.is_empty() => {
            chars.remove(at(i, chars.len()));
        }
        Edit::Insert(i, c) => chars.insert(at(i, chars.len() + 1), c),
        Edit::Replace(i, c) if !chars.is_empty() => {
            let i = at(i, chars.len());
            chars[i] = c;
        }
        Edit::DupLine(i) if !lines.is_empty() => {
            let i = at(i, lines.len());
            lines.insert(i, lines[i]);
            return lines.join("\n");
        }
        Edit::DropLine(i) if !lines.is_empty() => {
            lines.remove(at(i, lines.len()));
            return lines.join("\n");
        }
        _ => {}
    }
    chars.into_iter().collect()
}

/// Whatever parses must print and parse back to the same program.
fn reparse_is_stable(text: &str) -> Result<(), TestCaseError> {
    if let (Ok(prog), Some(format)) = (text::parse(text), text::detect(text)) {
        let again = text::print(&prog, format);
        prop_assert_eq!(text::parse_as(&again, format), Ok(prog), "{}", again);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in any::<String>()) {
        for f in Format::ALL {
            let _ = text::parse_as(&s, f);
        }
        reparse_is_stable(&s)?;
    }

    #[test]
    fn dump_like_text_never_panics(s in "[(){}\\[\\]#x+\\-0-9a-fjtldhrMpk ,;\t\n*&]{0,120}") {
        for f in Format::ALL {
            let _ = text::parse_as(&s, f);
        }
        reparse_is_stable(&s)?;
    }

    #[test]
    fn print_then_parse_gives_the_program(prog in program()) {
        for f in Format::ALL {
            let dump = text::print(&prog, f);
            let want: Vec<Insn> = match f {
                Format::Asm => prog.iter().map(text::asm_visible).collect(),
                _ => prog.clone(),
            };
            prop_assert_eq!(text::parse(&dump), Ok(want), "{}", dump);
        }
    }

    #[test]
    fn mutated_dumps_never_panic(
        prog in program(),
        format in prop::sample::select(Format::ALL.to_vec()),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let mut dump = text::print(&prog, format);
        for e in &edits {
            dump = apply(&dump, e);
        }
        reparse_is_stable(&dump)?;
    }

    #[test]
    fn raw_bytes(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        match text::from_raw(&bytes) {
            Ok(prog) => {
                prop_assert_eq!(bytes.len() % 8, 0);
                prop_assert_eq!(text::to_raw(&prog), bytes);
            }
            Err(e) => {
                prop_assert_eq!(e.offset, bytes.len() - bytes.len() % 8);
                prop_assert_eq!(e.len, bytes.len());
            }
        }
    }
}
