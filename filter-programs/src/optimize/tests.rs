//! Unit tests on small programs; the property and corpus tests are in
//! `tests/optimize_*.rs`.

use super::optimize;
use crate::cbpf::interp::Program;
use crate::cbpf::{Insn, JmpOp, Op, RetVal, Size, Src};
use crate::codegen::{compile, Dlt, Options};

fn unopt(expr: &str) -> Vec<Insn> {
    let opts = Options {
        optimize: false,
        ..Options::new(Dlt::En10mb)
    };
    compile(expr, &opts).expect("compiles")
}

fn ld(k: u32) -> Insn {
    Insn::from(Op::LdAbs { size: Size::H, k })
}

fn jeq(k: u32, jt: u8, jf: u8) -> Insn {
    Insn::from(Op::Jmp {
        op: JmpOp::Jeq,
        src: Src::K(k),
        jt,
        jf,
    })
}

fn ret(k: u32) -> Insn {
    Insn::from(Op::Ret { val: RetVal::K(k) })
}

#[test]
fn repeated_test_is_threaded_away() {
    // ip and ip: the second test is known true once the first passed.
    let p = [
        ld(12),
        jeq(0x800, 0, 3),
        ld(12),
        jeq(0x800, 0, 1),
        ret(1),
        ret(0),
    ];
    assert_eq!(optimize(&p), vec![ld(12), jeq(0x800, 0, 1), ret(1), ret(0)]);
}

#[test]
fn output_is_valid_and_never_longer() {
    for expr in [
        "tcp port 80",
        "host 10.0.0.1 and not udp",
        "ip6 or arp",
        "icmp[0] = 8",
    ] {
        let p = unopt(expr);
        let o = optimize(&p);
        assert!(o.len() <= p.len(), "{expr}");
        assert!(o.len() < p.len(), "{expr}: nothing optimized");
        Program::new(&o).unwrap_or_else(|e| panic!("{expr}: {e}"));
    }
}

#[test]
fn tcp_port_80_is_as_short_as_libpcaps() {
    // libpcap 1.10.3 `tcpdump -d -O ... 'tcp port 80'` is 20 instructions.
    let o = optimize(&unopt("tcp port 80"));
    assert!(o.len() <= 20, "{} instructions: {o:?}", o.len());
}

#[test]
fn possibly_failing_dead_load_is_kept() {
    // ldh [100] is dead, but on a short packet it rejects: it must stay.
    let p = [
        ld(100),
        Insn::from(Op::LdImm { k: 7 }),
        Insn::from(Op::Ret { val: RetVal::A }),
    ];
    let o = optimize(&p);
    let prog = Program::new(&o).expect("valid");
    assert_eq!(prog.run(&[0u8; 60], 60), 0);
    assert_eq!(prog.run(&[0u8; 102], 102), 7);
}

#[test]
fn unmodelled_programs_come_back_unchanged() {
    let back = [
        Insn::from(Op::LdImm { k: 1 }),
        Insn::from(Op::Ja { k: u32::MAX }),
        ret(0),
    ];
    assert_eq!(optimize(&back), back.to_vec());
    let bad = [Insn::new(0xffff, 0, 0, 0), ret(0)];
    assert_eq!(optimize(&bad), bad.to_vec());
}

#[test]
fn and_then_jeq_zero_becomes_jset() {
    let p = [
        Insn::from(Op::LdAbs {
            size: Size::B,
            k: 20,
        }),
        Insn::from(Op::Alu {
            op: crate::cbpf::AluOp::And,
            src: Src::K(0x1f),
        }),
        jeq(0, 0, 1),
        ret(1),
        ret(0),
    ];
    let o = optimize(&p);
    assert_eq!(o.len(), 4);
    assert_eq!(
        o[1].decode(),
        Ok(Op::Jmp {
            op: JmpOp::Jset,
            src: Src::K(0x1f),
            jt: 1,
            jf: 0
        })
    );
}

#[test]
fn facts_per_state_are_bounded() {
    // `host a or host b or ...`'s false path learns one fact per test; the
    // state keeps at most MAX_FACTS of them, so the analysis's memory is
    // linear in the program, not quadratic.
    use super::state::{State, MAX_FACTS};
    use super::value::Values;
    let mut vals = Values::default();
    let mut s = State::entry(&mut vals);
    s.step(
        &mut vals,
        Op::LdAbs {
            size: Size::W,
            k: 26,
        },
    );
    for k in 0..10 * MAX_FACTS as u32 {
        s.assume(&mut vals, JmpOp::Jeq, Src::K(k), false);
    }
    assert_eq!(s.facts.len(), MAX_FACTS);
    // What it kept still decides.
    assert_eq!(s.decide(&mut vals, JmpOp::Jeq, Src::K(0)), Some(false));
    assert_eq!(s.decide(&mut vals, JmpOp::Jeq, Src::K(100_000)), None);
}

#[test]
fn fact_bound_keeps_verdicts_on_a_long_or_list() {
    // Past MAX_FACTS hosts the later tests are not decided from earlier
    // ones; the program still means the same on every probe.
    let text = (0..300)
        .map(|i| format!("host 10.0.{}.{}", i / 256, i % 256))
        .collect::<Vec<_>>()
        .join(" or ");
    let u = unopt(&text);
    let o = optimize(&u);
    assert!(o.len() <= u.len());
    let (pu, po) = (Program::new_unvalidated(&u), Program::new_unvalidated(&o));
    let mut pkt = vec![0u8; 60];
    pkt[12] = 0x08;
    for i in 0..400u32 {
        for at in [26, 30] {
            pkt[26..34].fill(0);
            pkt[at..at + 4].copy_from_slice(&[10, 0, (i / 256) as u8, (i % 256) as u8]);
            let want = pu.run(&pkt, 60);
            assert_eq!(want != 0, i < 300, "host index {i} at {at}");
            assert_eq!(want, po.run(&pkt, 60), "host index {i} at {at}");
        }
    }
}
