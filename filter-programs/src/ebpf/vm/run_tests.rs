//! What the micro-op rework must keep: a clean stack for every run, jump
//! checks, the budget and tail calls.

use super::*;
use crate::ebpf::asm::Asm;
use crate::ebpf::insn::{AluOp, AtomicOp, CallTarget, JmpOp, Op, Operand, Pseudo, Reg, Size};

fn frame() -> Vec<u8> {
    let mut f = vec![0xaa; 60];
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f
}

fn xdp(f: &[u8]) -> Input<'_> {
    Input::Xdp {
        frame: f,
        ingress_ifindex: 3,
        rx_queue_index: 0,
    }
}

fn prog(a: &Asm) -> Program {
    Program::new(&a.assemble().unwrap()).unwrap()
}

fn run_env(a: &Asm, env: &Env) -> Result<u64, VmError> {
    let f = frame();
    prog(a).run(&xdp(&f), &mut Maps::default(), env)
}

fn run(a: &Asm) -> Result<u64, VmError> {
    run_env(a, &Env::default())
}

fn st(a: &mut Asm, size: Size, off: i16, imm: i32) {
    a.push(Op::St {
        size,
        dst: Reg::R10,
        off,
        imm,
    });
}

/// `r0 |= *(u64 *)(r10 + off)` for each offset.
fn or_stack(a: &mut Asm, offs: &[i16]) {
    for &off in offs {
        a.ldx(Size::DW, Reg::R1, Reg::R10, off);
        a.alu64(AluOp::Or, Reg::R0, Operand::Reg(Reg::R1));
    }
}

/// Offsets spread over a frame: its top, bottom and middle.
const SLOTS: [i16; 3] = [-8, -512, -256];

/// Fills stack slots in frame 0, in a callee's frame 1 and, through a
/// helper, in the callee's callee's frame 2; `fail` makes it end on a VM
/// error after all the writes.
fn stack_writer(fail: bool) -> Asm {
    let mut a = Asm::new();
    for off in SLOTS {
        st(&mut a, Size::DW, off, -1);
    }
    // frame 1 starts after this call, a mov, the failing load and an exit
    a.push(Op::Call(CallTarget::Local(if fail { 4 } else { 2 })));
    a.mov64(Reg::R0, Operand::Imm(0));
    if fail {
        a.mov64(Reg::R1, Operand::Imm(0));
        a.ldx(Size::DW, Reg::R0, Reg::R1, 0);
    }
    a.exit();
    // frame 1
    for off in SLOTS {
        st(&mut a, Size::DW, off, -1);
    }
    a.push(Op::Call(CallTarget::Local(1)));
    a.exit();
    // frame 2: bpf_xdp_load_bytes(ctx, 0, r10 - 16, 16) writes packet bytes
    a.mov64(Reg::R2, Operand::Imm(0));
    a.mov64(Reg::R3, Operand::Reg(Reg::R10));
    a.alu64(AluOp::Add, Reg::R3, Operand::Imm(-16));
    a.mov64(Reg::R4, Operand::Imm(16));
    a.push(Op::Call(CallTarget::Helper(189)));
    a.exit();
    a
}

/// ORs together what it reads, without writing first, in frames 0-2.
fn stack_reader() -> Asm {
    let mut a = Asm::new();
    a.mov64(Reg::R0, Operand::Imm(0));
    or_stack(&mut a, &SLOTS);
    a.mov64(Reg::R6, Operand::Reg(Reg::R0));
    a.push(Op::Call(CallTarget::Local(2)));
    a.alu64(AluOp::Or, Reg::R0, Operand::Reg(Reg::R6));
    a.exit();
    // frame 1
    a.mov64(Reg::R0, Operand::Imm(0));
    or_stack(&mut a, &SLOTS);
    a.mov64(Reg::R7, Operand::Reg(Reg::R0));
    a.push(Op::Call(CallTarget::Local(2)));
    a.alu64(AluOp::Or, Reg::R0, Operand::Reg(Reg::R7));
    a.exit();
    // frame 2
    a.mov64(Reg::R0, Operand::Imm(0));
    or_stack(&mut a, &[-16, -8]);
    a.exit();
    a
}

#[test]
fn no_run_sees_the_stack_bytes_of_an_earlier_one() {
    let (write, fail, read) = (stack_writer(false), stack_writer(true), stack_reader());
    let f = frame();
    assert_eq!(run(&write), Ok(0));
    assert_eq!(run(&read), Ok(0), "after a run that wrote frames 0-2");
    assert!(matches!(run(&fail), Err(VmError::OutOfBounds { .. })));
    assert_eq!(run(&read), Ok(0), "after a run that wrote, then failed");
    // A different program, input and map set change nothing.
    let mut maps = Maps::default();
    assert_eq!(
        prog(&write).run(&xdp(&f[..20]), &mut maps, &Env::default()),
        Ok(0)
    );
    assert_eq!(prog(&read).run(&xdp(&f), &mut maps, &Env::default()), Ok(0));
}

/// The reader does see what its own run wrote, in every frame, so a zero
/// above means cleared, not unread.
#[test]
fn a_run_reads_back_its_own_stack_writes() {
    let mut a = Asm::new();
    st(&mut a, Size::DW, -512, 5);
    a.mov64(Reg::R0, Operand::Imm(0));
    or_stack(&mut a, &[-512]);
    a.mov64(Reg::R6, Operand::Reg(Reg::R0));
    a.push(Op::Call(CallTarget::Local(2)));
    a.alu64(AluOp::Add, Reg::R0, Operand::Reg(Reg::R6));
    a.exit();
    st(&mut a, Size::W, -4, 0x30);
    a.ldx(Size::W, Reg::R0, Reg::R10, -4);
    a.exit();
    assert_eq!(run(&a), Ok(0x35));
}

/// A program of `prefix` ops, then `jump` at slot `prefix.len()`, then an
/// exit, an `LD_IMM64` (two slots) and an exit.
fn with_jump(jump: Op) -> Asm {
    let mut a = Asm::new();
    a.mov64(Reg::R1, Operand::Imm(7));
    a.mov64(Reg::R0, Operand::Imm(3));
    a.push(jump); // slot 2
    a.exit(); // 3
    a.push(Op::LdImm64 {
        dst: Reg::R2,
        pseudo: Pseudo::None,
        src_reg: 0,
        imm: 1,
    }); // 4-5
    a.exit(); // 6
    a
}

#[test]
fn bad_jump_targets_fail_when_taken_and_only_then() {
    // From slot 2: to slot 5 (inside the ld_imm64), 7 (one past the end),
    // 40, -1 (before the start); each forward and backward kind of jump.
    for off in [2i16, 4, 37, -4] {
        let jumps = [
            Op::Ja { off: off as i32 },
            Op::Jmp {
                wide: true,
                op: JmpOp::Jeq,
                dst: Reg::R1,
                src: Operand::Imm(7),
                off,
            },
            Op::Jmp {
                wide: false,
                op: JmpOp::Jle,
                dst: Reg::R1,
                src: Operand::Imm(7),
                off,
            },
            Op::Jmp {
                wide: true,
                op: JmpOp::Jgt,
                dst: Reg::R1,
                src: Operand::Reg(Reg::R0),
                off,
            },
            Op::Call(CallTarget::Local(off as i32)),
        ];
        for jump in jumps {
            assert_eq!(
                run(&with_jump(jump)),
                Err(VmError::BadJump { pc: 2 }),
                "{jump:?}"
            );
        }
        let not_taken = Op::Jmp {
            wide: true,
            op: JmpOp::Jne,
            dst: Reg::R1,
            src: Operand::Imm(7),
            off,
        };
        assert_eq!(run(&with_jump(not_taken)), Ok(3), "{not_taken:?}");
    }
    // The same jumps to real slots: the ld_imm64's first slot, forward,
    // and slot 0, backward (a loop the budget ends).
    let to_imm64 = Op::Jmp {
        wide: true,
        op: JmpOp::Jeq,
        dst: Reg::R1,
        src: Operand::Imm(7),
        off: 1,
    };
    assert_eq!(run(&with_jump(to_imm64)), Ok(3));
    let back = Op::Ja { off: -3 };
    assert_eq!(
        run_env(
            &with_jump(back),
            &Env {
                budget: 30,
                ..Env::default()
            }
        ),
        Err(VmError::Budget(30))
    );
}

#[test]
fn running_past_the_last_slot_falls_off() {
    let mut a = Asm::new();
    a.mov64(Reg::R0, Operand::Imm(1));
    assert_eq!(run(&a), Err(VmError::FellOff { pc: 1 }));
    let mut b = Asm::new();
    b.push(Op::LdImm64 {
        dst: Reg::R0,
        pseudo: Pseudo::None,
        src_reg: 0,
        imm: 1,
    });
    assert_eq!(run(&b), Err(VmError::FellOff { pc: 2 }));
    // A jump to the last slot, which is not an exit.
    let mut c = Asm::new();
    c.push(Op::Ja { off: 1 });
    c.exit();
    c.mov64(Reg::R0, Operand::Imm(1));
    assert_eq!(run(&c), Err(VmError::FellOff { pc: 3 }));
    let empty = Program::new(&[]).unwrap();
    assert!(empty.is_empty());
    let f = frame();
    assert_eq!(
        empty.run(&xdp(&f), &mut Maps::default(), &Env::default()),
        Err(VmError::FellOff { pc: 0 })
    );
}

/// `r0 = 0; do r0 += 1 while (r0 < turns)`: 4 slots, spent when the run
/// starts, then the backward jump (slot 2 to slot 1) spends 2 per turn
/// after the first.
fn counting_loop(turns: i32) -> Asm {
    let mut a = Asm::new();
    let top = a.label();
    a.mov64(Reg::R0, Operand::Imm(0));
    a.bind(top);
    a.alu64(AluOp::Add, Reg::R0, Operand::Imm(1));
    a.jmp(true, JmpOp::Jlt, Reg::R0, Operand::Imm(turns), top);
    a.exit();
    a
}

fn budget(b: u64) -> Env {
    Env {
        budget: b,
        ..Env::default()
    }
}

#[test]
fn budget_counts_what_loops_go_back_over() {
    assert_eq!(run_env(&counting_loop(10), &budget(22)), Ok(10));
    assert_eq!(
        run_env(&counting_loop(10), &budget(21)),
        Err(VmError::Budget(21))
    );
    assert_eq!(
        run_env(&counting_loop(100_000), &Env::default()),
        Ok(100_000)
    );
    // The default: 1 << 20 executed instructions; 2 per turn.
    assert_eq!(
        run_env(&counting_loop(600_000), &Env::default()),
        Err(VmError::Budget(1 << 20))
    );
}

/// A program that only runs forward spends its length, whichever way its
/// branches go: the budget is paid before the instructions run.
#[test]
fn a_forward_program_spends_its_length() {
    let mut a = Asm::new();
    let out = a.label();
    a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), out);
    for _ in 0..100 {
        a.alu64(AluOp::Add, Reg::R0, Operand::Imm(1));
    }
    a.bind(out);
    a.exit();
    assert_eq!(run_env(&a, &budget(102)), Ok(100));
    assert_eq!(run_env(&a, &budget(101)), Err(VmError::Budget(101)));
}

#[test]
fn budget_counts_calls() {
    // Three calls of a subprogram that returns r0 + 1: 5 slots, then 2
    // for each call.
    let mut a = Asm::new();
    a.mov64(Reg::R0, Operand::Imm(0));
    for i in 0..3 {
        a.push(Op::Call(CallTarget::Local(3 - i)));
    }
    a.exit();
    a.alu64(AluOp::Add, Reg::R0, Operand::Imm(1));
    a.exit();
    assert_eq!(run_env(&a, &budget(11)), Ok(3));
    assert_eq!(run_env(&a, &budget(10)), Err(VmError::Budget(10)));
}

/// A loop that calls a long straight-line subprogram: each call pays for
/// the subprogram. When calls spent 1, this ran about 200,000 turns of
/// 1,005 instructions under the default budget (2 * 10^8 instructions,
/// seconds) before it stopped; now it stops after 1,043 turns.
#[test]
fn budget_bounds_a_loop_of_calls() {
    const SUB: i32 = 1_000;
    let counter = MapDef {
        kind: MapKind::Array,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
    };
    let mut a = Asm::new();
    let top = a.label();
    // r7 = &counter[0]; r6 = 0; do { sub(); counter[0] = ++r6 } while (r6 < 2^30)
    a.push(Op::LdImm64 {
        dst: Reg::R7,
        pseudo: Pseudo::MapValue,
        src_reg: 2,
        imm: 0,
    });
    a.mov64(Reg::R6, Operand::Imm(0));
    a.bind(top);
    a.push(Op::Call(CallTarget::Local(5)));
    a.alu64(AluOp::Add, Reg::R6, Operand::Imm(1));
    a.push(Op::Stx {
        size: Size::DW,
        dst: Reg::R7,
        src: Reg::R6,
        off: 0,
    });
    a.jmp(true, JmpOp::Jlt, Reg::R6, Operand::Imm(1 << 30), top);
    a.mov64(Reg::R0, Operand::Reg(Reg::R6));
    a.exit();
    // sub: slot 9
    for _ in 0..SUB {
        a.alu64(AluOp::Add, Reg::R0, Operand::Imm(1));
    }
    a.exit();
    let p = prog(&a);
    let mut maps = Maps::new(&[counter], 1).unwrap();
    let f = frame();
    let start = std::time::Instant::now();
    let got = p.run(&xdp(&f), &mut maps, &Env::default());
    let took = start.elapsed();
    assert_eq!(got, Err(VmError::Budget(1 << 20)));
    let v = maps.values(0, &0u32.to_le_bytes()).unwrap();
    let turns = u64::from_le_bytes(v[0][..8].try_into().unwrap());
    // Each turn pays 1,001 for the call and 4 for the jump back: the run
    // stops after (2^20 - 9) / 1,005 turns, having executed no more than
    // it paid for.
    assert_eq!(turns, (1 << 20) / 1_005);
    assert!(turns * (SUB as u64 + 5) <= 1 << 20);
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
}

/// A helper that copies bytes spends budget for them: a loop of map
/// updates with a 64 KiB value stops after 7 turns of a 65,536 budget.
/// When a helper call spent 1, it would have copied 400 MB first.
#[test]
fn helpers_spend_for_what_they_copy() {
    let big = MapDef {
        kind: MapKind::Array,
        key_size: 4,
        value_size: 1 << 16,
        max_entries: 1,
    };
    let counter = MapDef {
        value_size: 8,
        ..big
    };
    let value_of = |dst, map| Op::LdImm64 {
        dst,
        pseudo: Pseudo::MapValue,
        src_reg: 2,
        imm: map,
    };
    let mut a = Asm::new();
    let top = a.label();
    // do { bpf_map_update_elem(&big, &0, &big[0], 0); counter[0] = ++r6 } while (r6 < 1000)
    a.mov64(Reg::R6, Operand::Imm(0));
    st(&mut a, Size::W, -4, 0);
    a.push(value_of(Reg::R7, 0));
    a.push(value_of(Reg::R8, 1));
    a.bind(top);
    a.push(Op::LdImm64 {
        dst: Reg::R1,
        pseudo: Pseudo::MapFd,
        src_reg: 1,
        imm: 0,
    });
    a.mov64(Reg::R2, Operand::Reg(Reg::R10));
    a.alu64(AluOp::Add, Reg::R2, Operand::Imm(-4));
    a.mov64(Reg::R3, Operand::Reg(Reg::R7));
    a.mov64(Reg::R4, Operand::Imm(0));
    a.push(Op::Call(CallTarget::Helper(2)));
    a.alu64(AluOp::Add, Reg::R6, Operand::Imm(1));
    a.push(Op::Stx {
        size: Size::DW,
        dst: Reg::R8,
        src: Reg::R6,
        off: 0,
    });
    a.jmp(true, JmpOp::Jlt, Reg::R6, Operand::Imm(1000), top);
    a.exit();
    let mut maps = Maps::new(&[big, counter], 1).unwrap();
    let f = frame();
    let got = prog(&a).run(&xdp(&f), &mut maps, &budget(1 << 16));
    assert_eq!(got, Err(VmError::Budget(1 << 16)));
    let v = maps.values(1, &0u32.to_le_bytes()).unwrap();
    // Each turn: (4 + 65,536) / 8 bytes copied, rounded up, and 11 slots.
    assert_eq!(u64::from_le_bytes(v[0][..8].try_into().unwrap()), 7);
}

/// Slot 0 calls `f`, which runs on into `g` (whose start another call
/// names) by a jump or by falling through: the run pays for the part of
/// `g` it enters.
#[test]
fn entering_another_function_pays_for_it() {
    const G: usize = 50;
    let program = |jump: bool| {
        let mut a = Asm::new();
        a.push(Op::Call(CallTarget::Local(2))); // 0: f
        a.exit(); // 1
        a.push(Op::Call(CallTarget::Local(2))); // 2: g, never run
        a.mov64(Reg::R0, Operand::Imm(1)); // 3: f
        if jump {
            a.push(Op::Ja { off: 2 }); // 4: to slot 7, the third of g
        } else {
            a.alu64(AluOp::Add, Reg::R0, Operand::Imm(1)); // 4
        }
        for _ in 0..G - 1 {
            a.alu64(AluOp::Add, Reg::R0, Operand::Imm(1)); // 5..: g
        }
        a.exit();
        prog(&a)
    };
    let f = frame();
    let run = |p: &Program, b| p.run(&xdp(&f), &mut Maps::default(), &budget(b));
    // main (3 slots), f (2) and g from slot 7 (G - 2).
    let jumps = program(true);
    assert_eq!(run(&jumps, G as u64 + 3), Ok(G as u64 - 2));
    assert_eq!(
        run(&jumps, G as u64 + 2),
        Err(VmError::Budget(G as u64 + 2))
    );
    // main, f and all of g; f's last op is left to the general path.
    let falls = program(false);
    assert!(matches!(falls.code[4], micro::Micro::Op(_)));
    assert_eq!(run(&falls, G as u64 + 5), Ok(G as u64 + 1));
    assert_eq!(
        run(&falls, G as u64 + 4),
        Err(VmError::Budget(G as u64 + 4))
    );
}

/// A call that ends its function returns into the next one: the call
/// pays for that too. Executed: slots 0, 2, 1, 3, 1.
#[test]
fn a_return_into_the_next_function_pays_for_it() {
    let mut a = Asm::new();
    a.push(Op::Call(CallTarget::Local(1))); // 0: main is this slot alone
    a.exit(); // 1: a function (slot 2 calls it)
    a.push(Op::Call(CallTarget::Local(-2))); // 2: f
    a.exit(); // 3
    assert_eq!(run_env(&a, &budget(5)), Ok(0));
    assert_eq!(run_env(&a, &budget(4)), Err(VmError::Budget(4)));
}

/// Program 0 tail-calls `progs[index]` through map 0 and returns 7 if that
/// fails; the others return their number plus 40.
#[test]
fn tail_calls_start_the_named_program() {
    let def = MapDef {
        kind: MapKind::ProgArray,
        key_size: 4,
        value_size: 4,
        max_entries: 4,
    };
    let entry = |index: i32| {
        let mut a = Asm::new();
        a.push(Op::LdImm64 {
            dst: Reg::R2,
            pseudo: Pseudo::MapFd,
            src_reg: 1,
            imm: 0,
        });
        a.mov64(Reg::R3, Operand::Imm(index));
        a.push(Op::Call(CallTarget::Helper(12)));
        a.mov64(Reg::R0, Operand::Imm(7));
        a.exit();
        prog(&a)
    };
    let leaf = |n: i32| {
        let mut a = Asm::new();
        // r1 is the context again: read xdp_md->ingress_ifindex (3).
        a.ldx(Size::W, Reg::R0, Reg::R1, 12);
        a.alu64(AluOp::Add, Reg::R0, Operand::Imm(n + 37));
        a.exit();
        prog(&a)
    };
    let f = frame();
    for (index, want) in [(0, 41), (1, 42), (2, 7), (9, 7)] {
        let progs = [entry(index), leaf(1), leaf(2)];
        let mut maps = Maps::new(&[def], 1).unwrap();
        maps.set_program(0, 0, 1).unwrap();
        maps.set_program(0, 1, 2).unwrap();
        assert_eq!(
            Program::run_chain(&progs, &xdp(&f), &mut maps, &Env::default()),
            Ok(want),
            "index {index}"
        );
    }
}

/// A program that tail-calls itself: the 34th call fails, as in the kernel,
/// and every call spends the program's length.
#[test]
fn tail_calls_are_bounded() {
    let progs = [MapDef {
        kind: MapKind::ProgArray,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
    }];
    let counter = MapDef {
        kind: MapKind::Array,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
    };
    let mut a = Asm::new();
    let out = a.label();
    a.mov64(Reg::R6, Operand::Reg(Reg::R1));
    st(&mut a, Size::W, -4, 0);
    a.push(Op::LdImm64 {
        dst: Reg::R1,
        pseudo: Pseudo::MapFd,
        src_reg: 1,
        imm: 1,
    });
    a.mov64(Reg::R2, Operand::Reg(Reg::R10));
    a.alu64(AluOp::Add, Reg::R2, Operand::Imm(-4));
    a.push(Op::Call(CallTarget::Helper(1)));
    a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), out);
    a.mov64(Reg::R1, Operand::Imm(1));
    a.push(Op::Atomic {
        size: Size::DW,
        op: AtomicOp::Add,
        fetch: false,
        dst: Reg::R0,
        src: Reg::R1,
        off: 0,
    });
    a.mov64(Reg::R1, Operand::Reg(Reg::R6));
    a.push(Op::LdImm64 {
        dst: Reg::R2,
        pseudo: Pseudo::MapFd,
        src_reg: 1,
        imm: 0,
    });
    a.mov64(Reg::R3, Operand::Imm(0));
    a.push(Op::Call(CallTarget::Helper(12)));
    a.bind(out);
    a.mov64(Reg::R0, Operand::Imm(2));
    a.exit();
    let p = [prog(&a)];
    let f = frame();
    let runs = |env: &Env| {
        let mut maps = Maps::new(&[progs[0], counter], 1).unwrap();
        maps.set_program(0, 0, 0).unwrap();
        let got = Program::run_chain(&p, &xdp(&f), &mut maps, env);
        let v = maps.values(1, &0u32.to_le_bytes()).unwrap();
        (got, u64::from_le_bytes(v[0][..8].try_into().unwrap()))
    };
    assert_eq!(runs(&Env::default()), (Ok(2), 34));
    // Three runs fit, the third tail call does not.
    let len = p[0].len() as u64;
    let b = 3 * len + len / 2;
    assert_eq!(runs(&budget(b)), (Err(VmError::Budget(b)), 3));
}

/// `bpf_loop(n, cb, &acc, 0)` where the callback adds its index to the
/// caller's stack through its context argument and stops once past
/// `stop`; returns `iterations << 32 | acc`.
fn looper(n: i32, stop: i32, flags: i32) -> Asm {
    let mut a = Asm::new();
    let cb = a.label();
    a.mov64(Reg::R6, Operand::Imm(77)); // kept across the call
    st(&mut a, Size::DW, -8, 0);
    a.mov64(Reg::R1, Operand::Imm(n));
    a.ld_func(Reg::R2, cb);
    a.mov64(Reg::R3, Operand::Reg(Reg::R10));
    a.alu64(AluOp::Add, Reg::R3, Operand::Imm(-8));
    a.mov64(Reg::R4, Operand::Imm(flags));
    a.push(Op::Call(CallTarget::Helper(181)));
    a.alu64(AluOp::Lsh, Reg::R0, Operand::Imm(32));
    a.ldx(Size::DW, Reg::R1, Reg::R10, -8);
    a.alu64(AluOp::Or, Reg::R0, Operand::Reg(Reg::R1));
    let bad = a.label();
    a.jmp(true, JmpOp::Jne, Reg::R6, Operand::Imm(77), bad);
    a.exit();
    a.bind(bad);
    a.mov64(Reg::R0, Operand::Imm(-1));
    a.exit();
    // cb(i, ctx): *ctx += i; return i >= stop
    a.bind(cb);
    a.mov64(Reg::R6, Operand::Imm(5)); // the callee's own r6
    a.ldx(Size::DW, Reg::R3, Reg::R2, 0);
    a.alu64(AluOp::Add, Reg::R3, Operand::Reg(Reg::R1));
    a.stx(Size::DW, Reg::R2, Reg::R3, 0);
    a.mov64(Reg::R0, Operand::Imm(0));
    let go_on = a.label();
    a.jmp(true, JmpOp::Jlt, Reg::R1, Operand::Imm(stop), go_on);
    a.mov64(Reg::R0, Operand::Imm(1));
    a.bind(go_on);
    a.exit();
    a
}

/// `bpf_loop` as the kernel runs it: the callback's index and context,
/// stop on 1, the count of iterations run, r6-r9 kept, and its
/// argument checks.
#[test]
fn bpf_loop_runs_its_callback() {
    // 0+1+...+9, all 10 iterations
    assert_eq!(run(&looper(10, 100, 0)).unwrap(), 10 << 32 | 45);
    // stops after index 4 returned 1: 5 iterations, 0+1+2+3+4
    assert_eq!(run(&looper(10, 4, 0)).unwrap(), 5 << 32 | 10);
    assert_eq!(run(&looper(0, 4, 0)).unwrap(), 0);
    let einval = (-22i64 as u64) << 32;
    assert_eq!(run(&looper(3, 4, 1)).unwrap(), einval);
    let e2big = (-7i64 as u64) << 32;
    assert_eq!(run(&looper((1 << 23) + 1, 4, 0)).unwrap(), e2big);
    // Every iteration pays for the callback: a small budget runs out.
    let env = Env {
        budget: 200,
        ..Env::default()
    };
    assert!(matches!(
        run_env(&looper(1000, 5000, 0), &env),
        Err(VmError::Budget(200))
    ));
}

/// `r0 = 0; loop: r0 += 1; may_goto out; goto loop; out: exit`: the
/// kernel's count-based `may_goto` falls through `BPF_MAX_LOOPS` times and
/// then jumps, so the loop body runs once more than that.
#[test]
fn may_goto_jumps_once_the_loop_budget_is_spent() {
    let mut a = Asm::new();
    let (top, out) = (a.label(), a.label());
    a.mov64(Reg::R0, Operand::Imm(0));
    a.bind(top);
    a.alu64(AluOp::Add, Reg::R0, Operand::Imm(1));
    a.may_goto(out);
    a.ja(top);
    a.bind(out);
    a.exit();
    let env = Env {
        budget: 1 << 26,
        ..Env::default()
    };
    assert_eq!(run_env(&a, &env), Ok((1 << 23) + 1));
    // Every run starts with the whole budget.
    assert_eq!(run_env(&a, &env), Ok((1 << 23) + 1));
}

/// A budget smaller than the program's straight-line cost fails the run
/// before its first instruction, as it did when the first charge was an
/// ordinary one.
#[test]
fn a_budget_below_the_entry_cost_fails_at_once() {
    let mut a = Asm::new();
    for _ in 0..10 {
        a.mov64(Reg::R0, Operand::Imm(1));
    }
    a.exit();
    let tight = |budget| {
        run_env(
            &a,
            &Env {
                budget,
                ..Env::default()
            },
        )
    };
    assert_eq!(tight(3), Err(VmError::Budget(3)));
    assert_eq!(tight(1 << 10), Ok(1));
}
