//! The program's functions, as the budget sees them (see `Env::budget`).
//!
//! A function starts at slot 0 or at a slot some BPF-to-BPF call names,
//! and runs to the next start or the program's end. The VM does not ask a
//! run to stay inside one (the kernel's verifier would): a jump or a
//! fall-through into another function is allowed, and pays for what it
//! enters. So all a run needs is, for each slot, how many slots remain
//! from it to the end of its function, looked up when a call, a crossing
//! or a tail call is paid for: one load, never a scan.

use crate::ebpf::insn::{CallTarget, Op, Pseudo};

/// For each slot, the slots from it to the end of its function (at a
/// function's first slot: the function's length), then a 0 for the
/// sentinel past the end. `slots` are decoded ops (`None`: the tail of an
/// `LD_IMM64`).
pub(super) fn rest(slots: &[Option<Op>]) -> Vec<u32> {
    let mut start = vec![false; slots.len() + 1];
    start[0] = true;
    for (pc, slot) in slots.iter().enumerate() {
        let rel = match slot {
            Some(Op::Call(CallTarget::Local(rel))) => *rel,
            // A callback's reference counts from its first slot plus one,
            // as a call counts from the slot after it.
            Some(Op::LdImm64 {
                pseudo: Pseudo::Func,
                imm,
                ..
            }) => *imm as u32 as i32,
            _ => continue,
        };
        if let Some(t) = call_target(slots, pc, rel) {
            start[t] = true;
        }
    }
    let mut rest = vec![0u32; slots.len() + 1];
    for pc in (0..slots.len()).rev() {
        let after = if start[pc + 1] { 0 } else { rest[pc + 1] };
        rest[pc] = after.saturating_add(1);
    }
    rest
}

/// Where a call at `pc` lands, if that is an op's first slot: the run's
/// own check (`BadJump` otherwise) accepts exactly these.
fn call_target(slots: &[Option<Op>], pc: usize, rel: i32) -> Option<usize> {
    let t = usize::try_from(pc as i64 + 1 + rel as i64).ok()?;
    matches!(slots.get(t), Some(Some(_))).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::insn::{AluOp, Operand, Reg};

    fn mov() -> Option<Op> {
        Some(Op::Alu {
            wide: true,
            op: AluOp::Mov,
            dst: Reg::R0,
            src: Operand::Imm(0),
        })
    }

    fn call(rel: i32) -> Option<Op> {
        Some(Op::Call(CallTarget::Local(rel)))
    }

    #[test]
    fn one_function_runs_to_the_end() {
        assert_eq!(rest(&[mov(), mov(), Some(Op::Exit)]), [3, 2, 1, 0]);
        assert_eq!(rest(&[]), [0]);
    }

    #[test]
    fn call_targets_start_functions() {
        // 0: call 3; 1: exit; 2: mov; 3: mov (called); 4: exit
        let slots = [call(2), Some(Op::Exit), mov(), mov(), Some(Op::Exit)];
        assert_eq!(rest(&slots), [3, 2, 1, 2, 1, 0]);
    }

    #[test]
    fn bad_call_targets_start_nothing() {
        let imm64 = Some(Op::LdImm64 {
            dst: Reg::R1,
            pseudo: Pseudo::None,
            src_reg: 0,
            imm: 0,
        });
        // Calls to an ld_imm64's tail, past the end and before the start.
        let slots = [call(3), call(5), call(-9), imm64, None, Some(Op::Exit)];
        assert_eq!(rest(&slots), [6, 5, 4, 3, 2, 1, 0]);
    }
}
