//! Oracle test for the `-d` printer: libpcap's own `bpf_image()` (the
//! function behind `tcpdump -d`) for every byte opcode and a spread of
//! larger codes, k values that exercise every operand format (signed `%d`,
//! hex, ancillary names), jt/jf and instruction numbers.
//!
//! Links the system libpcap (libpcap-dev) for this test only; the library
//! itself does not depend on it.

use filter_programs::cbpf::text;
use filter_programs::cbpf::Insn;
use std::ffi::{c_char, c_int, CStr};

#[link(name = "pcap")]
extern "C" {
    fn bpf_image(insn: *const Insn, n: c_int) -> *const c_char;
    fn pcap_lib_version() -> *const c_char;
}

fn libpcap_image(insn: &Insn, n: usize) -> String {
    let n = c_int::try_from(n).expect("n fits in an int");
    // SAFETY: `Insn` is `#[repr(C)]` with the layout of `struct bpf_insn`;
    // bpf_image reads it and returns a pointer to a static NUL-terminated
    // buffer, which is copied before the next call. Only this test calls it.
    unsafe { CStr::from_ptr(bpf_image(insn, n)) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn dash_d_lines_match_libpcap_bpf_image() {
    // SAFETY: returns a static string.
    let version = unsafe { CStr::from_ptr(pcap_lib_version()) }
        .to_string_lossy()
        .into_owned();
    eprintln!("oracle: {version}");
    let mut ks: Vec<u32> = vec![
        0,
        1,
        12,
        15,
        255,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0xfff0_0000,
    ];
    ks.extend((0xffff_f000u32..0xffff_f048).step_by(2));
    let codes = (0u16..=0x1ff)
        .chain((0x200u16..=0xffff).step_by(97))
        .chain([0xffff]);
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for code in codes {
        for &k in &ks {
            for (jt, jf) in [(0, 0), (3, 250)] {
                for n in [0usize, 7, 999, 1000, 70000] {
                    let insn = Insn::new(code, jt, jf, k);
                    let ours = text::image(&insn, n);
                    let theirs = libpcap_image(&insn, n);
                    checked += 1;
                    if ours != theirs && mismatches.len() < 20 {
                        mismatches.push(format!(
                            "{insn:?} at {n}: ours {ours:?}, libpcap {theirs:?}"
                        ));
                    }
                }
            }
        }
    }
    eprintln!("compared {checked} bpf_image lines");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(checked > 100_000);
}
