//! libpcap 1.10's `bpf_validate`. It looks only at the class, mode and op
//! fields of each code, so it accepts codes its own interpreter does not
//! implement (`ldx [k]`, `ret x`, stray size or high bits), and it has no
//! length limit. Those are its rules, and this module keeps them.

use super::{Branch, Rule, ValidateError};
use crate::cbpf::{code::*, Insn, MEMWORDS};

pub(super) fn validate(prog: &[Insn]) -> Result<(), ValidateError> {
    if prog.is_empty() {
        return Err(Rule::EmptyProgram.at(0));
    }
    // The C function takes the length as an `int`.
    if prog.len() > i32::MAX as usize {
        return Err(Rule::TooLong { len: prog.len() }.at(prog.len()));
    }
    for (pc, insn) in prog.iter().enumerate() {
        check_insn(pc, insn, prog.len()).map_err(|rule| rule.at(pc))?;
    }
    let last = prog.len() - 1;
    if prog[last].code & CLASS_MASK != RET {
        return Err(Rule::NoFinalReturn {
            code: prog[last].code,
        }
        .at(last));
    }
    Ok(())
}

fn check_insn(pc: usize, insn: &Insn, len: usize) -> Result<(), Rule> {
    let c = insn.code;
    let unknown = Err(Rule::UnknownOpcode { code: c });
    let scratch = |k: u32| {
        if k >= MEMWORDS {
            Err(Rule::ScratchIndex { k })
        } else {
            Ok(())
        }
    };
    match c & CLASS_MASK {
        LD | LDX => match c & MODE_MASK {
            IMM | ABS | IND | MSH | LEN => Ok(()),
            MEM => scratch(insn.k),
            _ => unknown,
        },
        ST | STX => scratch(insn.k),
        ALU => match c & OP_MASK {
            ADD | SUB | MUL | OR | AND | XOR | LSH | RSH | NEG => Ok(()),
            DIV | MOD if c & SRC_MASK == K && insn.k == 0 => Err(Rule::DivideByZero),
            DIV | MOD => Ok(()),
            _ => unknown,
        },
        JMP => {
            // libpcap adds in 32-bit unsigned arithmetic, so a huge `ja`
            // offset wraps around to a small target and passes.
            let from = (pc as u32).wrapping_add(1);
            let check = |branch, off: u32| {
                let target = from.wrapping_add(off);
                if target as usize >= len {
                    Err(Rule::JumpOutOfRange {
                        branch,
                        target: u64::from(target),
                        len,
                    })
                } else {
                    Ok(())
                }
            };
            match c & OP_MASK {
                JA => check(Branch::Always, insn.k),
                JEQ | JGT | JGE | JSET => {
                    check(Branch::True, u32::from(insn.jt))?;
                    check(Branch::False, u32::from(insn.jf))
                }
                _ => unknown,
            }
        }
        // RET and MISC: any code of the class passes.
        _ => Ok(()),
    }
}
