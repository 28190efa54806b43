//! Disassembly in the syntax of `bpftool prog dump xlated` (the kernel's
//! `print_bpf_insn`), so that our listings and the kernel's can be diffed:
//!
//! ```text
//!    0: (bf) r6 = r1
//!    1: (69) r0 = *(u16 *)(r6 +12)
//!    2: (55) if r0 != 0x800 goto pc+3
//! ```

use std::fmt::Write;

use super::insn::{
    decode_all, AluOp, AtomicOp, CallTarget, DecodeError, Endian, Insn, JmpOp, Op, Operand, Pseudo,
    Reg, Size,
};

/// Names of the helpers our programs call, as bpftool prints them.
pub fn helper_name(id: i32) -> Option<&'static str> {
    Some(match id {
        1 => "bpf_map_lookup_elem",
        2 => "bpf_map_update_elem",
        3 => "bpf_map_delete_elem",
        5 => "bpf_ktime_get_ns",
        6 => "bpf_trace_printk",
        7 => "bpf_get_prandom_u32",
        8 => "bpf_get_smp_processor_id",
        26 => "bpf_skb_load_bytes",
        44 => "bpf_xdp_adjust_head",
        68 => "bpf_skb_load_bytes_relative",
        188 => "bpf_xdp_get_buff_len",
        113 => "bpf_probe_read_kernel",
        189 => "bpf_xdp_load_bytes",
        _ => return None,
    })
}

fn alu_sym(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div => "/=",
        AluOp::SDiv => "s/=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Mod => "%=",
        AluOp::SMod => "s%=",
        AluOp::Xor => "^=",
        AluOp::Mov | AluOp::MovSx(_) => "=",
        AluOp::Arsh => "s>>=",
    }
}

fn reg(wide: bool, r: Reg) -> String {
    format!("{}{}", if wide { 'r' } else { 'w' }, r.index())
}

fn mem(size: Size, base: Reg, off: i16) -> String {
    format!("*({} *)({} {:+})", size.c_type(), base, off)
}

/// One instruction, without the `N: ` prefix.
pub fn format_op(code: u8, op: &Op) -> String {
    let body = match *op {
        Op::Alu {
            wide,
            op: AluOp::MovSx(bits),
            dst,
            src: Operand::Reg(s),
        } => {
            format!("{} = (s{}){}", reg(wide, dst), bits, reg(wide, s))
        }
        Op::Alu { wide, op, dst, src } => match src {
            Operand::Reg(s) => format!("{} {} {}", reg(wide, dst), alu_sym(op), reg(wide, s)),
            Operand::Imm(i) => format!("{} {} {}", reg(wide, dst), alu_sym(op), i),
        },
        Op::Neg { wide, dst } => format!("{} = -{}", reg(wide, dst), reg(wide, dst)),
        Op::End { dst, endian, bits } => {
            let name = match endian {
                Endian::ToLe => "le",
                Endian::ToBe => "be",
                Endian::Swap => "bswap",
            };
            format!("{dst} = {name}{bits} {dst}")
        }
        Op::LdImm64 {
            dst, pseudo, imm, ..
        } => match pseudo {
            Pseudo::MapFd | Pseudo::MapIdx => format!("{dst} = map[fd:{imm}]"),
            Pseudo::MapValue | Pseudo::MapIdxValue => {
                format!("{dst} = map[fd:{}][0]+{}", imm as u32, imm >> 32)
            }
            _ => format!("{dst} = {imm:#x}"),
        },
        Op::LdAbs { size, imm } => format!("r0 = *({} *)skb[{}]", size.c_type(), imm),
        Op::LdInd { size, src, imm } => {
            format!("r0 = *({} *)skb[{} + {}]", size.c_type(), src, imm)
        }
        Op::Ldx {
            size,
            signed: false,
            dst,
            src,
            off,
        } => format!("{dst} = {}", mem(size, src, off)),
        Op::Ldx {
            size,
            signed: true,
            dst,
            src,
            off,
        } => {
            format!("{dst} = *(s{} *)({src} {off:+})", size.bytes() * 8)
        }
        Op::St {
            size,
            dst,
            off,
            imm,
        } => format!("{} = {}", mem(size, dst, off), imm),
        Op::Stx {
            size,
            dst,
            src,
            off,
        } => format!("{} = {}", mem(size, dst, off), src),
        Op::Atomic {
            size,
            op,
            fetch,
            dst,
            src,
            off,
        } => {
            let (name, sym) = match op {
                AtomicOp::Add => ("add", "+="),
                AtomicOp::Or => ("or", "|="),
                AtomicOp::And => ("and", "&="),
                AtomicOp::Xor => ("xor", "^="),
                AtomicOp::Xchg => ("xchg", ""),
                AtomicOp::CmpXchg => ("cmpxchg", ""),
            };
            let wide = size == Size::DW;
            let (ty, rs) = (size.c_type(), reg(wide, src));
            match op {
                AtomicOp::Xchg => format!(
                    "{rs} = atomic{}_xchg(({ty} *)({dst} {off:+}), {rs})",
                    if wide { "64" } else { "" }
                ),
                AtomicOp::CmpXchg => format!(
                    "{} = atomic{}_cmpxchg(({ty} *)({dst} {off:+}), {}, {rs})",
                    reg(wide, Reg::R0),
                    if wide { "64" } else { "" },
                    reg(wide, Reg::R0)
                ),
                _ if fetch => format!(
                    "{rs} = atomic{}_fetch_{name}(({ty} *)({dst} {off:+}), {rs})",
                    if wide { "64" } else { "" }
                ),
                _ => format!("lock {} {sym} {rs}", mem(size, dst, off)),
            }
        }
        Op::Ja { off } if code == super::insn::code::JMP32 => format!("gotol pc{off:+}"),
        Op::Ja { off } => format!("goto pc{off:+}"),
        Op::MayGoto { off } => format!("may_goto pc{off:+}"),
        Op::Jmp {
            wide,
            op,
            dst,
            src,
            off,
        } => {
            let rhs = match src {
                Operand::Reg(s) => reg(wide, s),
                Operand::Imm(i) => format!("{:#x}", i),
            };
            let sym = JmpOp::c_op(op);
            format!("if {} {} {} goto pc{:+}", reg(wide, dst), sym, rhs, off)
        }
        Op::Call(CallTarget::Helper(id)) => {
            format!("call {}#{}", helper_name(id).unwrap_or("unknown"), id)
        }
        Op::Call(CallTarget::Local(rel)) => format!("call pc{rel:+}"),
        Op::Call(CallTarget::Kfunc(id)) => format!("call kernel-function#{id}"),
        Op::Exit => "exit".to_string(),
    };
    format!("({code:02x}) {body}")
}

/// The whole program, one line per instruction, numbered by slot as
/// bpftool numbers them.
pub fn disassemble(insns: &[Insn]) -> Result<String, DecodeError> {
    let mut out = String::new();
    for (slot, op) in decode_all(insns)? {
        let _ = writeln!(out, "{slot:4}: {}", format_op(insns[slot].code, &op));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::asm::Asm;

    #[test]
    fn bpftool_syntax() {
        let mut a = Asm::new();
        let l = a.label();
        a.mov64(Reg::R6, Operand::Reg(Reg::R1));
        a.ldx(Size::H, Reg::R0, Reg::R6, 12);
        a.jmp(true, JmpOp::Jne, Reg::R0, Operand::Imm(0x800), l);
        a.mov32(Reg::R0, Operand::Imm(1));
        a.alu64(AluOp::Add, Reg::R1, Operand::Imm(-8));
        a.push(Op::End {
            dst: Reg::R0,
            endian: Endian::ToBe,
            bits: 16,
        });
        a.push(Op::Stx {
            size: Size::W,
            dst: Reg::R10,
            src: Reg::R0,
            off: -4,
        });
        a.push(Op::LdImm64 {
            dst: Reg::R1,
            pseudo: Pseudo::None,
            src_reg: 0,
            imm: 0x1122,
        });
        a.push(Op::Call(CallTarget::Helper(26)));
        a.push(Op::Jmp {
            wide: false,
            op: JmpOp::Jgt,
            dst: Reg::R2,
            src: Operand::Reg(Reg::R3),
            off: -1,
        });
        a.push(Op::Atomic {
            size: Size::DW,
            op: AtomicOp::Add,
            fetch: false,
            dst: Reg::R1,
            src: Reg::R2,
            off: 0,
        });
        a.bind(l);
        a.exit();
        let text = disassemble(&a.assemble().unwrap()).unwrap();
        let want = "   0: (bf) r6 = r1
   1: (69) r0 = *(u16 *)(r6 +12)
   2: (55) if r0 != 0x800 goto pc+9
   3: (b4) w0 = 1
   4: (07) r1 += -8
   5: (dc) r0 = be16 r0
   6: (63) *(u32 *)(r10 -4) = r0
   7: (18) r1 = 0x1122
   9: (85) call bpf_skb_load_bytes#26
  10: (2e) if w2 > w3 goto pc-1
  11: (db) lock *(u64 *)(r1 +0) += r2
  12: (95) exit
";
        assert_eq!(text, want);
    }
}
