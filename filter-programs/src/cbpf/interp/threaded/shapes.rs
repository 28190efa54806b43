//! The pieces a compiled node is assembled from: what it loads (`Load`)
//! and what it tests (`Test`), plus `cond_at`, which recognises libpcap's
//! branch idioms (`jeq` chains, `jge`/`jgt` ranges) in the decoded ops.
//!
//! Every piece is a small `Copy` type resolved at compile time, so a node
//! is one straight-line function with its constants inline.

use super::super::decode::Ins;
use super::super::exec::{be, Env, Libpcap};

/// What a load-and-branch op computes: the new A and X, or `None` when a
/// load falls past the capture (the packet is rejected).
pub(super) trait Load: Copy + Send + Sync + 'static {
    /// The load that libpcap emits for the second half of an `or` of two
    /// such loads (`src or dst`): the same kind at another offset. For the
    /// msh idiom that is a plain indexed load, since X is already set.
    type Next: Load;
    /// The `Next` load starting at op `j` (with its `and #k`, for a masked
    /// load), and the index of the op after it.
    fn next_at(plain: &[Ins], j: usize) -> Option<(Self::Next, usize)>;
    fn get(self, pkt: &[u8], a: u32, x: u32) -> Option<(u32, u32)>;
}

/// `k` of an absolute packet load of width `N` at `j`.
fn abs_k<const N: usize>(plain: &[Ins], j: usize) -> Option<u32> {
    match (N, plain.get(j)?) {
        (4, &Ins::LdAbsW(k)) | (2, &Ins::LdAbsH(k)) | (1, &Ins::LdAbsB(k)) => Some(k),
        _ => None,
    }
}

/// `k` of an indexed packet load of width `N` at `j`.
fn ind_k<const N: usize>(plain: &[Ins], j: usize) -> Option<u32> {
    match (N, plain.get(j)?) {
        (4, &Ins::LdIndW(k)) | (2, &Ins::LdIndH(k)) | (1, &Ins::LdIndB(k)) => Some(k),
        _ => None,
    }
}

/// `A = P[k:N]`, `k < 2^31`.
#[derive(Clone, Copy)]
pub(super) struct Abs<const N: usize>(pub u32);
impl<const N: usize> Load for Abs<N> {
    type Next = Abs<N>;
    fn next_at(plain: &[Ins], j: usize) -> Option<(Self, usize)> {
        Some((Abs(abs_k::<N>(plain, j)?), j + 1))
    }
    #[inline(always)]
    fn get(self, pkt: &[u8], _: u32, x: u32) -> Option<(u32, u32)> {
        Some((be::<N>(pkt, self.0 as usize)?, x))
    }
}

/// `A = P[X + k:N]`, without wrap-around (as `Libpcap::ind`).
#[derive(Clone, Copy)]
pub(super) struct Ind<const N: usize>(pub u32);
impl<const N: usize> Load for Ind<N> {
    type Next = Ind<N>;
    fn next_at(plain: &[Ins], j: usize) -> Option<(Self, usize)> {
        Some((Ind(ind_k::<N>(plain, j)?), j + 1))
    }
    #[inline(always)]
    fn get(self, pkt: &[u8], _: u32, x: u32) -> Option<(u32, u32)> {
        Some((Libpcap { pkt, wirelen: 0 }.ind::<N>(x, self.0)?, x))
    }
}

/// `X = 4 * (P[m] & 0xf); A = P[X + k:N]`: libpcap's transport-header
/// idiom.
#[derive(Clone, Copy)]
pub(super) struct MshInd<const N: usize> {
    pub m: u32,
    pub k: u32,
}
impl<const N: usize> Load for MshInd<N> {
    type Next = Ind<N>;
    fn next_at(plain: &[Ins], j: usize) -> Option<(Ind<N>, usize)> {
        Ind::<N>::next_at(plain, j)
    }
    #[inline(always)]
    fn get(self, pkt: &[u8], a: u32, _: u32) -> Option<(u32, u32)> {
        let x = Libpcap { pkt, wirelen: 0 }.msh(self.m)?;
        Ind::<N>(self.k).get(pkt, a, x)
    }
}

/// A itself: a plain conditional jump.
#[derive(Clone, Copy)]
pub(super) struct Acc;
impl Load for Acc {
    type Next = Acc;
    /// Two tests of the same A are a `jeq` chain, which `cond_at` folds.
    fn next_at(_: &[Ins], _: usize) -> Option<(Self, usize)> {
        None
    }
    #[inline(always)]
    fn get(self, _: &[u8], a: u32, x: u32) -> Option<(u32, u32)> {
        Some((a, x))
    }
}

/// `L`, then `A &= mask`: the netmask and flag idiom.
#[derive(Clone, Copy)]
pub(super) struct Masked<L>(pub L, pub u32);
impl<L: Load> Load for Masked<L> {
    type Next = Masked<L::Next>;
    fn next_at(plain: &[Ins], j: usize) -> Option<(Self::Next, usize)> {
        let (l, j) = L::next_at(plain, j)?;
        match plain.get(j)? {
            &Ins::AndK(m) => Some((Masked(l, m), j + 1)),
            _ => None,
        }
    }
    #[inline(always)]
    fn get(self, pkt: &[u8], a: u32, x: u32) -> Option<(u32, u32)> {
        let (a, x) = self.0.get(pkt, a, x)?;
        Some((a & self.1, x))
    }
}

// The loop's conditions, shared so both forms test alike.
use super::super::exec::cond;
pub(super) use super::super::exec::{EQ, GE, GT, SET};

/// The condition of a branch, on A (and X).
pub(super) trait Test: Copy + Send + Sync + 'static {
    fn test(self, a: u32, x: u32) -> bool;
}

/// `A cond k`.
#[derive(Clone, Copy)]
pub(super) struct K<const C: u8>(pub u32);
impl<const C: u8> Test for K<C> {
    #[inline(always)]
    fn test(self, a: u32, _: u32) -> bool {
        cond::<C>(a, self.0)
    }
}

/// `A cond X`.
#[derive(Clone, Copy)]
pub(super) struct X<const C: u8>;
impl<const C: u8> Test for X<C> {
    #[inline(always)]
    fn test(self, a: u32, x: u32) -> bool {
        cond::<C>(a, x)
    }
}

/// `A` is one of up to four constants (unused slots repeat the first):
/// a chain of `jeq`s that all jump to the same place on a match, as
/// libpcap emits for "any of these ethertypes / protocols". Tested
/// without branches.
#[derive(Clone, Copy)]
pub(super) struct In(pub [u32; 4]);
impl Test for In {
    #[inline(always)]
    fn test(self, a: u32, _: u32) -> bool {
        self.0.iter().fold(false, |m, &k| m | (a == k))
    }
}

/// `lo <= A <= hi`: libpcap's `jge #lo` then `jgt #hi` with both misses
/// going to the same place (port ranges). One unsigned comparison.
#[derive(Clone, Copy)]
pub(in crate::cbpf::interp) struct Range {
    lo: u32,
    span: u32,
}
impl Test for Range {
    #[inline(always)]
    fn test(self, a: u32, _: u32) -> bool {
        a.wrapping_sub(self.lo) <= self.span
    }
}

/// A branch condition as found in the program, before it is turned into
/// one of the `Test` types.
#[derive(Clone, Copy)]
pub(in crate::cbpf::interp) enum Cond {
    K(u8, u32),
    X(u8),
    In([u32; 4]),
    Range(Range),
}

/// Longest `jeq` chain folded into one `In`.
const IN_MAX: usize = 4;

/// The condition and targets of the jump at `j` (`None`: not a
/// conditional jump), folding a `jeq` chain into `In` and a `jge`/`jgt`
/// pair into `Range`.
pub(in crate::cbpf::interp) fn cond_at(plain: &[Ins], j: usize) -> Option<(Cond, u32, u32)> {
    Some(match *plain.get(j)? {
        Ins::JeqK { k, t, f } => {
            let mut ks = [k; IN_MAX];
            let (mut n, mut miss) = (1, f);
            while n < IN_MAX {
                match plain.get(miss as usize) {
                    Some(&Ins::JeqK { k, t: t2, f: f2 }) if t2 == t => {
                        ks[n] = k;
                        n += 1;
                        miss = f2;
                    }
                    _ => break,
                }
            }
            if n > 1 {
                (Cond::In(ks), t, miss)
            } else {
                (Cond::K(EQ, k), t, f)
            }
        }
        Ins::JgeK { k: lo, t, f } => match plain.get(t as usize) {
            Some(&Ins::JgtK {
                k: hi,
                t: t2,
                f: inside,
            }) if t2 == f && hi >= lo => (Cond::Range(Range { lo, span: hi - lo }), inside, f),
            _ => (Cond::K(GE, lo), t, f),
        },
        Ins::JgtK { k, t, f } => (Cond::K(GT, k), t, f),
        Ins::JsetK { k, t, f } => (Cond::K(SET, k), t, f),
        Ins::JeqX { t, f } => (Cond::X(EQ), t, f),
        Ins::JgtX { t, f } => (Cond::X(GT), t, f),
        Ins::JgeX { t, f } => (Cond::X(GE), t, f),
        Ins::JsetX { t, f } => (Cond::X(SET), t, f),
        _ => return None,
    })
}
