//! A small assembler: instructions are pushed in order, jumps name symbolic
//! labels, and every offset is resolved once at the end, when the final
//! slot of each label is known (`LD_IMM64` takes two slots, so offsets are
//! not instruction counts).

use std::fmt;

use super::insn::{AluOp, Insn, JmpOp, Op, Operand, Pseudo, Reg, Size};

/// `BPF_JMP32 | BPF_JA`: the unconditional jump with a 32-bit offset in
/// imm (Linux 6.6+).
const GOTOL: u8 = 0x06;
/// Farthest unconditional jump written with a 16-bit offset; farther ones
/// use `gotol`, leaving the kernel room to insert instructions.
const NEAR: u32 = 8192;

/// A jump target, made by [`Asm::label`] and placed by [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label(usize);

#[derive(Clone, Copy, Debug)]
enum Item {
    Op(Op),
    /// A conditional jump whose `off` is filled in from the label.
    Jmp {
        wide: bool,
        op: JmpOp,
        dst: Reg,
        src: Operand,
        to: Label,
    },
    Ja {
        to: Label,
    },
    MayGoto {
        to: Label,
    },
    /// `LD_IMM64` of a function (`BPF_PSEUDO_FUNC`): imm is the callee's
    /// first slot relative to this instruction's first slot plus one.
    Func {
        dst: Reg,
        to: Label,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AsmError {
    #[error("label {0} is jumped to but never bound")]
    Unbound(usize),
    #[error("label {0} is bound twice")]
    BoundTwice(usize),
    #[error(
        "jump at slot {slot} to label {label} is {distance} slots away, beyond a 16-bit offset"
    )]
    TooFar {
        slot: usize,
        label: usize,
        distance: i64,
    },
}

/// The program under construction.
#[derive(Default)]
pub struct Asm {
    items: Vec<Item>,
    /// Item index each label is bound before, once bound.
    bound: Vec<Option<usize>>,
    twice: Option<usize>,
}

impl fmt::Debug for Asm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Asm({} items, {} labels)",
            self.items.len(),
            self.bound.len()
        )
    }
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    /// A fresh, unbound label.
    pub fn label(&mut self) -> Label {
        self.bound.push(None);
        Label(self.bound.len() - 1)
    }

    /// Places `l` before the next instruction pushed.
    pub fn bind(&mut self, l: Label) {
        match self.bound.get_mut(l.0) {
            Some(slot @ None) => *slot = Some(self.items.len()),
            _ => self.twice = self.twice.or(Some(l.0)),
        }
    }

    /// Number of instructions pushed so far (not slots).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(&mut self, op: Op) -> &mut Asm {
        self.items.push(Item::Op(op));
        self
    }

    /// `if dst <op> src goto to` (64-bit compare when `wide`).
    pub fn jmp(&mut self, wide: bool, op: JmpOp, dst: Reg, src: Operand, to: Label) -> &mut Asm {
        self.items.push(Item::Jmp {
            wide,
            op,
            dst,
            src,
            to,
        });
        self
    }

    /// `goto to`
    pub fn ja(&mut self, to: Label) -> &mut Asm {
        self.items.push(Item::Ja { to });
        self
    }

    /// `may_goto to`: jump once the kernel's loop budget is spent.
    pub fn may_goto(&mut self, to: Label) -> &mut Asm {
        self.items.push(Item::MayGoto { to });
        self
    }

    /// `dst = &fn` for a callback (`bpf_loop`'s): `to` labels the
    /// function's first instruction, placed after an `exit` of the code
    /// before it, so the kernel sees it as a function of its own.
    pub fn ld_func(&mut self, dst: Reg, to: Label) -> &mut Asm {
        self.items.push(Item::Func { dst, to });
        self
    }

    // Shorthands for the forms code generators use most.

    pub fn mov64(&mut self, dst: Reg, src: Operand) -> &mut Asm {
        self.push(Op::Alu {
            wide: true,
            op: AluOp::Mov,
            dst,
            src,
        })
    }
    pub fn mov32(&mut self, dst: Reg, src: Operand) -> &mut Asm {
        self.push(Op::Alu {
            wide: false,
            op: AluOp::Mov,
            dst,
            src,
        })
    }
    pub fn alu32(&mut self, op: AluOp, dst: Reg, src: Operand) -> &mut Asm {
        self.push(Op::Alu {
            wide: false,
            op,
            dst,
            src,
        })
    }
    pub fn alu64(&mut self, op: AluOp, dst: Reg, src: Operand) -> &mut Asm {
        self.push(Op::Alu {
            wide: true,
            op,
            dst,
            src,
        })
    }
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Asm {
        self.push(Op::Ldx {
            size,
            signed: false,
            dst,
            src,
            off,
        })
    }
    pub fn stx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Asm {
        self.push(Op::Stx {
            size,
            dst,
            src,
            off,
        })
    }
    pub fn exit(&mut self) -> &mut Asm {
        self.push(Op::Exit)
    }

    /// `dst = &maps[map]`: the map by its index among the object's maps,
    /// relocated by the loader.
    pub fn ld_map(&mut self, dst: Reg, map: u64) -> &mut Asm {
        self.push(Op::LdImm64 {
            dst,
            pseudo: Pseudo::MapFd,
            src_reg: 1,
            imm: map,
        })
    }

    /// `r0 = bpf_map_lookup_elem(&maps[map], fp + key)`: the map by its
    /// index among the object's maps (relocated by the loader), the key
    /// already on the stack. Clobbers r1-r5.
    pub fn map_lookup(&mut self, map: u64, key: i16) -> &mut Asm {
        const HELPER_MAP_LOOKUP: i32 = 1;
        self.ld_map(Reg::R1, map);
        self.mov64(Reg::R2, Operand::Reg(Reg::R10));
        self.alu64(AluOp::Add, Reg::R2, Operand::Imm(i32::from(key)));
        self.push(Op::Call(super::insn::CallTarget::Helper(HELPER_MAP_LOOKUP)))
    }

    /// Resolves every label and encodes the program.
    pub fn assemble(&self) -> Result<Vec<Insn>, AsmError> {
        if let Some(l) = self.twice {
            return Err(AsmError::BoundTwice(l));
        }
        // Slot at which each item starts; one extra entry for "the end".
        let mut start = Vec::with_capacity(self.items.len() + 1);
        let mut slot = 0usize;
        for item in &self.items {
            start.push(slot);
            slot += match item {
                Item::Op(op) => op.slots(),
                Item::Func { .. } => 2,
                _ => 1,
            };
        }
        start.push(slot);
        let target = |l: Label| -> Result<usize, AsmError> {
            let item = self
                .bound
                .get(l.0)
                .copied()
                .flatten()
                .ok_or(AsmError::Unbound(l.0))?;
            Ok(start[item])
        };
        let mut out = Vec::with_capacity(slot);
        for (n, item) in self.items.iter().enumerate() {
            let here = start[n];
            let rel = |l: Label| -> Result<i16, AsmError> {
                let distance = target(l)? as i64 - (here as i64 + 1);
                i16::try_from(distance).map_err(|_| AsmError::TooFar {
                    slot: here,
                    label: l.0,
                    distance,
                })
            };
            let op = match *item {
                Item::Op(op) => op,
                Item::Jmp {
                    wide,
                    op,
                    dst,
                    src,
                    to,
                } => Op::Jmp {
                    wide,
                    op,
                    dst,
                    src,
                    off: rel(to)?,
                },
                Item::MayGoto { to } => Op::MayGoto { off: rel(to)? },
                Item::Func { dst, to } => {
                    let distance = target(to)? as i64 - (here as i64 + 1);
                    let rel = i32::try_from(distance).map_err(|_| AsmError::TooFar {
                        slot: here,
                        label: to.0,
                        distance,
                    })?;
                    Op::LdImm64 {
                        dst,
                        pseudo: Pseudo::Func,
                        src_reg: 4,
                        imm: rel as u32 as u64,
                    }
                }
                // Beyond 16 bits an unconditional jump becomes `gotol`
                // (BPF_JMP32 | BPF_JA, 32-bit immediate, Linux 6.6+), so
                // only programs that large need that kernel.
                Item::Ja { to } => {
                    let distance = target(to)? as i64 - (here as i64 + 1);
                    let off = i32::try_from(distance).map_err(|_| AsmError::TooFar {
                        slot: here,
                        label: to.0,
                        distance,
                    })?;
                    if off.unsigned_abs() > NEAR {
                        // gotol: the verifier grows the program when it
                        // rewrites context accesses and helper calls, and a
                        // 16-bit `ja` near its limit then "cannot be
                        // patched due to 16-bit range".
                        out.push(Insn::new(GOTOL, 0, 0, 0, off));
                        continue;
                    }
                    Op::Ja { off }
                }
            };
            out.extend(op.encode());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel resolves a function reference from its first slot plus
    /// one (`insn_idx + imm + 1`), like aya's linker.
    #[test]
    fn function_references_count_from_their_first_slot() {
        let mut a = Asm::new();
        let f = a.label();
        a.mov64(Reg::R0, Operand::Imm(0));
        a.ld_func(Reg::R2, f);
        a.exit();
        a.bind(f);
        a.exit();
        let out = a.assemble().unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!((out[1].code, out[1].src(), out[1].imm), (0x18, 4, 2));
        assert_eq!(out[1 + 1 + out[1].imm as usize].code, 0x95);
    }
    use crate::ebpf::insn::{decode_all, Pseudo};

    #[test]
    fn labels_resolve_across_double_slots() {
        let mut a = Asm::new();
        let out = a.label();
        let top = a.label();
        a.bind(top);
        a.mov64(Reg::R0, Operand::Imm(0));
        a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), out);
        a.push(Op::LdImm64 {
            dst: Reg::R2,
            pseudo: Pseudo::None,
            src_reg: 0,
            imm: 1 << 40,
        });
        a.jmp(true, JmpOp::Jne, Reg::R2, Operand::Reg(Reg::R1), top);
        a.bind(out);
        a.exit();
        let insns = a.assemble().unwrap();
        assert_eq!(insns.len(), 6);
        let ops = decode_all(&insns).unwrap();
        // slot 1: jeq to slot 5 (exit): off = 5 - 2 = 3
        assert_eq!(
            ops[1].1,
            Op::Jmp {
                wide: true,
                op: JmpOp::Jeq,
                dst: Reg::R1,
                src: Operand::Imm(0),
                off: 3
            }
        );
        // slot 4: jne back to slot 0: off = 0 - 5 = -5
        assert!(matches!(ops[3].1, Op::Jmp { off: -5, .. }));
    }

    #[test]
    fn unbound_and_twice_bound_labels_are_errors() {
        let mut a = Asm::new();
        let l = a.label();
        a.ja(l);
        assert_eq!(a.assemble(), Err(AsmError::Unbound(0)));
        a.bind(l);
        a.bind(l);
        a.exit();
        assert_eq!(a.assemble(), Err(AsmError::BoundTwice(0)));
    }

    #[test]
    fn far_ja_becomes_gotol() {
        let mut a = Asm::new();
        let l = a.label();
        a.ja(l);
        for _ in 0..20_000 {
            a.mov64(Reg::R0, Operand::Imm(0));
        }
        a.bind(l);
        a.exit();
        let insns = a.assemble().unwrap();
        assert_eq!(insns[0].code, 0x06, "BPF_JMP32 | BPF_JA");
        assert_eq!(decode_all(&insns).unwrap()[0].1, Op::Ja { off: 20_000 });
    }

    #[test]
    fn too_far_is_an_error() {
        let mut a = Asm::new();
        let l = a.label();
        a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), l);
        for _ in 0..40_000 {
            a.mov64(Reg::R0, Operand::Imm(0));
        }
        a.bind(l);
        a.exit();
        assert!(matches!(a.assemble(), Err(AsmError::TooFar { .. })));
    }
}
