//! The kernel's rules for a classic program attached with
//! `SO_ATTACH_FILTER`, in the order Linux 6.x applies them:
//! `bpf_check_basics_ok`, the per-instruction loop of `bpf_check_classic`,
//! the final-return check, `check_load_and_stores`, and the one failure
//! `bpf_convert_filter` can still raise on a checked program (a `ja` whose
//! translation does not fit a 16-bit eBPF offset).

use super::{Branch, Rule, ValidateError};
use crate::cbpf::skf::{Ancillary, SKF_AD_OFF};
use crate::cbpf::{AluOp, Insn, JmpOp, Op, RetVal, Size, Src, MAXINSNS, MEMWORDS};

pub(super) fn validate(prog: &[Insn]) -> Result<(), ValidateError> {
    if prog.is_empty() {
        return Err(Rule::EmptyProgram.at(0));
    }
    if prog.len() > MAXINSNS {
        return Err(Rule::TooLong { len: prog.len() }.at(prog.len()));
    }
    for (pc, insn) in prog.iter().enumerate() {
        check_insn(pc, insn, prog.len()).map_err(|rule| rule.at(pc))?;
    }
    let last = prog.len() - 1;
    if !matches!(
        prog[last].decode(),
        Ok(Op::Ret {
            val: RetVal::K(_) | RetVal::A
        })
    ) {
        return Err(Rule::NoFinalReturn {
            code: prog[last].code,
        }
        .at(last));
    }
    check_scratch_reads(prog)?;
    check_converted_jumps(prog)
}

fn check_insn(pc: usize, insn: &Insn, len: usize) -> Result<(), Rule> {
    let op = insn
        .decode()
        .map_err(|e| Rule::UnknownOpcode { code: e.code })?;
    let in_range = |branch, off: u64| {
        let target = pc as u64 + 1 + off;
        if target >= len as u64 {
            Err(Rule::JumpOutOfRange {
                branch,
                target,
                len,
            })
        } else {
            Ok(())
        }
    };
    match op {
        Op::Ret { val: RetVal::X } => Err(Rule::RetXUnsupported),
        Op::Alu {
            op: AluOp::Div | AluOp::Mod,
            src: Src::K(0),
        } => Err(Rule::DivideByZero),
        Op::Alu {
            op: AluOp::Lsh | AluOp::Rsh,
            src: Src::K(k),
        } if k >= 32 => Err(Rule::ShiftTooLarge { k }),
        Op::LdMem { k } | Op::LdxMem { k } | Op::St { k } | Op::Stx { k } if k >= MEMWORDS => {
            Err(Rule::ScratchIndex { k })
        }
        Op::Ja { k } => in_range(Branch::Always, u64::from(k)),
        Op::Jmp { jt, jf, .. } => {
            in_range(Branch::True, u64::from(jt))?;
            in_range(Branch::False, u64::from(jf))
        }
        // The comparison is unsigned: every offset from SKF_AD_OFF up to
        // 0xffffffff is the ancillary area, while SKF_NET_OFF and
        // SKF_LL_OFF loads (below it) pass and are resolved per packet.
        Op::LdAbs { k, .. } if k >= SKF_AD_OFF as u32 && Ancillary::from_k(k).is_none() => {
            Err(Rule::UnknownAncillary { k })
        }
        _ => Ok(()),
    }
}

/// The kernel does not clear scratch memory per packet, so it refuses any
/// read that some path reaches before a write. Its analysis is a single
/// forward pass (jumps only go forward): each jump narrows the set of
/// written cells at its targets, and the instruction after a jump starts
/// from "everything written" narrowed by what the jumps into it carried.
/// The instruction after a `ret` is not reset, so it inherits the cells
/// written before the `ret`, exactly as the kernel computes it.
fn check_scratch_reads(prog: &[Insn]) -> Result<(), ValidateError> {
    let mut at_target = vec![u16::MAX; prog.len()];
    let mut written = 0u16;
    for (pc, insn) in prog.iter().enumerate() {
        written &= at_target[pc];
        // Every index and target was checked above, so the shifts and
        // indexing below are in range.
        match insn.decode() {
            Ok(Op::St { k } | Op::Stx { k }) => written |= 1 << k,
            Ok(Op::LdMem { k } | Op::LdxMem { k }) if written & (1 << k) == 0 => {
                return Err(Rule::LoadOfUninitializedScratch { k }.at(pc));
            }
            Ok(Op::Ja { k }) => {
                at_target[pc + 1 + k as usize] &= written;
                written = u16::MAX;
            }
            Ok(Op::Jmp { jt, jf, .. }) => {
                at_target[pc + 1 + jt as usize] &= written;
                at_target[pc + 1 + jf as usize] &= written;
                written = u16::MAX;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Longest forward offset an eBPF jump can hold.
const EBPF_MAX_OFFSET: u64 = i16::MAX as u64;

/// The kernel runs a classic filter by translating it to eBPF
/// (`bpf_convert_filter`). Each classic instruction becomes one or more
/// eBPF instructions; conditional jumps span at most 255 classic
/// instructions and always fit, but a `ja` over thousands of packet loads
/// can need an offset beyond `i16::MAX`, and then the attach fails.
fn check_converted_jumps(prog: &[Insn]) -> Result<(), ValidateError> {
    // prefix[i] = eBPF instructions emitted for prog[..i].
    let mut prefix = Vec::with_capacity(prog.len() + 1);
    prefix.push(0u64);
    for insn in prog {
        let last = prefix.last().copied().unwrap_or(0);
        prefix.push(last + ebpf_len(insn));
    }
    for (pc, insn) in prog.iter().enumerate() {
        if let Ok(Op::Ja { k }) = insn.decode() {
            let target = pc + 1 + k as usize;
            // The offset counts from the instruction after the `ja`
            // itself, which translates to exactly one instruction.
            let ebpf_offset = prefix[target] - prefix[pc] - 1;
            if ebpf_offset > EBPF_MAX_OFFSET {
                return Err(Rule::JumpTooFarAfterConversion { ebpf_offset }.at(pc));
            }
        }
    }
    Ok(())
}

/// How many eBPF instructions the kernel emits for one checked classic
/// instruction on x86-64 (efficient unaligned access, `NET_IP_ALIGN` 0).
fn ebpf_len(insn: &Insn) -> u64 {
    let Ok(op) = insn.decode() else { return 1 };
    match op {
        Op::LdAbs { size, k } => match Ancillary::from_k(k) {
            Some(anc) => ancillary_len(anc),
            None => packet_load_len(size, k),
        },
        // Three argument moves, X into the fourth, `+ k` when k is not 0,
        // the helper call, and the "load failed: return 0" tail of three.
        Op::LdInd { k, .. } => 8 + u64::from(k != 0),
        // X = A, a byte load, then and, shift and a three-move swap.
        Op::LdxMsh { k } => 1 + packet_load_len(Size::B, k) + 5,
        // Division by X first checks X and returns 0 when it is zero.
        Op::Alu {
            op: AluOp::Div | AluOp::Mod,
            src: Src::X,
        } => 5,
        Op::Jmp { op, src, jt, jf } => {
            // A negative 32-bit constant is moved to a register first,
            // because eBPF immediates are sign-extended.
            let widen = u64::from(matches!(src, Src::K(k) if (k as i32) < 0));
            let inverted = jt == 0 && op != JmpOp::Jset;
            widen + if jf == 0 || inverted { 1 } else { 2 }
        }
        Op::Ret { val: RetVal::K(_) } => 2,
        _ => 1,
    }
}

/// `ld [k]` of packet data: a fast path for non-negative offsets (bounds
/// check, direct load, byte swap for h and w, skip the slow path) and
/// always the helper call with its failure tail.
fn packet_load_len(size: Size, k: u32) -> u64 {
    let slow = 4 + 1 + 3;
    if (k as i32) < 0 {
        return slow;
    }
    let sub = u64::from(k != 0);
    let load = if k <= i16::MAX as u32 { 1 } else { 3 };
    let swap = u64::from(size != Size::B);
    1 + sub + 1 + load + swap + 1 + slow
}

fn ancillary_len(anc: Ancillary) -> u64 {
    match anc {
        Ancillary::Protocol | Ancillary::VlanTpid => 2,
        Ancillary::PktType => 2,
        Ancillary::IfIndex | Ancillary::HaType => 4,
        Ancillary::VlanTagPresent => 3,
        Ancillary::PayOffset
        | Ancillary::NlAttr
        | Ancillary::NlAttrNest
        | Ancillary::Cpu
        | Ancillary::Random => 4,
        Ancillary::Mark
        | Ancillary::RxHash
        | Ancillary::Queue
        | Ancillary::VlanTag
        | Ancillary::AluXorX => 1,
    }
}
