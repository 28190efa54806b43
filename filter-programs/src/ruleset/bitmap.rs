//! Rules of the table shapes past the family's shape tables, classified by
//! per-field bitmaps (Linear Bit Vector Search, as bpf-iptables does):
//! each term of those rules is a bit, in rule order; per field a lookup
//! gives the bits of the terms the frame's value satisfies, and the first
//! bit set in all of them is the first rule that matches. The cost is a
//! few lookups and a scan of the words, whatever the number of shapes.
//!
//! ```text
//!  src, dst    LPM trie: prefix -> bitmap of the terms whose prefix covers
//!              it (and of those that test no address there); a miss
//!              means no term can match
//!  fields      hash {field, value} -> bitmap of the terms with that value
//!              or none; on a miss {field, DEFAULT}: the terms with none
//!  scan        word by word, the AND of the bitmaps (the next word as
//!              soon as it is zero); the first word not zero gives the bit (its lowest), `rules[bit]` its rule's
//!              `index << 1 | drop`, which becomes `best` when lower
//! ```
//!
//! A term matches a frame exactly when a table of its shape would find it:
//! the same fields the gate read (ports [`super::fast`]'s "no port" value
//! when absent, the ICMP type and code in the port fields), so the bitmaps
//! mean what the tables mean. A term that tests a transport field always
//! names its protocol, which tells a port from an ICMP type.

use std::collections::BTreeSet;

use super::negate::{self, covers, NTerm};
use super::tuple::{mask, Family};
use crate::ebpf::asm::{Asm, Label};
use crate::ebpf::insn::{AluOp, Endian, JmpOp, Op, Operand, Reg, Size};

/// Most terms (bits) one family's bitmaps hold: 64 words a bitmap, so a
/// frame that matches none scans 64 words, and the maps' values stay
/// 512 bytes.
pub const MAX_BITS: usize = 4096;
/// Maps one family's bitmaps take at most: two tries, the fields, the
/// rules.
pub const MAPS: usize = 4;
/// The key of a field's default bitmap (no 8-, 16-bit or "absent" value).
const DEFAULT: u32 = u32::MAX;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_LPM_TRIE: u32 = 11;
/// The kernel refuses an LPM trie without it.
const BPF_F_NO_PREALLOC: u32 = 1;
/// The bitmaps found, one stack slot each, below the cold path's context.
const POINTERS: i16 = -304;

/// A field other than the addresses, by where the gate left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Proto = 0,
    /// The source port, or the ICMP type.
    Sport = 1,
    /// The destination port, or the ICMP code.
    Dport = 2,
    Flags = 3,
}

impl Field {
    const ALL: [Field; 4] = [Field::Proto, Field::Sport, Field::Dport, Field::Flags];

    /// The value a term fixes the field to.
    fn of(self, t: &NTerm) -> Option<u32> {
        let t = &t.term;
        match self {
            Field::Proto => t.proto.map(u32::from),
            Field::Sport => negate::sport_of(t),
            Field::Dport => negate::dport_of(t),
            Field::Flags => t.flags.map(u32::from),
        }
    }

    /// The values a term excludes.
    fn not(self, t: &NTerm) -> &[u32] {
        match self {
            Field::Proto => &t.not.proto,
            Field::Sport => &t.not.sport,
            Field::Dport => &t.not.dport,
            Field::Flags => &t.not.flags,
        }
    }
}

/// Where the gate left the frame's fields (stack offsets), and the key
/// under construction.
#[derive(Clone, Copy, Debug)]
pub struct Fields {
    pub src: i16,
    pub dst: i16,
    pub proto: i16,
    pub sport: i16,
    pub dport: i16,
    pub flags: i16,
    pub key: i16,
}

/// A map's entries: (key, value) bytes.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One map of the bitmaps, as the loader creates and fills it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapSpec {
    /// `src`, `dst`, `fields` or `rules`.
    pub role: &'static str,
    pub map_type: u32,
    pub map_flags: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub entries: Entries,
}

/// A family's bitmaps.
#[derive(Clone, Debug)]
pub struct Bitmap {
    pub family: Family,
    /// Per rule: do the bitmaps find it?
    pub holds: Vec<bool>,
    /// Per bit: its term's rule as `index << 1 | drop`.
    bits: Vec<u32>,
    /// 64-bit words per bitmap.
    words: usize,
    /// The address tries: (source?, entries).
    addrs: Vec<(bool, Entries)>,
    /// The fields some term tests, and whether any term tests none of
    /// them (then there is a default entry).
    fields: Vec<(Field, bool)>,
    exact: Entries,
}

/// Can the bitmaps hold this term? (A transport field it fixes needs its
/// protocol named, to tell a port from an ICMP type; a value it excludes
/// is excluded whatever the protocol.)
pub fn holds_term(t: &NTerm) -> bool {
    t.term.family != Family::Arp && (!t.term.l4() || t.term.proto.is_some())
}

impl Bitmap {
    /// The bitmaps of `rules` (index, drop?, exact terms), in order, as
    /// many as [`MAX_BITS`] allows; `None` when no term tests a field.
    pub fn build(family: Family, n: usize, rules: &[(usize, bool, &[NTerm])]) -> Option<Bitmap> {
        let mut holds = vec![false; n];
        let mut terms: Vec<NTerm> = Vec::new();
        let mut bits = Vec::new();
        for (i, drop, ts) in rules {
            if terms.len() + ts.len() > MAX_BITS || !ts.iter().all(holds_term) {
                continue;
            }
            holds[*i] = true;
            for t in ts.iter() {
                terms.push(t.clone());
                bits.push((*i as u32) << 1 | *drop as u32);
            }
        }
        if terms.is_empty() {
            return None;
        }
        let words = terms.len().div_ceil(64);
        let set = |pick: &dyn Fn(&NTerm) -> bool| -> Vec<u8> {
            let mut b = vec![0u64; words];
            for (k, t) in terms.iter().enumerate() {
                if pick(t) {
                    b[k / 64] |= 1 << (k % 64);
                }
            }
            b.iter().flat_map(|w| w.to_le_bytes()).collect()
        };
        let abits = family.bits();
        let mut addrs = Vec::new();
        for src in [true, false] {
            let of = |t: &NTerm| if src { t.term.src } else { t.term.dst };
            let prefixes: BTreeSet<(u128, u8)> = (terms.iter())
                .flat_map(|t| of(t).into_iter().chain(excluded(t, src).iter().copied()))
                .map(|(a, l)| (a & mask(abits, l), l))
                .collect();
            if prefixes.is_empty() {
                continue;
            }
            // The bits of the terms that an address whose longest entry
            // is `p` satisfies: its fixed prefix (if any) holds `p`, and
            // no prefix it excludes does (an excluded prefix is an entry
            // itself, so every address under it finds it or a longer one).
            let at = |p: (u128, u8)| {
                set(&|t| {
                    of(t).is_none_or(|q| covers(abits, q, p))
                        && !excluded(t, src).iter().any(|q| covers(abits, *q, p))
                })
            };
            let mut entries = Vec::new();
            let all: BTreeSet<(u128, u8)> = prefixes.into_iter().chain([(0, 0)]).collect();
            for p in all {
                let b = at(p);
                // A miss means no term can match: /0 only when some term
                // matches there. (An entry without bits stays: it hides a
                // shorter one.)
                if p != (0, 0) || b.iter().any(|b| *b != 0) {
                    entries.push((lpm_key(family, p.0, p.1), b));
                }
            }
            addrs.push((src, entries));
        }
        let mut fields = Vec::new();
        let mut exact = Vec::new();
        for f in Field::ALL {
            let values: BTreeSet<u32> = (terms.iter())
                .flat_map(|t| f.of(t).into_iter().chain(f.not(t).iter().copied()))
                .collect();
            if values.is_empty() {
                continue;
            }
            // A value no entry names is excluded by no term.
            let wild = set(&|t| f.of(t).is_none());
            let default = wild.iter().any(|b| *b != 0);
            if default {
                exact.push((field_key(f, DEFAULT), wild));
            }
            for v in values {
                let b = set(&|t| f.of(t).is_none_or(|x| x == v) && !f.not(t).contains(&v));
                exact.push((field_key(f, v), b));
            }
            fields.push((f, default));
        }
        if addrs.is_empty() && fields.is_empty() {
            return None;
        }
        Some(Bitmap {
            family,
            holds,
            bits,
            words,
            addrs,
            fields,
            exact,
        })
    }

    /// Rules it holds.
    pub fn rules(&self) -> usize {
        self.holds.iter().filter(|h| **h).count()
    }

    /// Does a term test TCP's flags (then the gate must read them)?
    pub fn reads_flags(&self) -> bool {
        self.fields.iter().any(|(f, _)| *f == Field::Flags)
    }

    /// What a frame costs, in a rule's chain-cost units (see
    /// `fast::LOOKUP_COST`): its lookups, a default's, and the scan.
    pub fn cost(&self, lookup_cost: usize) -> usize {
        let lookups = self.addrs.len() + 2 * self.fields.len() + 1;
        let scan = self.words * 8;
        lookups * lookup_cost + scan
    }

    /// Its maps' roles (see [`MapSpec::role`]), in order.
    pub fn roles(&self) -> Vec<&'static str> {
        let addrs = (self.addrs.iter()).map(|(src, _)| if *src { "src" } else { "dst" });
        let fields = (!self.fields.is_empty()).then_some("fields");
        addrs.chain(fields).chain(["rules"]).collect()
    }

    /// Its maps, in the order of their indices.
    pub fn maps(&self) -> Vec<MapSpec> {
        let value_size = 8 * self.words as u32;
        let mut maps: Vec<MapSpec> = (self.addrs.iter())
            .map(|(src, entries)| MapSpec {
                role: if *src { "src" } else { "dst" },
                map_type: BPF_MAP_TYPE_LPM_TRIE,
                map_flags: BPF_F_NO_PREALLOC,
                key_size: 4 + self.family.bits() / 8,
                value_size,
                entries: entries.clone(),
            })
            .collect();
        if !self.fields.is_empty() {
            maps.push(MapSpec {
                role: "fields",
                map_type: BPF_MAP_TYPE_HASH,
                map_flags: 0,
                key_size: 8,
                value_size,
                entries: self.exact.clone(),
            });
        }
        maps.push(MapSpec {
            role: "rules",
            map_type: BPF_MAP_TYPE_ARRAY,
            map_flags: 0,
            key_size: 4,
            value_size: 4,
            entries: (self.bits.iter().enumerate())
                .map(|(k, v)| ((k as u32).to_le_bytes().to_vec(), v.to_le_bytes().to_vec()))
                .collect(),
        });
        maps
    }

    /// The lookups and the scan, after the gate filled `s`: lowers the
    /// stack word at `best` to the first rule they find. `map` is the
    /// `LD_IMM64` index of the first of [`Bitmap::maps`]. Clobbers r0-r5.
    pub fn emit(&self, a: &mut Asm, s: &Fields, map: u64, best: i16) {
        let done = a.label();
        let mut m = map;
        let mut found = 0i16;
        let keep = |a: &mut Asm, found: &mut i16| {
            a.stx(Size::DW, Reg::R10, Reg::R0, POINTERS - 8 * *found);
            *found += 1;
        };
        for (src, _) in &self.addrs {
            let slot = if *src { s.src } else { s.dst };
            st(a, s.key, self.family.bits() as i32);
            match self.family {
                Family::V6 => {
                    for k in 0..4 {
                        a.ldx(Size::W, Reg::R1, Reg::R10, slot + 4 * k);
                        a.stx(Size::W, Reg::R10, Reg::R1, s.key + 4 + 4 * k);
                    }
                }
                // The address as a number: the trie wants its bytes.
                _ => {
                    a.ldx(Size::W, Reg::R1, Reg::R10, slot);
                    a.push(Op::End {
                        dst: Reg::R1,
                        endian: Endian::ToBe,
                        bits: 32,
                    });
                    a.stx(Size::W, Reg::R10, Reg::R1, s.key + 4);
                }
            }
            a.map_lookup(m, s.key);
            a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), done);
            keep(a, &mut found);
            m += 1;
        }
        for (f, default) in &self.fields {
            let slot = match f {
                Field::Proto => s.proto,
                Field::Sport => s.sport,
                Field::Dport => s.dport,
                Field::Flags => s.flags,
            };
            let hit = a.label();
            st(a, s.key, *f as i32);
            a.ldx(Size::W, Reg::R1, Reg::R10, slot);
            a.stx(Size::W, Reg::R10, Reg::R1, s.key + 4);
            a.map_lookup(m, s.key);
            a.jmp(true, JmpOp::Jne, Reg::R0, Operand::Imm(0), hit);
            if !default {
                a.ja(done);
            } else {
                st(a, s.key + 4, DEFAULT as i32);
                a.map_lookup(m, s.key);
                a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), done);
            }
            a.bind(hit);
            keep(a, &mut found);
        }
        if !self.fields.is_empty() {
            m += 1;
        }
        self.emit_scan(a, found, m, s.key, best, done);
        a.bind(done);
    }

    /// r1 walks the words' byte offsets; r3 = the AND of word r1 of the
    /// `n` bitmaps.
    fn emit_scan(&self, a: &mut Asm, n: i16, rules_map: u64, key: i16, best: i16, done: Label) {
        let (top, next, hit) = (a.label(), a.label(), a.label());
        a.mov64(Reg::R1, Operand::Imm(0));
        a.bind(top);
        // Most words of an address's bitmap are zero: the next word as
        // soon as the AND is.
        for k in 0..n {
            let dst = if k == 0 { Reg::R3 } else { Reg::R4 };
            a.ldx(Size::DW, Reg::R2, Reg::R10, POINTERS - 8 * k);
            a.alu64(AluOp::Add, Reg::R2, Operand::Reg(Reg::R1));
            a.ldx(Size::DW, dst, Reg::R2, 0);
            if k > 0 {
                a.alu64(AluOp::And, Reg::R3, Operand::Reg(Reg::R4));
            }
            if k + 1 < n {
                a.jmp(true, JmpOp::Jeq, Reg::R3, Operand::Imm(0), next);
            }
        }
        a.jmp(true, JmpOp::Jne, Reg::R3, Operand::Imm(0), hit);
        a.bind(next);
        a.alu64(AluOp::Add, Reg::R1, Operand::Imm(8));
        a.jmp(
            true,
            JmpOp::Jlt,
            Reg::R1,
            Operand::Imm(8 * self.words as i32),
            top,
        );
        a.ja(done);
        // The lowest bit set: r5 = 8 * r1 (the word's first bit) plus the
        // zeros below it, found by halves.
        a.bind(hit);
        a.mov64(Reg::R4, Operand::Imm(0));
        a.alu64(AluOp::Sub, Reg::R4, Operand::Reg(Reg::R3));
        a.alu64(AluOp::And, Reg::R3, Operand::Reg(Reg::R4));
        a.mov64(Reg::R5, Operand::Reg(Reg::R1));
        a.alu64(AluOp::Lsh, Reg::R5, Operand::Imm(3));
        for step in [32, 16, 8, 4, 2, 1] {
            let low = a.label();
            let m = if step == 32 { -1 } else { (1i32 << step) - 1 };
            a.jmp(false, JmpOp::Jset, Reg::R3, Operand::Imm(m), low);
            a.alu64(AluOp::Add, Reg::R5, Operand::Imm(step));
            a.alu64(AluOp::Rsh, Reg::R3, Operand::Imm(step));
            a.bind(low);
        }
        a.stx(Size::W, Reg::R10, Reg::R5, key);
        a.map_lookup(rules_map, key);
        a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), done);
        a.ldx(Size::W, Reg::R1, Reg::R0, 0);
        a.ldx(Size::W, Reg::R2, Reg::R10, best);
        a.jmp(true, JmpOp::Jge, Reg::R1, Operand::Reg(Reg::R2), done);
        a.stx(Size::W, Reg::R10, Reg::R1, best);
    }
}

/// The source (destination) prefixes a term excludes.
fn excluded(t: &NTerm, src: bool) -> &[(u128, u8)] {
    if src {
        &t.not.src
    } else {
        &t.not.dst
    }
}

/// An LPM trie key: the prefix length, then the address's bytes.
fn lpm_key(family: Family, addr: u128, len: u8) -> Vec<u8> {
    let mut k = u32::from(len).to_le_bytes().to_vec();
    match family {
        Family::V6 => k.extend_from_slice(&addr.to_be_bytes()),
        _ => k.extend_from_slice(&(addr as u32).to_be_bytes()),
    }
    k
}

fn field_key(f: Field, v: u32) -> Vec<u8> {
    [(f as u32).to_le_bytes(), v.to_le_bytes()].concat()
}

fn st(a: &mut Asm, off: i16, imm: i32) {
    a.push(Op::St {
        size: Size::W,
        dst: Reg::R10,
        off,
        imm,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::tuple::nterms_in;

    fn bitmap(exprs: &[&str]) -> Bitmap {
        let terms: Vec<Vec<NTerm>> = (exprs.iter())
            .map(|e| nterms_in(e, Family::V4).expect("terms"))
            .collect();
        let rules: Vec<(usize, bool, &[NTerm])> = (terms.iter().enumerate())
            .map(|(i, t)| (i, true, t.as_slice()))
            .collect();
        Bitmap::build(Family::V4, exprs.len(), &rules).expect("a bitmap")
    }

    /// Exact bytes: a /24 source prefix under a /8 one, and a port.
    #[test]
    fn tries_and_fields_hold_the_covering_terms() {
        let b = bitmap(&[
            "src net 10.0.0.0/8",
            "src net 10.1.2.0/24 and tcp dst port 80",
        ]);
        let maps = b.maps();
        let roles: Vec<&str> = maps.iter().map(|m| m.role).collect();
        assert_eq!(roles, ["src", "fields", "rules"]);
        assert_eq!(b.roles(), roles);
        assert_eq!(
            maps[0].entries,
            [
                (vec![8, 0, 0, 0, 10, 0, 0, 0], vec![1, 0, 0, 0, 0, 0, 0, 0]),
                (vec![24, 0, 0, 0, 10, 1, 2, 0], vec![3, 0, 0, 0, 0, 0, 0, 0]),
            ]
        );
        assert_eq!((maps[0].key_size, maps[0].value_size), (8, 8));
        // Fields: proto (default: term 0; 6: both), dport (default: 0;
        // 80: both).
        assert_eq!(
            maps[1].entries,
            [
                (
                    field_key(Field::Proto, DEFAULT),
                    vec![1, 0, 0, 0, 0, 0, 0, 0]
                ),
                (field_key(Field::Proto, 6), vec![3, 0, 0, 0, 0, 0, 0, 0]),
                (
                    field_key(Field::Dport, DEFAULT),
                    vec![1, 0, 0, 0, 0, 0, 0, 0]
                ),
                (field_key(Field::Dport, 80), vec![3, 0, 0, 0, 0, 0, 0, 0]),
            ]
        );
        assert_eq!(
            maps[2].entries,
            [
                (vec![0, 0, 0, 0], vec![1, 0, 0, 0]),
                (vec![1, 0, 0, 0], vec![3, 0, 0, 0])
            ]
        );
    }

    /// Exact bytes: an excluded prefix is an entry without the term's
    /// bit under a /0 entry with it; an excluded port, a field entry
    /// without it under a default with it.
    #[test]
    fn exclusions_are_entries_without_the_bit() {
        let b = bitmap(&[
            "not src net 10.0.0.0/8 and not tcp dst port 22",
            "src net 10.1.0.0/16",
        ]);
        let maps = b.maps();
        assert_eq!(b.roles(), ["src", "fields", "rules"]);
        assert_eq!(
            maps[0].entries,
            [
                (vec![0, 0, 0, 0, 0, 0, 0, 0], vec![3, 0, 0, 0, 0, 0, 0, 0]),
                (vec![8, 0, 0, 0, 10, 0, 0, 0], vec![0; 8]),
                (vec![16, 0, 0, 0, 10, 1, 0, 0], vec![4, 0, 0, 0, 0, 0, 0, 0]),
            ]
        );
        // Rule 0 is two terms (bits 0 and 1), rule 1 bit 2. `not tcp dst
        // port 22`: the destination port field is not 22 (term 0), or the
        // protocol is not TCP (term 1).
        let t = nterms_in("not src net 10.0.0.0/8 and not tcp dst port 22", Family::V4).unwrap();
        assert_eq!(t.len(), 2, "{t:?}");
        let dport = |v: u32| {
            let k = field_key(Field::Dport, v);
            maps[1]
                .entries
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, b)| b[0])
        };
        assert_eq!((dport(DEFAULT), dport(22)), (Some(0b111), Some(0b110)));
    }

    #[test]
    fn terms_past_the_limit_stay_out() {
        let exprs: Vec<String> = (0..MAX_BITS + 1)
            .map(|k| format!("tcp dst port {}", k % 60000 + 1))
            .collect();
        let refs: Vec<&str> = exprs.iter().map(String::as_str).collect();
        let b = bitmap(&refs);
        assert_eq!(b.rules(), MAX_BITS);
        assert!(!b.holds[MAX_BITS]);
        assert_eq!(b.words, 64);
    }
}
