//! Removing instructions no path reaches. The kernel's verifier refuses a
//! program with any ("unreachable insn N"), and code assembled from parts
//! (a ruleset whose rule always matches, a tail no rule jumps to) has some.

use super::insn::{decode_all, CallTarget, DecodeError, Insn, Op, Pseudo};

/// `insns` without its unreachable instructions, jumps re-aimed. Programs
/// with BPF-to-BPF calls are returned unchanged (their callees are reached
/// through calls this pass does not follow).
pub fn unreachable(insns: &[Insn]) -> Result<Vec<Insn>, DecodeError> {
    let ops = decode_all(insns)?;
    if ops
        .iter()
        .any(|(_, op)| matches!(op, Op::Call(CallTarget::Local(_))))
    {
        return Ok(insns.to_vec());
    }
    // Index of the op starting at each slot.
    let mut at = vec![usize::MAX; insns.len() + 1];
    for (n, (slot, _)) in ops.iter().enumerate() {
        at[*slot] = n;
    }
    let target = |slot: usize, op: &Op, off: i64| -> Option<usize> {
        let t = slot as i64 + op.slots() as i64 + off;
        usize::try_from(t)
            .ok()
            .and_then(|t| at.get(t).copied())
            .filter(|n| *n != usize::MAX)
    };
    let mut live = vec![false; ops.len()];
    let mut work = vec![0usize];
    while let Some(n) = work.pop() {
        if n >= ops.len() || live[n] {
            continue;
        }
        live[n] = true;
        let (slot, op) = &ops[n];
        match *op {
            Op::Exit => {}
            Op::Ja { off } => work.extend(target(*slot, op, off as i64)),
            Op::Jmp { off, .. } | Op::MayGoto { off } => {
                work.extend(target(*slot, op, off as i64));
                work.push(n + 1);
            }
            // A callback (`bpf_loop`'s) lives where its reference points.
            Op::LdImm64 {
                pseudo: Pseudo::Func,
                imm,
                ..
            } => {
                work.extend(target(*slot, op, func_off(imm)));
                work.push(n + 1);
            }
            _ => work.push(n + 1),
        }
    }
    // New slot of each kept op, and of "the end".
    let mut new_slot = vec![0usize; ops.len() + 1];
    let mut s = 0;
    for (n, (_, op)) in ops.iter().enumerate() {
        new_slot[n] = s;
        if live[n] {
            s += op.slots();
        }
    }
    new_slot[ops.len()] = s;
    let mut out = Vec::with_capacity(s);
    for (n, (slot, op)) in ops.iter().enumerate() {
        if !live[n] {
            continue;
        }
        let moved = |off: i64| -> i64 {
            let t = target(*slot, op, off).unwrap_or(ops.len());
            new_slot[t] as i64 - (new_slot[n] as i64 + op.slots() as i64)
        };
        let op = match *op {
            Op::Ja { off } => Op::Ja {
                off: moved(off as i64) as i32,
            },
            Op::MayGoto { off } => Op::MayGoto {
                off: moved(off as i64) as i16,
            },
            // A kept conditional jump only gets shorter: removed code lies
            // between it and its target or nowhere near.
            Op::Jmp {
                wide,
                op: j,
                dst,
                src,
                off,
            } => Op::Jmp {
                wide,
                op: j,
                dst,
                src,
                off: moved(off as i64) as i16,
            },
            Op::LdImm64 {
                dst,
                pseudo: Pseudo::Func,
                src_reg,
                imm,
            } => Op::LdImm64 {
                dst,
                pseudo: Pseudo::Func,
                src_reg,
                imm: (moved(func_off(imm)) + 1) as i32 as u32 as u64,
            },
            other => other,
        };
        out.extend(op.encode());
    }
    Ok(out)
}

/// A function reference's target as a jump offset from the slot after it
/// (the kernel counts from its first slot plus one).
fn func_off(imm: u64) -> i64 {
    imm as u32 as i32 as i64 - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::asm::Asm;
    use crate::ebpf::insn::{AluOp, JmpOp, Operand, Reg};

    #[test]
    fn dead_code_goes_and_jumps_follow() {
        let mut a = Asm::new();
        let end = a.label();
        let dead = a.label();
        a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), end);
        a.mov64(Reg::R0, Operand::Imm(1));
        a.ja(end);
        a.bind(dead);
        a.mov64(Reg::R0, Operand::Imm(7));
        a.mov64(Reg::R0, Operand::Imm(8));
        a.bind(end);
        a.exit();
        let out = unreachable(&a.assemble().unwrap()).unwrap();
        let ops: Vec<Op> = decode_all(&out)
            .unwrap()
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        assert_eq!(
            ops,
            vec![
                Op::Jmp {
                    wide: true,
                    op: JmpOp::Jeq,
                    dst: Reg::R1,
                    src: Operand::Imm(0),
                    off: 2
                },
                Op::Alu {
                    wide: true,
                    op: AluOp::Mov,
                    dst: Reg::R0,
                    src: Operand::Imm(1)
                },
                Op::Ja { off: 0 },
                Op::Exit,
            ]
        );
    }

    #[test]
    fn callbacks_stay_and_their_references_follow() {
        let mut a = Asm::new();
        let (cb, dead) = (a.label(), a.label());
        a.ja(dead);
        a.mov64(Reg::R0, Operand::Imm(7)); // unreachable
        a.bind(dead);
        a.ld_func(Reg::R2, cb);
        a.exit();
        a.mov64(Reg::R0, Operand::Imm(8)); // unreachable
        a.bind(cb);
        a.mov64(Reg::R0, Operand::Imm(0));
        a.exit();
        let out = unreachable(&a.assemble().unwrap()).unwrap();
        let ops: Vec<Op> = decode_all(&out)
            .unwrap()
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        assert_eq!(ops.len(), 5, "{ops:?}");
        // ja +0; ld_imm64 r2 = fn (slots 1-2, callee at 1 + 2 + 1); exit (3); mov (4); exit
        assert!(
            matches!(
                ops[1],
                Op::LdImm64 {
                    pseudo: Pseudo::Func,
                    imm: 2,
                    ..
                }
            ),
            "{ops:?}"
        );
    }
}
