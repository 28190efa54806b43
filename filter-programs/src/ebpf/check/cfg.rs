//! The static rules: decoding, reserved fields, jump targets, the end of
//! the program, reachability, and the shape of bounded loops.

use std::collections::BTreeSet;

use super::{CheckError, Rule};
use crate::ebpf::insn::{
    code, decode_all, AluOp, CallTarget, Insn, JmpOp, Op, Operand, Pseudo, Reg, Size,
};
use crate::Hook;

/// The counter of the translator's bounded loops.
pub(super) struct Counter {
    /// Its stack offset (8 bytes from there).
    pub off: i16,
    /// The only slots that may write it: guard decrements and the
    /// initialisation from a constant.
    pub writers: BTreeSet<usize>,
    /// The guards' loads, where it must already be set on every path.
    pub loads: BTreeSet<usize>,
}

pub(super) struct Cfg {
    pub raw: Vec<Insn>,
    /// The decoded instruction starting at each slot (`None` for the
    /// second slot of an `ld_imm64`).
    pub ops: Vec<Option<Op>>,
    /// Successors of each slot: fall-through, then jump target.
    pub succ: Vec<[Option<usize>; 2]>,
    /// Targets of backward jumps, where the analysis widens.
    pub loop_heads: Vec<bool>,
    pub counter: Option<Counter>,
}

fn err(slot: usize, rule: Rule) -> CheckError {
    CheckError::new(slot, rule)
}

impl Cfg {
    pub(super) fn build(insns: &[Insn], kind: Hook) -> Result<Cfg, CheckError> {
        if insns.is_empty() {
            return Err(err(0, Rule::Empty));
        }
        let decoded = decode_all(insns).map_err(|e| {
            let slot = match e {
                crate::ebpf::insn::DecodeError::UnknownOpcode { slot, .. }
                | crate::ebpf::insn::DecodeError::BadRegister { slot, .. }
                | crate::ebpf::insn::DecodeError::TruncatedImm64 { slot }
                | crate::ebpf::insn::DecodeError::BadImm64Tail { slot }
                | crate::ebpf::insn::DecodeError::ReservedNotZero { slot } => slot,
                crate::ebpf::insn::DecodeError::Length { .. } => 0,
            };
            err(slot, Rule::Decode(e))
        })?;
        let n = insns.len();
        let mut ops = vec![None; n];
        for (slot, op) in &decoded {
            // The kernel resolves these for every instruction, reachable
            // or not, before it walks any path.
            let i = &insns[*slot];
            match op {
                // The kernel's opcode table has no negation from a register.
                Op::Neg { .. } if i.code & code::SRC_MASK == code::X => {
                    return Err(err(*slot, Rule::Decode(crate::ebpf::insn::DecodeError::UnknownOpcode { slot: *slot, code: i.code })))
                }
                Op::Ldx { .. } if i.imm != 0 => return Err(err(*slot, Rule::Reserved("the immediate of a load"))),
                Op::Call(CallTarget::Local(_) | CallTarget::Kfunc(_)) => {
                    return Err(err(*slot, Rule::Unsupported("bpf-to-bpf calls and kfuncs are not supported by this checker".into())))
                }
                Op::LdImm64 { pseudo, .. } if *pseudo != Pseudo::None => {
                    return Err(err(*slot, Rule::Unsupported(
                        "ld_imm64 of a map or other pseudo value: the checker cannot see the loader's file descriptors".into(),
                    )))
                }
                _ => {}
            }
            ops[*slot] = Some(*op);
        }
        let mut succ = vec![[None, None]; n];
        for (slot, op) in &decoded {
            let (fall, jump) = edges(*slot, op);
            for (k, t) in [fall, jump].into_iter().enumerate() {
                let Some(t) = t else { continue };
                if t < 0 || t > n as i64 || (t == n as i64 && k == 1) {
                    return Err(err(*slot, Rule::JumpOutOfRange { target: t, len: n }));
                }
                if t == n as i64 {
                    return Err(err(*slot, Rule::FallsOffEnd));
                }
                if ops[t as usize].is_none() {
                    return Err(err(*slot, Rule::JumpIntoImm64 { target: t as usize }));
                }
                succ[*slot][k] = Some(t as usize);
            }
        }
        // The kernel looks at the last slot itself, reachable or not.
        let last = n - 1;
        if !matches!(ops[last], Some(Op::Exit | Op::Ja { .. })) {
            return Err(err(last, Rule::FallsOffEnd));
        }
        let mut seen = vec![false; n];
        let mut work = vec![0usize];
        while let Some(s) = work.pop() {
            if std::mem::replace(&mut seen[s], true) {
                continue;
            }
            work.extend(succ[s].iter().flatten());
        }
        if let Some(s) = (0..n).find(|s| ops[*s].is_some() && !seen[*s]) {
            return Err(err(s, Rule::Unreachable));
        }
        let mut cfg = Cfg {
            raw: insns.to_vec(),
            ops,
            succ,
            loop_heads: vec![false; n],
            counter: None,
        };
        cfg.loops(kind)?;
        Ok(cfg)
    }

    fn op(&self, slot: usize) -> Option<Op> {
        self.ops.get(slot).copied().flatten()
    }

    /// Slots some jump (not a fall-through) lands on.
    fn jump_targets(&self) -> Vec<bool> {
        let mut t = vec![false; self.ops.len()];
        for s in &self.succ {
            if let Some(j) = s[1] {
                t[j] = true;
            }
        }
        t
    }

    /// Every backward jump must be a counted back edge; see the module doc
    /// of `check`.
    fn loops(&mut self, kind: Hook) -> Result<(), CheckError> {
        let targets = self.jump_targets();
        let mut counter: Option<Counter> = None;
        for j in 0..self.ops.len() {
            let Some(t) = self.succ[j][1].filter(|t| *t <= j) else {
                continue;
            };
            if self.may_goto_guard(j, &targets) {
                self.loop_heads[t] = true;
                continue;
            }
            let off = self
                .guard(j, &targets)
                .ok_or_else(|| err(j, Rule::UnboundedLoop { target: t }))?;
            let c = counter.get_or_insert_with(|| Counter {
                off,
                writers: BTreeSet::new(),
                loads: BTreeSet::new(),
            });
            if c.off != off {
                return Err(err(
                    j - 4,
                    Rule::LoopCounter {
                        off,
                        why: format!("every loop must count with the one counter at fp{}", c.off),
                    },
                ));
            }
            c.writers.insert(j - 1);
            c.loads.insert(j - 4);
            self.loop_heads[t] = true;
        }
        let Some(mut c) = counter else { return Ok(()) };
        self.counter_writes(&mut c, &targets, kind)?;
        self.counter = Some(c);
        Ok(())
    }

    /// Every store that touches the loop counter `c` must be the counter
    /// being set from a constant within `kind`'s budget (or the loop's own
    /// decrement, already in `c.writers`).
    fn counter_writes(
        &self,
        c: &mut Counter,
        targets: &[bool],
        kind: Hook,
    ) -> Result<(), CheckError> {
        let budget = kind.loop_budget();
        for (s, &target) in targets.iter().enumerate() {
            let Some(Op::St { dst, off, size, .. } | Op::Stx { dst, off, size, .. }) = self.op(s)
            else {
                continue;
            };
            let overlaps =
                (off as i32) < c.off as i32 + 8 && off as i32 + size.bytes() as i32 > c.off as i32;
            if dst != Reg::R10 || !overlaps || c.writers.contains(&s) {
                continue;
            }
            let set = match (self.op(s), s.checked_sub(1).and_then(|p| self.op(p))) {
                (
                    Some(Op::Stx {
                        size: Size::DW,
                        src,
                        off,
                        ..
                    }),
                    Some(Op::Alu {
                        wide: true,
                        op: AluOp::Mov,
                        dst,
                        src: Operand::Imm(v),
                    }),
                ) if off == c.off && dst == src && !target => Some(v),
                _ => None,
            };
            match set {
                Some(v) if (0..=budget as i64).contains(&(v as i64)) => {
                    c.writers.insert(s);
                }
                _ => {
                    return Err(err(s, Rule::LoopCounter {
                        off: c.off,
                        why: format!(
                            "it may be set only from a constant between 0 and {budget} (the {} loop budget)",
                            kind.description()
                        ),
                    }))
                }
            }
        }
        Ok(())
    }

    /// Whether the backward `goto` at `j` is entered only from a `may_goto`
    /// right before it that leaves forward: every turn then spends the
    /// kernel's hidden budget, and the spent budget leaves the loop.
    fn may_goto_guard(&self, j: usize, targets: &[bool]) -> bool {
        j >= 1
            && matches!(self.op(j), Some(Op::Ja { .. }))
            && matches!(self.op(j - 1), Some(Op::MayGoto { .. }))
            && !targets[j]
            && self.succ[j - 1][1].is_some_and(|t| t > j)
    }

    /// The counter offset when the four slots before the backward jump at
    /// `j` are `rN = *(u64 *)(r10 C); if rN == 0 goto <forward>; rN -= 1;
    /// *(u64 *)(r10 C) = rN`, entered only from the top.
    fn guard(&self, j: usize, targets: &[bool]) -> Option<i16> {
        if j < 4 || !matches!(self.op(j), Some(Op::Ja { .. })) || (j - 3..=j).any(|s| targets[s]) {
            return None;
        }
        let (
            Some(Op::Ldx {
                size: Size::DW,
                signed: false,
                dst: r,
                src: Reg::R10,
                off,
            }),
            Some(test),
            Some(dec),
            Some(store),
        ) = (
            self.op(j - 4),
            self.op(j - 3),
            self.op(j - 2),
            self.op(j - 1),
        )
        else {
            return None;
        };
        let test_ok = matches!(test, Op::Jmp { wide: true, op: JmpOp::Jeq, dst, src: Operand::Imm(0), .. } if dst == r)
            && self.succ[j - 3][1].is_some_and(|t| t > j);
        let dec_ok = dec
            == Op::Alu {
                wide: true,
                op: AluOp::Sub,
                dst: r,
                src: Operand::Imm(1),
            };
        let store_ok = store
            == Op::Stx {
                size: Size::DW,
                dst: Reg::R10,
                src: r,
                off,
            };
        let slot_ok = off % 8 == 0 && (-512..=-8).contains(&off);
        (test_ok && dec_ok && store_ok && slot_ok).then_some(off)
    }
}

/// (fall-through, jump target) of the instruction at `slot`, as slot
/// numbers that may lie outside the program.
fn edges(slot: usize, op: &Op) -> (Option<i64>, Option<i64>) {
    let s = slot as i64;
    match *op {
        Op::Exit => (None, None),
        Op::Ja { off } => (None, Some(s + 1 + off as i64)),
        Op::Jmp { off, .. } | Op::MayGoto { off } => (Some(s + 1), Some(s + 1 + off as i64)),
        Op::LdImm64 { .. } => (Some(s + 2), None),
        _ => (Some(s + 1), None),
    }
}

/// The kernel's reserved-field rules for what our decoder accepts. The
/// kernel applies them only to instructions some path reaches, so the
/// data-flow pass calls this as it visits each one.
pub(super) fn reserved(i: &Insn, op: &Op) -> Result<(), Rule> {
    let class = i.code & code::CLASS_MASK;
    let x = i.code & code::SRC_MASK == code::X;
    let need = |ok: bool, what: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(Rule::Reserved(what))
        }
    };
    match *op {
        Op::Alu {
            wide,
            op: AluOp::Mov | AluOp::MovSx(_),
            ..
        } => {
            if x {
                let off_ok = if wide {
                    matches!(i.off, 0 | 8 | 16 | 32)
                } else {
                    matches!(i.off, 0 | 8 | 16)
                };
                need(
                    off_ok,
                    "the offset of a 32-bit sign-extending move (only 8 or 16 exist)",
                )?;
                need(i.imm == 0, "the immediate of a register move")
            } else {
                need(
                    i.src() == 0,
                    "the source register of a move from a constant",
                )?;
                need(i.off == 0, "the offset of a move from a constant")
            }
        }
        Op::Alu { wide, op, src, .. } => {
            if x {
                need(i.imm == 0, "the immediate of a register operation")?;
            } else {
                need(
                    i.src() == 0,
                    "the source register of an operation on a constant",
                )?;
            }
            let bits = if wide { 64 } else { 32 };
            match (op, src) {
                (AluOp::Div | AluOp::Mod | AluOp::SDiv | AluOp::SMod, Operand::Imm(0)) => {
                    Err(Rule::DivByZero)
                }
                (AluOp::Lsh | AluOp::Rsh | AluOp::Arsh, Operand::Imm(k))
                    if !(0..bits).contains(&k) =>
                {
                    Err(Rule::ShiftRange {
                        amount: k,
                        bits: bits as u32,
                    })
                }
                _ => Ok(()),
            }
        }
        Op::Neg { .. } => {
            need(!x, "the source bit of a negation")?;
            need(
                i.src() == 0 && i.off == 0 && i.imm == 0,
                "the source register, offset and immediate of a negation",
            )
        }
        Op::End { .. } => need(
            i.src() == 0 && i.off == 0,
            "the source register and offset of a byte swap",
        ),
        Op::LdImm64 { .. } => need(i.off == 0, "the offset of an ld_imm64"),
        Op::LdAbs { .. } => need(
            i.dst() == 0 && i.src() == 0 && i.off == 0,
            "the registers and offset of an ld_abs",
        ),
        Op::LdInd { .. } => need(
            i.dst() == 0 && i.off == 0,
            "the destination and offset of an ld_ind",
        ),
        Op::Ldx { .. } => need(i.imm == 0, "the immediate of a load"),
        Op::St { .. } => need(i.src() == 0, "the source register of a store of a constant"),
        Op::Stx { .. } => need(i.imm == 0, "the immediate of a register store"),
        Op::Atomic { .. } => Ok(()),
        Op::Ja { .. } => {
            let rest = if class == code::JMP {
                i.imm == 0
            } else {
                i.off == 0
            };
            need(
                i.regs == 0 && rest,
                "the registers and unused offset field of a goto",
            )
        }
        Op::Jmp { .. } => {
            if x {
                need(i.imm == 0, "the immediate of a register comparison")
            } else {
                need(
                    i.src() == 0,
                    "the source register of a comparison with a constant",
                )
            }
        }
        // The decoder already refused anything but zero registers and
        // immediate; the kernel also refuses a zero offset.
        Op::MayGoto { off } => need(off != 0, "the offset of may_goto (it must jump somewhere)"),
        Op::Call(_) => need(
            i.dst() == 0 && i.off == 0,
            "the destination register and offset of a call",
        ),
        Op::Exit => need(
            i.regs == 0 && i.imm == 0,
            "the registers and immediate of exit",
        ),
    }
}
