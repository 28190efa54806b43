//! Differential proof: our interpreter's `run` returns exactly what
//! libpcap 1.10.3's `bpf_filter` returns, on random valid programs and
//! random packets (captured length often shorter than the wire length).
//!
//! Cases: 100,000 per property by default; set `FILTERD_PROPTEST_CASES`
//! (for example to 1000000) for a longer run.

use e2e::gen;
use filter_programs::cbpf::interp::Program;
use filter_programs::cbpf::{AluOp, Insn, JmpOp, Op, RetVal, Size, Src};
use libpcap_oracle as libpcap;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const DEFAULT_CASES: u32 = 100_000;

fn cases() -> u32 {
    match std::env::var("FILTERD_PROPTEST_CASES") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("FILTERD_PROPTEST_CASES={v:?} is not a number")),
        Err(_) => DEFAULT_CASES,
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// The property: both libpcap's validator and ours accept the program, and
/// `run` (fused ops) and `trace` (plain ops) both return libpcap's value.
fn same_verdict(prog: &[Insn], pkt: &[u8], wirelen: u32) -> Result<(), TestCaseError> {
    let validated = libpcap::Validated::new(prog);
    prop_assert!(
        validated.is_some(),
        "generator made a program bpf_validate refuses: {prog:?}"
    );
    let ours = Program::new(prog).map_err(|e| TestCaseError::fail(format!("Program::new: {e}")))?;
    let theirs = validated.expect("checked above").filter(pkt, wirelen);
    prop_assert_eq!(
        ours.run(pkt, wirelen),
        theirs,
        "run: {:?} caplen {} wirelen {}",
        prog,
        pkt.len(),
        wirelen
    );
    prop_assert_eq!(ours.trace(pkt, wirelen).0, theirs, "trace: {:?}", prog);
    Ok(())
}

#[test]
fn random_valid_programs_match_libpcap() {
    let strategy = (gen::valid_program(), gen::packet());
    runner()
        .run(&strategy, |(prog, (pkt, wirelen))| {
            same_verdict(&prog, &pkt, wirelen)
        })
        .unwrap();
}

/// Straight-line pieces aimed at the edges: loads ending exactly at the
/// capture's end (X computed from `len`), `X + k` past 2^32, division by
/// a zero X, shifts by 31..33 and more, constant shifts of 32 and more
/// (libpcap accepts those; the kernel does not).
fn edge_block() -> impl Strategy<Value = Vec<Op>> {
    let size = prop_oneof![Just(Size::W), Just(Size::H), Just(Size::B)];
    let near = prop_oneof![
        0u32..6,
        Just(u32::MAX),
        Just(u32::MAX - 3),
        Just(0x8000_0000)
    ];
    let shift = prop_oneof![
        Just(31u32),
        Just(32),
        Just(33),
        Just(63),
        Just(u32::MAX),
        0u32..40
    ];
    let alu_x = prop::sample::select(AluOp::ALL.to_vec());
    prop_oneof![
        // X = len - d; A = P[X + k]
        (0u32..6, size.clone(), near.clone()).prop_map(|(d, size, k)| vec![
            Op::LdLen,
            Op::Alu {
                op: AluOp::Sub,
                src: Src::K(d)
            },
            Op::Tax,
            Op::LdInd { size, k },
        ]),
        // X = big; A = P[X + k]
        (near.clone(), size.clone(), near.clone())
            .prop_map(|(x, size, k)| vec![Op::LdxImm { k: x }, Op::LdInd { size, k }]),
        // A = P[k], k near the end of a short capture
        (size, 0u32..140).prop_map(|(size, k)| vec![Op::LdAbs { size, k }]),
        (0u32..140).prop_map(|k| vec![Op::LdxMsh { k }, Op::Txa]),
        // X from the packet or zero, then any ALU op by X
        (prop_oneof![Just(0u32), shift.clone()], alu_x)
            .prop_map(|(x, op)| vec![Op::LdxImm { k: x }, Op::Alu { op, src: Src::X }]),
        (0u32..8).prop_map(|k| vec![
            Op::LdxMsh { k },
            Op::Alu {
                op: AluOp::Div,
                src: Src::X
            }
        ]),
        (prop_oneof![Just(AluOp::Lsh), Just(AluOp::Rsh)], shift)
            .prop_map(|(op, k)| vec![Op::Alu { op, src: Src::K(k) }]),
        any::<u32>().prop_map(|k| vec![Op::LdImm { k }]),
        Just(vec![Op::Neg]),
        Just(vec![Op::LdLen]),
    ]
}

/// Edge blocks joined by forward conditional jumps, ending in `ret a`
/// (or `ret #k`): every path returns what its loads and ALU made.
fn edge_program() -> impl Strategy<Value = Vec<Insn>> {
    let jmp = (
        prop::sample::select(JmpOp::ALL.to_vec()),
        any::<u32>(),
        any::<u8>(),
        any::<u8>(),
    );
    (
        vec((edge_block(), proptest::option::of(jmp)), 1..8),
        any::<bool>(),
    )
        .prop_map(|(blocks, ret_k)| {
            let mut ops: Vec<Op> = Vec::new();
            for (block, jmp) in blocks {
                ops.extend(block);
                if let Some((op, k, jt, jf)) = jmp {
                    ops.push(Op::Jmp {
                        op,
                        src: Src::K(k % 4),
                        jt,
                        jf,
                    });
                }
            }
            ops.push(Op::Ret {
                val: if ret_k { RetVal::K(96) } else { RetVal::A },
            });
            let len = ops.len();
            // Fit jump offsets so every target is inside the program.
            for (pc, op) in ops.iter_mut().enumerate() {
                if let Op::Jmp { jt, jf, .. } = op {
                    let room = (len - pc - 2).min(255) + 1;
                    *jt = (*jt as usize % room) as u8;
                    *jf = (*jf as usize % room) as u8;
                }
            }
            ops.into_iter().map(Insn::from).collect()
        })
}

/// Packets of 0..64 bytes whose wire length is often longer.
fn short_packet() -> impl Strategy<Value = (Vec<u8>, u32)> {
    (
        vec(any::<u8>(), 0..64),
        prop_oneof![Just(0u32), 1u32..8, Just(1500)],
    )
        .prop_map(|(bytes, extra)| {
            let wirelen = bytes.len() as u32 + extra;
            (bytes, wirelen)
        })
}

#[test]
fn edge_programs_match_libpcap() {
    let strategy = (edge_program(), short_packet());
    runner()
        .run(&strategy, |(prog, (pkt, wirelen))| {
            same_verdict(&prog, &pkt, wirelen)
        })
        .unwrap();
}

/// What libpcap does where C leaves it undefined (constant shifts by 32
/// or more) and where it defines it (shifts by X, division by X == 0),
/// pinned value by value.
#[test]
fn shift_and_division_edges_pinned_against_libpcap() {
    let mut checked = 0;
    for op in [AluOp::Lsh, AluOp::Rsh, AluOp::Div, AluOp::Mod] {
        for count in [0u32, 1, 31, 32, 33, 63, 64, 255, 0x8000_0000, u32::MAX] {
            for src in [Src::K(count), Src::X] {
                if matches!(op, AluOp::Div | AluOp::Mod) && src == Src::K(0) {
                    continue;
                }
                let prog: Vec<Insn> = [
                    Op::LdxImm { k: count },
                    Op::LdImm { k: 0x8000_0001 },
                    Op::Alu { op, src },
                    Op::Ret { val: RetVal::A },
                ]
                .map(Insn::from)
                .to_vec();
                let theirs = libpcap::filter(&prog, &[], 0);
                let ours = Program::new(&prog).expect("valid").run(&[], 0);
                assert_eq!(ours, theirs, "{op:?} {src:?} count {count}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 78);
}
