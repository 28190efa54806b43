//! DECnet Phase IV hosts: `decnet [src|dst] host AREA.NODE`, matched in
//! the long and short data-packet headers with 0 or 1 byte of padding
//! (libpcap's `gen_dnhostop`, with libpcap 1.10's offsets).

use super::block::Cond;
use super::consts::ETHERTYPE_DN;
use super::{CompileError, Gen, OffRel};
use crate::cbpf::Size;
use crate::expr::ast::{IdKind, Primitive};
use crate::expr::qualifiers::{Dir, Kind};

const MAX_AREA: u32 = 63;
const MAX_NODE: u32 = 1023;

/// `AREA.NODE` as a 16-bit DECnet address (area in the top 6 bits).
/// Stricter than libpcap 1.10's `sscanf("%d.%d")`, as libpcap master is:
/// exactly two decimal parts, each in range.
fn parse_dn(text: &str) -> Option<u32> {
    let (a, n) = text.split_once('.')?;
    let dec = |s: &str| {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse::<u32>().ok()
        }
    };
    let (area, node) = (dec(a)?, dec(n)?);
    (area <= MAX_AREA && node <= MAX_NODE).then_some((area << 10) | node)
}

impl Gen<'_> {
    /// A primitive with the `decnet` qualifier and a host or net kind.
    pub(super) fn decnet_id(&mut self, p: &Primitive) -> Result<Cond, CompileError> {
        let kind = match p.quals.kind {
            Kind::Net => "net",
            _ => "host",
        };
        let addr = match &p.id.kind {
            IdKind::Ipv4(lit) if p.quals.kind != Kind::Net => parse_dn(&lit.text)
                .ok_or_else(|| self.err(format!("invalid DECnet address '{}'", lit.text)))?,
            IdKind::Num(v) if p.quals.kind != Kind::Net => {
                return Err(self.err(format!("invalid DECnet address '{v}'")))
            }
            IdKind::Name { text, .. } if p.quals.kind != Kind::Net => {
                return Err(self.err(format!(
                    "decnet name support not included, '{text}' cannot be translated"
                )))
            }
            IdKind::Ipv6(_) => {
                return Err(self.err(format!(
                    "'decnet' is not a valid qualifier for '{kind} <IPv6 address>'"
                )))
            }
            IdKind::Ipv6Prefix { .. } => {
                return Err(self.err(format!(
                    "'decnet' is not a valid qualifier for '{kind} <IPv6 prefix>'"
                )))
            }
            _ => return Err(self.err(format!("'decnet' is not a valid qualifier for '{kind}'"))),
        };
        self.dnhost(addr, p.quals.dir)
    }

    fn dnhost(&mut self, addr: u32, dir: Dir) -> Result<Cond, CompileError> {
        self.by_dir(
            dir,
            "addresses other than 802.11 MAC addresses",
            |g, src_side| g.dnhost_one(addr, src_side),
        )
    }

    fn dnhost_one(&mut self, addr: u32, src: bool) -> Result<Cond, CompileError> {
        // Offsets past the flags byte: short header, long header.
        let (sh, lh) = if src { (3, 15) } else { (1, 7) };
        // The address is little-endian in the packet; libpcap compares
        // the byte-swapped value (on a little-endian host, as here).
        let a = (addr as u16).swap_bytes() as u32;
        let b0 = self.linktype(ETHERTYPE_DN)?;
        // (flags test, flags size, flags value, mask, address offset)
        let cases = [
            (Size::H, 0x8106, 0xff07, 2 + 1 + lh),
            (Size::B, 0x06, 0x07, 2 + lh),
            (Size::H, 0x8102, 0xff07, 2 + 1 + sh),
            (Size::B, 0x02, 0x07, 2 + sh),
        ];
        let mut acc: Option<Cond> = None;
        for (size, v, mask, off) in cases {
            let tmp = self.mcmp(OffRel::LinkPl, 2, size, v, mask);
            let b = self.cmp(OffRel::LinkPl, off, Size::H, a);
            let b = self.b.and(tmp, b);
            acc = Some(match acc {
                Some(prev) => self.b.or(b, prev),
                None => b,
            });
        }
        let b1 = acc.unwrap_or_else(|| self.uncond(false));
        Ok(self.b.and(b0, b1))
    }
}
