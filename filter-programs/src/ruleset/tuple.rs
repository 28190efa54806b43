//! Rules of the common shapes — `host`, `net`, `port`, `tcp`/`udp`/`sctp`
//! and their `and`/`or` combinations — as sets of exact-match tuples over
//! the IPv4 five-tuple, so that the ruleset program can find the first
//! matching rule with one hash lookup per tuple *shape* instead of testing
//! rules one by one.
//!
//! Meaning, on an IPv4 frame whose header and (for a non-fragment TCP, UDP
//! or SCTP packet) ports are all captured: libpcap's code for these
//! expressions loads only those fields, so no load can fail and the
//! expression is the boolean formula over them that [`Term`]s spell out in
//! disjunctive normal form. Frames that don't meet that precondition take
//! the rule-by-rule path, which means what libpcap means in every case.

use std::collections::BTreeSet;

use crate::expr::ast::{ArithKind, Expr, ExprKind, IdKind, Primitive};
use crate::expr::qualifiers::{Dir, Kind, Proto};
use crate::expr::walk::Fold;

/// IP protocol numbers whose ports `port` reads.
pub const PORT_PROTOS: [u8; 3] = [6, 17, 132];
/// Most terms one rule may expand to; beyond, the rule stays rule by rule.
/// (A `portrange` is one term per port: 256 ports of three protocols.)
const MAX_TERMS: usize = 1024;
/// Widest `portrange` expanded into terms.
const MAX_RANGE: u32 = 256;

/// A conjunction of field tests. `l4` terms test ports, which requires a
/// TCP, UDP or SCTP packet that is not a fragment (offset 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Term {
    /// (address, prefix length)
    pub src: Option<(u32, u8)>,
    pub dst: Option<(u32, u8)>,
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

/// The fields a term tests, and how: one hash map per shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shape {
    pub src: Option<u8>,
    pub dst: Option<u8>,
    pub proto: bool,
    pub sport: bool,
    pub dport: bool,
}

/// Bytes of a key: src, dst, proto, l4, sport, dport as little-endian u32.
pub const KEY_SIZE: usize = 24;

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

impl Term {
    const ANY: Term = Term {
        src: None,
        dst: None,
        proto: None,
        sport: None,
        dport: None,
    };

    pub fn shape(&self) -> Shape {
        Shape {
            src: self.src.map(|s| s.1),
            dst: self.dst.map(|d| d.1),
            proto: self.proto.is_some(),
            sport: self.sport.is_some(),
            dport: self.dport.is_some(),
        }
    }

    pub fn l4(&self) -> bool {
        self.sport.is_some() || self.dport.is_some()
    }

    /// The key this term matches under its shape.
    pub fn key(&self) -> [u8; KEY_SIZE] {
        key_of(
            self.src.map_or(0, |(a, l)| a & mask(l)),
            self.dst.map_or(0, |(a, l)| a & mask(l)),
            self.proto.unwrap_or(0),
            self.l4(),
            self.sport.unwrap_or(0),
            self.dport.unwrap_or(0),
        )
    }

    /// Both terms at once, or None when no packet satisfies both.
    fn and(&self, o: &Term) -> Option<Term> {
        fn prefix(a: Option<(u32, u8)>, b: Option<(u32, u8)>) -> Option<Option<(u32, u8)>> {
            match (a, b) {
                (None, x) | (x, None) => Some(x),
                (Some((x, lx)), Some((y, ly))) => {
                    let l = lx.min(ly);
                    (x & mask(l) == y & mask(l)).then_some(if lx >= ly {
                        Some((x, lx))
                    } else {
                        Some((y, ly))
                    })
                }
            }
        }
        fn exact<T: PartialEq + Copy>(a: Option<T>, b: Option<T>) -> Option<Option<T>> {
            match (a, b) {
                (None, x) | (x, None) => Some(x),
                (Some(x), Some(y)) => (x == y).then_some(Some(x)),
            }
        }
        let t = Term {
            src: prefix(self.src, o.src)?,
            dst: prefix(self.dst, o.dst)?,
            proto: exact(self.proto, o.proto)?,
            sport: exact(self.sport, o.sport)?,
            dport: exact(self.dport, o.dport)?,
        };
        // Ports exist only for the port protocols.
        match t.proto {
            Some(p) if t.l4() && !PORT_PROTOS.contains(&p) => None,
            _ => Some(t),
        }
    }

    /// Does a packet with these fields satisfy the term? (`ports` is None
    /// when the packet is not a TCP/UDP/SCTP non-fragment.)
    pub fn matches(&self, src: u32, dst: u32, proto: u8, ports: Option<(u16, u16)>) -> bool {
        let pfx = |t: Option<(u32, u8)>, v: u32| t.is_none_or(|(a, l)| a & mask(l) == v & mask(l));
        let port_ok = match (self.l4(), ports) {
            (false, _) => true,
            (true, None) => false,
            (true, Some((s, d))) => {
                self.sport.is_none_or(|p| p == s) && self.dport.is_none_or(|p| p == d)
            }
        };
        pfx(self.src, src) && pfx(self.dst, dst) && self.proto.is_none_or(|p| p == proto) && port_ok
    }
}

/// The key of a packet's fields under a shape (what the program builds).
pub fn key_of(src: u32, dst: u32, proto: u8, l4: bool, sport: u16, dport: u16) -> [u8; KEY_SIZE] {
    let mut k = [0u8; KEY_SIZE];
    for (i, v) in [
        src,
        dst,
        proto as u32,
        l4 as u32,
        sport as u32,
        dport as u32,
    ]
    .iter()
    .enumerate()
    {
        k[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    k
}

/// The terms of an expression, or None when it is not of the common shapes.
pub fn terms(expr: &str) -> Option<Vec<Term>> {
    let ast = crate::expr::parse(expr).ok()?;
    let set = dnf(ast.root.as_ref()?)?;
    let out = expand_ports(set);
    (out.len() <= MAX_TERMS).then(|| out.into_iter().collect())
}

/// A port term without a protocol stands for the three port protocols.
fn expand_ports(set: BTreeSet<Term>) -> BTreeSet<Term> {
    let mut out = BTreeSet::new();
    for t in set {
        if t.l4() && t.proto.is_none() {
            for p in PORT_PROTOS {
                out.insert(Term {
                    proto: Some(p),
                    ..t
                });
            }
        } else {
            out.insert(t);
        }
    }
    out
}

/// Bottom up without recursion (see `Expr::fold`), so chains and nesting
/// of any depth cost no stack. `None` (not expressible) stops the walk.
fn dnf(e: &Expr) -> Option<BTreeSet<Term>> {
    e.fold(|e, node: Fold<BTreeSet<Term>>| {
        let set = match node {
            Fold::Leaf => dnf_operand(e),
            Fold::Not(_) => None,
            Fold::And(a, b) if a.len() * b.len() > 4 * MAX_TERMS => None,
            Fold::And(a, b) => {
                let mut out = BTreeSet::new();
                for x in &a {
                    for y in &b {
                        if let Some(t) = x.and(y) {
                            out.insert(t);
                        }
                    }
                }
                Some(out)
            }
            Fold::Or(mut a, b) => {
                a.extend(b);
                Some(a)
            }
        };
        set.filter(|s| s.len() <= MAX_TERMS).ok_or(())
    })
    .ok()
}

fn dnf_operand(e: &Expr) -> Option<BTreeSet<Term>> {
    let set = match &e.kind {
        ExprKind::ProtoAbbrev(Proto::Ip) => [Term::ANY].into(),
        // libpcap's `icmp` is `ip proto 1`.
        ExprKind::ProtoAbbrev(Proto::Icmp) => [Term {
            proto: Some(1),
            ..Term::ANY
        }]
        .into(),
        ExprKind::ProtoAbbrev(p) => [Term {
            proto: Some(proto_number(*p)?),
            ..Term::ANY
        }]
        .into(),
        ExprKind::Primitive(p) => primitive(p)?,
        _ => return None,
    };
    (set.len() <= MAX_TERMS).then_some(set)
}

fn proto_number(p: Proto) -> Option<u8> {
    match p {
        Proto::Tcp => Some(6),
        Proto::Udp => Some(17),
        Proto::Sctp => Some(132),
        _ => None,
    }
}

/// One or two terms for a directional test: `src`, `dst`, either, or both.
fn directed(dir: Dir, src: Term, dst: Term, both: Option<Term>) -> Option<BTreeSet<Term>> {
    Some(match dir {
        Dir::Src => [src].into(),
        Dir::Dst => [dst].into(),
        Dir::Default | Dir::SrcOrDst => [src, dst].into(),
        Dir::SrcAndDst => [both?].into(),
        _ => return None,
    })
}

fn primitive(p: &Primitive) -> Option<BTreeSet<Term>> {
    let q = &p.quals;
    match (q.kind, &p.id.kind) {
        (Kind::Host | Kind::Default, IdKind::Ipv4(lit)) | (Kind::Net, IdKind::Ipv4(lit))
            if lit.octets == 4 && matches!(q.proto, None | Some(Proto::Ip)) =>
        {
            let a = lit.value?;
            let t = |s, d| Term {
                src: s,
                dst: d,
                ..Term::ANY
            };
            directed(
                q.dir,
                t(Some((a, 32)), None),
                t(None, Some((a, 32))),
                Some(t(Some((a, 32)), Some((a, 32)))),
            )
        }
        (Kind::Net, IdKind::Ipv4Prefix { addr, len })
            if addr.octets == 4 && len.value <= 32 && matches!(q.proto, None | Some(Proto::Ip)) =>
        {
            let (a, l) = (addr.value?, len.value as u8);
            let t = |s, d| Term {
                src: s,
                dst: d,
                ..Term::ANY
            };
            directed(
                q.dir,
                t(Some((a, l)), None),
                t(None, Some((a, l))),
                Some(t(Some((a, l)), Some((a, l)))),
            )
        }
        (Kind::Port, IdKind::Num(n)) if *n <= 0xffff => ports(q.proto, q.dir, *n, *n),
        (Kind::Portrange, IdKind::Num(n)) if *n <= 0xffff => ports(q.proto, q.dir, *n, *n),
        (
            Kind::Portrange,
            IdKind::Name {
                text,
                escaped: false,
            },
        ) => {
            // Numbers only (a service name's port is the host's business);
            // libpcap takes the bounds in either order.
            let (a, b) = text.split_once('-')?;
            let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            let (lo, hi) = (a.min(b), a.max(b));
            (hi <= 0xffff && hi - lo < MAX_RANGE).then_some(())?;
            ports(q.proto, q.dir, lo, hi)
        }
        _ => None,
    }
}

/// `[proto] [dir] port` for every port in `lo..=hi`.
fn ports(proto: Option<Proto>, dir: Dir, lo: u32, hi: u32) -> Option<BTreeSet<Term>> {
    let proto = match proto {
        None => None,
        Some(p) => Some(proto_number(p)?),
    };
    let t = |s, d| Term {
        proto,
        sport: s,
        dport: d,
        ..Term::ANY
    };
    let mut out = BTreeSet::new();
    for port in lo..=hi {
        let port = port as u16;
        out.extend(directed(
            dir,
            t(Some(port), None),
            t(None, Some(port)),
            Some(t(Some(port), Some(port))),
        )?);
    }
    Some(out)
}

/// Terms of which every IPv4 frame (whose header and ports are captured)
/// that the expression matches satisfies one: exact terms where the
/// expression has them, else those of an `and` operand, else the
/// protocol a transport-layer load (`icmp[0]`, `tcp[13]`) needs. `None`
/// when no such set is known. A rule of other shapes with such a guard
/// is skipped when the lookups find none of its terms.
pub fn guard(expr: &str) -> Option<Vec<Term>> {
    let ast = crate::expr::parse(expr).ok()?;
    let set = ast
        .root
        .as_ref()?
        .fold(|e, node: Fold<Option<BTreeSet<Term>>>| {
            let set = match node {
                Fold::Leaf => dnf(e).or_else(|| load_guard(e)),
                Fold::Not(_) => None,
                // Either operand's guard holds for the conjunction; the
                // smaller set makes the sharper guard.
                Fold::And(a, b) => match (a, b) {
                    (Some(a), Some(b)) => Some(if sharper(&a, &b) { a } else { b }),
                    (a, b) => a.or(b),
                },
                Fold::Or(a, b) => match (a, b) {
                    (Some(mut a), Some(b)) => {
                        a.extend(b);
                        Some(a)
                    }
                    _ => None,
                },
            };
            // A guard that every IPv4 frame passes guards nothing.
            Ok::<_, ()>(set.filter(|s| s.len() <= MAX_TERMS && !s.contains(&Term::ANY)))
        });
    Some(expand_ports(set.ok().flatten()?).into_iter().collect())
}

/// Is guard `a` at least as sharp as `b`: fewer terms, or as many testing
/// more fields?
fn sharper(a: &BTreeSet<Term>, b: &BTreeSet<Term>) -> bool {
    let fields = |s: &BTreeSet<Term>| -> usize {
        s.iter()
            .map(|t| {
                [t.src.is_some(), t.dst.is_some(), t.proto.is_some(), t.l4()]
                    .iter()
                    .filter(|x| **x)
                    .count()
            })
            .sum()
    };
    (a.len(), usize::MAX - fields(a)) <= (b.len(), usize::MAX - fields(b))
}

/// The protocol that the transport-layer loads of a relation need: libpcap
/// loads `tcp[i]`, `udp[i]`, `sctp[i]` and `icmp[i]` only from IPv4
/// packets of that protocol.
fn load_guard(e: &Expr) -> Option<BTreeSet<Term>> {
    let ExprKind::Relation(r) = &e.kind else {
        return None;
    };
    let mut protos = Vec::new();
    for side in [&r.lhs, &r.rhs] {
        side.fold(|a, _| {
            if let ArithKind::Load { proto, .. } = a.kind {
                protos.push(proto);
            }
            Ok::<_, ()>(())
        })
        .ok()?;
    }
    // All loads must need one and the same protocol.
    let number = |p: &Proto| match p {
        Proto::Icmp => Some(1),
        p => proto_number(*p),
    };
    let mut numbers = protos.iter().map(number);
    let first = numbers.next()??;
    numbers.all(|n| n == Some(first)).then(|| {
        [Term {
            proto: Some(first),
            ..Term::ANY
        }]
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_shapes_expand() {
        let t = terms("tcp dst port 22 and src net 10.0.0.0/8").unwrap();
        assert_eq!(
            t,
            vec![Term {
                src: Some((0x0a00_0000, 8)),
                dst: None,
                proto: Some(6),
                sport: None,
                dport: Some(22)
            }]
        );
        assert_eq!(terms("host 10.1.2.3").unwrap().len(), 2);
        // (src or dst) x (sport or dport) x (tcp, udp, sctp)
        assert_eq!(terms("host 10.1.2.3 and port 53").unwrap().len(), 12);
        assert_eq!(terms("udp port 53 or tcp port 53").unwrap().len(), 4);
        // Contradictions vanish.
        assert_eq!(terms("tcp and udp").unwrap(), vec![]);
        assert_eq!(
            terms("src host 10.0.0.1 and src host 10.0.0.2").unwrap(),
            vec![]
        );
        // libpcap's ports are TCP, UDP or SCTP ports: none for ICMP.
        assert_eq!(terms("icmp and port 22").unwrap(), vec![]);
        assert_eq!(terms("icmp").unwrap().len(), 1);
        // A port range is a term per port; a name or a wide range is not.
        assert_eq!(terms("tcp dst portrange 6000-6063").unwrap().len(), 64);
        assert_eq!(terms("tcp dst portrange 6063-6000").unwrap().len(), 64);
        assert_eq!(terms("udp portrange 53-53").unwrap().len(), 2);
        assert!(terms("tcp portrange 1-1000").is_none());
        for other in [
            "not tcp",
            "ip6",
            "arp",
            "host ::1",
            "port ssh",
            "len > 100",
            "net 10",
            "tcp[13] = 2",
        ] {
            assert!(terms(other).is_none(), "{other}");
        }
    }

    #[test]
    fn guards_are_necessary_terms() {
        let g = guard("tcp[tcpflags] & tcp-syn != 0 and tcp dst port 22").unwrap();
        assert_eq!(g, terms("tcp dst port 22").unwrap(), "the sharper operand");
        assert_eq!(
            guard("ip[6:2] & 0x1fff != 0 and src net 10.1.0.0/16").unwrap(),
            terms("src net 10.1.0.0/16").unwrap()
        );
        assert_eq!(
            guard("icmp[icmptype] == 8").unwrap(),
            terms("icmp").unwrap()
        );
        let either = guard("udp port 53 or icmp[icmptype] == 13").unwrap();
        assert_eq!(either.len(), 3, "{either:?}");
        assert_eq!(
            guard("tcp dst port 22").unwrap(),
            terms("tcp dst port 22").unwrap()
        );
        // No guard: negations, loads that every IPv4 frame may pass,
        // loads of two protocols, a disjunct with no guard.
        for none in [
            "not tcp",
            "ip[8] > 5",
            "tcp[0] = udp[0]",
            "len > 100 or host 10.0.0.1",
            "ip and len > 100",
        ] {
            assert_eq!(guard(none), None, "{none}");
        }
    }
}
