//! The classic BPF instruction: the raw `struct sock_filter` and a typed,
//! decoded view of it.
//!
//! ```text
//!  struct sock_filter (8 bytes, host byte order)
//!  +----------------+--------+--------+--------------------------------+
//!  |    code: u16   | jt: u8 | jf: u8 |             k: u32             |
//!  +----------------+--------+--------+--------------------------------+
//!
//!  code, low byte (the high byte is always zero in a valid program):
//!
//!    LD / LDX                ALU / JMP               RET             MISC
//!    7   5 4  3 2   0        7     4 3  2   0        4  3 2   0      7    3 2   0
//!   +-----+----+-----+      +-------+---+-----+     +-----+-----+   +------+-----+
//!   |mode |size|class|      |  op   |src|class|     |rval |class|   |miscop|class|
//!   +-----+----+-----+      +-------+---+-----+     +-----+-----+   +------+-----+
//!
//!  class: LD=0 LDX=1 ST=2 STX=3 ALU=4 JMP=5 RET=6 MISC=7
//!  size:  W=0x00 H=0x08 B=0x10
//!  mode:  IMM=0x00 ABS=0x20 IND=0x40 MEM=0x60 LEN=0x80 MSH=0xa0
//!  op:    ALU: ADD=0x00 SUB=0x10 MUL=0x20 DIV=0x30 OR=0x40 AND=0x50 LSH=0x60
//!              RSH=0x70 NEG=0x80 MOD=0x90 XOR=0xa0
//!         JMP: JA=0x00 JEQ=0x10 JGT=0x20 JGE=0x30 JSET=0x40
//!  src:   K=0x00 X=0x08          rval: K=0x00 X=0x08 A=0x10
//!  miscop: TAX=0x00 TXA=0x80
//! ```
//!
//! Conditional jumps are relative and forward only: the next instruction is
//! `pc + 1 + jt` (or `jf`); `ja` uses `pc + 1 + k`.

use std::fmt;

/// Opcode bit fields, named as in `<linux/filter.h>`.
pub mod code {
    pub const CLASS_MASK: u16 = 0x07;
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ST: u16 = 0x02;
    pub const STX: u16 = 0x03;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;

    pub const SIZE_MASK: u16 = 0x18;
    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;

    pub const MODE_MASK: u16 = 0xe0;
    pub const IMM: u16 = 0x00;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MEM: u16 = 0x60;
    pub const LEN: u16 = 0x80;
    pub const MSH: u16 = 0xa0;

    pub const OP_MASK: u16 = 0xf0;
    pub const ADD: u16 = 0x00;
    pub const SUB: u16 = 0x10;
    pub const MUL: u16 = 0x20;
    pub const DIV: u16 = 0x30;
    pub const OR: u16 = 0x40;
    pub const AND: u16 = 0x50;
    pub const LSH: u16 = 0x60;
    pub const RSH: u16 = 0x70;
    pub const NEG: u16 = 0x80;
    pub const MOD: u16 = 0x90;
    pub const XOR: u16 = 0xa0;

    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JGE: u16 = 0x30;
    pub const JSET: u16 = 0x40;

    pub const SRC_MASK: u16 = 0x08;
    pub const K: u16 = 0x00;
    pub const X: u16 = 0x08;

    pub const RVAL_MASK: u16 = 0x18;
    pub const RET_A: u16 = 0x10;

    pub const MISCOP_MASK: u16 = 0xf8;
    pub const TAX: u16 = 0x00;
    pub const TXA: u16 = 0x80;
}

/// Number of scratch memory cells `M[0..15]`.
pub const MEMWORDS: u32 = 16;

/// Longest program the kernel and libpcap accept (`BPF_MAXINSNS`).
pub const MAXINSNS: usize = 4096;

/// One raw classic BPF instruction, exactly `struct sock_filter`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Width of a packet load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    W,
    H,
    B,
}

impl Size {
    pub fn bytes(self) -> u32 {
        match self {
            Size::W => 4,
            Size::H => 2,
            Size::B => 1,
        }
    }
    fn bits(self) -> u16 {
        match self {
            Size::W => code::W,
            Size::H => code::H,
            Size::B => code::B,
        }
    }
}

/// Second operand of an ALU or conditional jump instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Src {
    K(u32),
    X,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    Xor,
}

impl AluOp {
    pub const ALL: [AluOp; 10] = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Div,
        AluOp::Or,
        AluOp::And,
        AluOp::Lsh,
        AluOp::Rsh,
        AluOp::Mod,
        AluOp::Xor,
    ];
    fn bits(self) -> u16 {
        match self {
            AluOp::Add => code::ADD,
            AluOp::Sub => code::SUB,
            AluOp::Mul => code::MUL,
            AluOp::Div => code::DIV,
            AluOp::Or => code::OR,
            AluOp::And => code::AND,
            AluOp::Lsh => code::LSH,
            AluOp::Rsh => code::RSH,
            AluOp::Mod => code::MOD,
            AluOp::Xor => code::XOR,
        }
    }
    fn from_bits(op: u16) -> Option<AluOp> {
        AluOp::ALL.into_iter().find(|a| a.bits() == op)
    }
    /// tcpdump's mnemonic.
    pub fn mnemonic(self) -> &'static str {
        match self {
            AluOp::Add => "add",
            AluOp::Sub => "sub",
            AluOp::Mul => "mul",
            AluOp::Div => "div",
            AluOp::Or => "or",
            AluOp::And => "and",
            AluOp::Lsh => "lsh",
            AluOp::Rsh => "rsh",
            AluOp::Mod => "mod",
            AluOp::Xor => "xor",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JmpOp {
    Jeq,
    Jgt,
    Jge,
    Jset,
}

impl JmpOp {
    pub const ALL: [JmpOp; 4] = [JmpOp::Jeq, JmpOp::Jgt, JmpOp::Jge, JmpOp::Jset];
    fn bits(self) -> u16 {
        match self {
            JmpOp::Jeq => code::JEQ,
            JmpOp::Jgt => code::JGT,
            JmpOp::Jge => code::JGE,
            JmpOp::Jset => code::JSET,
        }
    }
    fn from_bits(op: u16) -> Option<JmpOp> {
        JmpOp::ALL.into_iter().find(|j| j.bits() == op)
    }
    /// tcpdump's mnemonic.
    pub fn mnemonic(self) -> &'static str {
        match self {
            JmpOp::Jeq => "jeq",
            JmpOp::Jgt => "jgt",
            JmpOp::Jge => "jge",
            JmpOp::Jset => "jset",
        }
    }
}

/// What a `ret` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetVal {
    K(u32),
    A,
    X,
}

/// The decoded form of one instruction. Every valid opcode has exactly one
/// variant; `Insn::decode` rejects every other code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `A = P[k:size]`
    LdAbs {
        size: Size,
        k: u32,
    },
    /// `A = P[X + k:size]`
    LdInd {
        size: Size,
        k: u32,
    },
    /// `A = k`
    LdImm {
        k: u32,
    },
    /// `A = M[k]`
    LdMem {
        k: u32,
    },
    /// `A = wire length`
    LdLen,
    /// `X = k`
    LdxImm {
        k: u32,
    },
    /// `X = M[k]`
    LdxMem {
        k: u32,
    },
    /// `X = wire length`
    LdxLen,
    /// `X = 4 * (P[k] & 0xf)`: the IPv4 header length idiom.
    LdxMsh {
        k: u32,
    },
    /// `M[k] = A`
    St {
        k: u32,
    },
    /// `M[k] = X`
    Stx {
        k: u32,
    },
    /// `A = A op src`
    Alu {
        op: AluOp,
        src: Src,
    },
    /// `A = -A`
    Neg,
    /// `pc += k`
    Ja {
        k: u32,
    },
    /// `pc += (A op src) ? jt : jf`
    Jmp {
        op: JmpOp,
        src: Src,
        jt: u8,
        jf: u8,
    },
    Ret {
        val: RetVal,
    },
    /// `X = A`
    Tax,
    /// `A = X`
    Txa,
}

/// A code that is not a classic BPF opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown opcode {code:#06x}")]
pub struct UnknownOpcode {
    pub code: u16,
}

impl Insn {
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// Decodes the opcode. Only the exact codes that libpcap's and the
    /// kernel's interpreters implement are accepted (each rule set in
    /// `validate` narrows this further where they differ).
    pub fn decode(&self) -> Result<Op, UnknownOpcode> {
        use code::*;
        let c = self.code;
        let k = self.k;
        let bad = Err(UnknownOpcode { code: c });
        if c > 0xff {
            return bad;
        }
        let size = match c & SIZE_MASK {
            W => Some(Size::W),
            H => Some(Size::H),
            B => Some(Size::B),
            _ => None,
        };
        let src = |c: u16| if c & SRC_MASK == X { Src::X } else { Src::K(k) };
        let op = match c & CLASS_MASK {
            LD => match (c & MODE_MASK, size) {
                (ABS, Some(size)) => Op::LdAbs { size, k },
                (IND, Some(size)) => Op::LdInd { size, k },
                (IMM, Some(Size::W)) => Op::LdImm { k },
                (MEM, Some(Size::W)) => Op::LdMem { k },
                (LEN, Some(Size::W)) => Op::LdLen,
                _ => return bad,
            },
            LDX => match (c & MODE_MASK, size) {
                (IMM, Some(Size::W)) => Op::LdxImm { k },
                (MEM, Some(Size::W)) => Op::LdxMem { k },
                (LEN, Some(Size::W)) => Op::LdxLen,
                (MSH, Some(Size::B)) => Op::LdxMsh { k },
                _ => return bad,
            },
            ST if c == ST => Op::St { k },
            STX if c == STX => Op::Stx { k },
            ALU => {
                if c == ALU | NEG {
                    Op::Neg
                } else {
                    match AluOp::from_bits(c & OP_MASK) {
                        Some(op) if c & !(OP_MASK | SRC_MASK) == ALU => Op::Alu { op, src: src(c) },
                        _ => return bad,
                    }
                }
            }
            JMP => {
                if c == JMP | JA {
                    Op::Ja { k }
                } else {
                    match JmpOp::from_bits(c & OP_MASK) {
                        Some(op) if c & !(OP_MASK | SRC_MASK) == JMP => Op::Jmp {
                            op,
                            src: src(c),
                            jt: self.jt,
                            jf: self.jf,
                        },
                        _ => return bad,
                    }
                }
            }
            RET => match c & !CLASS_MASK {
                K => Op::Ret { val: RetVal::K(k) },
                X => Op::Ret { val: RetVal::X },
                RET_A => Op::Ret { val: RetVal::A },
                _ => return bad,
            },
            MISC => match c {
                c if c == MISC | TAX => Op::Tax,
                c if c == MISC | TXA => Op::Txa,
                _ => return bad,
            },
            _ => return bad,
        };
        Ok(op)
    }

    /// The raw `struct sock_filter` bytes, in host byte order.
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.code.to_ne_bytes());
        b[2] = self.jt;
        b[3] = self.jf;
        b[4..8].copy_from_slice(&self.k.to_ne_bytes());
        b
    }

    pub fn from_bytes(b: [u8; 8]) -> Insn {
        Insn {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

impl From<Op> for Insn {
    /// Encodes a decoded instruction. `Insn::from(op).decode() == Ok(op)`.
    fn from(op: Op) -> Insn {
        use code::*;
        let src_bits = |s: Src| match s {
            Src::K(k) => (K, k),
            Src::X => (X, 0),
        };
        match op {
            Op::LdAbs { size, k } => Insn::new(LD | ABS | size.bits(), 0, 0, k),
            Op::LdInd { size, k } => Insn::new(LD | IND | size.bits(), 0, 0, k),
            Op::LdImm { k } => Insn::new(LD | IMM, 0, 0, k),
            Op::LdMem { k } => Insn::new(LD | MEM, 0, 0, k),
            Op::LdLen => Insn::new(LD | LEN, 0, 0, 0),
            Op::LdxImm { k } => Insn::new(LDX | IMM, 0, 0, k),
            Op::LdxMem { k } => Insn::new(LDX | MEM, 0, 0, k),
            Op::LdxLen => Insn::new(LDX | LEN, 0, 0, 0),
            Op::LdxMsh { k } => Insn::new(LDX | MSH | B, 0, 0, k),
            Op::St { k } => Insn::new(ST, 0, 0, k),
            Op::Stx { k } => Insn::new(STX, 0, 0, k),
            Op::Alu { op, src } => {
                let (s, k) = src_bits(src);
                Insn::new(ALU | op.bits() | s, 0, 0, k)
            }
            Op::Neg => Insn::new(ALU | NEG, 0, 0, 0),
            Op::Ja { k } => Insn::new(JMP | JA, 0, 0, k),
            Op::Jmp { op, src, jt, jf } => {
                let (s, k) = src_bits(src);
                Insn::new(JMP | op.bits() | s, jt, jf, k)
            }
            Op::Ret { val } => match val {
                RetVal::K(k) => Insn::new(RET | K, 0, 0, k),
                RetVal::X => Insn::new(RET | X, 0, 0, 0),
                RetVal::A => Insn::new(RET | RET_A, 0, 0, 0),
            },
            Op::Tax => Insn::new(MISC | TAX, 0, 0, 0),
            Op::Txa => Insn::new(MISC | TXA, 0, 0, 0),
        }
    }
}

impl fmt::Debug for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{ {:#04x}, {}, {}, {:#010x} }}",
            self.code, self.jt, self.jf, self.k
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_code_decodes_and_reencodes_exactly() {
        let mut valid = 0;
        for c in 0u16..=0x1ff {
            let insn = Insn::new(c, 3, 4, 0x1234_5678);
            if let Ok(op) = insn.decode() {
                valid += 1;
                let back = Insn::from(op);
                assert_eq!(back.code, c, "{op:?}");
                assert_eq!(back.decode(), Ok(op));
            }
        }
        // 3 sizes x {abs, ind} + imm, mem, len (LD); imm, mem, len, msh (LDX);
        // st, stx; 10 ALU ops x 2 sources + neg; ja + 4 jumps x 2 sources;
        // ret k/x/a; tax, txa.
        assert_eq!(valid, 9 + 4 + 2 + 21 + 9 + 3 + 2);
    }

    #[test]
    fn sock_filter_bytes_are_exact() {
        let insn = Insn::new(0x28, 1, 2, 12);
        let b = insn.to_bytes();
        assert_eq!(b, [0x28, 0x00, 1, 2, 12, 0, 0, 0]);
        assert_eq!(Insn::from_bytes(b), insn);
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }

    #[test]
    fn well_known_codes() {
        assert_eq!(
            Insn::new(0x28, 0, 0, 12).decode(),
            Ok(Op::LdAbs {
                size: Size::H,
                k: 12
            })
        );
        assert_eq!(Insn::new(0xb1, 0, 0, 14).decode(), Ok(Op::LdxMsh { k: 14 }));
        assert_eq!(
            Insn::new(0x06, 0, 0, 262144).decode(),
            Ok(Op::Ret {
                val: RetVal::K(262144)
            })
        );
        assert_eq!(
            Insn::new(0x16, 0, 0, 0).decode(),
            Ok(Op::Ret { val: RetVal::A })
        );
        assert_eq!(Insn::new(0x87, 0, 0, 0).decode(), Ok(Op::Txa));
        assert_eq!(
            Insn::new(0x15, 0, 8, 0x86dd).decode(),
            Ok(Op::Jmp {
                op: JmpOp::Jeq,
                src: Src::K(0x86dd),
                jt: 0,
                jf: 8
            })
        );
        assert!(Insn::new(0x88, 0, 0, 0).decode().is_err()); // ldh len
        assert!(Insn::new(0x8c, 0, 0, 0).decode().is_err()); // neg x
        assert!(Insn::new(0x0d, 0, 0, 0).decode().is_err()); // ja x
    }
}
