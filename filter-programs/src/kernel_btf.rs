//! The kernel's BTF (`/sys/kernel/btf/vmlinux`), read: the types a tracing
//! program needs from the running kernel, which no header gives us, since
//! we emit the bytecode ourselves (no clang, no CO-RE at run time).
//! Structure member offsets through anonymous unions and structs, the ids
//! of the `btf_trace_*` typedefs a tracepoint program attaches by, and the
//! names of an enum's values (`enum skb_drop_reason`).
//!
//! ```text
//!  header   magic 0xeb9f (u16), version, flags (u8), hdr_len, type_off,
//!           type_len, str_off, str_len (u32), offsets after the header
//!  type     name_off, info (vlen 0-15, kind 24-28, kind_flag 31), size/type
//!           then per kind: INT +4; ARRAY +12; STRUCT/UNION vlen x
//!           {name_off, type, offset}; ENUM vlen x {name_off, val};
//!           FUNC_PROTO vlen x 8; VAR +4; DATASEC vlen x 12; DECL_TAG +4;
//!           ENUM64 vlen x 12
//! ```
//!
//! Ids count from 1 in type order (0 is `void`). A malformed or truncated
//! blob is an error, never a panic.

use std::collections::HashMap;

use crate::kernel_skb::SkbLayout;

const MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_ENUM64: u32 = 19;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    #[error("not BTF: {0}")]
    Malformed(&'static str),
    #[error("BTF has no {0}")]
    Missing(String),
}

#[derive(Clone, Debug)]
struct Type {
    name: u32,
    kind: u32,
    kind_flag: bool,
    /// Size (structs, unions, enums, ints) or the type referred to.
    size_or_type: u32,
    /// Struct and union members: (name, type, bit offset); enum values:
    /// (name, value as u32, 0).
    members: Vec<(u32, u32, u32)>,
}

/// A parsed BTF blob.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    by_name: HashMap<(String, u32), u32>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl Btf {
    /// Parses a little-endian BTF blob (the kernel's, on this machine's
    /// architectures).
    pub fn parse(b: &[u8]) -> Result<Btf, BtfError> {
        let bad = BtfError::Malformed;
        if u16_at(b, 0) != Some(MAGIC) {
            return Err(bad("bad magic"));
        }
        let word = |at| u32_at(b, at).ok_or(bad("header cut short"));
        let hdr = word(4)? as usize;
        let (type_off, type_len) = (word(8)? as usize, word(12)? as usize);
        let (str_off, str_len) = (word(16)? as usize, word(20)? as usize);
        let section = |off: usize, len: usize| {
            let start = hdr.checked_add(off)?;
            b.get(start..start.checked_add(len)?)
        };
        let tb = section(type_off, type_len).ok_or(bad("type section out of the blob"))?;
        let strings = section(str_off, str_len)
            .ok_or(bad("string section out of the blob"))?
            .to_vec();
        let mut types = vec![Type {
            name: 0,
            kind: 0,
            kind_flag: false,
            size_or_type: 0,
            members: Vec::new(),
        }];
        let mut at = 0;
        while at < tb.len() {
            let w = |i: usize| u32_at(tb, at + 4 * i).ok_or(bad("type cut short"));
            let (name, info, size_or_type) = (w(0)?, w(1)?, w(2)?);
            let (vlen, kind) = ((info & 0xffff) as usize, (info >> 24) & 0x1f);
            at += 12;
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for m in 0..vlen {
                        let w = |i: usize| {
                            u32_at(tb, at + 12 * m + 4 * i).ok_or(bad("member cut short"))
                        };
                        members.push((w(0)?, w(1)?, w(2)?));
                    }
                    12 * vlen
                }
                KIND_ENUM => {
                    for m in 0..vlen {
                        let w = |i: usize| {
                            u32_at(tb, at + 8 * m + 4 * i).ok_or(bad("enum value cut short"))
                        };
                        members.push((w(0)?, w(1)?, 0));
                    }
                    8 * vlen
                }
                KIND_FUNC_PROTO => 8 * vlen,
                KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                0 | 20.. => return Err(bad("unknown type kind")),
                _ => 0,
            };
            at += extra;
            if at > tb.len() {
                return Err(bad("type cut short"));
            }
            types.push(Type {
                name,
                kind,
                kind_flag: info >> 31 == 1,
                size_or_type,
                members,
            });
        }
        let mut btf = Btf {
            types,
            strings,
            by_name: HashMap::new(),
        };
        for (id, t) in btf.types.iter().enumerate().skip(1) {
            if t.name != 0 {
                let name = btf.string(t.name).to_string();
                btf.by_name.entry((name, t.kind)).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    fn string(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|c| *c == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    fn named(&self, name: &str, kind: u32) -> Result<u32, BtfError> {
        self.by_name
            .get(&(name.to_string(), kind))
            .copied()
            .ok_or_else(|| BtfError::Missing(name.to_string()))
    }

    /// The id of the typedef `name` (a tracepoint program's
    /// `btf_trace_NAME`).
    pub fn typedef_id(&self, name: &str) -> Result<u32, BtfError> {
        self.named(name, KIND_TYPEDEF)
    }

    /// `sizeof(struct name)`.
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        Ok(self.types[self.named(name, KIND_STRUCT)? as usize].size_or_type)
    }

    /// The byte offset of `path` (member names, each found through
    /// anonymous members) in `struct name`.
    pub fn offset(&self, name: &str, path: &[&str]) -> Result<u32, BtfError> {
        let mut id = self.named(name, KIND_STRUCT)?;
        let mut bits = 0;
        for field in path {
            let (off, ty) = self
                .member(id, field)
                .ok_or_else(|| BtfError::Missing(format!("{name}.{}", path.join("."))))?;
            bits += off;
            id = self.resolve(ty);
        }
        if bits % 8 != 0 {
            return Err(BtfError::Missing(format!(
                "{name}.{} (a bitfield)",
                path.join(".")
            )));
        }
        Ok(bits / 8)
    }

    /// Through typedefs and qualifiers to the type itself.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t) if (8..=11).contains(&t.kind) || t.kind == 18 => id = t.size_or_type,
                _ => break,
            }
        }
        id
    }

    /// (bit offset, type) of member `field` of struct or union `id`,
    /// searching anonymous members depth first.
    fn member(&self, id: u32, field: &str) -> Option<(u32, u32)> {
        let t = self.types.get(id as usize)?;
        if t.kind != KIND_STRUCT && t.kind != KIND_UNION {
            return None;
        }
        for &(name, ty, off) in &t.members {
            // With kind_flag the low 24 bits are the offset.
            let off = if t.kind_flag { off & 0xff_ffff } else { off };
            if name == 0 {
                if let Some((inner, ty)) = self.member(self.resolve(ty), field) {
                    return Some((off + inner, ty));
                }
            } else if self.string(name) == field {
                return Some((off, ty));
            }
        }
        None
    }

    /// The values of `enum name`, by value.
    pub fn enum_values(&self, name: &str) -> Result<Vec<(u32, String)>, BtfError> {
        let t = &self.types[self.named(name, KIND_ENUM)? as usize];
        Ok(t.members
            .iter()
            .map(|&(n, v, _)| (v, self.string(n).to_string()))
            .collect())
    }

    /// Where this kernel's `struct sk_buff` keeps the fields a trace
    /// program reads.
    pub fn skb_layout(&self) -> Result<SkbLayout, BtfError> {
        let at = |f: &str| -> Result<u16, BtfError> {
            let off = self.offset("sk_buff", &[f])?;
            u16::try_from(off).map_err(|_| BtfError::Missing(format!("sk_buff.{f} below 64 KiB")))
        };
        let layout = SkbLayout {
            head: at("head")?,
            data: at("data")?,
            len: at("len")?,
            data_len: at("data_len")?,
            mac_header: at("mac_header")?,
            network_header: at("network_header")?,
            vlan_all: at("vlan_all")?,
            size: u16::try_from(self.struct_size("sk_buff")?)
                .map_err(|_| BtfError::Missing("a struct sk_buff below 64 KiB".into()))?,
        };
        if !layout.valid() {
            return Err(BtfError::Malformed("struct sk_buff's fields overlap"));
        }
        Ok(layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob by hand: int (1), struct inner { u16 a; u16 b } (2),
    /// union (anon) { struct inner x; u32 all } (3), struct outer { u32 n;
    /// union (anon) at bit 32 } (4), typedef t -> 4 (5), enum e { A = 1,
    /// B = 7 } (6).
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0inner\0a\0b\0x\0all\0outer\0n\0t\0e\0A\0B\0";
        let s = |name: &str| -> u32 {
            let n = format!("\0{name}\0");
            strings
                .windows(n.len())
                .position(|w| w == n.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut t = Vec::new();
        let mut put = |words: &[u32]| {
            words
                .iter()
                .for_each(|w| t.extend_from_slice(&w.to_le_bytes()))
        };
        put(&[s("int"), KIND_INT << 24, 4, 32]);
        put(&[
            s("inner"),
            KIND_STRUCT << 24 | 2,
            4,
            s("a"),
            1,
            0,
            s("b"),
            1,
            16,
        ]);
        put(&[0, KIND_UNION << 24 | 2, 4, s("x"), 2, 0, s("all"), 1, 0]);
        put(&[s("outer"), KIND_STRUCT << 24 | 2, 8, s("n"), 1, 0, 0, 3, 32]);
        put(&[s("t"), KIND_TYPEDEF << 24, 4]);
        put(&[s("e"), KIND_ENUM << 24 | 2, 4, s("A"), 1, s("B"), 7]);
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(strings);
        b
    }

    #[test]
    fn members_through_anonymous_unions() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.offset("outer", &["n"]), Ok(0));
        assert_eq!(btf.offset("outer", &["all"]), Ok(4));
        assert_eq!(btf.offset("outer", &["x", "b"]), Ok(6));
        assert_eq!(btf.struct_size("outer"), Ok(8));
        assert_eq!(btf.typedef_id("t"), Ok(5));
        assert_eq!(
            btf.enum_values("e").unwrap(),
            [(1, "A".to_string()), (7, "B".to_string())]
        );
        assert!(matches!(
            btf.offset("outer", &["nope"]),
            Err(BtfError::Missing(_))
        ));
    }

    #[test]
    fn cut_blobs_are_errors() {
        let b = blob();
        for n in 0..b.len() {
            let _ = Btf::parse(&b[..n]);
        }
        assert!(Btf::parse(&b[..b.len() - 20]).is_err());
    }
}
