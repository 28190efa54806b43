//! `not` of fields: terms whose fields must also *not* take some values
//! (`not host 10.0.0.1` on IPv4: the source is not 10.0.0.1 and the
//! destination is not). A hash table finds equal keys only, so these
//! terms go to the bitmaps (see `bitmap`), which can leave a term's bit
//! out of the entries of the values it excludes.
//!
//! Exact for the same reason the positive terms are (see `tuple`): on a
//! frame the fast path serves, every field has a value (the gate's "no
//! port" or "no flags" when the frame has none, the ICMP type and code in
//! the port fields), a positive term is a conjunction of equalities over
//! those values, so its negation is the disjunction of the inequalities,
//! and `and`/`or`/`not` over them is Boolean algebra. One level only: the
//! complement of terms that already exclude values is not expanded.

use std::collections::BTreeSet;

use super::tuple::{mask, Family, Term, MAX_TERMS};

/// Values a term's fields must not take. Addresses are (address, prefix
/// length) under the family's bits; the other fields are the values the
/// gate leaves in the field (`sport`: a port or the ICMP type; `dport`:
/// a port or the ICMP code).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Negs {
    pub src: Vec<(u128, u8)>,
    pub dst: Vec<(u128, u8)>,
    pub proto: Vec<u32>,
    pub sport: Vec<u32>,
    pub dport: Vec<u32>,
    pub flags: Vec<u32>,
}

impl Negs {
    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
            && self.dst.is_empty()
            && self.proto.is_empty()
            && self.sport.is_empty()
            && self.dport.is_empty()
            && self.flags.is_empty()
    }
}

/// A term and the values its fields must not take.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NTerm {
    pub term: Term,
    pub not: Negs,
}

impl From<Term> for NTerm {
    fn from(term: Term) -> NTerm {
        NTerm {
            term,
            not: Negs::default(),
        }
    }
}

/// The value the gate leaves in the source port field for a term's
/// positive test of it: the port or the ICMP type.
pub fn sport_of(t: &Term) -> Option<u32> {
    t.sport.map(u32::from).or(t.itype.map(u32::from))
}

/// The destination port field's: the port or the ICMP code.
pub fn dport_of(t: &Term) -> Option<u32> {
    t.dport.map(u32::from).or(t.icode.map(u32::from))
}

/// Does prefix `q` hold every address of prefix `p`?
pub fn covers(bits: u32, q: (u128, u8), p: (u128, u8)) -> bool {
    q.1 <= p.1 && (q.0 ^ p.0) & mask(bits, q.1) == 0
}

impl NTerm {
    /// Both at once, or None when no frame satisfies both.
    pub fn and(&self, o: &NTerm) -> Option<NTerm> {
        let cat = |a: &[u32], b: &[u32]| -> Vec<u32> { a.iter().chain(b).copied().collect() };
        let catp = |a: &[(u128, u8)], b: &[(u128, u8)]| a.iter().chain(b).copied().collect();
        let (x, y) = (&self.not, &o.not);
        NTerm {
            term: self.term.and(&o.term)?,
            not: Negs {
                src: catp(&x.src, &y.src),
                dst: catp(&x.dst, &y.dst),
                proto: cat(&x.proto, &y.proto),
                sport: cat(&x.sport, &y.sport),
                dport: cat(&x.dport, &y.dport),
                flags: cat(&x.flags, &y.flags),
            },
        }
        .normal()
    }

    /// One way to write each set of frames: exclusions that the positive
    /// tests already imply are dropped, sorted; None when a positive test
    /// takes an excluded value, or the protocol has no value left.
    pub fn normal(mut self) -> Option<NTerm> {
        let t = self.term;
        let bits = t.family.bits();
        let n = &mut self.not;
        n.src = prefixes(bits, t.src, std::mem::take(&mut n.src))?;
        n.dst = prefixes(bits, t.dst, std::mem::take(&mut n.dst))?;
        n.proto = values(t.proto.map(u32::from), std::mem::take(&mut n.proto))?;
        n.sport = values(sport_of(&t), std::mem::take(&mut n.sport))?;
        n.dport = values(dport_of(&t), std::mem::take(&mut n.dport))?;
        n.flags = values(t.flags.map(u32::from), std::mem::take(&mut n.flags))?;
        (n.proto.len() < 256).then_some(self)
    }

    /// Does every frame that satisfies `o` satisfy `self`?
    fn implies_by(&self, o: &NTerm) -> bool {
        let (a, b) = (&self.term, &o.term);
        let bits = a.family.bits();
        let prefix = |x: Option<(u128, u8)>, y: Option<(u128, u8)>| match (x, y) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(x), Some(y)) => covers(bits, x, y),
        };
        let same = |x: Option<u32>, y: Option<u32>| x.is_none() || x == y;
        let positive = a.family == b.family
            && prefix(a.src, b.src)
            && prefix(a.dst, b.dst)
            && same(a.proto.map(u32::from), b.proto.map(u32::from))
            && same(a.sport.map(u32::from), b.sport.map(u32::from))
            && same(a.dport.map(u32::from), b.dport.map(u32::from))
            && same(a.itype.map(u32::from), b.itype.map(u32::from))
            && same(a.icode.map(u32::from), b.icode.map(u32::from))
            && same(a.flags.map(u32::from), b.flags.map(u32::from));
        // An excluded value: `o` excludes it too, or fixes another.
        let excluded = |ours: &[u32], theirs: &[u32], fixed: Option<u32>| {
            ours.iter()
                .all(|v| theirs.contains(v) || fixed.is_some_and(|f| f != *v))
        };
        let excluded_prefix =
            |ours: &[(u128, u8)], theirs: &[(u128, u8)], fixed: Option<(u128, u8)>| {
                ours.iter().all(|n| {
                    theirs.iter().any(|m| covers(bits, *m, *n))
                        || fixed.is_some_and(|p| !covers(bits, *n, p) && !covers(bits, p, *n))
                })
            };
        let (x, y) = (&self.not, &o.not);
        positive
            && excluded_prefix(&x.src, &y.src, b.src)
            && excluded_prefix(&x.dst, &y.dst, b.dst)
            && excluded(&x.proto, &y.proto, b.proto.map(u32::from))
            && excluded(&x.sport, &y.sport, sport_of(b))
            && excluded(&x.dport, &y.dport, dport_of(b))
            && excluded(&x.flags, &y.flags, b.flags.map(u32::from))
    }

    /// The terms of `not self`: one per field it tests, excluding its
    /// value. None when it already excludes values.
    fn negation(&self) -> Option<Vec<NTerm>> {
        if !self.not.is_empty() {
            return None;
        }
        let t = &self.term;
        let any = Term::any(t.family);
        let no = Negs::default;
        let alts = [
            t.src.map(|p| Negs {
                src: vec![p],
                ..no()
            }),
            t.dst.map(|p| Negs {
                dst: vec![p],
                ..no()
            }),
            t.proto.map(|v| Negs {
                proto: vec![u32::from(v)],
                ..no()
            }),
            sport_of(t).map(|v| Negs {
                sport: vec![v],
                ..no()
            }),
            dport_of(t).map(|v| Negs {
                dport: vec![v],
                ..no()
            }),
            t.flags.map(|v| Negs {
                flags: vec![u32::from(v)],
                ..no()
            }),
        ];
        let out = alts
            .into_iter()
            .flatten()
            .map(|not| NTerm { term: any, not });
        Some(out.into_iter().filter_map(NTerm::normal).collect())
    }
}

/// Excluded values of a field: none when the field is fixed to another.
fn values(fixed: Option<u32>, mut not: Vec<u32>) -> Option<Vec<u32>> {
    match fixed {
        Some(v) if not.contains(&v) => None,
        Some(_) => Some(Vec::new()),
        None => {
            not.sort_unstable();
            not.dedup();
            Some(not)
        }
    }
}

/// Excluded prefixes: those inside the fixed prefix and under no other
/// excluded one.
fn prefixes(bits: u32, fixed: Option<(u128, u8)>, not: Vec<(u128, u8)>) -> Option<Vec<(u128, u8)>> {
    let mut not: Vec<(u128, u8)> = not
        .into_iter()
        .map(|(a, l)| (a & mask(bits, l), l))
        .collect();
    not.sort_unstable_by_key(|p| (p.1, p.0));
    let mut keep: Vec<(u128, u8)> = Vec::new();
    for n in not {
        if let Some(p) = fixed {
            if covers(bits, n, p) {
                return None;
            }
            if !covers(bits, p, n) {
                continue;
            }
        }
        if !keep.iter().any(|k| covers(bits, *k, n)) {
            keep.push(n);
        }
    }
    keep.sort_unstable();
    Some(keep)
}

/// The terms no more general term of the set covers.
fn prune(set: BTreeSet<NTerm>) -> BTreeSet<NTerm> {
    let all: Vec<NTerm> = set.into_iter().collect();
    (all.iter().enumerate())
        .filter(|(i, b)| {
            !(all.iter().enumerate())
                .any(|(j, a)| j != *i && a.implies_by(b) && (!b.implies_by(a) || j < *i))
        })
        .map(|(_, b)| b.clone())
        .collect()
}

/// `not` of a set of terms (of `family`, ports with their protocol): the
/// AND over them of their negations, in disjunctive normal form. None
/// when a term already excludes values, or past [`MAX_TERMS`].
pub fn complement(set: &BTreeSet<NTerm>, family: Family) -> Option<BTreeSet<NTerm>> {
    let mut acc: BTreeSet<NTerm> = [NTerm::from(Term::any(family))].into();
    for x in set {
        let alts = x.negation()?;
        if acc.len() * alts.len() > MAX_TERMS {
            return None;
        }
        let next = (acc.iter())
            .flat_map(|a| alts.iter().filter_map(move |b| a.and(b)))
            .collect();
        acc = prune(next);
    }
    Some(acc)
}

/// The terms without exclusions, as the tables hold them: an excluded
/// protocol becomes the other protocols, a term each (`not tcp`: 255
/// terms). None when another field excludes values.
pub fn positive(set: &[NTerm]) -> Option<BTreeSet<Term>> {
    let mut out = BTreeSet::new();
    for n in set {
        let protos = Negs {
            proto: n.not.proto.clone(),
            ..Negs::default()
        };
        if n.not != protos {
            return None;
        }
        if n.not.proto.is_empty() {
            out.insert(n.term);
            continue;
        }
        for p in 0..=255u8 {
            if !n.not.proto.contains(&u32::from(p)) {
                out.insert(Term {
                    proto: Some(p),
                    ..n.term
                });
            }
        }
        if out.len() > MAX_TERMS {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::tuple::nterms_in;

    fn v4(e: &str) -> Vec<NTerm> {
        nterms_in(e, Family::V4).unwrap_or_else(|| panic!("{e}: no terms"))
    }

    #[test]
    fn a_negated_host_is_one_term_excluding_both_directions() {
        let t = v4("not host 10.0.0.1");
        assert_eq!(t.len(), 1);
        let a = 0x0a00_0001u128;
        assert_eq!(t[0].term, Term::any(Family::V4));
        assert_eq!(
            (t[0].not.src.clone(), t[0].not.dst.clone()),
            (vec![(a, 32)], vec![(a, 32)])
        );
        // Two hosts: still one term.
        let t = v4("not (host 10.0.0.1 or host 10.0.0.2)");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].not.src.len(), 2);
        // A host inside an excluded net adds nothing.
        let t = v4("not net 10.0.0.0/8 and not src host 10.1.2.3");
        assert_eq!(t[0].not.src, vec![(0x0a00_0000, 8)]);
        // An excluded prefix the fixed one does not meet is dropped; one
        // that holds it leaves no frame.
        assert!(v4("src net 192.168.0.0/16 and not src net 10.0.0.0/8")[0]
            .not
            .is_empty());
        assert!(v4("src host 10.1.1.1 and not src net 10.0.0.0/8").is_empty());
    }

    #[test]
    fn a_negated_port_is_other_protocols_or_neither_port() {
        let t = v4("not port 80");
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(t
            .iter()
            .any(|n| n.not.proto == [6, 17, 132] && n.not.sport.is_empty()));
        assert!(t
            .iter()
            .any(|n| n.not.proto.is_empty() && n.not.sport == [80] && n.not.dport == [80]));
        let t = v4("udp and not port 53");
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].term.proto, t[0].not.sport.clone()),
            (Some(17), vec![53])
        );
        // ICMP's type is the source port field's value.
        let t = v4("icmp and not icmp[icmptype] == 8");
        assert_eq!(
            (t[0].term.proto, t[0].not.sport.clone()),
            (Some(1), vec![8])
        );
    }

    #[test]
    fn the_tables_see_protocol_exclusions_only() {
        assert_eq!(positive(&v4("not tcp")).unwrap().len(), 255);
        assert!(positive(&v4("not host 10.0.0.1")).is_none());
        // Two negated protocols no longer multiply out.
        assert_eq!(positive(&v4("not tcp and not udp")).unwrap().len(), 254);
    }

    #[test]
    fn pruning_keeps_the_general_term() {
        let a = v4("tcp")[0].clone();
        let b = v4("tcp and src host 10.0.0.1")[0].clone();
        assert!(a.implies_by(&b) && !b.implies_by(&a));
        assert_eq!(prune([a.clone(), b].into()), [a].into());
    }

    #[test]
    fn double_negation_is_not_expanded() {
        assert!(nterms_in("not (tcp and not port 80)", Family::V4).is_none());
    }
}
