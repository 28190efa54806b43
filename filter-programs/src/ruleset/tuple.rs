//! Rules of the common shapes — `host`, `net`, `port`, `portrange`,
//! `tcp`/`udp`/`sctp`/`icmp`/`icmp6`, `ip`/`ip6`, `arp`, the ICMP type
//! and code (`icmp[icmptype] == N`) and their `and`/`or` combinations —
//! as sets of exact-match tuples over the IPv4 or IPv6 five-tuple (ARP:
//! its two protocol addresses), so that the ruleset program can find the first matching
//! rule with one hash lookup per tuple *shape* instead of testing rules
//! one by one.
//!
//! Meaning, per [`Family`], on a frame of that family whose header and
//! (for a TCP, UDP or SCTP packet that is not an IPv4 fragment) ports are
//! all captured, and (IPv6) whose next header is not a fragment header:
//! libpcap's code for these expressions loads only those fields, so no
//! load can fail and the expression is the boolean formula over them that
//! [`Term`]s spell out in disjunctive normal form. A test of the other
//! family is false there. Frames that don't meet that precondition take
//! the rule-by-rule path, which means what libpcap means in every case.

use std::collections::BTreeSet;

use crate::expr::ast::{
    Arith, ArithKind, ArithOp, Expr, ExprKind, IdKind, Primitive, RelOp, Relation,
};
use crate::expr::qualifiers::{Dir, Kind, Proto};
use crate::expr::walk::Fold;

use super::negate::{self, NTerm};

/// IP protocol numbers whose ports `port` reads.
pub const PORT_PROTOS: [u8; 3] = [6, 17, 132];
/// Most terms one rule may expand to; beyond, the rule stays rule by rule.
/// (A `portrange` is one term per port: 256 ports of three protocols.)
pub const MAX_TERMS: usize = 1024;
/// Widest `portrange` expanded into terms.
const MAX_RANGE: u32 = 256;

/// The network layer a term is about: the ruleset program keeps one set
/// of tables per family, looked up from the chain of its EtherType.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
    /// ARP over Ethernet: libpcap's `host`/`net` test its sender (offset
    /// 28) and target (38) protocol addresses as IPv4 addresses; nothing
    /// else of the table shapes matches an ARP frame.
    Arp,
}

impl Family {
    pub const ALL: [Family; 3] = [Family::V4, Family::V6, Family::Arp];

    /// Address bits.
    pub fn bits(self) -> u32 {
        match self {
            Family::V4 | Family::Arp => 32,
            Family::V6 => 128,
        }
    }

    pub fn ethertype(self) -> u16 {
        match self {
            Family::V4 => 0x0800,
            Family::V6 => 0x86dd,
            Family::Arp => 0x0806,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
            Family::Arp => "ARP",
        }
    }
}

/// A conjunction of field tests. `l4` terms test ports, which requires a
/// TCP, UDP or SCTP packet, or the ICMP (ICMPv6) type and code, which
/// requires that protocol (IPv4: not a fragment, offset 0). Addresses are
/// held in the low `family.bits()` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Term {
    pub family: Family,
    /// (address, prefix length)
    pub src: Option<(u128, u8)>,
    pub dst: Option<(u128, u8)>,
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// ICMP (ICMPv6) type and code: `icmp[icmptype] == N`,
    /// `icmp6[icmp6code] == N`.
    pub itype: Option<u8>,
    pub icode: Option<u8>,
    /// The TCP flags byte (`tcp[tcpflags]`, IPv4): a test of it is the set
    /// of the 256 values that pass, a term each.
    pub flags: Option<u8>,
}

/// The fields a term tests, and how: one hash map per shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shape {
    pub family: Family,
    pub src: Option<u8>,
    pub dst: Option<u8>,
    pub proto: bool,
    pub sport: bool,
    pub dport: bool,
    pub itype: bool,
    pub icode: bool,
    pub flags: bool,
}

/// One 32-bit word of a key. Keys hold only what their shape tests, so
/// that the kernel hashes and compares as few bytes as it can: a /64
/// IPv6 source is two words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    /// Word `k` of the source address under `mask` (IPv4: the address as
    /// a number; IPv6: four bytes as the packet holds them, read
    /// little-endian, as the program loads them).
    Src {
        k: usize,
        mask: u32,
    },
    Dst {
        k: usize,
        mask: u32,
    },
    Proto,
    Sport,
    Dport,
    /// The ICMP type and code: the first two bytes of the ICMP header,
    /// which the program reads into the port fields.
    Itype,
    Icode,
    Flags,
    /// The key of a shape that tests nothing (`ip`): a hash key is never
    /// empty.
    Zero,
}

impl Shape {
    /// The key's words, in order.
    pub fn words(&self) -> Vec<Word> {
        let mut w = Vec::new();
        for (len, src) in [(self.src, true), (self.dst, false)] {
            let Some(len) = len else { continue };
            for (k, mask) in word_masks(self.family, len).into_iter().enumerate() {
                if mask != 0 {
                    w.push(if src {
                        Word::Src { k, mask }
                    } else {
                        Word::Dst { k, mask }
                    });
                }
            }
        }
        for (used, word) in [
            (self.proto, Word::Proto),
            (self.sport, Word::Sport),
            (self.dport, Word::Dport),
            (self.itype, Word::Itype),
            (self.icode, Word::Icode),
            (self.flags, Word::Flags),
        ] {
            if used {
                w.push(word);
            }
        }
        if w.is_empty() {
            w.push(Word::Zero);
        }
        w
    }

    /// Bytes of its keys.
    pub fn key_size(&self) -> usize {
        4 * self.words().len()
    }
}

/// The masks, per 32-bit word, of a `len`-bit prefix: IPv4 addresses are
/// held as numbers, IPv6 ones as the packet's bytes.
fn word_masks(family: Family, len: u8) -> Vec<u32> {
    let m = mask(family.bits(), len);
    match family {
        Family::V4 | Family::Arp => vec![m as u32],
        Family::V6 => m
            .to_be_bytes()
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// The prefix mask of `len` bits in a `bits`-bit address.
pub fn mask(bits: u32, len: u8) -> u128 {
    let full = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    if len == 0 {
        0
    } else {
        (full << (bits - u32::from(len).min(bits))) & full
    }
}

impl Term {
    /// The term that tests nothing.
    pub const fn any(family: Family) -> Term {
        Term {
            family,
            src: None,
            dst: None,
            proto: None,
            sport: None,
            dport: None,
            itype: None,
            icode: None,
            flags: None,
        }
    }

    pub fn shape(&self) -> Shape {
        Shape {
            family: self.family,
            src: self.src.map(|s| s.1),
            dst: self.dst.map(|d| d.1),
            proto: self.proto.is_some(),
            sport: self.sport.is_some(),
            dport: self.dport.is_some(),
            itype: self.itype.is_some(),
            icode: self.icode.is_some(),
            flags: self.flags.is_some(),
        }
    }

    /// Does it test a field of the transport header (ports, ICMP type or
    /// code)?
    pub fn l4(&self) -> bool {
        self.ports() || self.itype.is_some() || self.icode.is_some() || self.flags.is_some()
    }

    pub fn ports(&self) -> bool {
        self.sport.is_some() || self.dport.is_some()
    }

    /// The key this term matches under its shape (see [`Shape::words`]).
    pub fn key(&self) -> Vec<u8> {
        let bits = self.family.bits();
        let addr = |a: Option<(u128, u8)>| a.map_or(0, |(a, l)| a & mask(bits, l));
        let word = |a: u128, k: usize| -> u32 {
            match self.family {
                Family::V4 | Family::Arp => a as u32,
                // As the packet holds it: network order.
                Family::V6 => {
                    let b = a.to_be_bytes();
                    u32::from_le_bytes([b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]])
                }
            }
        };
        let mut key = Vec::new();
        for w in self.shape().words() {
            let v = match w {
                Word::Src { k, .. } => word(addr(self.src), k),
                Word::Dst { k, .. } => word(addr(self.dst), k),
                Word::Proto => u32::from(self.proto.unwrap_or(0)),
                Word::Sport => u32::from(self.sport.unwrap_or(0)),
                Word::Dport => u32::from(self.dport.unwrap_or(0)),
                Word::Itype => u32::from(self.itype.unwrap_or(0)),
                Word::Icode => u32::from(self.icode.unwrap_or(0)),
                Word::Flags => u32::from(self.flags.unwrap_or(0)),
                Word::Zero => 0,
            };
            key.extend_from_slice(&v.to_le_bytes());
        }
        key
    }

    /// Both terms at once, or None when no packet satisfies both.
    pub fn and(&self, o: &Term) -> Option<Term> {
        if self.family != o.family {
            return None;
        }
        let bits = self.family.bits();
        let prefix = |a: Option<(u128, u8)>, b: Option<(u128, u8)>| match (a, b) {
            (None, x) | (x, None) => Some(x),
            (Some((x, lx)), Some((y, ly))) => {
                let m = mask(bits, lx.min(ly));
                (x & m == y & m).then_some(if lx >= ly {
                    Some((x, lx))
                } else {
                    Some((y, ly))
                })
            }
        };
        fn exact<T: PartialEq + Copy>(a: Option<T>, b: Option<T>) -> Option<Option<T>> {
            match (a, b) {
                (None, x) | (x, None) => Some(x),
                (Some(x), Some(y)) => (x == y).then_some(Some(x)),
            }
        }
        let t = Term {
            family: self.family,
            src: prefix(self.src, o.src)?,
            dst: prefix(self.dst, o.dst)?,
            proto: exact(self.proto, o.proto)?,
            sport: exact(self.sport, o.sport)?,
            dport: exact(self.dport, o.dport)?,
            itype: exact(self.itype, o.itype)?,
            icode: exact(self.icode, o.icode)?,
            flags: exact(self.flags, o.flags)?,
        };
        // Ports exist only for the port protocols, type and code only for
        // ICMP (ICMPv6), and not both.
        let icmp = t.itype.is_some() || t.icode.is_some();
        match t.proto {
            _ if icmp && t.ports() => None,
            Some(p) if t.ports() && !PORT_PROTOS.contains(&p) => None,
            Some(p) if icmp && Some(p) != icmp_proto(t.family) => None,
            Some(p) if t.flags.is_some() && p != 6 => None,
            _ => Some(t),
        }
    }
}

/// The IPv4 terms of an expression ([`terms_in`]).
pub fn terms(expr: &str) -> Option<Vec<Term>> {
    terms_in(expr, Family::V4)
}

/// The terms of an expression on frames of `family`, or None when it is
/// not of the common shapes. Empty: it matches no such frame.
pub fn terms_in(expr: &str, family: Family) -> Option<Vec<Term>> {
    let out = negate::positive(&nterms_in(expr, family)?)?;
    (out.len() <= MAX_TERMS).then(|| out.into_iter().collect())
}

/// The terms of an expression on frames of `family` with `not` of any
/// field kept as exclusions ([`negate`]), for the bitmaps; None when it
/// is not of the common shapes.
pub fn nterms_in(expr: &str, family: Family) -> Option<Vec<NTerm>> {
    let ast = crate::expr::parse(expr).ok()?;
    let set = dnf(ast.root.as_ref()?, family)?;
    let out = expand_ports(set);
    (out.len() <= MAX_TERMS).then(|| out.into_iter().collect())
}

/// A port term without a protocol stands for the three port protocols.
fn expand_ports(set: BTreeSet<NTerm>) -> BTreeSet<NTerm> {
    let mut out = BTreeSet::new();
    for t in set {
        if t.term.ports() && t.term.proto.is_none() {
            for p in PORT_PROTOS {
                let n = NTerm {
                    term: Term {
                        proto: Some(p),
                        ..t.term
                    },
                    not: t.not.clone(),
                };
                out.extend(n.normal());
            }
        } else {
            out.insert(t);
        }
    }
    out
}

/// Bottom up without recursion (see `Expr::fold`), so chains and nesting
/// of any depth cost no stack. `None` (not expressible) stops the walk.
fn dnf(e: &Expr, family: Family) -> Option<BTreeSet<NTerm>> {
    e.fold(|e, node: Fold<BTreeSet<NTerm>>| {
        let set = match node {
            Fold::Leaf => dnf_operand(e, family).map(|s| s.into_iter().map(NTerm::from).collect()),
            // Ports name their protocols first: `not port 80` excludes
            // them from TCP, UDP and SCTP.
            Fold::Not(a) => negate::complement(&expand_ports(a), family),
            Fold::And(a, b) if a.len() * b.len() > 4 * MAX_TERMS => None,
            Fold::And(a, b) => Some(
                (a.iter())
                    .flat_map(|x| b.iter().filter_map(move |y| x.and(y)))
                    .collect(),
            ),
            Fold::Or(mut a, b) => {
                a.extend(b);
                Some(a)
            }
        };
        set.filter(|s| s.len() <= MAX_TERMS).ok_or(())
    })
    .ok()
}

/// A protocol test on frames of `family`: Some(Some(None)) for "every
/// frame" (`ip` on IPv4), Some(Some(Some(p))) for "protocol p",
/// Some(None) for "no frame", None when not a table shape.
fn proto_abbrev(p: Proto, family: Family) -> Option<Option<Option<u8>>> {
    Some(match (p, family) {
        (Proto::Ip, Family::V4) | (Proto::Ip6, Family::V6) | (Proto::Arp, Family::Arp) => {
            Some(None)
        }
        // libpcap's `icmp` is `ip proto 1`, `icmp6` is IPv6's 58.
        (Proto::Icmp, Family::V4) => Some(Some(1)),
        (Proto::Icmp6, Family::V6) => Some(Some(58)),
        (Proto::Ip | Proto::Ip6 | Proto::Icmp | Proto::Icmp6 | Proto::Arp | Proto::Rarp, _) => None,
        // An IP protocol: none on ARP frames.
        (p, Family::Arp) => {
            proto_number(p)?;
            None
        }
        (p, _) => Some(Some(proto_number(p)?)),
    })
}

fn dnf_operand(e: &Expr, family: Family) -> Option<BTreeSet<Term>> {
    let set = match &e.kind {
        ExprKind::ProtoAbbrev(p) => match proto_abbrev(*p, family)? {
            Some(proto) => [Term {
                proto,
                ..Term::any(family)
            }]
            .into(),
            // Of another family.
            None => BTreeSet::new(),
        },
        ExprKind::Primitive(p) => primitive(p, family)?,
        ExprKind::Relation(r) => icmp_relation(r, family).or_else(|| flags_relation(r, family))?,
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

/// ICMP's protocol number in `family` (ICMPv6's in IPv6).
pub fn icmp_proto(family: Family) -> Option<u8> {
    match family {
        Family::V4 => Some(1),
        Family::V6 => Some(58),
        Family::Arp => None,
    }
}

/// Does the program read the transport fields (ports, ICMP type and
/// code) of protocol `p` in `family`?
pub fn reads_l4(p: u8, family: Family) -> bool {
    PORT_PROTOS.contains(&p) || Some(p) == icmp_proto(family)
}

/// `icmp[icmptype] == N` (`icmp[0]`), `icmp[icmpcode] == N` (`icmp[1]`)
/// and the same of `icmp6`, either way round: one term of ICMP's
/// protocol and the type or code; none on frames of another family or
/// for a value no byte holds. Any other relation: None.
fn icmp_relation(r: &Relation, family: Family) -> Option<BTreeSet<Term>> {
    if r.op != RelOp::Eq {
        return None;
    }
    let field = |a: &Arith| -> Option<(Family, u32)> {
        let ArithKind::Load { proto, index, size } = &a.kind else {
            return None;
        };
        let of = match proto {
            Proto::Icmp => Family::V4,
            Proto::Icmp6 => Family::V6,
            _ => return None,
        };
        let ArithKind::Num(i) = index.kind else {
            return None;
        };
        (i <= 1 && size.as_ref().is_none_or(|s| s.value == 1)).then_some((of, i))
    };
    let num = |a: &Arith| match a.kind {
        ArithKind::Num(n) => Some(n),
        _ => None,
    };
    let ((of, i), v) = match (field(&r.lhs), num(&r.rhs)) {
        (Some(f), Some(v)) => (f, v),
        _ => (field(&r.rhs)?, num(&r.lhs)?),
    };
    if of != family || v > 0xff {
        return Some(BTreeSet::new());
    }
    let v = Some(v as u8);
    let (itype, icode) = if i == 0 { (v, None) } else { (None, v) };
    Some(
        [Term {
            proto: icmp_proto(family),
            itype,
            icode,
            ..Term::any(family)
        }]
        .into(),
    )
}

/// A relation of `tcp[tcpflags]` (`tcp[13]`, one byte) and constants
/// alone: the values of the byte that pass, a term of TCP each (none on
/// frames other than IPv4: libpcap reads `tcp[]` at IPv4's header
/// length). Any other relation: None.
fn flags_relation(r: &Relation, family: Family) -> Option<BTreeSet<Term>> {
    let mut loads = false;
    for side in [&r.lhs, &r.rhs] {
        flags_value(side, 0, &mut loads)?;
    }
    if !loads {
        return None;
    }
    if family != Family::V4 {
        return Some(BTreeSet::new());
    }
    let mut out = BTreeSet::new();
    for v in 0..=255u32 {
        let (l, r_) = (
            flags_value(&r.lhs, v, &mut loads)?,
            flags_value(&r.rhs, v, &mut loads)?,
        );
        let pass = match r.op {
            RelOp::Gt => l > r_,
            RelOp::Ge => l >= r_,
            RelOp::Eq => l == r_,
            RelOp::Le => l <= r_,
            RelOp::Lt => l < r_,
            RelOp::Ne => l != r_,
        };
        if pass {
            out.insert(Term {
                proto: Some(6),
                flags: Some(v as u8),
                ..Term::any(family)
            });
        }
    }
    Some(out)
}

/// `a` with the flags byte `v`, in classic BPF's 32-bit arithmetic (what
/// libpcap compiles it to); `loads` is set when it reads the byte. None:
/// another load, or an operation that might fail (division).
fn flags_value(a: &Arith, v: u32, loads: &mut bool) -> Option<u32> {
    Some(match &a.kind {
        ArithKind::Num(n) => *n,
        ArithKind::Load {
            proto: Proto::Tcp,
            index,
            size,
        } => {
            let one = size.as_ref().is_none_or(|s| s.value == 1);
            if !(one && matches!(index.kind, ArithKind::Num(13))) {
                return None;
            }
            *loads = true;
            v
        }
        ArithKind::Binary { op, lhs, rhs } => {
            let (x, y) = (flags_value(lhs, v, loads)?, flags_value(rhs, v, loads)?);
            match op {
                ArithOp::Add => x.wrapping_add(y),
                ArithOp::Sub => x.wrapping_sub(y),
                ArithOp::Mul => x.wrapping_mul(y),
                ArithOp::And => x & y,
                ArithOp::Or => x | y,
                ArithOp::Xor => x ^ y,
                // A shift by 32 or more means different things to libpcap
                // and the kernel: not a table shape.
                ArithOp::Shl if y < 32 => x << y,
                ArithOp::Shr if y < 32 => x >> y,
                _ => return None,
            }
        }
        _ => return None,
    })
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

/// `host`/`net` of address `a` with prefix `len` tested in frames of
/// family `of` (`None`: of no family with tables), on frames of `family`
/// (none of them when the families differ).
fn address(
    dir: Dir,
    a: u128,
    len: u8,
    of: Option<Family>,
    family: Family,
) -> Option<BTreeSet<Term>> {
    let t = |s, d| Term {
        src: s,
        dst: d,
        ..Term::any(family)
    };
    let p = Some((a, len));
    let set = directed(dir, t(p, None), t(None, p), Some(t(p, p)))?;
    Some(if of == Some(family) {
        set
    } else {
        BTreeSet::new()
    })
}

fn primitive(p: &Primitive, family: Family) -> Option<BTreeSet<Term>> {
    let q = &p.quals;
    // An IPv4 address without a protocol is tested in IPv4, ARP and RARP
    // frames (RARP has no tables: such a rule is in the chain there).
    let v4 = matches!(q.proto, None | Some(Proto::Ip | Proto::Arp | Proto::Rarp));
    let v4_of = match (q.proto, family) {
        (None, Family::V4 | Family::Arp) => Some(family),
        (Some(Proto::Ip), _) => Some(Family::V4),
        (Some(Proto::Arp), _) => Some(Family::Arp),
        _ => None,
    };
    let v6 = matches!(q.proto, None | Some(Proto::Ip6));
    match (q.kind, &p.id.kind) {
        (Kind::Host | Kind::Default, IdKind::Ipv4(lit)) | (Kind::Net, IdKind::Ipv4(lit))
            if lit.octets == 4 && v4 =>
        {
            address(q.dir, u128::from(lit.value?), 32, v4_of, family)
        }
        (Kind::Net, IdKind::Ipv4Prefix { addr, len })
            if addr.octets == 4 && len.value <= 32 && v4 =>
        {
            let a = u128::from(addr.value?);
            address(q.dir, a, len.value as u8, v4_of, family)
        }
        (Kind::Host | Kind::Default | Kind::Net, IdKind::Ipv6(a)) if v6 => {
            address(q.dir, u128::from(*a), 128, Some(Family::V6), family)
        }
        (Kind::Net, IdKind::Ipv6Prefix { addr, len }) if len.value <= 128 && v6 => {
            let a = u128::from(*addr);
            address(q.dir, a, len.value as u8, Some(Family::V6), family)
        }
        (Kind::Port, IdKind::Num(n)) if *n <= 0xffff => ports(q.proto, q.dir, *n, *n, family),
        (Kind::Portrange, IdKind::Num(n)) if *n <= 0xffff => ports(q.proto, q.dir, *n, *n, family),
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
            ports(q.proto, q.dir, lo, hi, family)
        }
        _ => None,
    }
}

/// `[proto] [dir] port` for every port in `lo..=hi`.
fn ports(
    proto: Option<Proto>,
    dir: Dir,
    lo: u32,
    hi: u32,
    family: Family,
) -> Option<BTreeSet<Term>> {
    let proto = match proto {
        None => None,
        Some(p) => Some(proto_number(p)?),
    };
    if family == Family::Arp {
        // No port in an ARP frame.
        return Some(BTreeSet::new());
    }
    let t = |s, d| Term {
        proto,
        sport: s,
        dport: d,
        ..Term::any(family)
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

/// [`guard_in`] on IPv4 frames.
pub fn guard(expr: &str) -> Option<Vec<Term>> {
    guard_in(expr, Family::V4)
}

/// Terms of which every frame of `family` (whose header and ports are
/// captured) that the expression matches satisfies one: exact terms where
/// the expression has them, else those of an `and` operand, else the
/// protocol a transport-layer load (`icmp[0]`, `tcp[13]`) needs. `None`
/// when no such set is known. A rule of other shapes with such a guard
/// is skipped when the lookups find none of its terms.
pub fn guard_in(expr: &str, family: Family) -> Option<Vec<Term>> {
    if family == Family::Arp {
        // Only exact terms: an ARP frame has no protocol field to guard by.
        return None;
    }
    let ast = crate::expr::parse(expr).ok()?;
    let any = Term::any(family);
    let set = ast
        .root
        .as_ref()?
        .fold(|e, node: Fold<Option<BTreeSet<Term>>>| {
            let set = match node {
                Fold::Leaf => dnf(e, family)
                    .and_then(|s| negate::positive(&s.into_iter().collect::<Vec<_>>()))
                    .or_else(|| load_guard(e, family)),
                Fold::Not(_) => None,
                // Either operand's guard holds for the conjunction; the
                // sharper one is kept.
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
            // A guard that every frame passes guards nothing.
            Ok::<_, ()>(set.filter(|s| s.len() <= MAX_TERMS && !s.contains(&any)))
        });
    let set = set.ok().flatten()?.into_iter().map(NTerm::from).collect();
    Some(expand_ports(set).into_iter().map(|n| n.term).collect())
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
/// packets of that protocol, and `icmp6[i]` only from IPv6 packets whose
/// next header is 58. A load of the other family: the relation matches
/// no frame of this one.
fn load_guard(e: &Expr, family: Family) -> Option<BTreeSet<Term>> {
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
    let need = |p: &Proto| -> Option<(Family, Option<u8>)> {
        match p {
            Proto::Icmp => Some((Family::V4, Some(1))),
            Proto::Icmp6 => Some((Family::V6, Some(58))),
            Proto::Ip => Some((Family::V4, None)),
            Proto::Ip6 => Some((Family::V6, None)),
            p => Some((Family::V4, Some(proto_number(*p)?))),
        }
    };
    let needs: Vec<(Family, Option<u8>)> = protos.iter().map(need).collect::<Option<_>>()?;
    if needs.iter().any(|(f, _)| *f != family) {
        return Some(BTreeSet::new());
    }
    // One protocol for all loads; none (`ip[8]`) guards nothing.
    let first = needs.first()?.1?;
    needs.iter().all(|n| n.1 == Some(first)).then(|| {
        [Term {
            proto: Some(first),
            ..Term::any(family)
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
                family: Family::V4,
                src: Some((0x0a00_0000, 8)),
                dst: None,
                proto: Some(6),
                sport: None,
                dport: Some(22),
                itype: None,
                icode: None,
                flags: None,
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
        // Of the other family: no IPv4 frame matches.
        for v6 in [
            "ip6",
            "host ::1",
            "icmp6",
            "src net 2001:db8::/32",
            "arp",
            "arp host 10.0.0.1",
        ] {
            assert_eq!(terms(v6).unwrap(), vec![], "{v6}");
        }
        for other in [
            "not host 10.0.0.1",
            "port ssh",
            "len > 100",
            "net 10",
            "tcp[12] = 2",
        ] {
            assert!(terms(other).is_none(), "{other}");
        }
    }

    /// `not` of protocol tests is exact: the other protocols.
    #[test]
    fn negated_protocols() {
        let t = terms("not tcp").unwrap();
        assert_eq!(t.len(), 255);
        assert!(t
            .iter()
            .all(|t| t.proto != Some(6) && t.shape().words().len() == 1));
        assert_eq!(terms("not (tcp or udp)").unwrap().len(), 254);
        assert_eq!(terms("not ip").unwrap(), vec![]);
        assert_eq!(terms("not arp").unwrap(), vec![Term::any(Family::V4)]);
        assert_eq!(terms("not tcp and host 10.0.0.1").unwrap().len(), 510);
        assert_eq!(
            terms_in("not icmp", Family::V6).unwrap(),
            vec![Term::any(Family::V6)]
        );
        let arp = |e: &str| terms_in(e, Family::Arp).unwrap();
        assert_eq!(arp("not tcp"), vec![Term::any(Family::Arp)]);
        assert_eq!(arp("not arp"), vec![]);
        for other in [
            "not host 10.0.0.1",
            "not port 22",
            "not icmp[0] == 8",
            "not tcp[13] == 2",
        ] {
            assert!(terms(other).is_none(), "{other}");
        }
    }

    /// `icmp[icmptype] == N` and the like: a term of ICMP's protocol and
    /// the type or code, in the family of the load only.
    #[test]
    fn icmp_type_and_code() {
        let t = terms("icmp[icmptype] == icmp-echo").unwrap();
        assert_eq!(
            (t.len(), t[0].proto, t[0].itype, t[0].icode),
            (1, Some(1), Some(8), None)
        );
        let t = terms("icmp[1] = 3 and src host 10.0.0.1").unwrap();
        assert_eq!((t[0].icode, t[0].src.is_some()), (Some(3), true));
        let t = terms("udp port 53 or icmp[icmptype] == 0").unwrap();
        // udp sport 53, udp dport 53, icmp type 0
        assert_eq!(t.len(), 3, "{t:?}");
        assert_eq!(terms("icmp[0] == 300").unwrap(), vec![]);
        assert_eq!(terms("icmp6[icmp6type] == 128").unwrap(), vec![]);
        let v6 = terms_in("icmp6[icmp6type] == 128", Family::V6).unwrap();
        assert_eq!((v6[0].proto, v6[0].itype), (Some(58), Some(128)));
        // Ports and ICMP fields never hold together.
        assert_eq!(terms("icmp[0] == 8 and port 80").unwrap(), vec![]);
        assert_eq!(terms("icmp[0] == 8 and tcp").unwrap(), vec![]);
        for other in [
            "icmp[0] != 8",
            "icmp[2] == 0",
            "icmp[0:2] == 8",
            "icmp[0] > 3",
            "tcp[0] == 1",
        ] {
            assert!(terms(other).is_none(), "{other}");
        }
    }

    /// A test of `tcp[tcpflags]` alone is the set of flag bytes that pass
    /// it, in classic BPF's unsigned 32-bit arithmetic; IPv4 only.
    #[test]
    fn tcp_flags_as_values() {
        let syn = terms("tcp[tcpflags] & tcp-syn != 0").unwrap();
        assert_eq!(syn.len(), 128);
        assert!(syn
            .iter()
            .all(|t| t.proto == Some(6) && t.flags.unwrap() & 2 != 0));
        assert_eq!(terms("tcp[13] = 18").unwrap().len(), 1);
        let synack = terms("tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn").unwrap();
        assert_eq!(synack.len(), 64);
        assert_eq!(terms("tcp[13] > 300").unwrap(), vec![]);
        assert_eq!(terms("tcp[13] >> 1 == 1").unwrap().len(), 2);
        // With a port: both fields in one term.
        let t = terms("tcp[13] == 2 and tcp dst port 22").unwrap();
        assert_eq!((t.len(), t[0].flags, t[0].dport), (1, Some(2), Some(22)));
        assert_eq!(terms("tcp[13] == 2 and udp").unwrap(), vec![]);
        assert_eq!(terms_in("tcp[13] == 2", Family::V6).unwrap(), vec![]);
        for other in [
            "tcp[12] == 2",
            "tcp[13:2] == 2",
            "tcp[13] / 2 == 1",
            "tcp[13] << 33 == 0",
            "tcp[13] == len",
        ] {
            assert!(terms(other).is_none(), "{other}");
        }
    }

    /// libpcap tests an IPv4 `host`/`net` without a protocol in ARP
    /// frames too (sender and target protocol addresses); `arp host` only
    /// there; nothing with a port or an IP protocol matches ARP.
    #[test]
    fn arp_terms() {
        let arp = |e: &str| terms_in(e, Family::Arp);
        let a = u128::from(0x0a00_0001u32);
        let host = arp("host 10.0.0.1").unwrap();
        assert_eq!(host.len(), 2);
        assert!(host
            .iter()
            .all(|t| t.family == Family::Arp && t.proto.is_none()));
        assert_eq!(arp("arp src host 10.0.0.1").unwrap()[0].src, Some((a, 32)));
        assert_eq!(arp("arp net 10.0.0.0/8").unwrap().len(), 2);
        assert_eq!(arp("arp").unwrap().len(), 1);
        for none in [
            "ip host 10.0.0.1",
            "rarp host 10.0.0.1",
            "tcp port 80",
            "icmp",
            "ip",
            "port 53",
            "host ::1",
        ] {
            assert_eq!(arp(none).unwrap(), vec![], "{none}");
        }
        assert_eq!(arp("host 10.0.0.1 and tcp").unwrap(), vec![]);
        assert!(guard_in("arp[7] = 2 and host 10.0.0.1", Family::Arp).is_none());
    }

    #[test]
    fn ipv6_terms() {
        let v6 = |e: &str| terms_in(e, Family::V6);
        let net = v6("src net 2a06:8847:4733:39ad::/64").unwrap();
        assert_eq!(net.len(), 1);
        assert_eq!(net[0].src, Some((0x2a06_8847_4733_39ad_u128 << 64, 64)));
        assert_eq!(net[0].key().len(), 8, "two words of the source");
        assert_eq!(
            &net[0].key()[..8],
            &[0x2a, 0x06, 0x88, 0x47, 0x47, 0x33, 0x39, 0xad]
        );
        assert_eq!(v6("host 2a06::1").unwrap().len(), 2);
        assert_eq!(v6("tcp dst port 22").unwrap().len(), 1);
        assert_eq!(v6("icmp6").unwrap()[0].proto, Some(58));
        assert_eq!(v6("ip6").unwrap()[0].shape().src, None);
        // IPv4 tests match no IPv6 frame.
        for v4 in ["host 10.0.0.1", "icmp", "ip", "net 10.0.0.0/8 and tcp"] {
            assert_eq!(v6(v4).unwrap(), vec![], "{v4}");
        }
        // tcp[] and icmp[] load from IPv4 only; icmp6[] needs header 58.
        assert_eq!(guard_in("icmp[icmptype] == 8", Family::V6), Some(vec![]));
        let g = guard_in("icmp6[4] == 0", Family::V6).unwrap();
        assert_eq!(g, v6("icmp6").unwrap());
        // The type and code are exact terms, their own guard.
        let g = guard_in("icmp6[icmp6type] == 128", Family::V6).unwrap();
        assert_eq!(g, v6("icmp6[icmp6type] == 128").unwrap());
    }

    #[test]
    fn guards_are_necessary_terms() {
        let g = guard("tcp[tcpflags] & tcp-syn != 0 and tcp dst port 22").unwrap();
        assert_eq!(g, terms("tcp dst port 22").unwrap(), "the sharper operand");
        assert_eq!(
            guard("ip[6:2] & 0x1fff != 0 and src net 10.1.0.0/16").unwrap(),
            terms("src net 10.1.0.0/16").unwrap()
        );
        assert_eq!(guard("icmp[4] == 8").unwrap(), terms("icmp").unwrap());
        assert_eq!(
            guard("icmp[icmptype] == 8").unwrap(),
            terms("icmp[icmptype] == 8").unwrap()
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
