//! Exact strings for every opcode in every format. The expected `-d` text
//! was produced by libpcap 1.10.3's own `bpf_image()` (called through
//! ctypes), the `-dd`/`-ddd` text by the printf formats of `bpf_dump()`.

use super::*;

/// One program holding every opcode 1.10.3 knows, the two it prints as
/// `unimp`, and two codes that are no opcode at all. Its jumps stay inside
/// the program, so every format parses back to it.
#[rustfmt::skip]
const EVERY_OPCODE: &[(Insn, &str, &str, &str)] = &[
    // ld #imm
    (Insn::new(0x0, 0, 0, 0xf), "(000) ld       #0xf", "{ 0x0, 0, 0, 0x0000000f },", "0 0 0 15"),
    // ldx #imm
    (Insn::new(0x1, 0, 0, 0xf0000000), "(001) ldx      #0xf0000000", "{ 0x1, 0, 0, 0xf0000000 },", "1 0 0 4026531840"),
    // st
    (Insn::new(0x2, 0, 0, 0xf), "(002) st       M[15]", "{ 0x2, 0, 0, 0x0000000f },", "2 0 0 15"),
    // stx
    (Insn::new(0x3, 0, 0, 0x3), "(003) stx      M[3]", "{ 0x3, 0, 0, 0x00000003 },", "3 0 0 3"),
    // ld [k]
    (Insn::new(0x20, 0, 0, 0xc), "(004) ld       [12]", "{ 0x20, 0, 0, 0x0000000c },", "32 0 0 12"),
    // ldh [k]
    (Insn::new(0x28, 0, 0, 0xc), "(005) ldh      [12]", "{ 0x28, 0, 0, 0x0000000c },", "40 0 0 12"),
    // ldb [k]
    (Insn::new(0x30, 0, 0, 0x17), "(006) ldb      [23]", "{ 0x30, 0, 0, 0x00000017 },", "48 0 0 23"),
    // ld [x+k]
    (Insn::new(0x40, 0, 0, 0xe), "(007) ld       [x + 14]", "{ 0x40, 0, 0, 0x0000000e },", "64 0 0 14"),
    // ldh [x+k] negative
    (Insn::new(0x48, 0, 0, 0xfffff000), "(008) ldh      [x + -4096]", "{ 0x48, 0, 0, 0xfffff000 },", "72 0 0 4294963200"),
    // ldb [x+k]
    (Insn::new(0x50, 0, 0, 0x0), "(009) ldb      [x + 0]", "{ 0x50, 0, 0, 0x00000000 },", "80 0 0 0"),
    // ld M[k]
    (Insn::new(0x60, 0, 0, 0x1), "(010) ld       M[1]", "{ 0x60, 0, 0, 0x00000001 },", "96 0 0 1"),
    // ldx M[k]
    (Insn::new(0x61, 0, 0, 0x2), "(011) ldx      M[2]", "{ 0x61, 0, 0, 0x00000002 },", "97 0 0 2"),
    // ld len
    (Insn::new(0x80, 0, 0, 0x0), "(012) ld       #pktlen", "{ 0x80, 0, 0, 0x00000000 },", "128 0 0 0"),
    // ldx len: unimp in 1.10.3
    (Insn::new(0x81, 0, 0, 0x0), "(013) unimp    0x81", "{ 0x81, 0, 0, 0x00000000 },", "129 0 0 0"),
    // ldxb msh
    (Insn::new(0xb1, 0, 0, 0xe), "(014) ldxb     4*([14]&0xf)", "{ 0xb1, 0, 0, 0x0000000e },", "177 0 0 14"),
    // add #k
    (Insn::new(0x4, 0, 0, 0x6), "(015) add      #6", "{ 0x4, 0, 0, 0x00000006 },", "4 0 0 6"),
    // add x
    (Insn::new(0xc, 0, 0, 0x0), "(016) add      x", "{ 0xc, 0, 0, 0x00000000 },", "12 0 0 0"),
    // sub #k
    (Insn::new(0x14, 0, 0, 0xfffffffe), "(017) sub      #-2", "{ 0x14, 0, 0, 0xfffffffe },", "20 0 0 4294967294"),
    // sub x
    (Insn::new(0x1c, 0, 0, 0x0), "(018) sub      x", "{ 0x1c, 0, 0, 0x00000000 },", "28 0 0 0"),
    // mul #k
    (Insn::new(0x24, 0, 0, 0x6), "(019) mul      #6", "{ 0x24, 0, 0, 0x00000006 },", "36 0 0 6"),
    // mul x
    (Insn::new(0x2c, 0, 0, 0x0), "(020) mul      x", "{ 0x2c, 0, 0, 0x00000000 },", "44 0 0 0"),
    // div #k
    (Insn::new(0x34, 0, 0, 0x6), "(021) div      #6", "{ 0x34, 0, 0, 0x00000006 },", "52 0 0 6"),
    // div x
    (Insn::new(0x3c, 0, 0, 0x0), "(022) div      x", "{ 0x3c, 0, 0, 0x00000000 },", "60 0 0 0"),
    // or #k
    (Insn::new(0x44, 0, 0, 0xfffffffe), "(023) or       #0xfffffffe", "{ 0x44, 0, 0, 0xfffffffe },", "68 0 0 4294967294"),
    // or x
    (Insn::new(0x4c, 0, 0, 0x0), "(024) or       x", "{ 0x4c, 0, 0, 0x00000000 },", "76 0 0 0"),
    // and #k
    (Insn::new(0x54, 0, 0, 0x6), "(025) and      #0x6", "{ 0x54, 0, 0, 0x00000006 },", "84 0 0 6"),
    // and x
    (Insn::new(0x5c, 0, 0, 0x0), "(026) and      x", "{ 0x5c, 0, 0, 0x00000000 },", "92 0 0 0"),
    // lsh #k
    (Insn::new(0x64, 0, 0, 0x6), "(027) lsh      #6", "{ 0x64, 0, 0, 0x00000006 },", "100 0 0 6"),
    // lsh x
    (Insn::new(0x6c, 0, 0, 0x0), "(028) lsh      x", "{ 0x6c, 0, 0, 0x00000000 },", "108 0 0 0"),
    // rsh #k
    (Insn::new(0x74, 0, 0, 0x6), "(029) rsh      #6", "{ 0x74, 0, 0, 0x00000006 },", "116 0 0 6"),
    // rsh x
    (Insn::new(0x7c, 0, 0, 0x0), "(030) rsh      x", "{ 0x7c, 0, 0, 0x00000000 },", "124 0 0 0"),
    // mod #k
    (Insn::new(0x94, 0, 0, 0x6), "(031) mod      #6", "{ 0x94, 0, 0, 0x00000006 },", "148 0 0 6"),
    // mod x
    (Insn::new(0x9c, 0, 0, 0x0), "(032) mod      x", "{ 0x9c, 0, 0, 0x00000000 },", "156 0 0 0"),
    // xor #k
    (Insn::new(0xa4, 0, 0, 0x6), "(033) xor      #0x6", "{ 0xa4, 0, 0, 0x00000006 },", "164 0 0 6"),
    // xor x
    (Insn::new(0xac, 0, 0, 0x0), "(034) xor      x", "{ 0xac, 0, 0, 0x00000000 },", "172 0 0 0"),
    // neg
    (Insn::new(0x84, 0, 0, 0x0), "(035) neg      ", "{ 0x84, 0, 0, 0x00000000 },", "132 0 0 0"),
    // tax
    (Insn::new(0x7, 0, 0, 0x0), "(036) tax      ", "{ 0x7, 0, 0, 0x00000000 },", "7 0 0 0"),
    // txa
    (Insn::new(0x87, 0, 0, 0x0), "(037) txa      ", "{ 0x87, 0, 0, 0x00000000 },", "135 0 0 0"),
    // jeq #k
    (Insn::new(0x15, 0, 1, 0x800), "(038) jeq      #0x800           jt 39\tjf 40", "{ 0x15, 0, 1, 0x00000800 },", "21 0 1 2048"),
    // jeq x
    (Insn::new(0x1d, 2, 0, 0x0), "(039) jeq      x                jt 42\tjf 40", "{ 0x1d, 2, 0, 0x00000000 },", "29 2 0 0"),
    // jgt #k
    (Insn::new(0x25, 0, 1, 0x800), "(040) jgt      #0x800           jt 41\tjf 42", "{ 0x25, 0, 1, 0x00000800 },", "37 0 1 2048"),
    // jgt x
    (Insn::new(0x2d, 2, 0, 0x0), "(041) jgt      x                jt 44\tjf 42", "{ 0x2d, 2, 0, 0x00000000 },", "45 2 0 0"),
    // jge #k
    (Insn::new(0x35, 0, 1, 0x800), "(042) jge      #0x800           jt 43\tjf 44", "{ 0x35, 0, 1, 0x00000800 },", "53 0 1 2048"),
    // jge x
    (Insn::new(0x3d, 2, 0, 0x0), "(043) jge      x                jt 46\tjf 44", "{ 0x3d, 2, 0, 0x00000000 },", "61 2 0 0"),
    // jset #k
    (Insn::new(0x45, 0, 1, 0x800), "(044) jset     #0x800           jt 45\tjf 46", "{ 0x45, 0, 1, 0x00000800 },", "69 0 1 2048"),
    // jset x
    (Insn::new(0x4d, 2, 0, 0x0), "(045) jset     x                jt 48\tjf 46", "{ 0x4d, 2, 0, 0x00000000 },", "77 2 0 0"),
    // ja
    (Insn::new(0x5, 0, 0, 0x1), "(046) ja       48", "{ 0x5, 0, 0, 0x00000001 },", "5 0 0 1"),
    // unknown jump-class code
    (Insn::new(0x55, 0, 1, 0x0), "(047) unimp    0x55             jt 48\tjf 49", "{ 0x55, 0, 1, 0x00000000 },", "85 0 1 0"),
    // code above 0xff
    (Insn::new(0x100, 0, 0, 0x0), "(048) unimp    0x100", "{ 0x100, 0, 0, 0x00000000 },", "256 0 0 0"),
    // ret x: unimp in 1.10.3
    (Insn::new(0xe, 0, 0, 0x0), "(049) unimp    0xe", "{ 0xe, 0, 0, 0x00000000 },", "14 0 0 0"),
    // ret a
    (Insn::new(0x16, 0, 0, 0x0), "(050) ret      ", "{ 0x16, 0, 0, 0x00000000 },", "22 0 0 0"),
    // ret #k
    (Insn::new(0x6, 0, 0, 0x40000), "(051) ret      #262144", "{ 0x6, 0, 0, 0x00040000 },", "6 0 0 262144"),
];

/// Single `bpf_image(insn, n)` lines that show its quirks: signed `%d`,
/// ancillary names, `ja` wrapping, fields it does not print.
#[rustfmt::skip]
const IMAGE_QUIRKS: &[(Insn, usize, &str)] = &[
    (Insn::new(0x30, 0, 0, 0xfffff000), 7, "(007) ldb      [proto]"),
    (Insn::new(0x30, 0, 0, 0xfffff004), 7, "(007) ldb      [type]"),
    (Insn::new(0x30, 0, 0, 0xfffff008), 7, "(007) ldb      [ifidx]"),
    (Insn::new(0x30, 0, 0, 0xfffff00c), 7, "(007) ldb      [nla]"),
    (Insn::new(0x30, 0, 0, 0xfffff010), 7, "(007) ldb      [nlan]"),
    (Insn::new(0x30, 0, 0, 0xfffff014), 7, "(007) ldb      [mark]"),
    (Insn::new(0x30, 0, 0, 0xfffff018), 7, "(007) ldb      [queue]"),
    (Insn::new(0x30, 0, 0, 0xfffff01c), 7, "(007) ldb      [hatype]"),
    (Insn::new(0x30, 0, 0, 0xfffff020), 7, "(007) ldb      [rxhash]"),
    (Insn::new(0x30, 0, 0, 0xfffff024), 7, "(007) ldb      [cpu]"),
    (Insn::new(0x30, 0, 0, 0xfffff028), 7, "(007) ldb      [xor_x]"),
    (Insn::new(0x30, 0, 0, 0xfffff02c), 7, "(007) ldb      [vlan_tci]"),
    (Insn::new(0x30, 0, 0, 0xfffff030), 7, "(007) ldb      [vlanp]"),
    (Insn::new(0x30, 0, 0, 0xfffff034), 7, "(007) ldb      [poff]"),
    (Insn::new(0x30, 0, 0, 0xfffff038), 7, "(007) ldb      [random]"),
    (Insn::new(0x30, 0, 0, 0xfffff03c), 7, "(007) ldb      [vlan_tpid]"),
    (Insn::new(0x30, 0, 0, 0xfffff040), 0, "(000) ldb      [-4032]"),
    (Insn::new(0x20, 0, 0, 0xfffff002), 0, "(000) ld       [-4094]"),
    (Insn::new(0x28, 0, 0, 0xfff00000), 0, "(000) ldh      [-1048576]"),
    (Insn::new(0x6, 0, 0, 0xffffffff), 0, "(000) ret      #-1"),
    (Insn::new(0x6, 0, 0, 0x80000000), 0, "(000) ret      #-2147483648"),
    (Insn::new(0x4, 0, 0, 0x80000000), 0, "(000) add      #-2147483648"),
    (Insn::new(0x54, 0, 0, 0xffffffff), 0, "(000) and      #0xffffffff"),
    (Insn::new(0x64, 0, 0, 0xffffffff), 0, "(000) lsh      #-1"),
    (Insn::new(0x0, 0, 0, 0xffffffff), 0, "(000) ld       #0xffffffff"),
    (Insn::new(0x60, 0, 0, 0xffffffff), 0, "(000) ld       M[-1]"),
    (Insn::new(0x5, 0, 0, 0xffffffff), 5, "(005) ja       5"),
    (Insn::new(0x5, 0, 0, 0xfffffff0), 1, "(001) ja       -14"),
    (Insn::new(0x15, 255, 255, 0xffffffff), 1000, "(1000) jeq      #0xffffffff      jt 1256\tjf 1256"),
    (Insn::new(0x1d, 3, 4, 0x63), 12345, "(12345) jeq      x                jt 12349\tjf 12350"),
    (Insn::new(0x28, 1, 2, 0xc), 3, "(003) ldh      [12]"),
    (Insn::new(0x87, 9, 9, 0x9), 3, "(003) txa      "),
    (Insn::new(0x16, 0, 0, 0x7), 0, "(000) ret      "),
    (Insn::new(0x80, 0, 0, 0x7), 0, "(000) ld       #pktlen"),
    (Insn::new(0xe, 1, 1, 0x7), 0, "(000) unimp    0xe"),
    (Insn::new(0xffff, 1, 2, 0x3), 0, "(000) unimp    0xffff"),
    (Insn::new(0xb1, 0, 0, 0xffffffff), 0, "(000) ldxb     4*([-1]&0xf)"),
    (Insn::new(0x50, 0, 0, 0x7fffffff), 0, "(000) ldb      [x + 2147483647]"),
    (Insn::new(0x1015, 1, 2, 0x0), 0, "(000) unimp    0x1015           jt 2\tjf 3"),
];

fn every_opcode() -> Vec<Insn> {
    EVERY_OPCODE.iter().map(|c| c.0).collect()
}

fn expected(format: Format) -> String {
    let mut out = match format {
        Format::Decimal => format!("{}\n", EVERY_OPCODE.len()),
        _ => String::new(),
    };
    for (_, d, dd, ddd) in EVERY_OPCODE {
        out.push_str(match format {
            Format::Asm => d,
            Format::C => dd,
            Format::Decimal => ddd,
        });
        out.push('\n');
    }
    out
}

#[test]
fn every_opcode_prints_exactly() {
    let prog = every_opcode();
    for format in Format::ALL {
        let want = expected(format);
        let got = print(&prog, format);
        for (g, w) in got.lines().zip(want.lines()) {
            assert_eq!(g, w, "{format:?}");
        }
        assert_eq!(got, want, "{format:?}");
    }
}

#[test]
fn every_opcode_parses_back() {
    let prog = every_opcode();
    for format in Format::ALL {
        let text = expected(format);
        assert_eq!(detect(&text), Some(format));
        assert_eq!(parse(&text), Ok(prog.clone()), "{format:?}");
        assert_eq!(parse_as(&text, format), Ok(prog.clone()), "{format:?}");
    }
}

#[test]
fn image_quirks() {
    for (insn, n, want) in IMAGE_QUIRKS {
        assert_eq!(image(insn, *n), *want, "{insn:?} at {n}");
    }
}

#[test]
fn quirky_lines_parse_to_what_they_show() {
    let cases: &[(&str, Insn)] = &[
        (
            "(000) ldb      [vlanp]\n(001) ret #0",
            Insn::new(0x30, 0, 0, 0xffff_f030),
        ),
        (
            "(000) ldh      [-1048576]\n(001) ret #0",
            Insn::new(0x28, 0, 0, 0xfff0_0000),
        ),
        (
            "(000) ldh      [x + -4096]\n(001) ret #0",
            Insn::new(0x48, 0, 0, 0xffff_f000),
        ),
        ("(000) ret      #-1", Insn::new(0x06, 0, 0, u32::MAX)),
        ("(000) ret", Insn::new(0x16, 0, 0, 0)),
        ("(000) ret a", Insn::new(0x16, 0, 0, 0)),
        ("(000) ret x", Insn::new(0x0e, 0, 0, 0)),
        ("(000) unimp    0xe", Insn::new(0x0e, 0, 0, 0)),
        ("(000) ldx #pktlen\n(001) ret #0", Insn::new(0x81, 0, 0, 0)),
        (
            "(000) lsh #-1\n(001) ret #0",
            Insn::new(0x64, 0, 0, u32::MAX),
        ),
        ("(000) and #255\n(001) ret #0", Insn::new(0x54, 0, 0, 255)),
        ("(000) ja 1\n(001) ret #0", Insn::new(0x05, 0, 0, 0)),
        // protochain's loop: a backward `ja`, k wrapping around 2^32.
        (
            "(000) ret #0\n(001) ja 0",
            Insn::new(0x05, 0, 0, 0xffff_fffe),
        ),
        (
            "{ 0x6, 0, 0, 0 },\n{ 0x5, 0, 0, 0xfffffffe },",
            Insn::new(0x05, 0, 0, 0xffff_fffe),
        ),
        (
            "2\n6 0 0 0\n5 0 0 4294967295",
            Insn::new(0x05, 0, 0, u32::MAX),
        ),
    ];
    for (text, want) in cases {
        let prog = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let insn = prog.iter().find(|i| i.code == want.code);
        assert_eq!(insn, Some(want), "{text:?}");
    }
}

#[test]
fn lenient_about_layout() {
    let want = vec![
        Insn::new(0x28, 0, 0, 12),
        Insn::new(0x15, 0, 1, 0x800),
        Insn::new(0x48, 0, 0, 14),
        Insn::new(0x06, 0, 0, 0),
    ];
    let asm = "\n  (000)   ldh [12]  \r\n\n(001) jeq #2048 jt 2 jf 3 ; 0x0015\n\
               (002)\tldh\t[ x + 0xe ]   ; anything\n(003) ret #0x0";
    assert_eq!(parse(asm), Ok(want.clone()));
    let c = "{0x28,0,0,12}\n  { 21, 0x0, 1, 0x800 } ,\n{ 0x48, 0, 0, 14 },\r\n{ 6, 0, 0, 0 }";
    assert_eq!(parse(c), Ok(want.clone()));
    let ddd = "\n4\n40 0 0 12\n\n 0x15 0 1 0x800 \n72\t0\t0\t14\n6 0 0 0\n\n";
    assert_eq!(parse(ddd), Ok(want));
}

#[test]
fn master_filtertest_comments_are_checked() {
    let ok = "(000) ld       #0xf                               ; 0x0000\n\
              (001) ldx      #pktlen                            ; 0x0081\n\
              (002) ret                                         ; 0x0016\n";
    assert_eq!(
        parse(ok),
        Ok(vec![
            Insn::new(0, 0, 0, 15),
            Insn::new(0x81, 0, 0, 0),
            Insn::new(0x16, 0, 0, 0)
        ])
    );
    let bad = "(000) ret      #0     ; 0x0016";
    assert_eq!(parse(bad).map_err(|e| (e.line, e.column)), Err((1, 25)));
}

/// (input, line, column, part of the message)
#[rustfmt::skip]
const ERRORS: &[(&str, usize, usize, &str)] = &[
    ("", 1, 1, "empty input"),
    ("  \n\t\n", 1, 1, "empty input"),
    ("\n  hello", 2, 3, "not a tcpdump dump"),
    ("(000) foo #1", 1, 7, "unknown mnemonic `foo`"),
    ("(000) ret #12z", 1, 11, "`12z` is not a number"),
    ("(000) ret #4294967296", 1, 11, "out of range"),
    ("(000) ldh #5\n(001) ret #0", 1, 11, "`ldh` takes [k] or [x + k]"),
    ("(000) ld\n(001) ret #0", 1, 7, "`ld` takes #k"),
    ("(000) tax 5\n(001) ret #0", 1, 11, "`tax` takes no operand"),
    ("(000) ret #0\n(002) ret #0", 2, 1, "expected instruction number (001), found `(002)`"),
    ("(000) ret #0\nret #0", 2, 1, "expected the instruction number `(001)`"),
    ("(000)", 1, 1, "no mnemonic"),
    ("(000) ldh [12]\n(001) jeq #0x800 jt 2 jf 5\n(002) ret #0", 2, 26, "past the end"),
    ("(000) ret #0\n(001) jeq #1 jt 1 jf 2\n(002) ret #0", 2, 17, "jumps go forward"),
    ("(000) jeq #1 jt 300 jf 1\n(001) ret #0", 1, 17, "at most 255"),
    ("(000) jeq #1 jt x jf 1\n(001) ret #0", 1, 17, "not an instruction number"),
    ("(000) jeq #1\n(001) ret #0", 1, 13, "needs `jt <target> jf <target>`"),
    ("(000) jeq #1 jt 1\n(001) ret #0", 1, 14, "expected `jt <target> jf <target>`"),
    ("(000) ret #0 jt 1 jf 1", 1, 14, "takes no `jt`/`jf`"),
    ("(000) ja 5\n(001) ret #0", 1, 10, "past the end"),
    ("(000) ja -3\n(001) ret #0", 1, 10, "outside the program"),
    ("(000) ja 4294967296\n(001) ret #0", 1, 10, "outside the program"),
    ("{ 0x6, 0, 0, 0 },\n{ 0x5, 0, 0, 0xfffffff0 },", 2, 14, "past the end"),
    ("(000) unimp 0x28", 1, 13, "is `ldh`"),
    ("(000) unimp 0x10000", 1, 13, "out of range"),
    ("(000) ret #0 ; 0xzz", 1, 16, "not a number"),
    ("{ 0x6, 0, 0 },", 1, 13, "only 3 fields"),
    ("{ 0x6, 0, 0, 0, 1 },", 1, 17, "too many fields"),
    ("{ 0x6, , 0, 0 },", 1, 8, "empty field; expected jt"),
    ("{ 0x6, 0, 0, 0 }; x", 1, 17, "unexpected `; x`"),
    ("{ 0x6, 0, 0, 0", 1, 15, "missing `}`"),
    ("{ 0x6, 0, 0, 0 },\n6 0 0 0", 2, 1, "expected `{ code, jt, jf, k },`"),
    ("{ 0x10000, 0, 0, 0 },", 1, 3, "bad code"),
    ("{ 0x15, 0, 1, 0x800 },\n{ 0x6, 0, 0, 0 },", 1, 12, "past the end"),
    ("{ 0x5, 0, 0, 1 },\n{ 0x6, 0, 0, 0 },", 1, 14, "past the end"),
    ("3\n6 0 0 0\n6 0 0 1\n", 1, 1, "count line says 3 instructions but 2 follow"),
    ("\n\n  1\n6 0 0 0\n6 0 0 1\n", 3, 3, "says 1 instructions but 2 follow"),
    ("1 2\n6 0 0 0", 1, 3, "count alone"),
    ("1\n6 0 0 x1", 2, 7, "bad k"),
    ("1\n6 0 0", 2, 6, "found 3"),
    ("1\n6 0 0 1 2", 2, 9, "found 5"),
    ("2\n21 256 0 0\n6 0 0 0", 2, 4, "bad jt"),
    ("2\n21 0 1 0\n6 0 0 0", 2, 6, "past the end"),
];

#[test]
fn errors_point_at_the_token() {
    for (text, line, col, msg) in ERRORS {
        let e = match parse(text) {
            Err(e) => e,
            Ok(p) => panic!("{text:?} parsed as {p:?}"),
        };
        assert!(e.message.contains(msg), "{text:?}: {e}");
        assert_eq!((e.line, e.column), (*line, *col), "{text:?}: {e}");
    }
}

#[test]
fn an_empty_program_only_has_a_decimal_form() {
    assert_eq!(print(&[], Format::Decimal), "0\n");
    assert_eq!(parse("0\n"), Ok(vec![]));
    assert_eq!(print(&[], Format::Asm), "");
    assert_eq!(print(&[], Format::C), "");
}

#[test]
fn raw_round_trip_and_errors() {
    let prog = every_opcode();
    let raw = to_raw(&prog);
    assert_eq!(raw.len(), 8 * prog.len());
    assert_eq!(&raw[..8], &Insn::new(0, 0, 0, 15).to_bytes());
    assert_eq!(from_raw(&raw), Ok(prog));
    assert_eq!(from_raw(&[]), Ok(vec![]));
    assert_eq!(from_raw(&raw[..13]), Err(RawError { offset: 8, len: 13 }));
    assert_eq!(from_raw(&raw[..7]), Err(RawError { offset: 0, len: 7 }));
    let msg = from_raw(&raw[..13]).map_err(|e| e.to_string());
    assert!(msg.is_err_and(|m| m.contains("byte offset 8")));
}

#[test]
fn asm_visible_hides_what_dash_d_does_not_print() {
    // libpcap's optimizer leaves stale k in `tax`; -d cannot show it.
    assert_eq!(
        asm_visible(&Insn::new(0x07, 1, 2, 5)),
        Insn::new(0x07, 0, 0, 0)
    );
    assert_eq!(
        asm_visible(&Insn::new(0x15, 1, 2, 5)),
        Insn::new(0x15, 1, 2, 5)
    );
    assert_eq!(
        asm_visible(&Insn::new(0x05, 1, 2, 5)),
        Insn::new(0x05, 0, 0, 5)
    );
    assert_eq!(
        asm_visible(&Insn::new(0x0e, 1, 2, 5)),
        Insn::new(0x0e, 0, 0, 0)
    );
    assert_eq!(
        asm_visible(&Insn::new(0x55, 1, 2, 5)),
        Insn::new(0x55, 1, 2, 0)
    );
    assert_eq!(
        asm_visible(&Insn::new(0xffff, 1, 2, 5)),
        Insn::new(0xffff, 0, 0, 0)
    );
    let prog: Vec<Insn> = (0..=0xffu16)
        .map(|c| Insn::new(c, 0, 0, 7))
        .chain([Insn::new(6, 0, 0, 0)])
        .collect();
    let mut prog = prog;
    for i in prog.iter_mut() {
        if asm::has_targets(i.code) {
            (i.jt, i.jf) = (0, 0);
        }
    }
    let want: Vec<Insn> = prog.iter().map(asm_visible).collect();
    assert_eq!(parse(&print(&prog, Format::Asm)), Ok(want));
}
