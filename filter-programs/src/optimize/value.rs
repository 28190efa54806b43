//! Global value numbering. Every value a program computes gets a number;
//! equal numbers mean equal values on every path where both are defined.
//!
//! This holds across blocks because the inputs never change during a run:
//! a packet load, `len` and constants are functions of the packet alone.
//! What is not (a merge of different values, the initial scratch memory,
//! an out-of-range load whose meaning is engine-specific) gets a fresh
//! opaque number that equals nothing else.

use std::collections::HashMap;

use foldhash::fast::FixedState;

use crate::cbpf::{AluOp, Size};

pub(super) type Vn = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Val {
    Const(u32),
    /// `P[k:size]`, `k < 2^31`.
    Abs {
        size: Size,
        k: u32,
    },
    /// `P[x + k:size]`.
    Ind {
        size: Size,
        k: u32,
        x: Vn,
    },
    /// `4 * (P[k] & 0xf)`, `k < 2^31`.
    Msh(u32),
    Len,
    Alu(AluOp, Vn, Vn),
    Neg(Vn),
    Opaque(u32),
}

/// Loads at or above this offset are not plain packet bytes: libpcap fails
/// them (or answers VLAN ancillary loads), the kernel reads metadata.
pub(super) const SPECIAL_OFF: u32 = 0x8000_0000;

/// The value table of one analysis. Interning is the optimizer's hottest
/// operation, so the map uses a fast fixed-seed hash rather than SipHash:
/// its keys are values the compiler made, never hostile input, and a
/// fixed seed keeps compilation deterministic.
#[derive(Default)]
pub(super) struct Values {
    vals: Vec<Val>,
    map: HashMap<Val, Vn, FixedState>,
    opaque: u32,
}

/// What is known about a value from its shape alone.
#[derive(Clone, Copy, Debug)]
pub(super) struct Known {
    pub lo: u32,
    pub hi: u32,
    /// Bits known to be zero.
    pub zero: u32,
}

impl Values {
    pub(super) fn intern(&mut self, v: Val) -> Vn {
        if let Some(&n) = self.map.get(&v) {
            return n;
        }
        let n = self.vals.len() as Vn;
        self.vals.push(v);
        self.map.insert(v, n);
        n
    }

    /// Forgets every value, keeping the allocations for the next analysis.
    pub(super) fn clear(&mut self) {
        self.vals.clear();
        self.map.clear();
        self.opaque = 0;
    }

    pub(super) fn konst(&mut self, c: u32) -> Vn {
        self.intern(Val::Const(c))
    }

    /// A number equal to no other. Opaque values are never looked up by
    /// their contents, so they skip the map.
    pub(super) fn fresh(&mut self) -> Vn {
        self.opaque += 1;
        let n = self.vals.len() as Vn;
        self.vals.push(Val::Opaque(self.opaque));
        n
    }

    pub(super) fn get(&self, n: Vn) -> Val {
        self.vals.get(n as usize).copied().unwrap_or(Val::Opaque(0))
    }

    pub(super) fn as_const(&self, n: Vn) -> Option<u32> {
        match self.get(n) {
            Val::Const(c) => Some(c),
            _ => None,
        }
    }

    /// `P[x + k:size]`; with a known `x` this is an absolute load, as long
    /// as the sum stays below 2^31 (where both engines agree it is one).
    pub(super) fn ind(&mut self, size: Size, k: u32, x: Vn) -> Vn {
        if let Some(c) = self.as_const(x) {
            let off = u64::from(c) + u64::from(k);
            if off < u64::from(SPECIAL_OFF) {
                return self.intern(Val::Abs {
                    size,
                    k: off as u32,
                });
            }
        }
        self.intern(Val::Ind { size, k, x })
    }

    pub(super) fn neg(&mut self, a: Vn) -> Vn {
        match self.as_const(a) {
            Some(c) => self.konst(c.wrapping_neg()),
            None => self.intern(Val::Neg(a)),
        }
    }

    /// `a op b`, folded where the result is the same in every engine.
    /// Constant shift counts must already be masked to 5 bits by the
    /// caller for `#k` forms; a count of 32 or more can only come from X,
    /// where libpcap gives 0 and the kernel masks, so it is left unfolded.
    pub(super) fn alu(&mut self, op: AluOp, a: Vn, b: Vn) -> Vn {
        use AluOp::*;
        let (ca, cb) = (self.as_const(a), self.as_const(b));
        if let (Some(x), Some(y)) = (ca, cb) {
            let v = match op {
                Add => Some(x.wrapping_add(y)),
                Sub => Some(x.wrapping_sub(y)),
                Mul => Some(x.wrapping_mul(y)),
                Div => x.checked_div(y),
                Mod => x.checked_rem(y),
                Or => Some(x | y),
                And => Some(x & y),
                Xor => Some(x ^ y),
                Lsh => (y < 32).then(|| x << y),
                Rsh => (y < 32).then(|| x >> y),
            };
            if let Some(v) = v {
                return self.konst(v);
            }
        }
        match (op, cb) {
            (Add | Sub | Or | Xor | Lsh | Rsh, Some(0)) | (Mul | Div, Some(1)) => return a,
            (And, Some(u32::MAX)) => return a,
            (Mul | And, Some(0)) | (Mod, Some(1)) => return self.konst(0),
            (Or, Some(u32::MAX)) => return self.konst(u32::MAX),
            _ => {}
        }
        match (op, ca) {
            (Add | Or | Xor, Some(0)) | (Mul, Some(1)) => return b,
            (And, Some(u32::MAX)) => return b,
            (Mul | And, Some(0)) => return self.konst(0),
            _ => {}
        }
        if (op == Sub || op == Xor) && a == b {
            return self.konst(0);
        }
        if (op == And || op == Or) && a == b {
            return a;
        }
        // Commutative operators in one canonical operand order.
        let (a, b) = match op {
            Add | Mul | And | Or | Xor if b < a => (b, a),
            _ => (a, b),
        };
        self.intern(Val::Alu(op, a, b))
    }

    /// Range and zero bits that follow from how the value was computed.
    pub(super) fn known(&self, n: Vn) -> Known {
        let all = Known {
            lo: 0,
            hi: u32::MAX,
            zero: 0,
        };
        let bits = |w: u32| Known {
            lo: 0,
            hi: w,
            zero: !w,
        };
        match self.get(n) {
            Val::Const(c) => Known {
                lo: c,
                hi: c,
                zero: !c,
            },
            Val::Abs { size, .. } | Val::Ind { size, .. } => match size {
                Size::B => bits(0xff),
                Size::H => bits(0xffff),
                Size::W => all,
            },
            Val::Msh(_) => Known {
                lo: 0,
                hi: 60,
                zero: !0x3c,
            },
            Val::Alu(AluOp::And, a, b) => {
                let (ka, kb) = (self.known_shallow(a), self.known_shallow(b));
                let zero = ka.zero | kb.zero;
                Known {
                    lo: 0,
                    hi: ka.hi.min(kb.hi).min(!zero),
                    zero,
                }
            }
            Val::Alu(AluOp::Rsh, a, b) => match self.as_const(b) {
                Some(c) if c < 32 => {
                    let ka = self.known_shallow(a);
                    Known {
                        lo: ka.lo >> c,
                        hi: ka.hi >> c,
                        zero: !(u32::MAX >> c) | (ka.zero >> c),
                    }
                }
                _ => all,
            },
            _ => all,
        }
    }

    /// `known` without recursing into operands (bounds the work).
    fn known_shallow(&self, n: Vn) -> Known {
        match self.get(n) {
            Val::Alu(..) => Known {
                lo: 0,
                hi: u32::MAX,
                zero: 0,
            },
            _ => self.known(n),
        }
    }
}
