//! A tiny matcher for the address shapes of libpcap's scanner (MAC, dotted
//! IPv4, IPv6). The scanner is a flex "longest match, first rule wins"
//! lexer, so for each shape we need every length at which it can end, not
//! just one greedy match: `0x1.2` is a dotted address only if `0x1` is read
//! as one hex number. The patterns are written from the pcap-filter
//! grammar's token shapes; they are small, so a set-of-positions simulation
//! is plenty fast.

use std::collections::BTreeSet;
use std::sync::OnceLock;

pub enum Pat {
    /// `min..=max` bytes of a class.
    Class(fn(u8) -> bool, usize, usize),
    Byte(u8),
    Seq(Vec<Pat>),
    Alt(Vec<Pat>),
    /// One or more repetitions.
    Plus(Box<Pat>),
}

/// A set of positions in the input. Most inputs are short enough for one
/// `u128` (no allocation, set operations in one instruction each); longer
/// ones take the general tree.
trait Positions: Sized {
    fn empty() -> Self;
    fn insert(&mut self, at: usize);
    fn is_empty(&self) -> bool;
    fn union_with(&mut self, other: &Self);
    /// The positions in `self` and not in `other`.
    fn minus(&self, other: &Self) -> Self;
    fn for_each(&self, f: impl FnMut(usize));
    fn last(&self) -> Option<usize>;
}

impl Positions for u128 {
    fn empty() -> u128 {
        0
    }
    fn insert(&mut self, at: usize) {
        // Callers only pass positions up to the input's length, which is
        // below 128 for this representation.
        *self |= 1u128.checked_shl(at as u32).unwrap_or(0);
    }
    fn is_empty(&self) -> bool {
        *self == 0
    }
    fn union_with(&mut self, other: &u128) {
        *self |= other;
    }
    fn minus(&self, other: &u128) -> u128 {
        self & !other
    }
    fn for_each(&self, mut f: impl FnMut(usize)) {
        let mut bits = *self;
        while bits != 0 {
            f(bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
    }
    fn last(&self) -> Option<usize> {
        (*self != 0).then(|| 127 - self.leading_zeros() as usize)
    }
}

impl Positions for BTreeSet<usize> {
    fn empty() -> Self {
        BTreeSet::new()
    }
    fn insert(&mut self, at: usize) {
        BTreeSet::insert(self, at);
    }
    fn is_empty(&self) -> bool {
        BTreeSet::is_empty(self)
    }
    fn union_with(&mut self, other: &Self) {
        self.extend(other.iter().copied());
    }
    fn minus(&self, other: &Self) -> Self {
        self.difference(other).copied().collect()
    }
    fn for_each(&self, f: impl FnMut(usize)) {
        self.iter().copied().for_each(f);
    }
    fn last(&self) -> Option<usize> {
        BTreeSet::last(self).copied()
    }
}

impl Pat {
    fn ends_from<P: Positions>(&self, s: &[u8], starts: &P) -> P {
        let mut out = P::empty();
        match self {
            Pat::Class(f, min, max) => starts.for_each(|st| {
                let run = s[st.min(s.len())..]
                    .iter()
                    .take(*max)
                    .take_while(|b| f(**b))
                    .count();
                for n in *min..=run {
                    out.insert(st + n);
                }
            }),
            Pat::Byte(c) => starts.for_each(|st| {
                if s.get(st) == Some(c) {
                    out.insert(st + 1);
                }
            }),
            Pat::Seq(parts) => {
                let mut cur = P::empty();
                cur.union_with(starts);
                for p in parts {
                    if cur.is_empty() {
                        break;
                    }
                    cur = p.ends_from(s, &cur);
                }
                out = cur;
            }
            Pat::Alt(alts) => {
                for p in alts {
                    out.union_with(&p.ends_from(s, starts));
                }
            }
            Pat::Plus(inner) => {
                let mut frontier = inner.ends_from(s, starts);
                while !frontier.is_empty() {
                    let fresh = frontier.minus(&out);
                    out.union_with(&fresh);
                    frontier = inner.ends_from(s, &fresh);
                }
            }
        }
        out
    }

    /// Length of the longest match at the start of `s`, 0 if none.
    pub fn longest(&self, s: &[u8]) -> usize {
        // Every position a match can reach is at most `s.len()`.
        if s.len() < 128 {
            let mut starts = 0u128;
            starts.insert(0);
            self.ends_from(s, &starts).last().unwrap_or(0)
        } else {
            let starts = BTreeSet::from([0]);
            Positions::last(&self.ends_from(s, &starts)).unwrap_or(0)
        }
    }
}

fn hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}
fn dec(b: u8) -> bool {
    b.is_ascii_digit()
}

fn seq(p: Vec<Pat>) -> Pat {
    Pat::Seq(p)
}

/// `[0-9]+ | 0[xX][0-9A-Fa-f]+`
pub fn number() -> Pat {
    Pat::Alt(vec![
        Pat::Class(dec, 1, usize::MAX),
        seq(vec![
            Pat::Byte(b'0'),
            Pat::Class(|b| b == b'x' || b == b'X', 1, 1),
            Pat::Class(hex, 1, usize::MAX),
        ]),
    ])
}

/// One MAC octet: one or two hex digits.
fn b1() -> Pat {
    Pat::Class(hex, 1, 2)
}

/// Dotted IPv4: two, three or four numbers.
pub fn dotted() -> &'static Pat {
    static P: OnceLock<Pat> = OnceLock::new();
    P.get_or_init(|| {
        let dotted_n = |n: usize| {
            let mut v = vec![number()];
            for _ in 1..n {
                v.push(Pat::Byte(b'.'));
                v.push(number());
            }
            seq(v)
        };
        Pat::Alt(vec![dotted_n(2), dotted_n(3), dotted_n(4)])
    })
}

/// The MAC address notations: `x:x:x:x:x:x`, `x-x-x-x-x-x`, `x.x.x.x.x.x`
/// (one or two hex digits each), `xxxx.xxxx.xxxx` and `xxxxxxxxxxxx`.
pub fn mac() -> &'static Pat {
    static P: OnceLock<Pat> = OnceLock::new();
    P.get_or_init(|| {
        let six = |sep: u8| {
            let mut v = vec![b1()];
            for _ in 0..5 {
                v.push(Pat::Byte(sep));
                v.push(b1());
            }
            seq(v)
        };
        let quad = || Pat::Class(hex, 4, 4);
        Pat::Alt(vec![
            six(b':'),
            six(b'-'),
            six(b'.'),
            seq(vec![
                quad(),
                Pat::Byte(b'.'),
                quad(),
                Pat::Byte(b'.'),
                quad(),
            ]),
            Pat::Class(hex, 12, 12),
        ])
    })
}

/// Colon-separated hex that is not a valid MAC (libpcap reports it as an
/// invalid Ethernet address rather than scanning it piecewise).
pub fn bad_mac() -> &'static Pat {
    static P: OnceLock<Pat> = OnceLock::new();
    P.get_or_init(|| {
        let colons = || Pat::Class(|b| b == b':', 1, usize::MAX);
        seq(vec![
            b1(),
            colons(),
            Pat::Plus(Box::new(seq(vec![b1(), colons()]))),
        ])
    })
}

/// Every textual IPv6 shape the scanner accepts: eight groups, or fewer
/// with one `::`, optionally ending in a dotted IPv4 address.
pub fn ipv6() -> &'static Pat {
    static P: OnceLock<Pat> = OnceLock::new();
    P.get_or_init(|| {
        let w = || Pat::Class(hex, 1, 4);
        let colon = || Pat::Byte(b':');
        let groups = |n: usize, v: &mut Vec<Pat>| {
            for i in 0..n {
                if i > 0 {
                    v.push(colon());
                }
                v.push(w());
            }
        };
        let v4 = || {
            let mut v = vec![number()];
            for _ in 0..3 {
                v.push(Pat::Byte(b'.'));
                v.push(number());
            }
            seq(v)
        };
        let mut alts = Vec::new();
        let mut full = Vec::new();
        groups(8, &mut full);
        alts.push(seq(full));
        // n explicit groups with `::` after the first k of them.
        for n in 0..=7 {
            for k in 0..=n {
                let mut v = Vec::new();
                groups(k, &mut v);
                v.push(colon());
                v.push(colon());
                groups(n - k, &mut v);
                alts.push(seq(v));
            }
        }
        let mut six = Vec::new();
        groups(6, &mut six);
        six.push(colon());
        six.push(v4());
        alts.push(seq(six));
        for n in 0..=5 {
            for k in 0..=n {
                let mut v = Vec::new();
                groups(k, &mut v);
                v.push(colon());
                v.push(colon());
                for _ in 0..n - k {
                    v.push(w());
                    v.push(colon());
                }
                v.push(v4());
                alts.push(seq(v));
            }
        }
        Pat::Alt(alts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_matches() {
        assert_eq!(dotted().longest(b"10.1.2.3.4"), 8);
        assert_eq!(dotted().longest(b"0x1.2 "), 5);
        assert_eq!(dotted().longest(b"10"), 0);
        assert_eq!(mac().longest(b"aa:bb:cc:dd:ee:ff"), 17);
        assert_eq!(mac().longest(b"a:b:c:d:e:f"), 11);
        assert_eq!(mac().longest(b"aabb.ccdd.eeff"), 14);
        assert_eq!(mac().longest(b"aabbccddeeff"), 12);
        assert_eq!(bad_mac().longest(b"ab:cd:ef:0g"), 9);
        assert_eq!(ipv6().longest(b"fe80::1"), 7);
        assert_eq!(ipv6().longest(b"::"), 2);
        assert_eq!(ipv6().longest(b"::ffff:1.2.3.4"), 14);
        assert_eq!(ipv6().longest(b"1:2:3:4:5:6:7:8:9"), 15);
        assert_eq!(ipv6().longest(b"aa:bb:cc:dd:ee:ff"), 0);
    }
}
