//! A fused program must do exactly what its unfused form does: same value,
//! same error at the same slot, whatever jumps land where.

use proptest::prelude::*;

use super::super::micro::{self, Micro};
use super::super::{Env, Input, Maps, Program, VmError};
use crate::codegen::{compile, Dlt, Options};
use crate::ebpf::insn::{AluOp, Endian, Insn, JmpOp, Op, Operand, Reg, Size};
use crate::translate::{translate, Target};

fn unfused(insns: &[Insn]) -> Program {
    let slots = Program::slots(insns).unwrap();
    let rest = super::super::functions::rest(&slots);
    Program {
        code: micro::lower_all(&slots, &rest),
        rest,
    }
}

fn run(p: &Program, frame: &[u8]) -> Result<u64, VmError> {
    let input = Input::Xdp {
        frame,
        ingress_ifindex: 1,
        rx_queue_index: 0,
    };
    p.run(&input, &mut Maps::default(), &Env::default())
}

fn reg(n: u8) -> Reg {
    Reg::new(n).unwrap()
}

/// The translator's output is what fusion is for: every kind fires on it.
#[test]
fn translated_filters_are_fused() {
    let cbpf = compile("tcp port 80", &Options::new(Dlt::En10mb)).unwrap();
    let p = Program::new(&translate(&cbpf, Target::xdp()).unwrap()).unwrap();
    let count = |f: fn(&Micro) -> bool| p.code.iter().filter(|m| f(m)).count();
    assert!(count(|m| matches!(m, Micro::Check { .. })) >= 4);
    assert!(count(|m| matches!(m, Micro::LdJmp { .. })) >= 4);
    assert!(count(|m| matches!(m, Micro::RetK { .. })) >= 2);
    // Both ports, past the IPv4 header.
    assert_eq!(count(|m| matches!(m, Micro::IndCheck { .. })), 2);
    assert_eq!(count(|m| matches!(m, Micro::LdMsh { .. })), 1);
    let cbpf = compile("portrange 1000-2000", &Options::new(Dlt::En10mb)).unwrap();
    let range = Program::new(&translate(&cbpf, Target::xdp()).unwrap()).unwrap();
    let ranges = range
        .code
        .iter()
        .filter(|m| matches!(m, Micro::LdRange { .. }));
    assert_eq!(ranges.count(), 3, "both ports of IPv4, one of IPv6");
    assert!(matches!(p.code[0], Micro::MovXKK { .. }), "{:?}", p.code[0]);
    assert!(matches!(p.code[3], Micro::LdxWW { .. }), "{:?}", p.code[3]);
    // `ldxh` + `be16` whose compare is not next to it (none here), or
    // folded into a compare.
    assert_eq!(count(|m| matches!(m, Micro::LdxH { .. })), 0);
}

/// The range tests of `portrange` at and around both ends, on every port
/// and family, fused and unfused.
#[test]
fn port_ranges_decide_at_their_ends_as_unfused() {
    let cbpf = compile("portrange 1000-2000", &Options::new(Dlt::En10mb)).unwrap();
    let insns = translate(&cbpf, Target::xdp()).unwrap();
    let (fused, plain) = (Program::new(&insns).unwrap(), unfused(&insns));
    let mut matched = 0;
    for v6 in [false, true] {
        for at_dst in [false, true] {
            for port in [0u16, 998, 999, 1000, 1001, 1999, 2000, 2001, 2002, 65535] {
                let mut f = vec![0u8; 12];
                let l4 = if v6 {
                    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 17, 64]);
                    f.extend_from_slice(&[0; 32]);
                    f.len()
                } else {
                    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
                    f.extend_from_slice(&[0; 8]);
                    f.len()
                };
                f.extend_from_slice(&[0; 8]);
                let at = l4 + if at_dst { 2 } else { 0 };
                f[at..at + 2].copy_from_slice(&port.to_be_bytes());
                let want = run(&plain, &f);
                assert_eq!(run(&fused, &f), want, "v6 {v6} dst {at_dst} port {port}");
                matched += u32::from(want == Ok(2));
            }
        }
    }
    assert_eq!(
        matched,
        4 * 4,
        "1000, 1001, 1999 and 2000 of each port and family"
    );
}

/// The loads past the IPv4 header (its length read, the offset and address
/// computed, the bounds checked) on frames cut at every length, with and
/// without IP options, fused and unfused.
#[test]
fn loads_past_the_ip_header_fail_where_unfused() {
    for expr in ["tcp port 80", "udp dst port 53", "portrange 1000-2000"] {
        let cbpf = compile(expr, &Options::new(Dlt::En10mb)).unwrap();
        let insns = translate(&cbpf, Target::xdp()).unwrap();
        let (fused, plain) = (Program::new(&insns).unwrap(), unfused(&insns));
        for (ihl, proto) in [(5u8, 6u8), (6, 6), (5, 17), (15, 17)] {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&[0x08, 0x00, 0x40 | ihl, 0, 0, 0, 0, 0, 0, 0, 64, proto]);
            f.resize(14 + 4 * ihl as usize, 0);
            f.extend_from_slice(&[0, 80, 0, 53, 0, 0, 0, 0]);
            for len in 14..=f.len() {
                let cut = &f[..len];
                assert_eq!(
                    run(&fused, cut),
                    run(&plain, cut),
                    "{expr}, ihl {ihl}, {len} bytes"
                );
            }
        }
    }
}

/// Fused ops fit in the slot size of the rest (a bigger `Micro` would
/// make every program's code bigger).
#[test]
fn micro_ops_stay_small() {
    assert!(
        std::mem::size_of::<Micro>() <= 24,
        "{}",
        std::mem::size_of::<Micro>()
    );
}

/// A jump into the middle of a bounds check runs only the rest of it.
#[test]
fn a_jump_into_a_sequence_runs_its_rest() {
    // r3 = 100; r4 = 105; r1 = 0; if r5 == S goto add; r1 = r3; add:
    // r1 += 7; if r1 > r4 goto two; r0 = 1; exit; two: r0 = 2; exit
    let program = |s: i32| {
        let ops = [
            Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst: reg(3),
                src: Operand::Imm(100),
            },
            Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst: reg(4),
                src: Operand::Imm(105),
            },
            Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst: reg(1),
                src: Operand::Imm(0),
            },
            Op::Jmp {
                wide: true,
                op: JmpOp::Jeq,
                dst: reg(5),
                src: Operand::Imm(s),
                off: 1,
            },
            Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst: reg(1),
                src: Operand::Reg(reg(3)),
            },
            Op::Alu {
                wide: true,
                op: AluOp::Add,
                dst: reg(1),
                src: Operand::Imm(7),
            },
            Op::Jmp {
                wide: true,
                op: JmpOp::Jgt,
                dst: reg(1),
                src: Operand::Reg(reg(4)),
                off: 2,
            },
            Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst: reg(0),
                src: Operand::Imm(1),
            },
            Op::Exit,
            Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst: reg(0),
                src: Operand::Imm(2),
            },
            Op::Exit,
        ];
        ops.iter().flat_map(Op::encode).collect::<Vec<_>>()
    };
    let frame = [0u8; 60];
    let fused = Program::new(&program(0)).unwrap();
    assert!(
        matches!(fused.code[4], Micro::Check { .. }),
        "{:?}",
        fused.code[4]
    );
    // r5 is 0: the jump skips `r1 = r3`, so r1 = 7, not above 105.
    assert_eq!(run(&fused, &frame), Ok(1));
    // Not taken: r1 = 107.
    assert_eq!(run(&Program::new(&program(1)).unwrap(), &frame), Ok(2));
}

/// One piece of a random program: mostly the shapes fusion looks for,
/// with registers and operands that sometimes break the pattern.
#[derive(Clone, Debug)]
enum Piece {
    /// `d = s; a = ka; b = kb` (the prologue's shape).
    Moves {
        d: u8,
        s: u8,
        a: u8,
        ka: i32,
        b: u8,
        kb: i32,
    },
    /// Two 32-bit loads, from the context (r6) or the packet (r1).
    LoadPair {
        dst: u8,
        dst2: u8,
        src: u8,
        off: i16,
        off2: i16,
    },
    Check {
        dst: u8,
        base: u8,
        add: u8,
        end: u8,
        k: i32,
        to: usize,
    },
    /// A load into `dst` (a byte, or a swapped halfword), then
    /// `if w(a) < lo goto +1; if w(b) <= hi goto to` (`pair`: false) or
    /// `if w(a) < lo goto +skip+1; if w(b) > hi goto +skip`.
    Range {
        half: bool,
        dst: u8,
        off: i16,
        a: u8,
        b: u8,
        lo: i32,
        hi: i32,
        pair: bool,
        skip: i16,
        to: usize,
    },
    /// `dst = *(u8 *)(src + off); w(dst) &= mask; w(a) <<= shift`.
    Msh {
        dst: u8,
        src: u8,
        off: i16,
        mask: i32,
        a: u8,
        shift: i32,
    },
    /// `d = (u32)s; d += k; if d > limit goto to; p = base; p += a`, then
    /// maybe `q = p; q += k2; if q > end goto to2` (`check`: q, end, k2, to2).
    Indirect {
        d: u8,
        s: u8,
        k: i32,
        limit: i32,
        p: u8,
        base: u8,
        a: u8,
        to: usize,
        check: Option<(u8, u8, i32, usize)>,
    },
    Load {
        size: Size,
        dst: u8,
        src: u8,
        off: i16,
        swap: Option<u8>,
    },
    Jump32 {
        op: JmpOp,
        dst: u8,
        k: i32,
        to: usize,
    },
    /// A load, its swap, and a compare, of one register unless `other`.
    LoadJump {
        size: Size,
        dst: u8,
        off: i16,
        swap: bool,
        /// `dst &= k`, 64- or 32-bit, between the load and the compare.
        mask: Option<(bool, i32)>,
        op: JmpOp,
        k: i32,
        to: usize,
        other: Option<u8>,
    },
    Ret {
        dst: u8,
        k: i32,
    },
    Mov {
        dst: u8,
        k: i32,
    },
}

fn r() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(1u8), 4 => Just(2u8), 2 => Just(3u8), 1 => Just(0u8), 1 => Just(6u8)]
}

fn piece() -> impl Strategy<Value = Piece> {
    let size = prop_oneof![Just(Size::B), Just(Size::H), Just(Size::W), Just(Size::DW)];
    let op = prop_oneof![
        Just(JmpOp::Jeq),
        Just(JmpOp::Jne),
        Just(JmpOp::Jset),
        Just(JmpOp::Jgt),
        Just(JmpOp::Jge),
        Just(JmpOp::Jlt),
        Just(JmpOp::Jle),
        Just(JmpOp::Jsgt),
    ];
    let load_jump = (
        size.clone(),
        r(),
        -2i16..70,
        any::<bool>(),
        op.clone(),
        0i32..4,
        any::<usize>(),
    )
        .prop_flat_map(|(size, dst, off, swap, op, k, to)| {
            let mask = (
                any::<bool>(),
                prop_oneof![
                    Just(-65536),
                    Just(0xff),
                    Just(0x1fff),
                    Just(1),
                    any::<i32>()
                ],
            );
            (
                proptest::option::weighted(0.2, r()),
                proptest::option::of(mask),
            )
                .prop_map(move |(other, mask)| Piece::LoadJump {
                    size,
                    dst,
                    off,
                    swap,
                    mask,
                    op,
                    k,
                    to,
                    other,
                })
        });
    let k = || prop_oneof![Just(0i32), Just(-1), any::<i32>()];
    prop_oneof![
        1 => (r(), r(), r(), k(), r(), k()).prop_map(|(d, s, a, ka, b, kb)| Piece::Moves { d, s, a, ka, b, kb }),
        2 => load_jump,
        1 => (r(), r(), r(), r(), -4i32..70, any::<usize>())
            .prop_map(|(dst, base, add, end, k, to)| Piece::Check { dst, base, add, end, k, to }),
        1 => ((r(), r(), prop_oneof![Just(14i32), Just(-1), any::<i32>()], prop_oneof![Just(0xfffdi32), Just(20), Just(-1)], r(), prop_oneof![Just(1u8), r()], r(), any::<usize>()),
              proptest::option::of((r(), prop_oneof![Just(2u8), r()], prop_oneof![Just(2i32), Just(300), Just(-1)], any::<usize>())))
            .prop_map(|((d, s, k, limit, p, base, a, to), check)| Piece::Indirect { d, s, k, limit, p, base, a, to, check }),
        1 => ((any::<bool>(), r(), -2i16..70, r(), r()), (prop_oneof![Just(1000i32), 0i32..300], prop_oneof![Just(2000i32), 0i32..300, Just(-1)], any::<bool>(), 0i16..3, any::<usize>()))
            .prop_map(|((half, dst, off, a, b), (lo, hi, pair, skip, to))| Piece::Range { half, dst, off, a, b, lo, hi, pair, skip, to }),
        1 => (r(), prop_oneof![Just(6u8), r()], -2i16..70, prop_oneof![Just(15i32), Just(-1), any::<i32>()], r(), prop_oneof![Just(2i32), Just(31), Just(32), any::<i32>()])
            .prop_map(|(dst, src, off, mask, a, shift)| Piece::Msh { dst, src, off, mask, a, shift }),
        1 => (size, r(), prop_oneof![Just(6u8), r()], -2i16..70, proptest::option::of(r()))
            .prop_map(|(size, dst, src, off, swap)| Piece::Load { size, dst, src, off, swap }),
        1 => (op, r(), prop_oneof![0i32..3, 0x0800i32..0x0802, any::<i32>()], any::<usize>())
            .prop_map(|(op, dst, k, to)| Piece::Jump32 { op, dst, k, to }),
        1 => (prop_oneof![Just(0u8), r()], 0i32..3).prop_map(|(dst, k)| Piece::Ret { dst, k }),
        1 => (prop_oneof![Just(6u8), r()], prop_oneof![Just(6u8), r()], prop_oneof![Just(6u8), Just(1u8)], -2i16..30, -2i16..30)
            .prop_map(|(dst, dst2, src, off, off2)| Piece::LoadPair { dst, dst2, src, off, off2 }),
        1 => (prop_oneof![Just(0u8), r()], any::<i32>()).prop_map(|(dst, k)| Piece::Mov { dst, k }),
    ]
}

/// The program: r6 = ctx, r1/r2 = data/data_end, r3 = data + 14, then the
/// pieces, then `r0 = 9; exit`. Jump targets are any later slot.
fn assemble(pieces: &[Piece]) -> Vec<Insn> {
    let mut ops: Vec<(Op, Option<usize>)> = vec![
        (
            Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst: reg(6),
                src: Operand::Reg(reg(1)),
            },
            None,
        ),
        (
            Op::Ldx {
                size: Size::W,
                signed: false,
                dst: reg(1),
                src: reg(6),
                off: 0,
            },
            None,
        ),
        (
            Op::Ldx {
                size: Size::W,
                signed: false,
                dst: reg(2),
                src: reg(6),
                off: 4,
            },
            None,
        ),
        (
            Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst: reg(3),
                src: Operand::Reg(reg(1)),
            },
            None,
        ),
        (
            Op::Alu {
                wide: true,
                op: AluOp::Add,
                dst: reg(3),
                src: Operand::Imm(14),
            },
            None,
        ),
    ];
    let mov = |dst: u8, src: Operand| Op::Alu {
        wide: true,
        op: AluOp::Mov,
        dst: reg(dst),
        src,
    };
    for p in pieces {
        match *p {
            Piece::Check {
                dst,
                base,
                add,
                end,
                k,
                to,
            } => {
                ops.push((mov(dst, Operand::Reg(reg(base))), None));
                ops.push((
                    Op::Alu {
                        wide: true,
                        op: AluOp::Add,
                        dst: reg(add),
                        src: Operand::Imm(k),
                    },
                    None,
                ));
                let jgt = Op::Jmp {
                    wide: true,
                    op: JmpOp::Jgt,
                    dst: reg(dst),
                    src: Operand::Reg(reg(end)),
                    off: 0,
                };
                ops.push((jgt, Some(to)));
            }
            Piece::Range {
                half,
                dst,
                off,
                a,
                b,
                lo,
                hi,
                pair,
                skip,
                to,
            } => {
                ops.push((
                    Op::Ldx {
                        size: if half { Size::H } else { Size::B },
                        signed: false,
                        dst: reg(dst),
                        src: reg(1),
                        off,
                    },
                    None,
                ));
                if half {
                    ops.push((
                        Op::End {
                            dst: reg(dst),
                            endian: Endian::ToBe,
                            bits: 16,
                        },
                        None,
                    ));
                }
                let jump = |op, dst: u8, k, off| Op::Jmp {
                    wide: false,
                    op,
                    dst: reg(dst),
                    src: Operand::Imm(k),
                    off,
                };
                if pair {
                    ops.push((jump(JmpOp::Jlt, a, lo, skip + 1), None));
                    ops.push((jump(JmpOp::Jgt, b, hi, skip), None));
                } else {
                    ops.push((jump(JmpOp::Jlt, a, lo, 1), None));
                    ops.push((jump(JmpOp::Jle, b, hi, 0), Some(to)));
                }
            }
            Piece::Msh {
                dst,
                src,
                off,
                mask,
                a,
                shift,
            } => {
                ops.push((
                    Op::Ldx {
                        size: Size::B,
                        signed: false,
                        dst: reg(dst),
                        src: reg(src),
                        off,
                    },
                    None,
                ));
                let alu = |op, dst: u8, k| Op::Alu {
                    wide: false,
                    op,
                    dst: reg(dst),
                    src: Operand::Imm(k),
                };
                ops.push((alu(AluOp::And, dst, mask), None));
                ops.push((alu(AluOp::Lsh, a, shift), None));
            }
            Piece::Indirect {
                d,
                s,
                k,
                limit,
                p,
                base,
                a,
                to,
                check,
            } => {
                let alu = |wide, op, dst: u8, src| Op::Alu {
                    wide,
                    op,
                    dst: reg(dst),
                    src,
                };
                ops.push((alu(false, AluOp::Mov, d, Operand::Reg(reg(s))), None));
                ops.push((alu(true, AluOp::Add, d, Operand::Imm(k)), None));
                let jgt = Op::Jmp {
                    wide: true,
                    op: JmpOp::Jgt,
                    dst: reg(d),
                    src: Operand::Imm(limit),
                    off: 0,
                };
                ops.push((jgt, Some(to)));
                ops.push((mov(p, Operand::Reg(reg(base))), None));
                ops.push((alu(true, AluOp::Add, p, Operand::Reg(reg(a))), None));
                if let Some((q, end, k2, to2)) = check {
                    ops.push((mov(q, Operand::Reg(reg(p))), None));
                    ops.push((alu(true, AluOp::Add, q, Operand::Imm(k2)), None));
                    let jgt = Op::Jmp {
                        wide: true,
                        op: JmpOp::Jgt,
                        dst: reg(q),
                        src: Operand::Reg(reg(end)),
                        off: 0,
                    };
                    ops.push((jgt, Some(to2)));
                }
            }
            Piece::Load {
                size,
                dst,
                src,
                off,
                swap,
            } => {
                ops.push((
                    Op::Ldx {
                        size,
                        signed: false,
                        dst: reg(dst),
                        src: reg(src),
                        off,
                    },
                    None,
                ));
                if let Some(s) = swap {
                    let bits = match size {
                        Size::B | Size::H => 16,
                        Size::W => 32,
                        Size::DW => 64,
                    };
                    ops.push((
                        Op::End {
                            dst: reg(s),
                            endian: Endian::ToBe,
                            bits,
                        },
                        None,
                    ));
                }
            }
            Piece::LoadJump {
                size,
                dst,
                off,
                swap,
                mask,
                op,
                k,
                to,
                other,
            } => {
                ops.push((
                    Op::Ldx {
                        size,
                        signed: false,
                        dst: reg(dst),
                        src: reg(1),
                        off,
                    },
                    None,
                ));
                if swap {
                    let bits = if size == Size::W { 32 } else { 16 };
                    ops.push((
                        Op::End {
                            dst: reg(dst),
                            endian: Endian::ToBe,
                            bits,
                        },
                        None,
                    ));
                }
                if let Some((wide, m)) = mask {
                    ops.push((
                        Op::Alu {
                            wide,
                            op: AluOp::And,
                            dst: reg(dst),
                            src: Operand::Imm(m),
                        },
                        None,
                    ));
                }
                let d = reg(other.unwrap_or(dst));
                ops.push((
                    Op::Jmp {
                        wide: false,
                        op,
                        dst: d,
                        src: Operand::Imm(k),
                        off: 0,
                    },
                    Some(to),
                ));
            }
            Piece::Jump32 { op, dst, k, to } => {
                ops.push((
                    Op::Jmp {
                        wide: false,
                        op,
                        dst: reg(dst),
                        src: Operand::Imm(k),
                        off: 0,
                    },
                    Some(to),
                ));
            }
            Piece::Ret { dst, k } => {
                ops.push((mov(dst, Operand::Imm(k)), None));
                ops.push((Op::Exit, None));
            }
            Piece::Mov { dst, k } => ops.push((mov(dst, Operand::Imm(k)), None)),
            Piece::Moves { d, s, a, ka, b, kb } => {
                ops.push((mov(d, Operand::Reg(reg(s))), None));
                ops.push((mov(a, Operand::Imm(ka)), None));
                ops.push((mov(b, Operand::Imm(kb)), None));
            }
            Piece::LoadPair {
                dst,
                dst2,
                src,
                off,
                off2,
            } => {
                ops.push((
                    Op::Ldx {
                        size: Size::W,
                        signed: false,
                        dst: reg(dst),
                        src: reg(src),
                        off,
                    },
                    None,
                ));
                ops.push((
                    Op::Ldx {
                        size: Size::W,
                        signed: false,
                        dst: reg(dst2),
                        src: reg(src),
                        off: off2,
                    },
                    None,
                ));
            }
        }
    }
    ops.push((mov(0, Operand::Imm(9)), None));
    ops.push((Op::Exit, None));
    let n = ops.len();
    ops.iter()
        .enumerate()
        .flat_map(|(i, (op, to))| {
            let op = match (*op, to) {
                (
                    Op::Jmp {
                        wide, op, dst, src, ..
                    },
                    Some(to),
                ) => {
                    let target = i + 1 + to % (n - i - 1);
                    Op::Jmp {
                        wide,
                        op,
                        dst,
                        src,
                        off: (target - i - 1) as i16,
                    }
                }
                (op, _) => op,
            };
            op.encode()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn fused_runs_as_unfused(
        pieces in proptest::collection::vec(piece(), 1..24),
        frame in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let insns = assemble(&pieces);
        let fused = Program::new(&insns).unwrap();
        let fused_ops = fused.code.iter().filter(|m| matches!(m,
            Micro::Check { .. } | Micro::LdxHBe { .. } | Micro::LdxWBe { .. } | Micro::LdJmp { .. } | Micro::RetK { .. }
                | Micro::MovKK { .. } | Micro::MovXKK { .. } | Micro::LdxWW { .. } | Micro::JmpPair { .. }
        )).count();
        prop_assert_eq!(run(&fused, &frame), run(&unfused(&insns), &frame), "{} fused ops", fused_ops);
    }
}
