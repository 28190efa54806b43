use super::*;
use crate::cbpf::Insn as C;
use crate::ebpf::asm::Asm;
use crate::ebpf::insn::{AluOp, CallTarget, JmpOp, Op, Operand, Pseudo, Reg, Size};
use crate::translate::{translate, Target};

fn rule(insns: &[Insn], kind: Hook) -> Rule {
    match check(insns, kind) {
        Err(e) => e.rule,
        Ok(()) => panic!(
            "accepted:\n{}",
            crate::ebpf::disasm::disassemble(insns).unwrap_or_default()
        ),
    }
}

/// Programs in the shapes the translator's own unit tests use, on every
/// target: what translate emits must pass.
#[test]
fn translations_pass() {
    let progs: Vec<Vec<C>> = vec![
        // ip
        vec![
            C::new(0x28, 0, 0, 12),
            C::new(0x15, 0, 1, 0x800),
            C::new(0x06, 0, 0, 262144),
            C::new(0x06, 0, 0, 0),
        ],
        // ldh [12]; ldb [23]; ldh [20]; ret a
        vec![
            C::new(0x28, 0, 0, 12),
            C::new(0x30, 0, 0, 23),
            C::new(0x28, 0, 0, 20),
            C::new(0x16, 0, 0, 0),
        ],
        // ldx #0; ld #5; div x; ret #7
        vec![
            C::new(0x01, 0, 0, 0),
            C::new(0x00, 0, 0, 5),
            C::new(0x3c, 0, 0, 0),
            C::new(0x06, 0, 0, 7),
        ],
        // ldxb 4*([14]&0xf); ldh [x + 16]; jeq #80
        vec![
            C::new(0xb1, 0, 0, 14),
            C::new(0x48, 0, 0, 16),
            C::new(0x15, 0, 1, 80),
            C::new(0x06, 0, 0, 1),
            C::new(0x06, 0, 0, 0),
        ],
        // st M[3]; ld M[3]; len; ret a
        vec![
            C::new(0x02, 0, 0, 3),
            C::new(0x60, 0, 0, 3),
            C::new(0x80, 0, 0, 0),
            C::new(0x16, 0, 0, 0),
        ],
        // a loop: ldb [14]; jeq #0 jt 1 jf 0 ... ja back (protochain shape)
        vec![
            C::new(0x30, 0, 0, 14),
            C::new(0x15, 1, 0, 0),
            C::new(0x05, 0, 0, 0xffff_fffd),
            C::new(0x06, 0, 0, 1),
        ],
    ];
    for p in &progs {
        for t in [
            Target::socket(),
            Target::xdp(),
            Target::tc(),
            Target::new(Hook::Trace),
        ] {
            let insns = translate(p, t).unwrap();
            if let Err(e) = check(&insns, t.hook) {
                panic!(
                    "{t:?}: {e}\n{}",
                    crate::ebpf::disasm::disassemble(&insns).unwrap_or_default()
                );
            }
        }
    }
}

fn xdp_prologue(a: &mut Asm) {
    a.mov64(Reg::R6, Operand::Reg(Reg::R1));
    a.ldx(Size::W, Reg::R9, Reg::R6, 0);
}

#[test]
fn packet_reads_need_a_dominating_check() {
    let good = |n: i32, read: i16| {
        let mut a = Asm::new();
        let out = a.label();
        xdp_prologue(&mut a);
        a.mov64(Reg::R1, Operand::Reg(Reg::R9));
        a.alu64(AluOp::Add, Reg::R1, Operand::Imm(n));
        a.ldx(Size::W, Reg::R2, Reg::R6, 4);
        a.mov32(Reg::R0, Operand::Imm(1));
        a.jmp(true, JmpOp::Jgt, Reg::R1, Operand::Reg(Reg::R2), out);
        a.ldx(Size::H, Reg::R0, Reg::R9, read);
        a.bind(out);
        a.exit();
        a.assemble().unwrap()
    };
    assert_eq!(check(&good(14, 12), Hook::Xdp), Ok(()));
    assert!(matches!(
        rule(&good(13, 12), Hook::Xdp),
        Rule::PacketRange { range: 13, .. }
    ));
    assert!(matches!(
        rule(&good(14, -1), Hook::Xdp),
        Rule::PacketRange { .. }
    ));
    // In a socket filter's context offset 0 is skb->len, a number.
    assert!(matches!(
        rule(&good(14, 12), Hook::Socket),
        Rule::BadPointer { reg: 9, .. }
    ));
}

#[test]
fn structural_rules() {
    let exit0 = || {
        vec![Op::Alu {
            wide: false,
            op: AluOp::Mov,
            dst: Reg::R0,
            src: Operand::Imm(0),
        }]
    };
    let asm = |ops: Vec<Op>| -> Vec<Insn> { ops.iter().flat_map(|o| o.encode()).collect() };
    let mut p = exit0();
    p.push(Op::Exit);
    assert_eq!(check(&asm(p.clone()), Hook::Socket), Ok(()));
    // Missing exit.
    assert_eq!(rule(&asm(exit0()), Hook::Socket), Rule::FallsOffEnd);
    // r0 not written.
    assert_eq!(
        rule(&asm(vec![Op::Exit]), Hook::Xdp),
        Rule::UninitRegister { reg: 0 }
    );
    // Writing r10.
    let mut w = exit0();
    w.push(Op::Alu {
        wide: true,
        op: AluOp::Add,
        dst: Reg::R10,
        src: Operand::Imm(8),
    });
    w.push(Op::Exit);
    assert_eq!(rule(&asm(w), Hook::Xdp), Rule::FramePointerWrite);
    // Jump into the middle of an ld_imm64.
    let j = vec![
        Op::Jmp {
            wide: true,
            op: JmpOp::Jeq,
            dst: Reg::R1,
            src: Operand::Imm(0),
            off: 1,
        },
        Op::LdImm64 {
            dst: Reg::R0,
            pseudo: Pseudo::None,
            src_reg: 0,
            imm: 7,
        },
        Op::Exit,
    ];
    assert_eq!(rule(&asm(j), Hook::Xdp), Rule::JumpIntoImm64 { target: 2 });
    // Dead code, and an unguarded loop.
    let dead = vec![exit0()[0], Op::Exit, Op::Exit];
    assert_eq!(check(&asm(dead), Hook::Xdp).unwrap_err().slot, 2);
    let lp = vec![exit0()[0], Op::Ja { off: -1 }];
    assert!(matches!(
        rule(&asm(lp), Hook::Xdp),
        Rule::UnboundedLoop { target: 1 }
    ));
}

#[test]
fn stack_rules() {
    let prog = |off: i16, size: Size| -> Vec<Insn> {
        let mut a = Asm::new();
        a.mov32(Reg::R0, Operand::Imm(0));
        a.stx(size, Reg::R10, Reg::R0, off);
        a.exit();
        a.assemble().unwrap()
    };
    assert_eq!(check(&prog(-8, Size::DW), Hook::Xdp), Ok(()));
    assert!(matches!(
        rule(&prog(-516, Size::W), Hook::Xdp),
        Rule::StackRange { .. }
    ));
    assert!(matches!(
        rule(&prog(0, Size::W), Hook::Xdp),
        Rule::StackRange { .. }
    ));
    assert!(matches!(
        rule(&prog(-6, Size::W), Hook::Xdp),
        Rule::StackAlign { .. }
    ));
    // An unwritten read: fine for a privileged loader, not for a strict one.
    let mut a = Asm::new();
    a.ldx(Size::W, Reg::R0, Reg::R10, -4);
    a.exit();
    let read = a.assemble().unwrap();
    assert_eq!(check(&read, Hook::Xdp), Ok(()));
    let strict = check_with(&read, Hook::Xdp, Options { strict_stack: true });
    assert!(matches!(
        strict.map_err(|e| e.rule),
        Err(Rule::StackUninit { off: -4, size: 4 })
    ));
}

#[test]
fn helpers_and_context_per_hook() {
    let call = |id: i32| -> Vec<Insn> {
        let mut a = Asm::new();
        a.push(Op::Call(CallTarget::Helper(id)));
        a.exit();
        a.assemble().unwrap()
    };
    assert_eq!(check(&call(7), Hook::Xdp), Ok(()));
    assert_eq!(check(&call(188), Hook::Xdp), Ok(()));
    assert!(matches!(
        rule(&call(188), Hook::Socket),
        Rule::Helper { id: 188, .. }
    ));
    assert!(matches!(
        rule(&call(99), Hook::Socket),
        Rule::Unsupported(_)
    ));
    let load = |kind, off: i16, size| {
        let mut a = Asm::new();
        a.ldx(size, Reg::R0, Reg::R1, off);
        a.exit();
        check(&a.assemble().unwrap(), kind)
    };
    assert_eq!(load(Hook::Socket, 0, Size::W), Ok(()));
    assert_eq!(load(Hook::Socket, 2, Size::H), Ok(()));
    assert!(load(Hook::Socket, 2, Size::W).is_err());
    assert!(load(Hook::Socket, 72, Size::W).is_err()); // tc_classid
    assert_eq!(load(Hook::Tc, 72, Size::W), Ok(()));
    assert!(load(Hook::Xdp, 20, Size::W).is_err()); // egress_ifindex
    assert!(load(Hook::Xdp, 12, Size::H).is_err());
}

#[test]
fn errors_read_well() {
    let mut a = Asm::new();
    a.mov32(Reg::R0, Operand::Reg(Reg::R3));
    a.exit();
    let e = check(&a.assemble().unwrap(), Hook::Xdp).unwrap_err();
    assert_eq!(
        e.to_string(),
        "slot 0: r3 is read before it is written on some path"
    );
}

/// The trace hook: its context is the tracepoint's arguments (read only,
/// 8 bytes each), the first a kernel object that loads may read but not
/// write or move past; `bpf_probe_read_kernel` only there.
#[test]
fn trace_context_rules() {
    let prog = |body: &dyn Fn(&mut Asm)| {
        let mut a = Asm::new();
        body(&mut a);
        a.mov64(Reg::R0, Operand::Imm(0));
        a.exit();
        a.assemble().unwrap()
    };
    let ok = prog(&|a: &mut Asm| {
        a.ldx(Size::DW, Reg::R6, Reg::R1, 0);
        a.ldx(Size::H, Reg::R2, Reg::R6, 182);
        a.ldx(Size::DW, Reg::R3, Reg::R1, 8);
    });
    assert_eq!(check(&ok, Hook::Trace), Ok(()));
    let store = prog(&|a: &mut Asm| {
        a.ldx(Size::DW, Reg::R6, Reg::R1, 0);
        a.mov64(Reg::R2, Operand::Imm(1));
        a.stx(Size::W, Reg::R6, Reg::R2, 112);
    });
    assert!(matches!(rule(&store, Hook::Trace), Rule::Unsupported(_)));
    let narrow_arg = prog(&|a: &mut Asm| {
        a.ldx(Size::W, Reg::R6, Reg::R1, 0);
    });
    assert!(check(&narrow_arg, Hook::Trace).is_err());
    let probe = |h: Hook| {
        prog(&|a: &mut Asm| {
            a.mov64(Reg::R1, Operand::Reg(Reg::R10));
            a.alu64(AluOp::Add, Reg::R1, Operand::Imm(-8));
            a.mov64(Reg::R2, Operand::Imm(if h == Hook::Trace { 8 } else { 4 }));
            a.mov64(Reg::R3, Operand::Imm(0));
            a.push(Op::Call(CallTarget::Helper(113)));
        })
    };
    assert_eq!(check(&probe(Hook::Trace), Hook::Trace), Ok(()));
    assert!(matches!(
        rule(&probe(Hook::Tc), Hook::Tc),
        Rule::Helper { .. }
    ));
}

/// `r0 = 0; loop: r0 += 1; may_goto out; goto loop; out: exit`: a loop
/// the kernel bounds, accepted only in the shape the translator emits.
#[test]
fn may_goto_loops() {
    let shaped = |jump_past_guard: bool| {
        let mut a = Asm::new();
        let (top, back, out) = (a.label(), a.label(), a.label());
        a.mov64(Reg::R0, Operand::Imm(0));
        a.bind(top);
        a.alu64(AluOp::Add, Reg::R0, Operand::Imm(1));
        if jump_past_guard {
            a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(5), back);
        }
        a.may_goto(out);
        a.bind(back);
        a.ja(top);
        a.bind(out);
        a.exit();
        a.assemble().unwrap()
    };
    assert_eq!(check(&shaped(false), Hook::Xdp), Ok(()));
    assert_eq!(check(&shaped(false), Hook::Trace), Ok(()));
    // A path around the guard turns without spending the budget; a
    // may_goto that jumps back spins once it is spent.
    let mut a = Asm::new();
    let top = a.label();
    a.mov64(Reg::R0, Operand::Imm(0));
    a.bind(top);
    a.alu64(AluOp::Add, Reg::R0, Operand::Imm(1));
    a.may_goto(top);
    a.exit();
    for p in [shaped(true), a.assemble().unwrap()] {
        let r = rule(&p, Hook::Xdp);
        assert!(matches!(r, Rule::UnboundedLoop { .. }), "{r:?}");
    }
    // The kernel refuses a may_goto to the next slot.
    let mut a = Asm::new();
    let next = a.label();
    a.mov64(Reg::R0, Operand::Imm(0));
    a.may_goto(next);
    a.bind(next);
    a.exit();
    assert!(matches!(
        rule(&a.assemble().unwrap(), Hook::Xdp),
        Rule::Reserved(_)
    ));
}

/// A `protochain` program translates to a `may_goto` loop by default and
/// to a counted one on request; both pass on every hook.
#[test]
fn protochain_loops_pass_in_both_forms() {
    let prog = crate::codegen::compile(
        "ip6 protochain 17",
        &crate::codegen::Options::new(crate::codegen::Dlt::En10mb),
    )
    .unwrap();
    for hook in Hook::EVERY {
        for loops in [
            crate::translate::Loops::MayGoto,
            crate::translate::Loops::Counted,
        ] {
            let t = Target::new(hook).with_loops(loops);
            let insns = translate(&prog, t).unwrap();
            let may_goto = crate::ebpf::insn::decode_all(&insns)
                .unwrap()
                .iter()
                .any(|(_, op)| matches!(op, Op::MayGoto { .. }));
            assert_eq!(
                may_goto,
                loops == crate::translate::Loops::MayGoto,
                "{hook}"
            );
            assert_eq!(check(&insns, hook), Ok(()), "{hook} {loops:?}");
        }
    }
}
