use super::memory::Region;
use super::*;
use crate::ebpf::asm::Asm;
use crate::ebpf::insn::{
    AluOp, AtomicOp, CallTarget, Endian, JmpOp, Op, Operand, Pseudo, Reg, Size,
};

const XDP_DROP: u64 = 1;
const XDP_PASS: u64 = 2;

fn frame(ethertype: u16, len: usize) -> Vec<u8> {
    let mut f = vec![0xaa; len];
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    f
}

fn xdp(f: &[u8]) -> Input<'_> {
    Input::Xdp {
        frame: f,
        ingress_ifindex: 3,
        rx_queue_index: 0,
    }
}

fn run(a: &Asm, input: &Input) -> Result<u64, VmError> {
    let p = Program::new(&a.assemble().unwrap()).unwrap();
    p.run(input, &mut Maps::default(), &Env::default())
}

/// The shape of every XDP filter: bounds check, then direct packet loads.
fn xdp_is_ipv4(check: bool) -> Asm {
    let mut a = Asm::new();
    let drop = a.label();
    a.ldx(Size::W, Reg::R2, Reg::R1, 0); // data
    a.ldx(Size::W, Reg::R3, Reg::R1, 4); // data_end
    a.mov64(Reg::R4, Operand::Reg(Reg::R2));
    a.alu64(AluOp::Add, Reg::R4, Operand::Imm(14));
    if check {
        a.jmp(true, JmpOp::Jgt, Reg::R4, Operand::Reg(Reg::R3), drop);
    }
    a.ldx(Size::H, Reg::R0, Reg::R2, 12);
    a.push(Op::End {
        dst: Reg::R0,
        endian: Endian::ToBe,
        bits: 16,
    });
    a.jmp(true, JmpOp::Jne, Reg::R0, Operand::Imm(0x800), drop);
    a.mov64(Reg::R0, Operand::Imm(XDP_PASS as i32));
    a.exit();
    a.bind(drop);
    a.mov64(Reg::R0, Operand::Imm(XDP_DROP as i32));
    a.exit();
    a
}

#[test]
fn xdp_direct_packet_access() {
    let a = xdp_is_ipv4(true);
    assert_eq!(run(&a, &xdp(&frame(0x0800, 60))), Ok(XDP_PASS));
    assert_eq!(run(&a, &xdp(&frame(0x86dd, 60))), Ok(XDP_DROP));
    assert_eq!(run(&a, &xdp(&frame(0x0800, 60)[..13])), Ok(XDP_DROP));
}

#[test]
fn unchecked_packet_read_past_the_end_is_a_vm_error() {
    let a = xdp_is_ipv4(false);
    let short = frame(0x0800, 60);
    let err = run(&a, &xdp(&short[..13])).unwrap_err();
    assert!(
        matches!(
            err,
            VmError::OutOfBounds {
                kind: "load",
                size: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn socket_filter_sees_data_at_the_network_header() {
    // r0 = skb->len; then bpf_skb_load_bytes_relative(skb, 12, fp-8, 2, MAC)
    let mut a = Asm::new();
    a.mov64(Reg::R6, Operand::Reg(Reg::R1));
    a.ldx(Size::W, Reg::R7, Reg::R6, 0);
    a.mov64(Reg::R2, Operand::Imm(12));
    a.mov64(Reg::R3, Operand::Reg(Reg::R10));
    a.alu64(AluOp::Add, Reg::R3, Operand::Imm(-8));
    a.mov64(Reg::R4, Operand::Imm(2));
    a.mov64(Reg::R5, Operand::Imm(0));
    a.push(Op::Call(CallTarget::Helper(68)));
    a.ldx(Size::H, Reg::R0, Reg::R10, -8);
    a.alu64(AluOp::Lsh, Reg::R0, Operand::Imm(32));
    a.alu64(AluOp::Or, Reg::R0, Operand::Reg(Reg::R7));
    a.exit();
    let f = frame(0x0800, 60);
    let input = Input::Skb {
        frame: &f,
        data_off: 14,
        net_off: 14,
        meta: SkbMeta::default(),
    };
    // skb->len counts from skb->data: 46, as the kernel's test run shows.
    assert_eq!(run(&a, &input), Ok((0x0008u64 << 32) | 46));
}

#[test]
fn skb_load_bytes_out_of_range_zeroes_and_fails() {
    let mut a = Asm::new();
    a.st_dw_marker();
    a.mov64(Reg::R2, Operand::Imm(100));
    a.mov64(Reg::R3, Operand::Reg(Reg::R10));
    a.alu64(AluOp::Add, Reg::R3, Operand::Imm(-8));
    a.mov64(Reg::R4, Operand::Imm(4));
    a.push(Op::Call(CallTarget::Helper(26)));
    a.ldx(Size::W, Reg::R1, Reg::R10, -8);
    a.alu64(AluOp::Add, Reg::R0, Operand::Reg(Reg::R1));
    a.exit();
    let f = frame(0x0800, 60);
    let input = Input::Skb {
        frame: &f,
        data_off: 0,
        net_off: 14,
        meta: SkbMeta::default(),
    };
    assert_eq!(run(&a, &input), Ok(-14i64 as u64));
}

trait Marker {
    fn st_dw_marker(&mut self);
}
impl Marker for Asm {
    fn st_dw_marker(&mut self) {
        self.push(Op::St {
            size: Size::DW,
            dst: Reg::R10,
            off: -8,
            imm: -1,
        });
    }
}

#[test]
fn per_cpu_counter_through_map_helpers() {
    let def = MapDef {
        kind: MapKind::PerCpuArray,
        key_size: 4,
        value_size: 16,
        max_entries: 4,
    };
    let mut a = Asm::new();
    let out = a.label();
    a.push(Op::St {
        size: Size::W,
        dst: Reg::R10,
        off: -4,
        imm: 2,
    });
    a.push(Op::LdImm64 {
        dst: Reg::R1,
        pseudo: Pseudo::MapFd,
        src_reg: 1,
        imm: 0,
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
    a.mov64(Reg::R1, Operand::Imm(60));
    a.push(Op::Atomic {
        size: Size::DW,
        op: AtomicOp::Add,
        fetch: false,
        dst: Reg::R0,
        src: Reg::R1,
        off: 8,
    });
    a.bind(out);
    a.mov64(Reg::R0, Operand::Imm(2));
    a.exit();
    let p = Program::new(&a.assemble().unwrap()).unwrap();
    assert_eq!(p.map_count(), 1);
    let mut maps = Maps::new(&[def], 2).unwrap();
    let f = frame(0x0800, 60);
    for cpu in [0, 1, 1] {
        maps.cpu = cpu;
        assert_eq!(p.run(&xdp(&f), &mut maps, &Env::default()), Ok(2));
    }
    let v = maps.values(0, &2u32.to_le_bytes()).unwrap();
    let pk = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
    assert_eq!((pk(v[0]), pk(v[1])), (1, 2));
    assert_eq!(pk(&v[1][8..]), 120);
}

#[test]
fn budget_stops_loops() {
    let mut a = Asm::new();
    let top = a.label();
    a.bind(top);
    a.ja(top);
    let p = Program::new(&a.assemble().unwrap()).unwrap();
    let env = Env {
        budget: 1000,
        ..Env::default()
    };
    let f = frame(0x0800, 60);
    assert_eq!(
        p.run(&xdp(&f), &mut Maps::default(), &env),
        Err(VmError::Budget(1000))
    );
}

#[test]
fn alu_edge_cases_follow_the_kernel() {
    let cases: &[(bool, AluOp, u64, i32, u64)] = &[
        (true, AluOp::Div, 7, 0, 0),
        (true, AluOp::Mod, 7, 0, 7),
        (false, AluOp::Mod, 0x1_0000_0007, 0, 7),
        (true, AluOp::SDiv, -8i64 as u64, -1, 8),
        (true, AluOp::SMod, 9, -1, 0),
        (false, AluOp::SDiv, 0x8000_0000, -1, 0x8000_0000),
        (true, AluOp::Lsh, 1, 65, 2),
        (false, AluOp::Lsh, 1, 33, 2),
        (false, AluOp::Arsh, 0x8000_0000, 31, 0xffff_ffff),
        (true, AluOp::MovSx(8), 0, 0x80, 0xffff_ffff_ffff_ff80),
        (false, AluOp::MovSx(16), 0, 0x8000, 0xffff_8000),
        (false, AluOp::Add, 0xffff_ffff, 1, 0),
        (true, AluOp::Mov, 0, -1, u64::MAX),
        (false, AluOp::Mov, 0, -1, 0xffff_ffff),
    ];
    for &(wide, op, d, imm, want) in cases {
        let mut a = Asm::new();
        a.push(Op::LdImm64 {
            dst: Reg::R0,
            pseudo: Pseudo::None,
            src_reg: 0,
            imm: d,
        });
        a.mov64(Reg::R1, Operand::Imm(imm));
        if matches!(op, AluOp::MovSx(_)) {
            a.push(Op::Alu {
                wide,
                op,
                dst: Reg::R0,
                src: Operand::Reg(Reg::R1),
            });
        } else {
            a.push(Op::Alu {
                wide,
                op,
                dst: Reg::R0,
                src: Operand::Imm(imm),
            });
        }
        a.exit();
        let f = frame(0, 14);
        assert_eq!(run(&a, &xdp(&f)), Ok(want), "{wide} {op:?} {d:#x} {imm}");
    }
}

#[test]
fn bpf_to_bpf_calls_get_their_own_frame() {
    let mut a = Asm::new();
    a.mov64(Reg::R6, Operand::Imm(5));
    a.push(Op::St {
        size: Size::DW,
        dst: Reg::R10,
        off: -8,
        imm: 11,
    });
    a.push(Op::Call(CallTarget::Local(4)));
    a.ldx(Size::DW, Reg::R1, Reg::R10, -8);
    a.alu64(AluOp::Add, Reg::R0, Operand::Reg(Reg::R1));
    a.alu64(AluOp::Add, Reg::R0, Operand::Reg(Reg::R6));
    a.exit();
    // subprogram: clobbers r6 and its own stack slot, returns 100
    a.mov64(Reg::R6, Operand::Imm(0));
    a.push(Op::St {
        size: Size::DW,
        dst: Reg::R10,
        off: -8,
        imm: 0,
    });
    a.mov64(Reg::R0, Operand::Imm(100));
    a.exit();
    let f = frame(0, 14);
    assert_eq!(run(&a, &xdp(&f)), Ok(116));
}

#[test]
fn legacy_loads_end_the_program_on_failure() {
    let mut a = Asm::new();
    a.push(Op::LdAbs {
        size: Size::H,
        imm: 12,
    });
    a.exit();
    let f = frame(0x86dd, 60);
    let at = |data_off| Input::Skb {
        frame: &f,
        data_off,
        net_off: 14,
        meta: SkbMeta::default(),
    };
    assert_eq!(run(&a, &at(0)), Ok(0x86dd));
    assert_eq!(run(&a, &at(50)), Ok(0));
    let mut b = Asm::new();
    b.push(Op::LdAbs {
        size: Size::B,
        imm: crate::cbpf::skf::SKF_LL_OFF + 13,
    });
    b.exit();
    assert_eq!(run(&b, &at(14)), Ok(0xdd));
}

#[test]
fn wild_pointers_never_reach_host_memory() {
    for addr in [0u64, 8, 0xffff_ffff_ffff_fff8, Region::Stack.base() + 4096] {
        let mut a = Asm::new();
        a.push(Op::LdImm64 {
            dst: Reg::R1,
            pseudo: Pseudo::None,
            src_reg: 0,
            imm: addr,
        });
        a.ldx(Size::DW, Reg::R0, Reg::R1, 0);
        a.exit();
        let f = frame(0, 14);
        assert!(matches!(
            run(&a, &xdp(&f)),
            Err(VmError::OutOfBounds { .. })
        ));
    }
}
