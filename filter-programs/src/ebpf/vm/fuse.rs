//! Superinstructions: the sequences translated filters are made of, each
//! run by one micro-op instead of two or three.
//!
//! One dispatch of the interpreter loop costs more than most ops it runs
//! (an indirect jump that the branch predictor often misses), so a filter
//! runs about as fast as it dispatches. The translator's output repeats a
//! few shapes: the bounds check before direct packet access, a load and
//! its byte swap, a load and the compare that tests it, `r0 = k; exit`, and
//! the prologue's pairs of moves and of context loads, two compares of
//! one register in a row, and the offset and address of a load past the
//! IPv4 header (`ldx [x + k]` translated).
//!
//! A fused op sits in the first slot of its sequence and does what the
//! slots would do in turn: the same register writes, the same error at the
//! same slot, the same jump. The other slots keep their own ops, so a jump
//! into the middle of a sequence still runs the rest of it; no jump target
//! has to be known here.

use super::micro::{Load, Micro};
use crate::ebpf::insn::AluOp;

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
            Micro::Mov32X { dst, src } => indirect(dst, src, &next),
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
            Micro::LdxB { dst, src, off } => range(Load::B, dst, src, off, pc, &next)
                .or_else(|| load_jump(Load::B, dst, src, off, &next))
                .or_else(|| header_length(dst, src, off, next(1), next(2))),
            Micro::LdxHBe { dst, src, off } => range(Load::HBe, dst, src, off, pc, &next)
                .or_else(|| load_jump(Load::HBe, dst, src, off, &next)),
            Micro::LdxWBe { dst, src, off } => range(Load::WBe, dst, src, off, pc, &next)
                .or_else(|| load_jump(Load::WBe, dst, src, off, &next)),
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

/// A load into `dst` at slot `pc`, then a range test of `dst` in one of
/// the translator's two forms:
/// `if v < lo goto +1; if v <= hi goto in` (out: the slot after), or
/// `if v < lo goto out; if v > hi goto out` (in: the slot after).
fn range(
    load: Load,
    dst: u8,
    src: u8,
    off: i16,
    pc: usize,
    next: &impl Fn(usize) -> Micro,
) -> Option<Micro> {
    use super::micro::Cmp;
    let at = load.slots();
    let after = (pc + at + 2) as u32;
    let (
        Micro::Jmp32K {
            cmp: Cmp::Lt,
            dst: d1,
            k: lo,
            target: t1,
        },
        Micro::Jmp32K {
            cmp,
            dst: d2,
            k: hi,
            target: t2,
        },
    ) = (next(at), next(at + 1))
    else {
        return None;
    };
    if d1 != dst || d2 != dst {
        return None;
    }
    let (inside, outside) = match cmp {
        Cmp::Le if t1 == after => (t2, after),
        Cmp::Gt if t1 == t2 => (after, t1),
        _ => return None,
    };
    Some(Micro::LdRange {
        load,
        dst,
        src,
        off,
        lo,
        hi,
        inside,
        outside,
    })
}

/// `dst = *(u8 *)(src + off); w(dst) &= mask; w(dst) <<= shift`, the
/// shift under 32. (The byte has no bits above 8, so a 64-bit `and` with a
/// 32-bit mask masks it as `and32` would.)
fn header_length(dst: u8, src: u8, off: i16, and: Micro, shift: Micro) -> Option<Micro> {
    match (and, shift) {
        (
            Micro::AndK { dst: a, k: mask },
            Micro::AluK {
                op: AluOp::Lsh,
                wide: false,
                dst: s,
                k,
            },
        ) if a == dst && s == dst && k < 32 => Some(Micro::LdMsh {
            dst,
            src,
            shift: k as u8,
            off,
            mask: u32::try_from(mask).ok()?,
        }),
        _ => None,
    }
}

/// `d = (u32)s; d += k; if d > limit goto t; p = base; p += d`, with `p`
/// neither `d` nor `base` (so the sum reads them as the slots would), `k`
/// and `limit` small (as the translator's are: header offsets, 0xfffd);
/// with the bounds check of a load at `p` after it, when one follows.
fn indirect(d: u8, s: u8, next: &impl Fn(usize) -> Micro) -> Option<Micro> {
    let (k, limit, target, p, base) = match (next(1), next(2), next(3), next(4)) {
        (
            Micro::AddK { dst: a, k },
            Micro::JgtK {
                dst: j,
                k: limit,
                target,
            },
            Micro::MovX { dst: p, src: base },
            Micro::AddX { dst: p2, src: d2 },
        ) if a == d && j == d && p2 == p && d2 == d && p != d && p != base => {
            (k, limit, target, p, base)
        }
        _ => return None,
    };
    // The bounds check of the load at `p`: `q = p; q += k2; if q > end`.
    if let (
        Micro::MovX { dst: q, src: p2 },
        Micro::AddK { dst: q2, k: k2 },
        Micro::JgtX {
            dst: q3,
            src: end,
            target: target2,
        },
    ) = (next(5), next(6), next(7))
    {
        if p2 == p && q2 == q && q3 == q {
            if let (Ok(k), Ok(limit), Ok(k2)) =
                (u16::try_from(k), u16::try_from(limit), u8::try_from(k2))
            {
                return Some(Micro::IndCheck {
                    d,
                    s,
                    p,
                    base,
                    q,
                    end,
                    k2,
                    k,
                    limit,
                    target,
                    target2,
                });
            }
        }
    }
    Some(Micro::IndAddr {
        d,
        s,
        p,
        base,
        k: u32::try_from(k).ok()?,
        limit: u32::try_from(limit).ok()?,
        target,
    })
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
