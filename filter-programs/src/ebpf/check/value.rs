//! What the analysis knows about one register: its kind (number, or which
//! pointer), and for numbers an unsigned range.

use crate::ebpf::insn::AluOp;

/// Packet offsets the kernel will prove a range for (`MAX_PACKET_OFF`).
pub(super) const MAX_PACKET_OFF: u64 = 0xffff;
/// Largest constant or variable part the kernel lets a pointer carry
/// (`BPF_MAX_VAR_OFF`).
pub(super) const MAX_VAR_OFF: i64 = 1 << 29;

/// An unsigned 64-bit range, `min <= max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Range {
    pub min: u64,
    pub max: u64,
}

impl Range {
    pub const FULL: Range = Range {
        min: 0,
        max: u64::MAX,
    };
    pub const U32: Range = Range {
        min: 0,
        max: u32::MAX as u64,
    };

    pub fn konst(v: u64) -> Range {
        Range { min: v, max: v }
    }
    pub fn upto(max: u64) -> Range {
        Range { min: 0, max }
    }
    /// A zero-extended load or result of `bytes` bytes.
    pub fn bytes(bytes: usize) -> Range {
        if bytes >= 8 {
            Range::FULL
        } else {
            Range::upto((1u64 << (bytes * 8)) - 1)
        }
    }
    pub fn as_const(self) -> Option<u64> {
        (self.min == self.max).then_some(self.min)
    }
    pub fn hull(self, o: Range) -> Range {
        Range {
            min: self.min.min(o.min),
            max: self.max.max(o.max),
        }
    }
    /// The low 32 bits, as a 32-bit operation sees them.
    fn low32(self) -> Range {
        if self.max <= u32::MAX as u64 {
            self
        } else {
            Range::U32
        }
    }
}

/// The kind and value of a register (or spilled stack slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Val {
    /// Not written on some path.
    Uninit,
    /// Different kinds on different paths: usable only by copying it.
    Mixed,
    Scalar(Range),
    /// The context plus a constant.
    Ctx {
        off: i32,
    },
    /// The frame pointer plus a constant.
    Stack {
        off: i32,
    },
    /// `ctx->data` plus a variable part (identified by `id`, at most
    /// `var`) plus `off`; `range` bytes from the variable part on are
    /// proven to lie before `data_end`.
    Pkt {
        id: u32,
        off: i32,
        var: u64,
        range: u32,
    },
    PktEnd,
    PktMeta,
    /// A kernel object a tracepoint was handed (its socket buffer): the
    /// kernel checks each load through it against the object's BTF type.
    Kernel,
}

impl Val {
    pub fn what(&self) -> &'static str {
        match self {
            Val::Uninit => "nothing (it is not written on every path)",
            Val::Mixed => "different kinds of value on different paths",
            Val::Scalar(_) => "a number",
            Val::Ctx { .. } => "the context pointer",
            Val::Stack { .. } => "a stack pointer",
            Val::Pkt { .. } => "a packet pointer",
            Val::PktEnd => "the packet end pointer",
            Val::PktMeta => "the packet metadata pointer",
            Val::Kernel => "a kernel object's pointer",
        }
    }
    pub fn is_pointer(&self) -> bool {
        !matches!(self, Val::Scalar(_) | Val::Uninit | Val::Mixed)
    }

    /// What holds on both paths.
    pub fn join(self, o: Val) -> Val {
        match (self, o) {
            _ if self == o => self,
            (Val::Uninit, _) | (_, Val::Uninit) => Val::Uninit,
            (Val::Scalar(a), Val::Scalar(b)) => Val::Scalar(a.hull(b)),
            (
                Val::Pkt {
                    id,
                    off,
                    var,
                    range,
                },
                Val::Pkt {
                    id: i2,
                    off: o2,
                    var: v2,
                    range: r2,
                },
            ) if id == i2 && off == o2 => Val::Pkt {
                id,
                off,
                var: var.max(v2),
                range: range.min(r2),
            },
            _ => Val::Mixed,
        }
    }

    /// `join`, but a number range that grew jumps to its widest, so that
    /// loops settle.
    pub fn widen(self, o: Val) -> Val {
        match (self, self.join(o)) {
            (Val::Scalar(old), Val::Scalar(new)) if new != old => {
                let min = if new.min < old.min { 0 } else { new.min };
                let max = match new.max {
                    m if m <= old.max => m,
                    m if m <= u32::MAX as u64 => u32::MAX as u64,
                    _ => u64::MAX,
                };
                Val::Scalar(Range { min, max })
            }
            (
                Val::Pkt { var: old, .. },
                Val::Pkt {
                    id,
                    off,
                    var,
                    range,
                },
            ) if var > old => Val::Pkt {
                id,
                off,
                var: u64::MAX,
                range,
            },
            (_, j) => j,
        }
    }
}

fn bitmask_above(v: u64) -> u64 {
    if v == 0 {
        0
    } else {
        u64::MAX >> v.leading_zeros()
    }
}

/// The range of `a op b` on numbers, in 64 or 32 bits.
pub(super) fn alu(op: AluOp, wide: bool, a: Range, b: Range) -> Range {
    let full = if wide { Range::FULL } else { Range::U32 };
    let (a, b) = if wide { (a, b) } else { (a.low32(), b.low32()) };
    let fit = |r: Option<Range>| match r {
        Some(r) if r.min <= r.max && r.max <= full.max => r,
        _ => full,
    };
    match op {
        AluOp::Mov => b,
        AluOp::Add => fit(a
            .min
            .checked_add(b.min)
            .zip(a.max.checked_add(b.max))
            .map(|(min, max)| Range { min, max })),
        AluOp::Sub if a.min >= b.max => fit(Some(Range {
            min: a.min - b.max,
            max: a.max - b.min,
        })),
        AluOp::Mul => fit(a
            .min
            .checked_mul(b.min)
            .zip(a.max.checked_mul(b.max))
            .map(|(min, max)| Range { min, max })),
        // The kernel does not track division or modulo: knowing more than
        // it does here could skip a branch it walks.
        AluOp::And => match (a.as_const(), b.as_const()) {
            (Some(x), Some(y)) => Range::konst(x & y),
            _ => Range::upto(a.max.min(b.max)),
        },
        AluOp::Or | AluOp::Xor => match (a.as_const(), b.as_const()) {
            (Some(x), Some(y)) => Range::konst(if op == AluOp::Or { x | y } else { x ^ y }),
            _ => Range {
                min: if op == AluOp::Or { a.min.max(b.min) } else { 0 },
                max: bitmask_above(a.max.max(b.max)),
            },
        },
        AluOp::Lsh => match b.as_const() {
            Some(k) if k < 64 && a.max.leading_zeros() as u64 >= k => fit(Some(Range {
                min: a.min << k,
                max: a.max << k,
            })),
            _ => full,
        },
        AluOp::Rsh | AluOp::Arsh => {
            let sign_clear = if wide {
                a.max <= i64::MAX as u64
            } else {
                a.max <= i32::MAX as u64
            };
            match b.as_const() {
                Some(k) if k < 64 && (op == AluOp::Rsh || sign_clear) => Range {
                    min: a.min >> k,
                    max: a.max >> k,
                },
                _ if op == AluOp::Rsh => Range::upto(a.max),
                _ => full,
            }
        }
        _ => full,
    }
}

/// The range after a byte swap or conversion of `bits` bits: the result
/// is zero-extended from its width.
pub(super) fn end(bits: u8) -> Range {
    Range::bytes(bits as usize / 8)
}
