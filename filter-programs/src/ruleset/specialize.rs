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
//! VLAN-tagged frames go one step further: the ruleset dispatches them on
//! the outer tag's VLAN ID as well (see [`Fact::Tagged`]), so the rules of
//! `vlan 100 and ...` leave every chain but VLAN 100's.
//!
//! The analysis tracks only whether A holds the halfword at offset 12, or
//! (tagged frames) the tag control field at 14 or its VLAN ID (`& 0xfff`),
//! to a fixpoint (libpcap's `protochain` loops jump backwards). It is
//! sound, never clever: a jump is settled only when the fact decides it for
//! every packet the chain receives.

use crate::cbpf::{AluOp, Insn, JmpOp, Op, RetVal, Size, Src};

/// What every packet of a chain has in common.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// At least 14 bytes, and the halfword at offset 12 is this value.
    EtherType(u16),
    /// At least 14 bytes, and the halfword at offset 12 is none of these.
    EtherTypeNotIn(Vec<u16>),
    /// Fewer than 14 bytes: a load reaching byte 13 or beyond fails.
    Short,
    /// At least 14 bytes, the halfword at offset 12 is `tpid` (an 802.1Q
    /// or 802.1ad tag), and `vid` is what is known of the tag's VLAN ID,
    /// the low 12 bits of the halfword at offset 14.
    Tagged { tpid: u16, vid: Vid },
}

/// What a [`Fact::Tagged`] knows of the VLAN ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vid {
    /// The frame ends within the tag control field (14 or 15 bytes): a
    /// load reaching byte 15 or beyond fails.
    Cut,
    /// At least 16 bytes, and the VLAN ID is this.
    Is(u16),
    /// At least 16 bytes, and the VLAN ID is none of these.
    NotIn(Vec<u16>),
}

impl Fact {
    /// The halfword at offset 12, when the fact fixes it.
    fn ethertype(&self) -> Option<u16> {
        match self {
            Fact::EtherType(t) | Fact::Tagged { tpid: t, .. } => Some(*t),
            _ => None,
        }
    }

    /// The VLAN ID fact, when the tag control field is in the frame.
    fn vid(&self) -> Option<&Vid> {
        match self {
            Fact::Tagged { vid, .. } if *vid != Vid::Cut => Some(vid),
            _ => None,
        }
    }
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
        Op::LdAbs {
            size: Size::H,
            k: 14,
        } if fact.vid().is_some() => vec![(i + 1, A::Tci)],
        Op::Alu {
            op: AluOp::And,
            src: Src::K(0xfff),
        } if a == A::Tci => vec![(i + 1, A::Vid)],
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
            let decided = match src {
                Src::K(k) => decide(fact, a, op, k),
                Src::X => None,
            };
            match decided {
                Some(true) => vec![(next(jt as u32), a)],
                Some(false) => vec![(next(jf as u32), a)],
                None => vec![(next(jt as u32), a), (next(jf as u32), a)],
            }
        }
    }
}

/// Phase 1 of [`specialize`]: what A holds at each reachable instruction,
/// to a fixpoint (libpcap's `protochain` loops). None: not reached.
fn reach(ops: &[Op], fact: &Fact) -> Vec<Option<A>> {
    let n = ops.len();
    let mut state: Vec<Option<A>> = vec![None; n];
    let mut work = Vec::new();
    if n > 0 {
        state[0] = Some(A::Unknown);
        work.push(0);
    }
    while let Some(i) = work.pop() {
        let Some(a) = state[i] else { continue };
        for (to, out_a) in successors(ops, i, a, fact) {
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
    state
}

/// What A holds, as far as the fact is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum A {
    Unknown,
    EtherType,
    /// The halfword at offset 14 (a tagged frame's tag control field).
    Tci,
    /// Its low 12 bits, the VLAN ID.
    Vid,
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
    let state = reach(&ops, fact);
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
            } => {
                if let Some(taken) = decide(fact, a, op, k) {
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
    let end = k as u64 + size.bytes() as u64;
    match fact {
        Fact::Short => end > 13,
        Fact::Tagged { vid: Vid::Cut, .. } => end > 15,
        _ => false,
    }
}

/// `a op k`.
fn holds(op: JmpOp, a: u32, k: u32) -> bool {
    match op {
        JmpOp::Jeq => a == k,
        JmpOp::Jgt => a > k,
        JmpOp::Jge => a >= k,
        JmpOp::Jset => a & k != 0,
    }
}

/// The outcome of `A op k` when A holds `a`, if the fact fixes it.
fn decide(fact: &Fact, a: A, op: JmpOp, k: u32) -> Option<bool> {
    match (a, fact) {
        (A::EtherType, Fact::EtherTypeNotIn(set)) => {
            (op == JmpOp::Jeq && set.iter().any(|t| *t as u32 == k)).then_some(false)
        }
        (A::EtherType, f) => f.ethertype().map(|t| holds(op, t as u32, k)),
        (A::Vid, f) => match f.vid()? {
            Vid::Is(v) => Some(holds(op, *v as u32, k)),
            Vid::NotIn(set) => {
                (op == JmpOp::Jeq && set.iter().any(|v| *v as u32 == k)).then_some(false)
            }
            Vid::Cut => None,
        },
        _ => None,
    }
}

/// The VLAN IDs `prog` compares the outer tag's with, under
/// `Fact::Tagged { tpid, .. }`: `Some(ids)` when every such comparison is
/// `jeq #id` (as libpcap's `vlan N` makes), so that the program means the
/// same for every VLAN ID outside `ids`; `None` when another comparison
/// (`>`, `&`) makes it depend on the ID otherwise.
pub fn vid_tests(prog: &[Insn], tpid: u16) -> Option<Vec<u16>> {
    let fact = Fact::Tagged {
        tpid,
        vid: Vid::NotIn(Vec::new()),
    };
    let ops: Vec<Op> = prog
        .iter()
        .map(|i| i.decode())
        .collect::<Result<_, _>>()
        .ok()?;
    let state = reach(&ops, &fact);
    let mut ids = Vec::new();
    for (i, a) in state.iter().enumerate() {
        if let (Some(A::Vid), Op::Jmp { op, src, .. }) = (a, ops[i]) {
            match (op, src) {
                (JmpOp::Jeq, Src::K(k)) if k < 4096 => ids.push(k as u16),
                (JmpOp::Jeq, Src::K(_)) => {}
                _ => return None,
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbpf::interp::Program;
    use crate::codegen::{self, Dlt, Options};

    fn compile(expr: &str) -> Vec<Insn> {
        codegen::compile(expr, &Options::new(Dlt::En10mb)).unwrap()
    }

    /// A rule of one VLAN ID leaves the other IDs' chains; what it
    /// compares the ID with is known.
    #[test]
    fn vlan_rules_leave_other_ids_chains() {
        let tagged = |vid| Fact::Tagged { tpid: 0x8100, vid };
        let r = compile("vlan 100 and tcp dst port 80");
        assert!(specialize(&r, &tagged(Vid::Is(100))).is_some());
        assert!(specialize(&r, &tagged(Vid::Is(101))).is_none());
        assert!(specialize(&r, &tagged(Vid::NotIn(vec![100]))).is_none());
        assert!(specialize(&r, &tagged(Vid::Cut)).is_none());
        assert!(specialize(
            &r,
            &Fact::Tagged {
                tpid: 0x88a8,
                vid: Vid::Is(100)
            }
        )
        .is_some());
        assert_eq!(vid_tests(&r, 0x8100), Some(vec![100]));
        // (A second `vlan` reads the inner tag, in libpcap's order.)
        assert_eq!(
            vid_tests(&compile("vlan 7 or vlan 3"), 0x8100),
            Some(vec![7])
        );
        let either = compile("ether[14:2] & 0xfff = 3 or vlan 7");
        assert_eq!(vid_tests(&either, 0x8100), Some(vec![3, 7]));
        assert_eq!(vid_tests(&compile("tcp or vlan"), 0x8100), Some(vec![]));
        assert_eq!(vid_tests(&compile("ether[14:2] & 0xfff > 9"), 0x8100), None);
        assert!(specialize(&compile("less 15"), &tagged(Vid::Cut)).is_some());
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
            "vlan 100 and tcp",
            "vlan 100 or vlan 200",
            "vlan and vlan 5",
            "vlan 7 or host 1.2.3.4",
            "not vlan 100",
            "ether[14:2] & 0xfff > 100",
            "ether[14:2] = 100",
            "vlan 100 or ether[14:2] & 0xfff = 200",
        ];
        let types = [0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88cc, 0x0000];
        let tagged = |tpid, vid| Fact::Tagged { tpid, vid };
        let facts: Vec<Fact> = types
            .iter()
            .map(|t| Fact::EtherType(*t))
            .chain([Fact::EtherTypeNotIn(vec![0x0800, 0x86dd]), Fact::Short])
            .chain([
                tagged(0x8100, Vid::Cut),
                tagged(0x8100, Vid::Is(100)),
                tagged(0x8100, Vid::Is(5)),
                tagged(0x88a8, Vid::Is(200)),
                tagged(0x8100, Vid::NotIn(vec![5, 100, 200])),
                tagged(0x88a8, Vid::NotIn(vec![])),
            ])
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
                        Fact::Tagged { vid: Vid::Cut, .. } => 14 + (next() % 2) as usize,
                        Fact::Tagged { .. } => 16 + (next() % 80) as usize,
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
                        Fact::Tagged { tpid, vid } => {
                            pkt[12..14].copy_from_slice(&tpid.to_be_bytes());
                            let id = match vid {
                                Vid::Cut => None,
                                // Random ids hit the set now and then: a
                                // small range.
                                Vid::Is(v) => Some(*v),
                                Vid::NotIn(set) => {
                                    Some((next() % 256) as u16).filter(|v| !set.contains(v))
                                }
                            };
                            if let Some(id) = id {
                                let tci = (next() as u16 & 0xf000) | id;
                                pkt[14..16].copy_from_slice(&tci.to_be_bytes());
                            } else if *vid != Vid::Cut {
                                continue;
                            }
                        }
                    }
                    let want = orig.run(&pkt, pkt.len() as u32);
                    let got = spec.as_ref().map_or(0, |p| p.run(&pkt, pkt.len() as u32));
                    assert_eq!(want != 0, got != 0, "{expr} under {fact:?} on {pkt:02x?}");
                }
            }
        }
    }
}
