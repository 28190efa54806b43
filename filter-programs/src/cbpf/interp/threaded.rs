//! `Program::run`'s fast path: the decoded program compiled once into a
//! graph of closures, each holding its successors directly.
//!
//! Why closures: the loop in `exec.rs` dispatches every op through one
//! shared indirect jump and a program counter. Here a node ends by
//! jumping (a tail call in optimized builds) straight to its successor:
//! no program counter, no op-list bounds check, no decoding per step, and
//! the jump sits in the node's own code, which is specialised by type for
//! what it loads and tests, so the predictor sees many sites instead of
//! one. Nodes also cover several ops at once, in the shapes libpcap's code
//! generator emits: load + `and` + jump, msh + indexed load + jump, `jeq`
//! chains with one target, `jge`/`jgt` ranges, a two-way ethertype
//! switch, and the `src or dst` pair. A branch to `ret #k` returns the
//! constant in place.
//!
//! Only libpcap's semantics (`run`) go through here; `run_with` and the
//! traces keep the loop, which stays the readable reference. The
//! differential tests hold this form to libpcap's `bpf_filter` and the
//! unit tests to the loop.
//!
//! Limits: every jump is forward (backward `ja` programs stay on the
//! loop), so the graph is acyclic and a run nests at most one call per op,
//! as does dropping the graph. Without tail calls (debug builds) that is
//! real stack, hence [`MAX_OPS`].

use std::sync::Arc;

use super::decode::Ins;
use super::exec::{Env, Libpcap};

/// What a node carries besides the packet and the registers.
pub(super) struct Regs {
    pub mem: [u32; 16],
    pub wirelen: u32,
}

/// One compiled op: `(packet, A, X, regs) -> return value`.
pub(super) type Node = Arc<dyn Fn(&[u8], u32, u32, &mut Regs) -> u32 + Send + Sync>;

/// Longest program compiled. A run nests one call per executed op; in a
/// debug build each costs a few hundred bytes of stack, and the default
/// test thread has 2 MiB. Longer programs run on the loop.
pub(super) const MAX_OPS: usize = 1024;

/// Compiles `plain` (the unfused op list, sentinel last), or `None` when
/// it must run on the loop instead.
pub(super) fn compile(plain: &[Ins]) -> Option<Node> {
    if plain.len() > MAX_OPS + 1 || plain.iter().any(|op| matches!(op, Ins::JaBack(_))) {
        return None;
    }
    let trap: Node = Arc::new(|_, _, _, _| 0);
    let mut nodes: Vec<Node> = vec![trap.clone(); plain.len()];
    // Every target is after its jump, so building from the end finds each
    // successor already built.
    for i in (0..plain.len().saturating_sub(1)).rev() {
        let at = |t: u32| {
            nodes
                .get(t as usize)
                .cloned()
                .unwrap_or_else(|| trap.clone())
        };
        nodes[i] = node(plain, i, at);
    }
    nodes.first().cloned()
}

mod shapes;

pub(super) use shapes::{cond_at, Cond};
use shapes::{Abs, Acc, In, Ind, Load, Masked, MshInd, Test, EQ, GE, GT, K, SET, X};

/// Where a branch goes: another node, or straight to a return value.
/// Most branches in libpcap's code end in `ret #k`; returning the
/// constant in place saves a call, and when both sides return it leaves
/// no jump at all that depends on the packet.
trait Cont: Send + Sync + 'static {
    /// A constant return: choosing between two of these needs no jump.
    const RET: bool = false;
    fn go(&self, pkt: &[u8], a: u32, x: u32, r: &mut Regs) -> u32;
}

/// `ret #k`, or 0 for a trap.
struct Ret(u32);
impl Cont for Ret {
    const RET: bool = true;
    #[inline(always)]
    fn go(&self, _: &[u8], _: u32, _: u32, _: &mut Regs) -> u32 {
        self.0
    }
}

impl Cont for Node {
    #[inline(always)]
    fn go(&self, pkt: &[u8], a: u32, x: u32, r: &mut Regs) -> u32 {
        self(pkt, a, x, r)
    }
}

/// `A = load; next`.
fn load<L: Load>(l: L, next: Node) -> Node {
    Arc::new(move |pkt, a, x, r| match l.get(pkt, a, x) {
        Some((a, x)) => next(pkt, a, x, r),
        None => 0,
    })
}

/// `(A, X) = load; if test goto t else goto f`.
fn branch<L: Load, C: Test, T: Cont, F: Cont>(l: L, c: C, t: T, f: F) -> Node {
    Arc::new(move |pkt, a, x, r| match l.get(pkt, a, x) {
        // Two constants: a conditional move, nothing to mispredict.
        Some((a, x)) if T::RET && F::RET => {
            let (hit, miss) = (t.go(pkt, a, x, r), f.go(pkt, a, x, r));
            if c.test(a, x) {
                hit
            } else {
                miss
            }
        }
        Some((a, x)) if c.test(a, x) => t.go(pkt, a, x, r),
        Some((a, x)) => {
            apart();
            f.go(pkt, a, x, r)
        }
        None => 0,
    })
}

/// `(A, X) = load; if A == k0 goto t0; if A == k1 goto t1; goto f`: the
/// `jeq #0x86dd` then `jeq #0x800` that starts most of libpcap's
/// programs, as one node instead of two. The second match and the miss
/// may each be a constant return (`icmp or arp`; "neither: `ret #0`").
fn switch2<L: Load, T1: Cont, F: Cont>(l: L, k: [u32; 2], t0: Node, t1: T1, f: F) -> Node {
    Arc::new(move |pkt, a, x, r| match l.get(pkt, a, x) {
        Some((a, x)) if a == k[0] => t0(pkt, a, x, r),
        Some((a, x)) if a == k[1] => {
            apart();
            t1.go(pkt, a, x, r)
        }
        Some((a, x)) => {
            apart();
            f.go(pkt, a, x, r)
        }
        None => 0,
    })
}

/// `(A, X) = l1; if c1 goto t; (A, X) = l2; if c2 goto t; goto f`: the
/// `src or dst` idiom (hosts, nets, ports, port ranges), where the second
/// load only runs when the first test misses. One node instead of two.
fn either<L1: Load, L2: Load, C: Test, T: Cont, F: Cont>(
    (l1, c1): (L1, C),
    (l2, c2): (L2, C),
    t: T,
    f: F,
) -> Node {
    Arc::new(move |pkt, a, x, r| {
        let Some((a, x)) = l1.get(pkt, a, x) else {
            return 0;
        };
        if T::RET && F::RET {
            // Both tests without a jump between them: the second load has
            // no effect but its value, so it may run even after a hit,
            // where its failing must not reject the packet.
            let first = c1.test(a, x);
            let (hit, miss) = (t.go(pkt, a, x, r), f.go(pkt, a, x, r));
            return match l2.get(pkt, a, x) {
                Some((a, x)) if first | c2.test(a, x) => hit,
                Some(_) => miss,
                None if first => hit,
                None => 0,
            };
        }
        if c1.test(a, x) {
            return t.go(pkt, a, x, r);
        }
        apart();
        match l2.get(pkt, a, x) {
            Some((a, x)) if c2.test(a, x) => t.go(pkt, a, x, r),
            Some((a, x)) => {
                apart();
                f.go(pkt, a, x, r)
            }
            None => 0,
        }
    })
}

/// Keeps the two arms of a branch apart. Without it the compiler turns
/// the choice between `t` and `f` into a conditional move feeding one
/// indirect jump: on a misprediction that jump waits for a chain of loads
/// (successor, vtable, function) that depends on the packet. As a real
/// conditional branch only the comparison does.
#[inline(always)]
fn apart() {
    std::hint::black_box(());
}

#[cfg(test)]
thread_local! {
    /// How many `either` nodes this thread has built: lets the tests
    /// check that their programs reach the fusion.
    pub(super) static EITHERS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A branch's two targets, each a constant return when it is one.
struct Targets<'a, A> {
    plain: &'a [Ins],
    at: A,
    t: u32,
    f: u32,
}

impl<A: Fn(u32) -> Node> Targets<'_, A> {
    /// The value returned in place of going to `t`, if that is all it does.
    fn ret(&self, t: u32) -> Option<Ret> {
        match self.plain.get(t as usize) {
            Some(Ins::RetK(k)) => Some(Ret(*k)),
            Some(Ins::Trap) | None => Some(Ret(0)),
            _ => None,
        }
    }

    /// `either`, if the miss side of `l; c` is the same kind of load and
    /// test, hitting to the same place. Only equality and ranges: those
    /// are what libpcap emits for `src or dst`, and every pair instantiated
    /// here is another copy of the node's code.
    fn either<L: Load>(&self, l: L, c: Cond) -> Option<Node> {
        let (l2, j) = L::next_at(self.plain, self.f as usize)?;
        let (c2, t2, f) = cond_at(self.plain, j)?;
        if t2 != self.t {
            return None;
        }
        let at = &self.at;
        macro_rules! pick {
            ($c1:expr, $c2:expr) => {
                match (self.ret(self.t), self.ret(f)) {
                    (Some(t), Some(f)) => either((l, $c1), (l2, $c2), t, f),
                    (Some(t), None) => either((l, $c1), (l2, $c2), t, at(f)),
                    (None, Some(f)) => either((l, $c1), (l2, $c2), at(self.t), f),
                    (None, None) => either((l, $c1), (l2, $c2), at(self.t), at(f)),
                }
            };
        }
        let node = match (c, c2) {
            (Cond::K(EQ, k1), Cond::K(EQ, k2)) => pick!(K::<EQ>(k1), K::<EQ>(k2)),
            (Cond::Range(r1), Cond::Range(r2)) => pick!(r1, r2),
            _ => return None,
        };
        #[cfg(test)]
        EITHERS.with(|n| n.set(n.get() + 1));
        Some(node)
    }

    /// `branch` with the condition and the kinds of target chosen now.
    fn branch<L: Load>(self, l: L, c: Cond) -> Node {
        if let Some(node) = self.either(l, c) {
            return node;
        }
        if let Cond::K(EQ, k1) = c {
            if let Some((Cond::K(EQ, k2), t2, f2)) = cond_at(self.plain, self.f as usize) {
                let (at, k, t0) = (&self.at, [k1, k2], (self.at)(self.t));
                return match (self.ret(t2), self.ret(f2)) {
                    (Some(t1), Some(f)) => switch2(l, k, t0, t1, f),
                    (Some(t1), None) => switch2(l, k, t0, t1, at(f2)),
                    (None, Some(f)) => switch2(l, k, t0, at(t2), f),
                    (None, None) => switch2(l, k, t0, at(t2), at(f2)),
                };
            }
        }
        macro_rules! pick {
            ($t:expr, $f:expr) => {
                match c {
                    Cond::K(EQ, k) => branch(l, K::<EQ>(k), $t, $f),
                    Cond::K(GT, k) => branch(l, K::<GT>(k), $t, $f),
                    Cond::K(GE, k) => branch(l, K::<GE>(k), $t, $f),
                    Cond::K(_, k) => branch(l, K::<SET>(k), $t, $f),
                    Cond::X(EQ) => branch(l, X::<EQ>, $t, $f),
                    Cond::X(GT) => branch(l, X::<GT>, $t, $f),
                    Cond::X(GE) => branch(l, X::<GE>, $t, $f),
                    Cond::X(_) => branch(l, X::<SET>, $t, $f),
                    Cond::In(ks) => branch(l, In(ks), $t, $f),
                    Cond::Range(r) => branch(l, r, $t, $f),
                }
            };
        }
        match (self.ret(self.t), self.ret(self.f)) {
            (Some(t), Some(f)) => pick!(t, f),
            (Some(t), None) => pick!(t, (self.at)(self.f)),
            (None, Some(f)) => pick!((self.at)(self.t), f),
            (None, None) => pick!((self.at)(self.t), (self.at)(self.f)),
        }
    }
}

/// The op at `i` (a load, or an `and #k` as `Masked<Acc>`), fused with
/// what follows: an `and #k` and/or a `j* #k`. The ops it swallows keep
/// their own nodes for jumps that land on them.
fn fused<L: Load>(plain: &[Ins], i: usize, l: L, at: impl Fn(u32) -> Node) -> Node {
    if let Some((c, t, f)) = cond_at(plain, i + 1) {
        return Targets { plain, at, t, f }.branch(l, c);
    }
    if let (Some(&Ins::AndK(m)), Some((c, t, f))) = (plain.get(i + 1), cond_at(plain, i + 2)) {
        return Targets { plain, at, t, f }.branch(Masked(l, m), c);
    }
    load(l, at(i as u32 + 1))
}

/// An op that only changes the registers, then goes on.
macro_rules! step {
    ($next:expr, |$a:ident, $x:ident, $r:ident| $body:expr) => {{
        let next = $next;
        let node: Node = Arc::new(move |pkt, $a, $x, $r| {
            let ($a, $x) = $body;
            next(pkt, $a, $x, $r)
        });
        node
    }};
}

/// `A op= v`, except that `None` (division by zero) returns 0.
macro_rules! alu {
    ($next:expr, |$a:ident, $x:ident| $body:expr) => {{
        let next = $next;
        let node: Node = Arc::new(move |pkt, $a, $x, r| match $body {
            Some(a) => next(pkt, a, $x, r),
            None => 0,
        });
        node
    }};
}

fn node(plain: &[Ins], i: usize, at: impl Fn(u32) -> Node) -> Node {
    let next = at(i as u32 + 1);
    match plain[i] {
        Ins::LdAbsW(k) => fused(plain, i, Abs::<4>(k), at),
        Ins::LdAbsH(k) => fused(plain, i, Abs::<2>(k), at),
        Ins::LdAbsB(k) => fused(plain, i, Abs::<1>(k), at),
        Ins::LdIndW(k) => fused(plain, i, Ind::<4>(k), at),
        Ins::LdIndH(k) => fused(plain, i, Ind::<2>(k), at),
        Ins::LdIndB(k) => fused(plain, i, Ind::<1>(k), at),
        Ins::AndK(m) => fused(plain, i, Masked(Acc, m), at),
        Ins::LdNeg(size, k) => Arc::new(move |pkt, a, x, r| {
            match (Libpcap {
                pkt,
                wirelen: r.wirelen,
            })
            .neg(size, k, a, x)
            {
                Ok(a) => next(pkt, a, x, r),
                Err(ret) => ret,
            }
        }),
        // The msh and the load after it become one op, fused on in turn;
        // the load's own node serves jumps that land on it.
        Ins::LdxMsh(m) => match plain.get(i + 1) {
            Some(&Ins::LdIndW(k)) => fused(plain, i + 1, MshInd::<4> { m, k }, at),
            Some(&Ins::LdIndH(k)) => fused(plain, i + 1, MshInd::<2> { m, k }, at),
            Some(&Ins::LdIndB(k)) => fused(plain, i + 1, MshInd::<1> { m, k }, at),
            _ => Arc::new(
                move |pkt, a, _, r| match (Libpcap { pkt, wirelen: 0 }).msh(m) {
                    Some(x) => next(pkt, a, x, r),
                    None => 0,
                },
            ),
        },
        Ins::LdImm(k) => step!(next, |_a, x, _r| (k, x)),
        Ins::LdMem(m) => step!(next, |_a, x, r| (r.mem[usize::from(m) & 15], x)),
        Ins::LdLen => step!(next, |_a, x, r| (r.wirelen, x)),
        Ins::LdxImm(k) => step!(next, |a, _x, _r| (a, k)),
        Ins::LdxMem(m) => step!(next, |a, _x, r| (a, r.mem[usize::from(m) & 15])),
        Ins::LdxLen => step!(next, |a, _x, r| (a, r.wirelen)),
        Ins::St(m) => step!(next, |a, x, r| {
            r.mem[usize::from(m) & 15] = a;
            (a, x)
        }),
        Ins::Stx(m) => step!(next, |a, x, r| {
            r.mem[usize::from(m) & 15] = x;
            (a, x)
        }),
        Ins::AddK(k) => step!(next, |a, x, _r| (a.wrapping_add(k), x)),
        Ins::SubK(k) => step!(next, |a, x, _r| (a.wrapping_sub(k), x)),
        Ins::MulK(k) => step!(next, |a, x, _r| (a.wrapping_mul(k), x)),
        Ins::DivK(k) => alu!(next, |a, x| a.checked_div(k)),
        Ins::ModK(k) => alu!(next, |a, x| a.checked_rem(k)),
        Ins::OrK(k) => step!(next, |a, x, _r| (a | k, x)),
        Ins::XorK(k) => step!(next, |a, x, _r| (a ^ k, x)),
        Ins::LshK(k) => step!(next, |a, x, _r| (a << (k & 31), x)),
        Ins::RshK(k) => step!(next, |a, x, _r| (a >> (k & 31), x)),
        Ins::AddX => step!(next, |a, x, _r| (a.wrapping_add(x), x)),
        Ins::SubX => step!(next, |a, x, _r| (a.wrapping_sub(x), x)),
        Ins::MulX => step!(next, |a, x, _r| (a.wrapping_mul(x), x)),
        Ins::DivX => alu!(next, |a, x| a.checked_div(x)),
        Ins::ModX => alu!(next, |a, x| a.checked_rem(x)),
        Ins::OrX => step!(next, |a, x, _r| (a | x, x)),
        Ins::AndX => step!(next, |a, x, _r| (a & x, x)),
        Ins::XorX => step!(next, |a, x, _r| (a ^ x, x)),
        Ins::LshX => step!(next, |a, x, _r| (Libpcap::lsh_x(a, x), x)),
        Ins::RshX => step!(next, |a, x, _r| (Libpcap::rsh_x(a, x), x)),
        Ins::Neg => step!(next, |a, x, _r| (a.wrapping_neg(), x)),
        Ins::Tax => step!(next, |a, _x, _r| (a, a)),
        Ins::Txa => step!(next, |_a, x, _r| (x, x)),
        Ins::Ja(t) => at(t),
        Ins::JeqK { .. }
        | Ins::JgtK { .. }
        | Ins::JgeK { .. }
        | Ins::JsetK { .. }
        | Ins::JeqX { .. }
        | Ins::JgtX { .. }
        | Ins::JgeX { .. }
        | Ins::JsetX { .. } => match cond_at(plain, i) {
            Some((c, t, f)) => Targets { plain, at, t, f }.branch(Acc, c),
            None => Arc::new(|_, _, _, _| 0),
        },
        Ins::RetK(k) => Arc::new(move |_, _, _, _| k),
        Ins::RetA => Arc::new(|_, a, _, _| a),
        // Excluded by `compile`; the loop runs those programs.
        Ins::JaBack(_) | Ins::Trap => Arc::new(|_, _, _, _| 0),
        // Only in the loop's fused list, never in `plain`.
        _ => Arc::new(|_, _, _, _| 0),
    }
}
