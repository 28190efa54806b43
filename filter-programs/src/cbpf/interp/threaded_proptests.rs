//! Property tests: the compiled form behind `run` returns exactly what the
//! dispatch loop (`run_loop`) and the unfused trace return, on random
//! classic BPF programs (valid or not) and random packets, many of them
//! truncated (captured length below the wire length, or too short for the
//! program's loads).
//!
//! The loop is the reference here because the libpcap differential tests
//! (`pcap-replay/tests/interp_*.rs`) already hold it, through `trace`, to
//! libpcap's `bpf_filter`.

use super::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// Every opcode the decoder knows (plus `ret x`, which it traps).
const CODES: [u16; 46] = [
    0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x60, 0x80, // ld
    0x01, 0x61, 0x81, 0xb1, // ldx
    0x02, 0x03, // st, stx
    0x04, 0x14, 0x24, 0x34, 0x44, 0x54, 0x64, 0x74, 0x84, 0x94, 0xa4, // alu #k, neg
    0x0c, 0x1c, 0x2c, 0x3c, 0x4c, 0x5c, 0x6c, 0x7c, 0x9c, 0xac, // alu x
    0x05, 0x15, 0x25, 0x35, 0x45, 0x1d, 0x2d, // ja, j* #k, j* x
    0x06, 0x16, 0x0e, // ret k, a, x
];

fn insn() -> impl Strategy<Value = Insn> {
    let code = prop_oneof![
        12 => select(&CODES[..]),
        1 => select(&[0x3d_u16, 0x4d, 0x07, 0x87][..]),
        1 => any::<u16>(),
    ];
    // Short jumps mostly, so that programs branch inside themselves.
    let off = || prop_oneof![6 => 0u8..6, 1 => any::<u8>()];
    let k = prop_oneof![
        4 => 0u32..40,
        2 => select(&[0x800_u32, 0x86dd, 6, 17, 0x1fff, 0xffff_0000, 0x8000_0000, u32::MAX][..]),
        1 => any::<u32>(),
    ];
    (code, off(), off(), k).prop_map(|(c, jt, jf, k)| Insn::new(c, jt, jf, k))
}

/// Captured bytes drawn from a few values so that `jeq`s hit, and a wire
/// length at or above the captured length.
fn packet() -> impl Strategy<Value = (Vec<u8>, u32)> {
    let byte = prop_oneof![
        4 => select(&[0u8, 1, 2, 6, 8, 0x11, 0x45, 0xff][..]),
        1 => any::<u8>(),
    ];
    (vec(byte, 0..72), 0u32..3).prop_map(|(pkt, extra)| {
        let wire = pkt.len() as u32 + extra * 20;
        (pkt, wire)
    })
}

fn same(p: &Program, pkt: &[u8], wire: u32) -> Result<(), TestCaseError> {
    let want = p.run_loop(pkt, wire);
    prop_assert_eq!(p.run(pkt, wire), want, "run vs loop: {:?}", p.insns());
    prop_assert_eq!(p.trace(pkt, wire).0, want, "trace vs loop: {:?}", p.insns());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn compiled_run_equals_the_loop(
        mut insns in vec(insn(), 0..48),
        last in select(&[0x06_u16, 0x16][..]),
        pkts in vec(packet(), 1..6),
    ) {
        // Ending with a return makes a good share of them valid.
        insns.push(Insn::new(last, 0, 0, 0x40000));
        let p = Program::new_unvalidated(&insns);
        for (pkt, wire) in &pkts {
            same(&p, pkt, *wire)?;
        }
        // The same program through validation, when libpcap's rules take
        // it: `new` must build the same compiled form.
        if let Ok(v) = Program::new(&insns) {
            prop_assert_eq!(v.threaded.is_some(), p.threaded.is_some());
            for (pkt, wire) in &pkts {
                same(&v, pkt, *wire)?;
            }
            // Without closures, `run` takes the loop and returns the same.
            let looped = Program::new_looped(&insns).unwrap();
            prop_assert!(looped.threaded.is_none());
            for (pkt, wire) in &pkts {
                prop_assert_eq!(looped.run(pkt, *wire), v.run(pkt, *wire));
            }
        }
        prop_assert_eq!(Program::new_looped(&insns).is_ok(), Program::new(&insns).is_ok());
    }
}
