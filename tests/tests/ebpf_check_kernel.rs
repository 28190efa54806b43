//! The user-space pre-check (`ebpf::check`) against the kernel verifier:
//! - every corpus translation, on every target, passes both;
//! - hand-broken variants of translations (one per rule) fail both;
//! - thousands of one-field mutations of translations: whatever `check`
//!   accepts, the kernel accepts (no false accepts); the share of kernel-
//!   accepted mutations that `check` refuses is printed.

use std::collections::BTreeSet;

use bpf_kernel::{load, LoadError};
use e2e::corpus::expressions;
use filter_programs::cbpf::Insn as CInsn;
use filter_programs::ebpf::check::{check, check_with, Options};
use filter_programs::ebpf::disasm::disassemble;
use filter_programs::ebpf::insn::{AluOp, CallTarget, Insn, JmpOp, Op, Operand, Pseudo, Reg, Size};
use filter_programs::translate::{translate, Target, TranslateError};
use filter_programs::Hook;
use libpcap_oracle::{self as libpcap, CompileOptions};
use proptest::prelude::*;

const TARGETS: [Target; 3] = [Target::socket(), Target::xdp(), Target::tc()];

/// The kernel's verdict; a load failure that is not the verifier's is a
/// test failure, not a rejection.
fn kernel_accepts(insns: &[Insn], kind: Hook) -> Result<(), String> {
    match load(kind, insns, "precheck") {
        Ok(_) => Ok(()),
        Err(LoadError::Verifier { log, .. }) => {
            let tail: Vec<&str> = log.lines().rev().take(3).collect();
            Err(tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
        }
        Err(e) => panic!("bpf() failed outside the verifier: {e}"),
    }
}

/// Every distinct classic program libpcap compiles from the corpus
/// (optimized and not), with an expression that produced it.
fn corpus_programs() -> Vec<(String, Vec<CInsn>)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for e in expressions() {
        let Some(dlt) = libpcap::dlt_from_name(&e.dlt) else {
            panic!("unknown DLT {}", e.dlt)
        };
        for optimize in [e.optimize, false] {
            let opts = CompileOptions {
                dlt,
                snaplen: e.snaplen.unwrap_or(libpcap::DEFAULT_SNAPLEN),
                optimize,
                netmask: e.netmask.unwrap_or(libpcap::NETMASK_UNKNOWN),
            };
            let Ok(prog) = libpcap::compile(&e.expr, opts) else {
                continue;
            };
            let key: Vec<(u16, u8, u8, u32)> =
                prog.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
            if seen.insert(key) {
                out.push((format!("{} {:?}", e.dlt, e.expr), prog));
            }
        }
    }
    out
}

/// Every translation of every corpus program the hook supports.
fn translations() -> Vec<(String, Hook, Vec<Insn>)> {
    let mut out = Vec::new();
    for (name, prog) in corpus_programs() {
        for t in TARGETS {
            match translate(&prog, t) {
                Ok(insns) => out.push((format!("{name} {}", t.name()), t.hook, insns)),
                Err(TranslateError::Unsupported { .. }) => {}
                Err(e) => panic!("{name} {}: {e}", t.name()),
            }
        }
    }
    out
}

#[test]
fn every_corpus_translation_passes_check_and_kernel() {
    if !e2e::kernel_available("every_corpus_translation_passes_check_and_kernel") {
        return;
    }
    let all = translations();
    let mut failures = Vec::new();
    for (name, kind, insns) in &all {
        if let Err(e) = check(insns, *kind) {
            // The listing of the first few, to see the rule in context.
            let listing = if failures.len() < 2 {
                disassemble(insns).unwrap_or_default()
            } else {
                String::new()
            };
            failures.push(format!("{name}: check: {e}\n{listing}"));
        }
        if let Err(log) = kernel_accepts(insns, *kind) {
            failures.push(format!("{name}: kernel: {log}"));
        }
    }
    println!(
        "{} corpus translations checked against the kernel, {} failures",
        all.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(all.len() > 3000, "only {} translations", all.len());
}

fn tr(text: &[CInsn], t: Target) -> Vec<Insn> {
    translate(text, t).expect("translates")
}

fn find(insns: &[Insn], pred: impl Fn(&Op) -> bool) -> usize {
    let ops = filter_programs::ebpf::insn::decode_all(insns).expect("decodes");
    ops.into_iter()
        .find(|(_, op)| pred(op))
        .map(|(s, _)| s)
        .expect("the instruction the variant changes")
}

fn put(insns: &mut [Insn], slot: usize, op: Op) {
    let enc = op.encode();
    insns[slot..slot + enc.len()].copy_from_slice(&enc);
}

/// tcpdump -dd 'ip' and friends, as classic programs.
fn ip() -> Vec<CInsn> {
    vec![
        CInsn::new(0x28, 0, 0, 12),
        CInsn::new(0x15, 0, 1, 0x800),
        CInsn::new(0x06, 0, 0, 262144),
        CInsn::new(0x06, 0, 0, 0),
    ]
}
fn len_ret() -> Vec<CInsn> {
    vec![CInsn::new(0x80, 0, 0, 0), CInsn::new(0x16, 0, 0, 0)]
}
fn mem_ret() -> Vec<CInsn> {
    // ld M[3]; ret a  (M[3] never stored: the translation zeroes it)
    vec![CInsn::new(0x60, 0, 0, 3), CInsn::new(0x16, 0, 0, 0)]
}

#[test]
fn broken_variants_fail_both() {
    if !e2e::kernel_available("broken_variants_fail_both") {
        return;
    }
    let nop = Op::Ja { off: 0 };
    let mut cases: Vec<(&str, Hook, Vec<Insn>)> = Vec::new();

    // The bounds check compares against data instead of data_end.
    let mut v = tr(&ip(), Target::xdp());
    let s = find(&v, |op| {
        matches!(
            op,
            Op::Jmp {
                op: JmpOp::Jgt,
                src: Operand::Reg(Reg::R2),
                ..
            }
        )
    });
    let off = v[s].off;
    put(
        &mut v,
        s,
        Op::Jmp {
            wide: true,
            op: JmpOp::Jgt,
            dst: Reg::R1,
            src: Operand::Reg(Reg::R9),
            off,
        },
    );
    cases.push(("bounds check dropped", Hook::Xdp, v));

    // The bounds check proves one byte too few.
    let mut v = tr(&ip(), Target::xdp());
    let s = find(&v, |op| {
        matches!(
            op,
            Op::Alu {
                wide: true,
                op: AluOp::Add,
                dst: Reg::R1,
                src: Operand::Imm(14)
            }
        )
    });
    put(
        &mut v,
        s,
        Op::Alu {
            wide: true,
            op: AluOp::Add,
            dst: Reg::R1,
            src: Operand::Imm(13),
        },
    );
    cases.push(("bounds check too short", Hook::Xdp, v));

    // The context copied from a register never written.
    let mut v = tr(&ip(), Target::socket());
    put(
        &mut v,
        0,
        Op::Alu {
            wide: true,
            op: AluOp::Mov,
            dst: Reg::R6,
            src: Operand::Reg(Reg::R3),
        },
    );
    cases.push(("unwritten register read", Hook::Socket, v));

    // A = 0 written into the frame pointer.
    let mut v = tr(&ip(), Target::tc());
    put(
        &mut v,
        1,
        Op::Alu {
            wide: false,
            op: AluOp::Mov,
            dst: Reg::R10,
            src: Operand::Imm(0),
        },
    );
    cases.push(("r10 written", Hook::Tc, v));

    // M[3] outside the stack, then misaligned.
    for (what, off) in [
        ("stack below 512", -520i16),
        ("stack above fp", 4),
        ("stack misaligned", -50),
    ] {
        let mut v = tr(&mem_ret(), Target::socket());
        let s = find(&v, |op| matches!(op, Op::Ldx { src: Reg::R10, .. }));
        put(
            &mut v,
            s,
            Op::Ldx {
                size: Size::W,
                signed: false,
                dst: Reg::R7,
                src: Reg::R10,
                off,
            },
        );
        cases.push((what, Hook::Socket, v));
    }

    // A conditional jump retargeted to the second half of an ld_imm64
    // (A = 0 and X = 0 become one `r7 = 0 ll`).
    let mut v = tr(&ip(), Target::socket());
    put(
        &mut v,
        1,
        Op::LdImm64 {
            dst: Reg::R7,
            pseudo: Pseudo::None,
            src_reg: 0,
            imm: 0,
        },
    );
    assert_eq!(
        check(&v, Hook::Socket),
        Ok(()),
        "the ld_imm64 form itself is fine"
    );
    kernel_accepts(&v, Hook::Socket).expect("the ld_imm64 form itself loads");
    let s = find(&v, |op| matches!(op, Op::Jmp { .. }));
    v[s].off = 2 - (s as i16 + 1);
    cases.push(("jump into ld_imm64", Hook::Socket, v));

    // The final exit dropped.
    let mut v = tr(&ip(), Target::xdp());
    v.pop();
    cases.push(("missing exit", Hook::Xdp, v));

    // bpf_xdp_get_buff_len on a socket, bpf_skb_load_bytes on XDP.
    let mut v = tr(&len_ret(), Target::xdp());
    let s = find(&v, |op| matches!(op, Op::Call(_)));
    put(&mut v, s, Op::Call(CallTarget::Helper(26)));
    cases.push(("skb helper on xdp", Hook::Xdp, v));
    let v = tr(&len_ret(), Target::xdp());
    cases.push(("xdp program loaded as tc", Hook::Tc, v));

    // skb->len read from skb->data's slot (a socket filter may not) and
    // from xdp_md's egress_ifindex.
    let mut v = tr(&len_ret(), Target::socket());
    let s = find(&v, |op| matches!(op, Op::Ldx { src: Reg::R6, .. }));
    put(
        &mut v,
        s,
        Op::Ldx {
            size: Size::W,
            signed: false,
            dst: Reg::R7,
            src: Reg::R6,
            off: 76,
        },
    );
    cases.push(("socket reads skb->data", Hook::Socket, v));
    let mut v = tr(&ip(), Target::xdp());
    let s = find(&v, |op| {
        matches!(
            op,
            Op::Ldx {
                src: Reg::R6,
                off: 0,
                ..
            }
        )
    });
    put(
        &mut v,
        s,
        Op::Ldx {
            size: Size::W,
            signed: false,
            dst: Reg::R9,
            src: Reg::R6,
            off: 20,
        },
    );
    cases.push(("xdp reads egress_ifindex", Hook::Xdp, v));

    // Legacy packet loads on XDP.
    cases.push(("ld_abs on xdp", Hook::Xdp, tr(&ip(), Target::socket())));

    let mut wrong = Vec::new();
    for (what, kind, v) in &cases {
        let c = check(v, *kind);
        let k = kernel_accepts(v, *kind);
        println!(
            "{what}: check: {}; kernel: {}",
            c.as_ref().err().map_or("accepts".into(), |e| e.to_string()),
            k.as_ref().err().map_or("accepts", |l| l.as_str())
        );
        if c.is_ok() || k.is_ok() {
            wrong.push(format!(
                "{what}: check {c:?}, kernel {k:?}\n{}",
                disassemble(v).unwrap_or_default()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "variants not refused by both:\n{}",
        wrong.join("\n")
    );

    // A read of a stack word never written: a root loader's kernel allows
    // it, and so does `check`; the strict option refuses it.
    let mut v = tr(&mem_ret(), Target::socket());
    let s = find(&v, |op| matches!(op, Op::St { dst: Reg::R10, .. }));
    put(&mut v, s, nop);
    assert_eq!(check(&v, Hook::Socket), Ok(()));
    assert_eq!(kernel_accepts(&v, Hook::Socket), Ok(()));
    assert!(check_with(&v, Hook::Socket, Options { strict_stack: true }).is_err());
}

/// One field of one instruction changed.
#[derive(Clone, Debug)]
enum Field {
    Code(u8),
    CodeBit(u8),
    Dst(u8),
    Src(u8),
    Off(i16),
    Imm(i32),
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        2 => any::<u8>().prop_map(Field::Code),
        3 => (0u8..8).prop_map(Field::CodeBit),
        2 => (0u8..12).prop_map(Field::Dst),
        2 => (0u8..12).prop_map(Field::Src),
        3 => prop_oneof![-20i16..20, any::<i16>(), (-70i16..-1).prop_map(|o| o & !3)].prop_map(Field::Off),
        3 => prop_oneof![
            Just(0), Just(1), Just(-1), -100i32..100, any::<i32>(),
            prop::sample::select(vec![7, 8, 26, 68, 188, 1, 12, 14, 20, 0xffff, 0x10000, 76, 80, -72, -80])
        ].prop_map(Field::Imm),
    ]
}

fn mutate(insns: &mut [Insn], slot: usize, f: &Field) {
    let i = &mut insns[slot];
    match *f {
        Field::Code(c) => i.code = c,
        Field::CodeBit(b) => i.code ^= 1 << b,
        Field::Dst(d) => i.regs = (i.regs & 0xf0) | (d & 0xf),
        Field::Src(s) => i.regs = (i.regs & 0x0f) | (s << 4),
        Field::Off(o) => i.off = o,
        Field::Imm(v) => i.imm = v,
    }
}

#[test]
fn random_mutations_never_falsely_accepted() {
    if !e2e::kernel_available("random_mutations_never_falsely_accepted") {
        return;
    }
    let all = translations();
    // A fixed seed keeps runs reproducible; PRECHECK_SEED explores others.
    let seed = std::env::var("PRECHECK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let picks = e2e::gen::sample(
        &(
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            field(),
        ),
        4000,
        seed,
    );
    let (mut both_ok, mut both_bad, mut false_reject, mut false_accept) = (0, 0, 0, Vec::new());
    let mut reject_rules = std::collections::BTreeMap::<String, usize>::new();
    for (p, s, f) in &picks {
        let (name, kind, orig) = &all[p.index(all.len())];
        let mut v = orig.clone();
        let slot = s.index(v.len());
        mutate(&mut v, slot, f);
        if v == *orig {
            continue;
        }
        let c = check(&v, *kind);
        let k = kernel_accepts(&v, *kind);
        match (&c, &k) {
            (Ok(()), Ok(())) => both_ok += 1,
            (Err(_), Err(_)) => both_bad += 1,
            (Err(e), Ok(())) => {
                false_reject += 1;
                let r = format!("{:?}", e.rule);
                let key = r.split([' ', '(', '{']).next().unwrap_or("").to_string();
                let n = reject_rules.entry(key).or_default();
                *n += 1;
                if *n <= 2 {
                    println!(
                        "false reject: {name}: slot {slot} {f:?} -> {:?}: {e}",
                        v[slot]
                    );
                }
            }
            (Ok(()), Err(log)) => false_accept.push(format!(
                "{name}: slot {slot} {f:?}: kernel: {log}\n{}",
                disassemble(&v).unwrap_or_default()
            )),
        }
    }
    let kernel_ok = both_ok + false_reject;
    println!(
        "mutations: {} total; both accept {both_ok}, both reject {both_bad}, false rejects {false_reject} \
         ({:.1}% of the {kernel_ok} the kernel accepts), false accepts {}",
        both_ok + both_bad + false_reject + false_accept.len(),
        100.0 * false_reject as f64 / kernel_ok.max(1) as f64,
        false_accept.len()
    );
    println!("false rejects by rule: {reject_rules:?}");
    assert!(
        false_accept.is_empty(),
        "check accepted what the kernel refuses:\n{}",
        false_accept.join("\n\n")
    );
    assert!(
        both_ok > 100 && both_bad > 100,
        "the mutations should land on both sides"
    );
}
