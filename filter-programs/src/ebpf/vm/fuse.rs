//! Superinstructions: the sequences translated filters are made of, each
//! run by one micro-op instead of two or three.
//!
//! One dispatch of the interpreter loop costs more than most ops it runs
//! (an indirect jump that the branch predictor often misses), so a filter
//! runs about as fast as it dispatches. The translator's output repeats a
//! few shapes: the bounds check before direct packet access, a load and
//! its byte swap, a load and the compare that tests it, `r0 = k; exit`, and
//! the prologue's pairs of moves and of context loads, and two compares of
//! one register in a row.
//!
//! A fused op sits in the first slot of its sequence and does what the
//! slots would do in turn: the same register writes, the same error at the
//! same slot, the same jump. The other slots keep their own ops, so a jump
//! into the middle of a sequence still runs the rest of it; no jump target
//! has to be known here.

use super::micro::{Load, Micro};

/// Fuses every sequence in `code` (which ends with its sentinel).
pub(super) fn fuse(code: &mut [Micro]) {
    // Byte swaps first, so that a compare after a swapped load sees the
    // fused load.
    for pc in 0..code.len().saturating_sub(1) {
        if let Some(op) = swap(code[pc], code[pc + 1]) {
            code[pc] = op;
        }
    }
    for pc in 0..code.len() {
        let next = |n: usize| code.get(pc + n).copied().unwrap_or(Micro::FellOff);
        let fused = match code[pc] {
            Micro::MovX { dst, src: base } => check(dst, base, next(1), next(2)),
            Micro::MovK { dst: 0, k } if matches!(next(1), Micro::Exit) => Some(Micro::RetK { k }),
            Micro::MovK { dst, k } => moves(dst, k, next(1)),
            Micro::LdxW { dst, src, off } => loads(dst, src, off, next(1)),
            Micro::Jmp32K {
                cmp,
                dst,
                k,
                target,
            } => match next(1) {
                Micro::Jmp32K {
                    cmp: cmp2,
                    dst: d,
                    k: k2,
                    target: target2,
                } if d == dst => Some(Micro::JmpPair {
                    dst,
                    cmp,
                    cmp2,
                    k,
                    target,
                    k2,
                    target2,
                }),
                _ => None,
            },
            Micro::LdxB { dst, src, off } => load_jump(Load::B, dst, src, off, &next),
            Micro::LdxHBe { dst, src, off } => load_jump(Load::HBe, dst, src, off, &next),
            Micro::LdxWBe { dst, src, off } => load_jump(Load::WBe, dst, src, off, &next),
            _ => None,
        };
        if let Some(op) = fused {
            code[pc] = op;
        }
    }
    // A move before a pair of constant moves: the prologue's three.
    for pc in 0..code.len().saturating_sub(1) {
        if let (Micro::MovX { dst: d, src: s }, Micro::MovKK { dst, dst2, k, k2 }) =
            (code[pc], code[pc + 1])
        {
            code[pc] = Micro::MovXKK {
                d,
                s,
                dst,
                dst2,
                k,
                k2,
            };
        }
    }
}

/// `ldxh d; be16 d` or `ldxw d; be32 d`.
fn swap(load: Micro, swap: Micro) -> Option<Micro> {
    match (load, swap) {
        (Micro::LdxH { dst, src, off }, Micro::Be16 { dst: d }) if d == dst => {
            Some(Micro::LdxHBe { dst, src, off })
        }
        (Micro::LdxW { dst, src, off }, Micro::Be32 { dst: d }) if d == dst => {
            Some(Micro::LdxWBe { dst, src, off })
        }
        _ => None,
    }
}

/// `d = base; d += k; if d > end goto t`.
fn check(dst: u8, base: u8, add: Micro, jump: Micro) -> Option<Micro> {
    match (add, jump) {
        (
            Micro::AddK { dst: a, k },
            Micro::JgtX {
                dst: j,
                src: end,
                target,
            },
        ) if a == dst && j == dst => Some(Micro::Check {
            dst,
            base,
            end,
            k,
            target,
        }),
        _ => None,
    }
}

/// `dst = k; dst2 = k2`, both constants 32-bit.
fn moves(dst: u8, k: u64, second: Micro) -> Option<Micro> {
    match second {
        Micro::MovK { dst: dst2, k: k2 } => Some(Micro::MovKK {
            dst,
            dst2,
            k: u32::try_from(k).ok()?,
            k2: u32::try_from(k2).ok()?,
        }),
        _ => None,
    }
}

/// `dst = *(u32 *)(src + off); dst2 = *(u32 *)(src + off2)`, `dst` not `src`.
fn loads(dst: u8, src: u8, off: i16, second: Micro) -> Option<Micro> {
    match second {
        Micro::LdxW {
            dst: dst2,
            src: s,
            off: off2,
        } if s == src && dst != src => Some(Micro::LdxWW {
            dst,
            dst2,
            src,
            off,
            off2,
        }),
        _ => None,
    }
}

/// A load into `dst`, maybe `dst &= mask`, then a 32-bit compare of `dst`.
/// (The loaded value has no bits above 32, so a 64-bit `and` masks it as
/// its low 32 bits would.)
fn load_jump(
    load: Load,
    dst: u8,
    src: u8,
    off: i16,
    next: &impl Fn(usize) -> Micro,
) -> Option<Micro> {
    let after = load.slots();
    let (mask, jump, slots) = match next(after) {
        Micro::AndK { dst: d, k } if d == dst => (k as u32, next(after + 1), after + 2),
        jump => (u32::MAX, jump, after + 1),
    };
    match jump {
        Micro::Jmp32K {
            cmp,
            dst: d,
            k,
            target,
        } if d == dst => Some(Micro::LdJmp {
            load,
            cmp,
            dst,
            src,
            slots: slots as u8,
            off,
            mask,
            k,
            target,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
