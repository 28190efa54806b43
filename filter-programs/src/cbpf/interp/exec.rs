//! The one dispatch loop, generic over where loads read from (`Env`:
//! libpcap's rules or the kernel's) and over tracing (`Tracer`). Both are
//! monomorphized, so `Program::run` pays for neither.

use super::decode::{Fused, Ins};
use super::{PacketLoad, TraceStep};
use crate::cbpf::{Insn, Size};

/// Where loads come from and the few operations whose meaning differs
/// between libpcap and the kernel.
pub(in crate::cbpf) trait Env {
    /// What `ld len` / `ldx len` yield.
    fn len(&self) -> u32;
    /// `P[k:N]` for `k < 2^31`, big-endian; `None` rejects the packet.
    fn abs<const N: usize>(&self, k: u32) -> Option<u32>;
    /// `P[X + k:N]`.
    fn ind<const N: usize>(&self, x: u32, k: u32) -> Option<u32>;
    /// `4 * (P[k] & 0xf)`.
    fn msh(&self, k: u32) -> Option<u32>;
    /// An absolute load with `k >= 2^31`. `Err(v)` ends the program with
    /// return value `v`.
    fn neg(&self, size: Size, k: u32, a: u32, x: u32) -> Result<u32, u32>;
    fn lsh_x(a: u32, x: u32) -> u32;
    fn rsh_x(a: u32, x: u32) -> u32;
}

/// libpcap 1.10.3's `bpf_filter` on `pkt` (the captured bytes).
pub(super) struct Libpcap<'a> {
    pub pkt: &'a [u8],
    pub wirelen: u32,
}

/// Big-endian `N`-byte load at `off`, if all `N` bytes are there.
#[inline(always)]
pub(in crate::cbpf) fn be<const N: usize>(pkt: &[u8], off: usize) -> Option<u32> {
    let end = off.checked_add(N)?;
    if end > pkt.len() {
        return None;
    }
    let b: &[u8; N] = pkt[off..end].first_chunk::<N>()?;
    Some(b.iter().fold(0u32, |v, &byte| v << 8 | u32::from(byte)))
}

impl Env for Libpcap<'_> {
    #[inline(always)]
    fn len(&self) -> u32 {
        self.wirelen
    }
    #[inline(always)]
    fn abs<const N: usize>(&self, k: u32) -> Option<u32> {
        be::<N>(self.pkt, k as usize)
    }
    #[inline(always)]
    fn ind<const N: usize>(&self, x: u32, k: u32) -> Option<u32> {
        // libpcap checks `k > buflen || X > buflen - k || N > buflen - X - k`:
        // the sum never wraps. In usize (at least 64 bits here, and checked
        // otherwise) it cannot.
        be::<N>(self.pkt, (x as usize).checked_add(k as usize)?)
    }
    #[inline(always)]
    fn msh(&self, k: u32) -> Option<u32> {
        self.pkt.get(k as usize).map(|&b| u32::from(b & 0xf) << 2)
    }
    #[cold]
    fn neg(&self, size: Size, k: u32, _a: u32, _x: u32) -> Result<u32, u32> {
        // Built against Linux headers, libpcap answers `ldb` of
        // SKF_AD_VLAN_TAG / _PRESENT from aux data, which pcap_offline_filter
        // never has: it returns 0. Every other such `k` is an ordinary
        // offset, far past any real capture.
        let vlan = [44u32, 48].map(|n| (crate::cbpf::skf::SKF_AD_OFF as u32).wrapping_add(n));
        if size == Size::B && vlan.contains(&k) {
            return Err(0);
        }
        let v = match size {
            Size::W => be::<4>(self.pkt, k as usize),
            Size::H => be::<2>(self.pkt, k as usize),
            Size::B => be::<1>(self.pkt, k as usize),
        };
        v.ok_or(0)
    }
    #[inline(always)]
    fn lsh_x(a: u32, x: u32) -> u32 {
        a.checked_shl(x).unwrap_or(0)
    }
    #[inline(always)]
    fn rsh_x(a: u32, x: u32) -> u32 {
        a.checked_shr(x).unwrap_or(0)
    }
}

/// Receives one step per executed instruction, after it ran.
pub(super) trait Tracer {
    const ON: bool;
    fn step(&mut self, pc: usize, a: u32, x: u32, load: Option<PacketLoad>);
    /// The run spent its [`STEP_BUDGET`] (it then returns 0).
    fn exhausted(&mut self) {}
}

/// Notes only whether a run spent its budget: where libpcap's
/// `bpf_filter`, which has none, would not have returned.
pub(super) struct Watch {
    pub exhausted: bool,
}

impl Tracer for Watch {
    const ON: bool = false;
    #[inline(always)]
    fn step(&mut self, _: usize, _: u32, _: u32, _: Option<PacketLoad>) {}
    fn exhausted(&mut self) {
        self.exhausted = true;
    }
}

pub(super) struct NoTrace;

impl Tracer for NoTrace {
    const ON: bool = false;
    #[inline(always)]
    fn step(&mut self, _: usize, _: u32, _: u32, _: Option<PacketLoad>) {}
}

/// Records steps, up to a cap (a looping program could otherwise fill
/// memory; the verdict stays exact either way).
pub(super) struct Recorder<'p> {
    pub insns: &'p [Insn],
    pub steps: Vec<TraceStep>,
}

/// Most steps a trace records.
pub const MAX_TRACE_STEPS: usize = 1 << 16;

impl Tracer for Recorder<'_> {
    const ON: bool = true;
    fn step(&mut self, pc: usize, a: u32, x: u32, load: Option<PacketLoad>) {
        if self.steps.len() < MAX_TRACE_STEPS {
            let insn = self.insns.get(pc).copied().unwrap_or_default();
            self.steps.push(TraceStep {
                pc,
                insn,
                a,
                x,
                load,
            });
        }
    }
}

/// Instruction budget of one run. Forward-only code can run at most
/// `len` instructions, so only backward `ja`s (libpcap's protochain loop)
/// are charged, `len` each: no program runs more than about this many
/// instructions. libpcap itself would loop forever on some programs it
/// accepts (`ja -1`); here they reject the packet instead.
pub const STEP_BUDGET: u64 = 1 << 24;

#[inline(always)]
fn ld(offset: u64, size: u32) -> Option<PacketLoad> {
    Some(PacketLoad { offset, size })
}

/// Runs `ops` (a decoded program ending with the `Trap` sentinel).
#[inline(always)]
pub(super) fn exec<E: Env, T: Tracer>(ops: &[Ins], env: &E, t: &mut T) -> u32 {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; 16];
    let mut pc: usize = 0;
    let charge = (ops.len() as u64).max(1);
    let mut budget: u64 = STEP_BUDGET;

    // A load that fails ends the run with 0, after tracing the step.
    macro_rules! load {
        ($e:expr, $at:expr, $load:expr) => {
            match $e {
                Some(v) => v,
                None => {
                    if T::ON {
                        t.step($at, a, x, $load);
                    }
                    return 0;
                }
            }
        };
    }
    // A load fused with the `j* #k` after it: two steps in the trace.
    macro_rules! fused {
        ($at:expr, $fu:expr, $val:expr, $load:expr, $cond:expr) => {{
            let fu: Fused = $fu;
            a = load!($val, $at, $load);
            if T::ON {
                t.step($at, a, x, $load);
                t.step($at + 1, a, x, None);
            }
            pc = if cond::<$cond>(a, fu.k) { fu.t } else { fu.f } as usize;
            continue;
        }};
    }

    loop {
        let Some(&op) = ops.get(pc) else { return 0 };
        let at = pc;
        pc += 1;
        let mut trace_load = None;
        match op {
            Ins::LdAbsW(k) => {
                trace_load = ld(k.into(), 4);
                a = load!(env.abs::<4>(k), at, trace_load);
            }
            Ins::LdAbsH(k) => {
                trace_load = ld(k.into(), 2);
                a = load!(env.abs::<2>(k), at, trace_load);
            }
            Ins::LdAbsB(k) => {
                trace_load = ld(k.into(), 1);
                a = load!(env.abs::<1>(k), at, trace_load);
            }
            Ins::LdNeg(size, k) => {
                trace_load = ld(k.into(), size.bytes());
                a = match env.neg(size, k, a, x) {
                    Ok(v) => v,
                    Err(ret) => {
                        if T::ON {
                            t.step(at, a, x, trace_load);
                        }
                        return ret;
                    }
                };
            }
            Ins::LdIndW(k) => {
                trace_load = ld(u64::from(x) + u64::from(k), 4);
                a = load!(env.ind::<4>(x, k), at, trace_load);
            }
            Ins::LdIndH(k) => {
                trace_load = ld(u64::from(x) + u64::from(k), 2);
                a = load!(env.ind::<2>(x, k), at, trace_load);
            }
            Ins::LdIndB(k) => {
                trace_load = ld(u64::from(x) + u64::from(k), 1);
                a = load!(env.ind::<1>(x, k), at, trace_load);
            }
            Ins::LdImm(k) => a = k,
            Ins::LdMem(i) => a = mem[usize::from(i) & 15],
            Ins::LdLen => a = env.len(),
            Ins::LdxImm(k) => x = k,
            Ins::LdxMem(i) => x = mem[usize::from(i) & 15],
            Ins::LdxLen => x = env.len(),
            Ins::LdxMsh(k) => {
                trace_load = ld(k.into(), 1);
                x = load!(env.msh(k), at, trace_load);
            }
            Ins::St(i) => mem[usize::from(i) & 15] = a,
            Ins::Stx(i) => mem[usize::from(i) & 15] = x,
            Ins::AddK(k) => a = a.wrapping_add(k),
            Ins::SubK(k) => a = a.wrapping_sub(k),
            Ins::MulK(k) => a = a.wrapping_mul(k),
            Ins::DivK(k) => a = load!(a.checked_div(k), at, None),
            Ins::ModK(k) => a = load!(a.checked_rem(k), at, None),
            Ins::OrK(k) => a |= k,
            Ins::AndK(k) => a &= k,
            Ins::XorK(k) => a ^= k,
            Ins::LshK(k) => a <<= k & 31,
            Ins::RshK(k) => a >>= k & 31,
            Ins::AddX => a = a.wrapping_add(x),
            Ins::SubX => a = a.wrapping_sub(x),
            Ins::MulX => a = a.wrapping_mul(x),
            Ins::DivX => a = load!(a.checked_div(x), at, None),
            Ins::ModX => a = load!(a.checked_rem(x), at, None),
            Ins::OrX => a |= x,
            Ins::AndX => a &= x,
            Ins::XorX => a ^= x,
            Ins::LshX => a = E::lsh_x(a, x),
            Ins::RshX => a = E::rsh_x(a, x),
            Ins::Neg => a = a.wrapping_neg(),
            Ins::Tax => x = a,
            Ins::Txa => a = x,
            Ins::Ja(target) => pc = target as usize,
            Ins::JaBack(target) => {
                budget = budget.saturating_sub(charge);
                if budget == 0 {
                    if T::ON {
                        t.step(at, a, x, None);
                    }
                    t.exhausted();
                    return 0;
                }
                pc = target as usize;
            }
            Ins::JeqK { k, t, f } => pc = if a == k { t } else { f } as usize,
            Ins::JgtK { k, t, f } => pc = if a > k { t } else { f } as usize,
            Ins::JgeK { k, t, f } => pc = if a >= k { t } else { f } as usize,
            Ins::JsetK { k, t, f } => pc = if a & k != 0 { t } else { f } as usize,
            Ins::JeqX { t, f } => pc = if a == x { t } else { f } as usize,
            Ins::JgtX { t, f } => pc = if a > x { t } else { f } as usize,
            Ins::JgeX { t, f } => pc = if a >= x { t } else { f } as usize,
            Ins::JsetX { t, f } => pc = if a & x != 0 { t } else { f } as usize,
            Ins::RetK(k) => {
                if T::ON {
                    t.step(at, a, x, None);
                }
                return k;
            }
            Ins::RetA => {
                if T::ON {
                    t.step(at, a, x, None);
                }
                return a;
            }
            Ins::Trap => {
                if T::ON && at + 1 < ops.len() {
                    t.step(at, a, x, None);
                }
                return 0;
            }
            Ins::AbsWJeq(fu) => fused!(at, fu, env.abs::<4>(fu.off), ld(fu.off.into(), 4), EQ),
            Ins::AbsWJgt(fu) => fused!(at, fu, env.abs::<4>(fu.off), ld(fu.off.into(), 4), GT),
            Ins::AbsWJge(fu) => fused!(at, fu, env.abs::<4>(fu.off), ld(fu.off.into(), 4), GE),
            Ins::AbsWJset(fu) => fused!(at, fu, env.abs::<4>(fu.off), ld(fu.off.into(), 4), SET),
            Ins::AbsHJeq(fu) => fused!(at, fu, env.abs::<2>(fu.off), ld(fu.off.into(), 2), EQ),
            Ins::AbsHJgt(fu) => fused!(at, fu, env.abs::<2>(fu.off), ld(fu.off.into(), 2), GT),
            Ins::AbsHJge(fu) => fused!(at, fu, env.abs::<2>(fu.off), ld(fu.off.into(), 2), GE),
            Ins::AbsHJset(fu) => fused!(at, fu, env.abs::<2>(fu.off), ld(fu.off.into(), 2), SET),
            Ins::AbsBJeq(fu) => fused!(at, fu, env.abs::<1>(fu.off), ld(fu.off.into(), 1), EQ),
            Ins::AbsBJgt(fu) => fused!(at, fu, env.abs::<1>(fu.off), ld(fu.off.into(), 1), GT),
            Ins::AbsBJge(fu) => fused!(at, fu, env.abs::<1>(fu.off), ld(fu.off.into(), 1), GE),
            Ins::AbsBJset(fu) => fused!(at, fu, env.abs::<1>(fu.off), ld(fu.off.into(), 1), SET),
            Ins::IndWJeq(fu) => fused!(at, fu, env.ind::<4>(x, fu.off), ind(x, fu.off, 4), EQ),
            Ins::IndWJgt(fu) => fused!(at, fu, env.ind::<4>(x, fu.off), ind(x, fu.off, 4), GT),
            Ins::IndWJge(fu) => fused!(at, fu, env.ind::<4>(x, fu.off), ind(x, fu.off, 4), GE),
            Ins::IndWJset(fu) => fused!(at, fu, env.ind::<4>(x, fu.off), ind(x, fu.off, 4), SET),
            Ins::IndHJeq(fu) => fused!(at, fu, env.ind::<2>(x, fu.off), ind(x, fu.off, 2), EQ),
            Ins::IndHJgt(fu) => fused!(at, fu, env.ind::<2>(x, fu.off), ind(x, fu.off, 2), GT),
            Ins::IndHJge(fu) => fused!(at, fu, env.ind::<2>(x, fu.off), ind(x, fu.off, 2), GE),
            Ins::IndHJset(fu) => fused!(at, fu, env.ind::<2>(x, fu.off), ind(x, fu.off, 2), SET),
            Ins::IndBJeq(fu) => fused!(at, fu, env.ind::<1>(x, fu.off), ind(x, fu.off, 1), EQ),
            Ins::IndBJgt(fu) => fused!(at, fu, env.ind::<1>(x, fu.off), ind(x, fu.off, 1), GT),
            Ins::IndBJge(fu) => fused!(at, fu, env.ind::<1>(x, fu.off), ind(x, fu.off, 1), GE),
            Ins::IndBJset(fu) => fused!(at, fu, env.ind::<1>(x, fu.off), ind(x, fu.off, 1), SET),
            Ins::AndJeq(fu) => fused!(at, fu, Some(a & fu.off), None, EQ),
            Ins::AndJgt(fu) => fused!(at, fu, Some(a & fu.off), None, GT),
            Ins::AndJge(fu) => fused!(at, fu, Some(a & fu.off), None, GE),
            Ins::AndJset(fu) => fused!(at, fu, Some(a & fu.off), None, SET),
        }
        if T::ON {
            t.step(at, a, x, trace_load);
        }
    }
}

pub(super) const EQ: u8 = 0;
pub(super) const GT: u8 = 1;
pub(super) const GE: u8 = 2;
pub(super) const SET: u8 = 3;

/// The condition of a fused jump, resolved at compile time.
#[inline(always)]
pub(super) fn cond<const C: u8>(a: u32, k: u32) -> bool {
    match C {
        EQ => a == k,
        GT => a > k,
        GE => a >= k,
        _ => a & k != 0,
    }
}

#[inline(always)]
fn ind(x: u32, k: u32, size: u32) -> Option<PacketLoad> {
    ld(u64::from(x) + u64::from(k), size)
}
