//! Specializing a rule's classic program to what the dispatcher already
//! knows about the packet.
//!
//! The ruleset program reads the Ethernet type once and sends the packet
//! down one chain of rules per type. Inside the IPv4 chain every rule's own
//! `ldh [12]; jeq #0x800` is settled, and a rule that cannot match an IPv4
//! frame (`ip6 ...`, `arp ...`) is left out of that chain entirely. That is
//! the shared prefix: the common first test runs once per packet instead of
//! once per rule.
//!
//! The analysis tracks only whether A holds the halfword at offset 12, to a
//! fixpoint (libpcap's `protochain` loops jump backwards). It is sound,
//! never clever: a jump is settled only when the fact decides it for every
//! packet the chain receives.

use crate::cbpf::{Insn, JmpOp, Op, RetVal, Size, Src};

/// What every packet of a chain has in common.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// At least 14 bytes, and the halfword at offset 12 is this value.
    EtherType(u16),
    /// At least 14 bytes, and the halfword at offset 12 is none of these.
    EtherTypeNotIn(Vec<u16>),
    /// Fewer than 14 bytes: a load reaching byte 13 or beyond fails.
    Short,
}

/// Where control goes from instruction `i` entered with `a`, and what A
/// holds there.
fn successors(ops: &[Op], i: usize, a: A, fact: &Fact) -> Vec<(usize, A)> {
    let next = |off: u32| (i as u32).wrapping_add(1).wrapping_add(off) as usize;
    match ops[i] {
        Op::Ret { .. } => vec![],
        Op::LdAbs { size, k } if fails_when_short(fact, k, size) => vec![],
        Op::LdxMsh { k } if fails_when_short(fact, k, Size::B) => vec![],
        Op::LdAbs {
            size: Size::H,
            k: 12,
        } => vec![(i + 1, A::EtherType)],
        Op::LdAbs { .. }
        | Op::LdInd { .. }
        | Op::LdImm { .. }
        | Op::LdMem { .. }
        | Op::LdLen
        | Op::Alu { .. }
        | Op::Neg
        | Op::Txa => vec![(i + 1, A::Unknown)],
        Op::LdxImm { .. }
        | Op::LdxMem { .. }
        | Op::LdxLen
        | Op::LdxMsh { .. }
        | Op::St { .. }
        | Op::Stx { .. }
        | Op::Tax => vec![(i + 1, a)],
        Op::Ja { k } => vec![(next(k), a)],
        Op::Jmp { op, src, jt, jf } => {
            let decided = match (a, src) {
                (A::EtherType, Src::K(k)) => decide(fact, op, k),
                _ => None,
            };
            match decided {
                Some(true) => vec![(next(jt as u32), a)],
                Some(false) => vec![(next(jf as u32), a)],
                None => vec![(next(jt as u32), a), (next(jf as u32), a)],
            }
        }
    }
}

/// What A holds, as far as the fact is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum A {
    Unknown,
    EtherType,
}

/// `prog` with the jumps the fact decides made unconditional (`jt == jf`),
/// or `None` when no packet of the chain can make it return non-zero.
/// Unreachable instructions stay in place; the translator skips them.
pub fn specialize(prog: &[Insn], fact: &Fact) -> Option<Vec<Insn>> {
    let ops: Vec<Op> = prog
        .iter()
        .map(|i| i.decode())
        .collect::<Result<_, _>>()
        .ok()?;
    let n = ops.len();
    // Phase 1: what A holds at each reachable instruction, to a fixpoint
    // (libpcap's `protochain` loops). None: not reached.
    let mut state: Vec<Option<A>> = vec![None; n];
    let mut work = Vec::new();
    if n > 0 {
        state[0] = Some(A::Unknown);
        work.push(0);
    }
    while let Some(i) = work.pop() {
        let Some(a) = state[i] else { continue };
        for (to, out_a) in successors(&ops, i, a, fact) {
            let Some(slot) = state.get_mut(to) else {
                continue;
            };
            let merged = match *slot {
                None => Some(out_a),
                Some(b) if b == out_a => Some(b),
                Some(_) => Some(A::Unknown),
            };
            if merged != *slot {
                *slot = merged;
                work.push(to);
            }
        }
    }
    // Phase 2: settle the jumps the fact decides.
    let mut out = prog.to_vec();
    let mut can_match = false;
    for i in 0..n {
        let Some(a) = state[i] else { continue };
        match ops[i] {
            Op::Ret { val } if val != RetVal::K(0) => can_match = true,
            Op::Jmp {
                op,
                src: Src::K(k),
                jt,
                jf,
            } if a == A::EtherType => {
                if let Some(taken) = decide(fact, op, k) {
                    let off = if taken { jt } else { jf };
                    out[i].jt = off;
                    out[i].jf = off;
                }
            }
            _ => {}
        }
    }
    can_match.then_some(out)
}

fn fails_when_short(fact: &Fact, k: u32, size: Size) -> bool {
    *fact == Fact::Short && (k as u64 + size.bytes() as u64) > 13
}

/// The outcome of `A op k` when A is the Ethernet type, if the fact fixes it.
fn decide(fact: &Fact, op: JmpOp, k: u32) -> Option<bool> {
    match fact {
        Fact::EtherType(t) => {
            let a = *t as u32;
            Some(match op {
                JmpOp::Jeq => a == k,
                JmpOp::Jgt => a > k,
                JmpOp::Jge => a >= k,
                JmpOp::Jset => a & k != 0,
            })
        }
        Fact::EtherTypeNotIn(set) => {
            (op == JmpOp::Jeq && set.iter().any(|t| *t as u32 == k)).then_some(false)
        }
        Fact::Short => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbpf::interp::Program;
    use crate::codegen::{self, Dlt, Options};

    fn compile(expr: &str) -> Vec<Insn> {
        codegen::compile(expr, &Options::new(Dlt::En10mb)).unwrap()
    }

    #[test]
    fn rules_for_other_types_leave_the_chain() {
        let v4 = Fact::EtherType(0x0800);
        assert!(specialize(&compile("ip6 and tcp"), &v4).is_none());
        assert!(specialize(&compile("arp"), &v4).is_none());
        assert!(specialize(&compile("tcp port 22"), &v4).is_some());
        assert!(specialize(&compile("tcp port 22"), &Fact::EtherType(0x0806)).is_none());
        let other = Fact::EtherTypeNotIn(vec![0x0800, 0x86dd, 0x0806, 0x8035]);
        assert!(specialize(&compile("host 10.0.0.1"), &other).is_none());
        assert!(specialize(&compile("not ip"), &other).is_some());
        assert!(specialize(&compile("tcp port 22"), &Fact::Short).is_none());
        assert!(specialize(&compile("less 10"), &Fact::Short).is_some());
    }

    /// The specialized program agrees with the original on every packet the
    /// fact describes.
    #[test]
    fn specialization_preserves_verdicts() {
        let exprs = [
            "tcp port 22",
            "host 10.0.0.1 or arp",
            "not ip",
            "ip6 or vlan",
            "ether proto 0x0800 or ether proto 0x88cc",
            "len < 100 and not ip",
            "ip[0] & 0xf != 5",
            "ether[12:2] > 0x800",
            "ip6 protochain 6",
        ];
        let types = [0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88cc, 0x0000];
        let facts: Vec<Fact> = types
            .iter()
            .map(|t| Fact::EtherType(*t))
            .chain([Fact::EtherTypeNotIn(vec![0x0800, 0x86dd]), Fact::Short])
            .collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for expr in exprs {
            let orig = Program::new(&compile(expr)).unwrap();
            for fact in &facts {
                let spec = specialize(&compile(expr), fact).map(|p| Program::new(&p).unwrap());
                for _ in 0..400 {
                    let len = match fact {
                        Fact::Short => (next() % 14) as usize,
                        _ => 14 + (next() % 80) as usize,
                    };
                    let mut pkt: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    match fact {
                        Fact::EtherType(t) => pkt[12..14].copy_from_slice(&t.to_be_bytes()),
                        Fact::EtherTypeNotIn(set) => {
                            if set.contains(&u16::from_be_bytes([pkt[12], pkt[13]])) {
                                continue;
                            }
                        }
                        Fact::Short => {}
                    }
                    let want = orig.run(&pkt, pkt.len() as u32);
                    let got = spec.as_ref().map_or(0, |p| p.run(&pkt, pkt.len() as u32));
                    assert_eq!(want != 0, got != 0, "{expr} under {fact:?} on {pkt:02x?}");
                }
            }
        }
    }
}
