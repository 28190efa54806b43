//! The eBPF instruction: the raw 8-byte slot and a typed, decoded view of
//! every class.
//!
//! ```text
//!  struct bpf_insn (8 bytes, little endian)
//!  +--------+----+----+----------------+--------------------------------+
//!  |code: u8|dst |src |   off: i16     |           imm: i32             |
//!  |        |4bit|4bit|                |                                |
//!  +--------+----+----+----------------+--------------------------------+
//!   byte 0   byte 1: dst in the low nibble, src in the high nibble
//!
//!  code:
//!    ALU / ALU64 / JMP / JMP32        LD / LDX / ST / STX
//!    7     4 3   2    0               7    5 4  3 2    0
//!   +-------+---+------+             +------+----+------+
//!   |  op   |src|class |             | mode |size|class |
//!   +-------+---+------+             +------+----+------+
//!
//!  class: LD=0 LDX=1 ST=2 STX=3 ALU=4 JMP=5 JMP32=6 ALU64=7
//!  size:  W=0x00 H=0x08 B=0x10 DW=0x18
//!  mode:  IMM=0x00 ABS=0x20 IND=0x40 MEM=0x60 MEMSX=0x80 ATOMIC=0xc0
//!  src:   K=0x00 (imm) X=0x08 (src register); for END: TO_LE=0x00 TO_BE=0x08
//!  ALU op: ADD SUB MUL DIV OR AND LSH RSH NEG MOD XOR MOV ARSH END
//!          (0x00 .. 0xd0 by 0x10); off=1 makes DIV/MOD signed; off=8/16/32
//!          makes MOV a sign-extending move (movsx)
//!  JMP op: JA JEQ JGT JGE JSET JNE JSGT JSGE CALL EXIT JLT JLE JSLT JSLE
//!          (0x00 .. 0xd0 by 0x10); JCOND (0xe0, src 0) is `may_goto`
//!
//!  LD_IMM64 (code 0x18) takes two slots: the first holds the low 32 bits in
//!  imm, the second (code 0) the high 32 bits. src names a pseudo source:
//!  0 plain, 1 map fd, 2 map value, 3 BTF id, 4 function, 5 map index,
//!  6 map index value.
//! ```

use std::fmt;

pub mod code {
    pub const CLASS_MASK: u8 = 0x07;
    pub const LD: u8 = 0x00;
    pub const LDX: u8 = 0x01;
    pub const ST: u8 = 0x02;
    pub const STX: u8 = 0x03;
    pub const ALU: u8 = 0x04;
    pub const JMP: u8 = 0x05;
    pub const JMP32: u8 = 0x06;
    pub const ALU64: u8 = 0x07;

    pub const SIZE_MASK: u8 = 0x18;
    pub const W: u8 = 0x00;
    pub const H: u8 = 0x08;
    pub const B: u8 = 0x10;
    pub const DW: u8 = 0x18;

    pub const MODE_MASK: u8 = 0xe0;
    pub const IMM: u8 = 0x00;
    pub const ABS: u8 = 0x20;
    pub const IND: u8 = 0x40;
    pub const MEM: u8 = 0x60;
    pub const MEMSX: u8 = 0x80;
    pub const ATOMIC: u8 = 0xc0;

    pub const OP_MASK: u8 = 0xf0;
    pub const SRC_MASK: u8 = 0x08;
    pub const K: u8 = 0x00;
    pub const X: u8 = 0x08;

    pub const END: u8 = 0xd0;
    /// `may_goto` (Linux 6.9+), with src 0 (`BPF_MAY_GOTO`).
    pub const JCOND: u8 = 0xe0;
    pub const CALL: u8 = 0x80;
    pub const EXIT: u8 = 0x90;

    /// `imm` of an atomic: the operation, with `FETCH` returning the old value.
    pub const FETCH: i32 = 0x01;
    pub const XCHG: i32 = 0xe0 | FETCH;
    pub const CMPXCHG: i32 = 0xf0 | FETCH;

    pub const LD_IMM64: u8 = LD | IMM | DW;
}

/// The eleven registers. r10 is the read-only frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reg(u8);

impl Reg {
    pub const R0: Reg = Reg(0);
    pub const R1: Reg = Reg(1);
    pub const R2: Reg = Reg(2);
    pub const R3: Reg = Reg(3);
    pub const R4: Reg = Reg(4);
    pub const R5: Reg = Reg(5);
    pub const R6: Reg = Reg(6);
    pub const R7: Reg = Reg(7);
    pub const R8: Reg = Reg(8);
    pub const R9: Reg = Reg(9);
    pub const R10: Reg = Reg(10);
    /// The frame pointer.
    pub const FP: Reg = Reg(10);

    pub fn new(n: u8) -> Option<Reg> {
        (n <= 10).then_some(Reg(n))
    }
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub fn bytes(self) -> usize {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }
    fn bits(self) -> u8 {
        match self {
            Size::W => code::W,
            Size::H => code::H,
            Size::B => code::B,
            Size::DW => code::DW,
        }
    }
    fn from_bits(c: u8) -> Size {
        match c & code::SIZE_MASK {
            code::W => Size::W,
            code::H => Size::H,
            code::B => Size::B,
            _ => Size::DW,
        }
    }
    /// The C type bpftool prints in a memory access.
    pub fn c_type(self) -> &'static str {
        match self {
            Size::B => "u8",
            Size::H => "u16",
            Size::W => "u32",
            Size::DW => "u64",
        }
    }
}

/// Second operand of an ALU or jump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    Imm(i32),
    Reg(Reg),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    SDiv,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    SMod,
    Xor,
    Mov,
    /// Sign-extending move from the low 8, 16 or 32 bits.
    MovSx(u8),
    Arsh,
}

impl AluOp {
    /// (op bits, off) of the encoding.
    fn encoding(self) -> (u8, i16) {
        match self {
            AluOp::Add => (0x00, 0),
            AluOp::Sub => (0x10, 0),
            AluOp::Mul => (0x20, 0),
            AluOp::Div => (0x30, 0),
            AluOp::SDiv => (0x30, 1),
            AluOp::Or => (0x40, 0),
            AluOp::And => (0x50, 0),
            AluOp::Lsh => (0x60, 0),
            AluOp::Rsh => (0x70, 0),
            AluOp::Mod => (0x90, 0),
            AluOp::SMod => (0x90, 1),
            AluOp::Xor => (0xa0, 0),
            AluOp::Mov => (0xb0, 0),
            AluOp::MovSx(bits) => (0xb0, bits as i16),
            AluOp::Arsh => (0xc0, 0),
        }
    }
    fn decode(op: u8, off: i16) -> Option<AluOp> {
        Some(match (op, off) {
            (0x00, 0) => AluOp::Add,
            (0x10, 0) => AluOp::Sub,
            (0x20, 0) => AluOp::Mul,
            (0x30, 0) => AluOp::Div,
            (0x30, 1) => AluOp::SDiv,
            (0x40, 0) => AluOp::Or,
            (0x50, 0) => AluOp::And,
            (0x60, 0) => AluOp::Lsh,
            (0x70, 0) => AluOp::Rsh,
            (0x90, 0) => AluOp::Mod,
            (0x90, 1) => AluOp::SMod,
            (0xa0, 0) => AluOp::Xor,
            (0xb0, 0) => AluOp::Mov,
            (0xb0, 8 | 16 | 32) => AluOp::MovSx(off as u8),
            (0xc0, 0) => AluOp::Arsh,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JmpOp {
    Jeq,
    Jgt,
    Jge,
    Jset,
    Jne,
    Jsgt,
    Jsge,
    Jlt,
    Jle,
    Jslt,
    Jsle,
}

impl JmpOp {
    const TABLE: [(JmpOp, u8); 11] = [
        (JmpOp::Jeq, 0x10),
        (JmpOp::Jgt, 0x20),
        (JmpOp::Jge, 0x30),
        (JmpOp::Jset, 0x40),
        (JmpOp::Jne, 0x50),
        (JmpOp::Jsgt, 0x60),
        (JmpOp::Jsge, 0x70),
        (JmpOp::Jlt, 0xa0),
        (JmpOp::Jle, 0xb0),
        (JmpOp::Jslt, 0xc0),
        (JmpOp::Jsle, 0xd0),
    ];
    fn bits(self) -> u8 {
        JmpOp::TABLE
            .iter()
            .find(|(j, _)| *j == self)
            .map_or(0, |(_, b)| *b)
    }
    fn from_bits(op: u8) -> Option<JmpOp> {
        JmpOp::TABLE.iter().find(|(_, b)| *b == op).map(|(j, _)| *j)
    }
    /// The C operator bpftool prints (`==`, `s>`, `&` ...).
    pub fn c_op(self) -> &'static str {
        match self {
            JmpOp::Jeq => "==",
            JmpOp::Jgt => ">",
            JmpOp::Jge => ">=",
            JmpOp::Jset => "&",
            JmpOp::Jne => "!=",
            JmpOp::Jsgt => "s>",
            JmpOp::Jsge => "s>=",
            JmpOp::Jlt => "<",
            JmpOp::Jle => "<=",
            JmpOp::Jslt => "s<",
            JmpOp::Jsle => "s<=",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    Add,
    Or,
    And,
    Xor,
    Xchg,
    CmpXchg,
}

/// Byte-order conversion of `BPF_END`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endian {
    /// `le16/32/64`: a no-op on little-endian hosts, truncates.
    ToLe,
    /// `be16/32/64`: swaps on little-endian hosts.
    ToBe,
    /// `bswap16/32/64` (ALU64 class): swaps unconditionally.
    Swap,
}

/// The pseudo source of an `LD_IMM64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pseudo {
    None,
    MapFd,
    MapValue,
    BtfId,
    Func,
    MapIdx,
    MapIdxValue,
}

impl Pseudo {
    const ALL: [Pseudo; 7] = [
        Pseudo::None,
        Pseudo::MapFd,
        Pseudo::MapValue,
        Pseudo::BtfId,
        Pseudo::Func,
        Pseudo::MapIdx,
        Pseudo::MapIdxValue,
    ];
    fn bits(self) -> u8 {
        Pseudo::ALL.iter().position(|p| *p == self).unwrap_or(0) as u8
    }
}

/// What a `call` calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallTarget {
    Helper(i32),
    /// A BPF-to-BPF call, `imm` relative to the next instruction.
    Local(i32),
    Kfunc(i32),
}

/// The decoded form of one instruction (an `LD_IMM64` is one `Op` over two
/// slots).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Alu {
        wide: bool,
        op: AluOp,
        dst: Reg,
        src: Operand,
    },
    Neg {
        wide: bool,
        dst: Reg,
    },
    /// Byte swap; `bits` is 16, 32 or 64.
    End {
        dst: Reg,
        endian: Endian,
        bits: u8,
    },
    /// `dst = imm64`, or a pseudo value the loader resolves.
    LdImm64 {
        dst: Reg,
        pseudo: Pseudo,
        src_reg: u8,
        imm: u64,
    },
    /// Legacy packet loads (`r0 = ntohX(skb[imm])`, `skb[src + imm]`).
    LdAbs {
        size: Size,
        imm: i32,
    },
    LdInd {
        size: Size,
        src: Reg,
        imm: i32,
    },
    /// `dst = *(size *)(src + off)`, zero- or sign-extended.
    Ldx {
        size: Size,
        signed: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `*(size *)(dst + off) = imm`
    St {
        size: Size,
        dst: Reg,
        off: i16,
        imm: i32,
    },
    /// `*(size *)(dst + off) = src`
    Stx {
        size: Size,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    Atomic {
        size: Size,
        op: AtomicOp,
        fetch: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `goto +off` (JMP) or `gotol +imm` (JMP32).
    Ja {
        off: i32,
    },
    Jmp {
        wide: bool,
        op: JmpOp,
        dst: Reg,
        src: Operand,
        off: i16,
    },
    /// `may_goto +off`: jumps once the kernel's hidden per-run loop
    /// budget (`BPF_MAX_LOOPS`, 8M turns) is spent, falls through
    /// otherwise. A loop through one needs no counter the verifier must
    /// walk: it checks the body until its state stops changing.
    MayGoto {
        off: i16,
    },
    Call(CallTarget),
    Exit,
}

/// One raw 8-byte instruction slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("slot {slot}: unknown opcode {code:#04x}")]
    UnknownOpcode { slot: usize, code: u8 },
    #[error("slot {slot}: register r{reg} does not exist")]
    BadRegister { slot: usize, reg: u8 },
    #[error("slot {slot}: ld_imm64 is missing its second slot")]
    TruncatedImm64 { slot: usize },
    #[error("slot {slot}: second slot of ld_imm64 must have code 0 and no registers")]
    BadImm64Tail { slot: usize },
    #[error("slot {slot}: reserved field is not zero")]
    ReservedNotZero { slot: usize },
    #[error("program length {len} is not a multiple of 8 bytes")]
    Length { len: usize },
}

impl Insn {
    pub fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (dst & 0xf) | (src << 4),
            off,
            imm,
        }
    }
    pub fn dst(&self) -> u8 {
        self.regs & 0xf
    }
    pub fn src(&self) -> u8 {
        self.regs >> 4
    }
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
    pub fn from_bytes(b: [u8; 8]) -> Insn {
        Insn {
            code: b[0],
            regs: b[1],
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

impl fmt::Debug for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{ code {:#04x}, dst r{}, src r{}, off {}, imm {:#x} }}",
            self.code,
            self.dst(),
            self.src(),
            self.off,
            self.imm
        )
    }
}

/// Bytes to slots.
pub fn from_bytes(bytes: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    if !bytes.len().is_multiple_of(8) {
        return Err(DecodeError::Length { len: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| Insn::from_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

/// Slots to bytes.
pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

impl Op {
    /// How many slots the encoding takes.
    pub fn slots(&self) -> usize {
        match self {
            Op::LdImm64 { .. } => 2,
            _ => 1,
        }
    }

    /// Encodes into one or two slots.
    pub fn encode(&self) -> Vec<Insn> {
        use code::*;
        let reg_or_imm = |src: Operand| match src {
            Operand::Imm(i) => (K, 0u8, i),
            Operand::Reg(r) => (X, r.0, 0),
        };
        let class = |wide: bool, w: u8, n: u8| if wide { w } else { n };
        let one = |i: Insn| vec![i];
        match *self {
            Op::Alu { wide, op, dst, src } => {
                let (s, sreg, imm) = reg_or_imm(src);
                let (bits, off) = op.encoding();
                one(Insn::new(
                    class(wide, ALU64, ALU) | bits | s,
                    dst.0,
                    sreg,
                    off,
                    imm,
                ))
            }
            Op::Neg { wide, dst } => one(Insn::new(class(wide, ALU64, ALU) | 0x80, dst.0, 0, 0, 0)),
            Op::End { dst, endian, bits } => {
                let c = match endian {
                    Endian::ToLe => ALU | END | K,
                    Endian::ToBe => ALU | END | X,
                    Endian::Swap => ALU64 | END | K,
                };
                one(Insn::new(c, dst.0, 0, 0, bits as i32))
            }
            Op::LdImm64 {
                dst,
                pseudo,
                src_reg,
                imm,
            } => {
                let src = if pseudo == Pseudo::None {
                    src_reg
                } else {
                    pseudo.bits()
                };
                vec![
                    Insn::new(LD_IMM64, dst.0, src, 0, imm as u32 as i32),
                    Insn::new(0, 0, 0, 0, (imm >> 32) as u32 as i32),
                ]
            }
            Op::LdAbs { size, imm } => one(Insn::new(LD | ABS | size.bits(), 0, 0, 0, imm)),
            Op::LdInd { size, src, imm } => {
                one(Insn::new(LD | IND | size.bits(), 0, src.0, 0, imm))
            }
            Op::Ldx {
                size,
                signed,
                dst,
                src,
                off,
            } => {
                let mode = if signed { MEMSX } else { MEM };
                one(Insn::new(LDX | mode | size.bits(), dst.0, src.0, off, 0))
            }
            Op::St {
                size,
                dst,
                off,
                imm,
            } => one(Insn::new(ST | MEM | size.bits(), dst.0, 0, off, imm)),
            Op::Stx {
                size,
                dst,
                src,
                off,
            } => one(Insn::new(STX | MEM | size.bits(), dst.0, src.0, off, 0)),
            Op::Atomic {
                size,
                op,
                fetch,
                dst,
                src,
                off,
            } => {
                let f = if fetch { FETCH } else { 0 };
                let imm = match op {
                    AtomicOp::Add => f,
                    AtomicOp::Or => 0x40 | f,
                    AtomicOp::And => 0x50 | f,
                    AtomicOp::Xor => 0xa0 | f,
                    AtomicOp::Xchg => XCHG,
                    AtomicOp::CmpXchg => CMPXCHG,
                };
                one(Insn::new(
                    STX | ATOMIC | size.bits(),
                    dst.0,
                    src.0,
                    off,
                    imm,
                ))
            }
            Op::MayGoto { off } => one(Insn::new(JMP | JCOND, 0, 0, off, 0)),
            Op::Ja { off } => match i16::try_from(off) {
                Ok(o) => one(Insn::new(JMP, 0, 0, o, 0)),
                Err(_) => one(Insn::new(JMP32, 0, 0, 0, off)),
            },
            Op::Jmp {
                wide,
                op,
                dst,
                src,
                off,
            } => {
                let (s, sreg, imm) = reg_or_imm(src);
                one(Insn::new(
                    class(wide, JMP, JMP32) | op.bits() | s,
                    dst.0,
                    sreg,
                    off,
                    imm,
                ))
            }
            Op::Call(t) => {
                let (src, imm) = match t {
                    CallTarget::Helper(id) => (0, id),
                    CallTarget::Local(rel) => (1, rel),
                    CallTarget::Kfunc(id) => (2, id),
                };
                one(Insn::new(JMP | CALL, 0, src, 0, imm))
            }
            Op::Exit => one(Insn::new(JMP | EXIT, 0, 0, 0, 0)),
        }
    }

    /// Decodes the instruction at `slot` of `insns` (which may be the first
    /// half of an `LD_IMM64`).
    pub fn decode(insns: &[Insn], slot: usize) -> Result<Op, DecodeError> {
        use code::*;
        let i = insns
            .get(slot)
            .copied()
            .ok_or(DecodeError::TruncatedImm64 { slot })?;
        let c = i.code;
        let bad = || DecodeError::UnknownOpcode { slot, code: c };
        let reg = |n: u8| Reg::new(n).ok_or(DecodeError::BadRegister { slot, reg: n });
        let dst = reg(i.dst())?;
        let src_reg = reg(i.src());
        let operand = |c: u8| -> Result<Operand, DecodeError> {
            Ok(if c & SRC_MASK == X {
                Operand::Reg(reg(i.src())?)
            } else {
                Operand::Imm(i.imm)
            })
        };
        let size = Size::from_bits(c);
        Ok(match c & CLASS_MASK {
            ALU | ALU64 => {
                let wide = c & CLASS_MASK == ALU64;
                match c & OP_MASK {
                    0x80 => Op::Neg { wide, dst },
                    END => {
                        let endian = match (wide, c & SRC_MASK) {
                            (false, K) => Endian::ToLe,
                            (false, _) => Endian::ToBe,
                            (true, K) => Endian::Swap,
                            _ => return Err(bad()),
                        };
                        if !matches!(i.imm, 16 | 32 | 64) {
                            return Err(bad());
                        }
                        Op::End {
                            dst,
                            endian,
                            bits: i.imm as u8,
                        }
                    }
                    op => {
                        let op = AluOp::decode(op, i.off).ok_or_else(bad)?;
                        Op::Alu {
                            wide,
                            op,
                            dst,
                            src: operand(c)?,
                        }
                    }
                }
            }
            JMP | JMP32 => {
                let wide = c & CLASS_MASK == JMP;
                match c & OP_MASK {
                    0x00 if c & SRC_MASK == K => {
                        if wide {
                            Op::Ja { off: i.off as i32 }
                        } else {
                            Op::Ja { off: i.imm }
                        }
                    }
                    CALL if wide && c & SRC_MASK == K => Op::Call(match i.src() {
                        0 => CallTarget::Helper(i.imm),
                        1 => CallTarget::Local(i.imm),
                        2 => CallTarget::Kfunc(i.imm),
                        _ => return Err(bad()),
                    }),
                    EXIT if wide && c & SRC_MASK == K => Op::Exit,
                    JCOND if wide && c & SRC_MASK == K => {
                        if i.regs != 0 || i.imm != 0 {
                            return Err(DecodeError::ReservedNotZero { slot });
                        }
                        Op::MayGoto { off: i.off }
                    }
                    op => {
                        let op = JmpOp::from_bits(op).ok_or_else(bad)?;
                        Op::Jmp {
                            wide,
                            op,
                            dst,
                            src: operand(c)?,
                            off: i.off,
                        }
                    }
                }
            }
            LD => match c & MODE_MASK {
                IMM if size == Size::DW => {
                    let tail = insns
                        .get(slot + 1)
                        .ok_or(DecodeError::TruncatedImm64 { slot })?;
                    if tail.code != 0 || tail.regs != 0 || tail.off != 0 {
                        return Err(DecodeError::BadImm64Tail { slot: slot + 1 });
                    }
                    let pseudo = *Pseudo::ALL.get(i.src() as usize).ok_or_else(bad)?;
                    let imm = (i.imm as u32 as u64) | ((tail.imm as u32 as u64) << 32);
                    Op::LdImm64 {
                        dst,
                        pseudo,
                        src_reg: i.src(),
                        imm,
                    }
                }
                ABS if size != Size::DW => Op::LdAbs { size, imm: i.imm },
                IND if size != Size::DW => Op::LdInd {
                    size,
                    src: src_reg?,
                    imm: i.imm,
                },
                _ => return Err(bad()),
            },
            LDX => match c & MODE_MASK {
                MEM => Op::Ldx {
                    size,
                    signed: false,
                    dst,
                    src: src_reg?,
                    off: i.off,
                },
                MEMSX if size != Size::DW => Op::Ldx {
                    size,
                    signed: true,
                    dst,
                    src: src_reg?,
                    off: i.off,
                },
                _ => return Err(bad()),
            },
            ST if c & MODE_MASK == MEM => Op::St {
                size,
                dst,
                off: i.off,
                imm: i.imm,
            },
            STX => match c & MODE_MASK {
                MEM => Op::Stx {
                    size,
                    dst,
                    src: src_reg?,
                    off: i.off,
                },
                ATOMIC if matches!(size, Size::W | Size::DW) => {
                    let fetch = i.imm & FETCH != 0;
                    let op = match i.imm {
                        XCHG => AtomicOp::Xchg,
                        CMPXCHG => AtomicOp::CmpXchg,
                        x => match x & !FETCH {
                            0x00 => AtomicOp::Add,
                            0x40 => AtomicOp::Or,
                            0x50 => AtomicOp::And,
                            0xa0 => AtomicOp::Xor,
                            _ => return Err(bad()),
                        },
                    };
                    Op::Atomic {
                        size,
                        op,
                        fetch,
                        dst,
                        src: src_reg?,
                        off: i.off,
                    }
                }
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        })
    }
}

/// Decodes a whole program into (slot, op) pairs.
pub fn decode_all(insns: &[Insn]) -> Result<Vec<(usize, Op)>, DecodeError> {
    let mut out = Vec::with_capacity(insns.len());
    let mut slot = 0;
    while slot < insns.len() {
        let op = Op::decode(insns, slot)?;
        out.push((slot, op));
        slot += op.slots();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(op: Op) {
        let slots = op.encode();
        assert_eq!(slots.len(), op.slots());
        assert_eq!(Op::decode(&slots, 0), Ok(op), "{slots:?}");
        let bytes = to_bytes(&slots);
        assert_eq!(from_bytes(&bytes).unwrap(), slots);
    }

    #[test]
    fn exact_bytes_of_common_instructions() {
        // r0 = *(u16 *)(r6 +12): ldxh, dst 0, src 6
        let op = Op::Ldx {
            size: Size::H,
            signed: false,
            dst: Reg::R0,
            src: Reg::R6,
            off: 12,
        };
        assert_eq!(to_bytes(&op.encode()), [0x69, 0x60, 12, 0, 0, 0, 0, 0]);
        // if r0 != 0x800 goto +3
        let op = Op::Jmp {
            wide: true,
            op: JmpOp::Jne,
            dst: Reg::R0,
            src: Operand::Imm(0x800),
            off: 3,
        };
        assert_eq!(to_bytes(&op.encode()), [0x55, 0x00, 3, 0, 0x00, 0x08, 0, 0]);
        // r1 = 0x1122334455667788 ll
        let op = Op::LdImm64 {
            dst: Reg::R1,
            pseudo: Pseudo::None,
            src_reg: 0,
            imm: 0x1122_3344_5566_7788,
        };
        assert_eq!(
            to_bytes(&op.encode()),
            [0x18, 0x01, 0, 0, 0x88, 0x77, 0x66, 0x55, 0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11]
        );
        // r1 = map fd (src 1)
        let op = Op::LdImm64 {
            dst: Reg::R1,
            pseudo: Pseudo::MapFd,
            src_reg: 1,
            imm: 0,
        };
        assert_eq!(op.encode()[0].regs, 0x11);
        assert_eq!(to_bytes(&Op::Exit.encode()), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        // may_goto +2: BPF_JMP | BPF_JCOND, src BPF_MAY_GOTO (0)
        assert_eq!(
            to_bytes(&Op::MayGoto { off: 2 }.encode()),
            [0xe5, 0, 2, 0, 0, 0, 0, 0]
        );
        let reserved = Insn::new(0xe5, 0, 1, 2, 0);
        assert!(Op::decode(&[reserved], 0).is_err());
        assert_eq!(
            to_bytes(&Op::Call(CallTarget::Helper(26)).encode()),
            [0x85, 0, 0, 0, 26, 0, 0, 0]
        );
    }

    #[test]
    fn every_class_round_trips() {
        let r = Reg::R3;
        let ops = [
            AluOp::Add,
            AluOp::Sub,
            AluOp::Mul,
            AluOp::Div,
            AluOp::SDiv,
            AluOp::Or,
            AluOp::And,
            AluOp::Lsh,
            AluOp::Rsh,
            AluOp::Mod,
            AluOp::SMod,
            AluOp::Xor,
            AluOp::Mov,
            AluOp::MovSx(8),
            AluOp::MovSx(16),
            AluOp::MovSx(32),
            AluOp::Arsh,
        ];
        for wide in [false, true] {
            for op in ops {
                rt(Op::Alu {
                    wide,
                    op,
                    dst: r,
                    src: Operand::Imm(-7),
                });
                rt(Op::Alu {
                    wide,
                    op,
                    dst: r,
                    src: Operand::Reg(Reg::R9),
                });
            }
            rt(Op::Neg { wide, dst: r });
            for (op, _) in JmpOp::TABLE {
                rt(Op::Jmp {
                    wide,
                    op,
                    dst: r,
                    src: Operand::Imm(5),
                    off: -2,
                });
                rt(Op::Jmp {
                    wide,
                    op,
                    dst: r,
                    src: Operand::Reg(Reg::R1),
                    off: 7,
                });
            }
        }
        for endian in [Endian::ToLe, Endian::ToBe, Endian::Swap] {
            for bits in [16, 32, 64] {
                rt(Op::End {
                    dst: r,
                    endian,
                    bits,
                });
            }
        }
        for size in [Size::B, Size::H, Size::W, Size::DW] {
            rt(Op::Ldx {
                size,
                signed: false,
                dst: r,
                src: Reg::R10,
                off: -8,
            });
            rt(Op::St {
                size,
                dst: Reg::R10,
                off: -16,
                imm: 9,
            });
            rt(Op::Stx {
                size,
                dst: Reg::R10,
                src: r,
                off: -4,
            });
            if size != Size::DW {
                rt(Op::Ldx {
                    size,
                    signed: true,
                    dst: r,
                    src: Reg::R1,
                    off: 2,
                });
                rt(Op::LdAbs { size, imm: 12 });
                rt(Op::LdInd {
                    size,
                    src: Reg::R7,
                    imm: 14,
                });
            }
        }
        for size in [Size::W, Size::DW] {
            for op in [AtomicOp::Add, AtomicOp::Or, AtomicOp::And, AtomicOp::Xor] {
                for fetch in [false, true] {
                    rt(Op::Atomic {
                        size,
                        op,
                        fetch,
                        dst: Reg::R1,
                        src: Reg::R2,
                        off: 0,
                    });
                }
            }
            rt(Op::Atomic {
                size,
                op: AtomicOp::Xchg,
                fetch: true,
                dst: Reg::R1,
                src: Reg::R2,
                off: 8,
            });
            rt(Op::Atomic {
                size,
                op: AtomicOp::CmpXchg,
                fetch: true,
                dst: Reg::R1,
                src: Reg::R2,
                off: 8,
            });
        }
        for pseudo in Pseudo::ALL {
            rt(Op::LdImm64 {
                dst: Reg::R1,
                pseudo,
                src_reg: pseudo.bits(),
                imm: 0xdead_beef_0000_0042,
            });
        }
        rt(Op::Ja { off: -3 });
        rt(Op::MayGoto { off: 2 });
        rt(Op::MayGoto { off: -7 });
        rt(Op::Ja { off: 100_000 });
        rt(Op::Call(CallTarget::Helper(1)));
        rt(Op::Call(CallTarget::Local(-20)));
        rt(Op::Call(CallTarget::Kfunc(77)));
        rt(Op::Exit);
    }

    #[test]
    fn bad_encodings_are_errors_not_panics() {
        let bad = [
            Insn::new(0xff, 0, 0, 0, 0),
            Insn::new(0x95, 11, 0, 0, 0),
            Insn::new(0xd4, 0, 0, 0, 8), // le8
            Insn::new(0xbf, 0, 0, 3, 0), // mov with off 3
            Insn::new(0x18, 0, 9, 0, 0), // unknown pseudo, and no tail
        ];
        for i in bad {
            assert!(Op::decode(&[i], 0).is_err(), "{i:?}");
        }
        assert!(matches!(
            Op::decode(&[Insn::new(0x18, 1, 0, 0, 0)], 0),
            Err(DecodeError::TruncatedImm64 { .. })
        ));
        assert!(from_bytes(&[0; 9]).is_err());
        for code in 0..=255u8 {
            for regs in [0x00, 0x21, 0xb0, 0x0b, 0xff] {
                let _ = Op::decode(
                    &[
                        Insn {
                            code,
                            regs,
                            off: 1,
                            imm: 64,
                        },
                        Insn::default(),
                    ],
                    0,
                );
            }
        }
    }
}
