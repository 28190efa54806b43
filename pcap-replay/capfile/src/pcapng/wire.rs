//! pcapng blocks as typed views over their bytes.
//!
//! ```text
//!  every block                          options (in the block's body)
//!  0      4          8        len-4  len     0      2      4
//!  +------+----------+-- .. --+-------+      +------+------+----- .. -----+
//!  | type | totallen |  body  |totallen|     | code | len  | value, padded |
//!  +------+----------+-- .. --+-------+      +------+------+----- to 4 ---+
//!
//!  bodies (offsets from the body's start):
//!  SHB  0 byte-order magic 1a2b3c4d, 4 major, 6 minor, 8 section length (i64), 16 options
//!  IDB  0 linktype (u16), 2 reserved, 4 snaplen, 8 options
//!  EPB  0 interface id, 4 ts high, 8 ts low, 12 caplen, 16 orig len, 20 data (padded), options
//!  SPB  0 orig len, 4 data (padded)
//!  PB   0 interface id (u16), 2 drops (u16), 4 ts high, 8 ts low, 12 caplen, 16 len, 20 data, options
//! ```

use crate::{ByteOrder, ErrorKind, LinkType};

pub type Field = std::ops::Range<usize>;

pub mod block {
    use super::Field;
    pub const TYPE: Field = 0..4;
    pub const TOTAL_LEN: Field = 4..8;
    pub const BODY_START: usize = 8;
    /// Header and trailer: the shortest block.
    pub const MIN_LEN: usize = 12;
}

pub mod shb {
    use super::Field;
    pub const BYTE_ORDER_MAGIC: Field = 0..4;
    pub const MAJOR: Field = 4..6;
    pub const MINOR: Field = 6..8;
    pub const SECTION_LEN: Field = 8..16;
    pub const OPTIONS: usize = 16;
}

pub mod idb {
    use super::Field;
    pub const LINKTYPE: Field = 0..2;
    pub const SNAPLEN: Field = 4..8;
    pub const OPTIONS: usize = 8;
    pub const OPT_NAME: u16 = 2;
    pub const OPT_TSRESOL: u16 = 9;
    pub const OPT_FCSLEN: u16 = 13;
    pub const OPT_TSOFFSET: u16 = 14;
}

pub mod epb {
    use super::Field;
    pub const INTERFACE_ID: Field = 0..4;
    pub const TS_HIGH: Field = 4..8;
    pub const TS_LOW: Field = 8..12;
    pub const CAPLEN: Field = 12..16;
    pub const ORIG_LEN: Field = 16..20;
    pub const DATA: usize = 20;
}

pub mod spb {
    use super::Field;
    pub const ORIG_LEN: Field = 0..4;
    pub const DATA: usize = 4;
}

pub mod pb {
    use super::Field;
    pub const INTERFACE_ID: Field = 0..2;
    pub const TS_HIGH: Field = 4..8;
    pub const TS_LOW: Field = 8..12;
    pub const CAPLEN: Field = 12..16;
    pub const ORIG_LEN: Field = 16..20;
    pub const DATA: usize = 20;
}

pub const SHB_TYPE: u32 = 0x0a0d_0d0a;
pub const IDB_TYPE: u32 = 1;
pub const PB_TYPE: u32 = 2;
pub const SPB_TYPE: u32 = 3;
pub const EPB_TYPE: u32 = 6;
pub const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
pub const OPT_ENDOFOPT: u16 = 0;

/// A block body, read in the section's byte order. Every getter is
/// bounds-checked by the `parse` functions below before use.
#[derive(Clone, Copy, Debug)]
pub struct Body<'a> {
    pub bytes: &'a [u8],
    pub order: ByteOrder,
}

impl<'a> Body<'a> {
    pub fn u16(&self, f: Field) -> u16 {
        self.order.u16(&self.bytes[f])
    }
    pub fn u32(&self, f: Field) -> u32 {
        self.order.u32(&self.bytes[f])
    }

    fn need(&self, block: &'static str, need: usize) -> Result<(), ErrorKind> {
        if self.bytes.len() < need {
            return Err(ErrorKind::BlockTooShort {
                block,
                len: self.bytes.len(),
                need,
            });
        }
        Ok(())
    }
}

/// The byte order a section header's magic announces.
pub fn byte_order_of(magic: [u8; 4]) -> Result<ByteOrder, ErrorKind> {
    if u32::from_le_bytes(magic) == BYTE_ORDER_MAGIC {
        Ok(ByteOrder::Little)
    } else if u32::from_be_bytes(magic) == BYTE_ORDER_MAGIC {
        Ok(ByteOrder::Big)
    } else {
        Err(ErrorKind::BadByteOrderMagic(u32::from_be_bytes(magic)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionHeaderRepr {
    pub order: ByteOrder,
    pub major: u16,
    pub minor: u16,
    /// -1 when the writer did not know.
    pub section_len: i64,
}

impl SectionHeaderRepr {
    /// Decodes the file's first section header. Its options are not read:
    /// libpcap reads none, so none can make the file unreadable.
    pub fn parse(body: Body<'_>) -> Result<SectionHeaderRepr, ErrorKind> {
        let repr = Self::parse_any_minor(body)?;
        // 1.2 was written by a few tools for a while and means the same.
        if !(repr.minor == 0 || repr.minor == 2) {
            return Err(ErrorKind::UnsupportedVersion {
                format: "pcapng",
                major: repr.major,
                minor: repr.minor,
            });
        }
        Ok(repr)
    }

    /// Decodes a later section's header: libpcap checks only its major
    /// version there.
    pub fn parse_any_minor(body: Body<'_>) -> Result<SectionHeaderRepr, ErrorKind> {
        body.need("section header", shb::OPTIONS)?;
        let (major, minor) = (body.u16(shb::MAJOR), body.u16(shb::MINOR));
        if major != 1 {
            return Err(ErrorKind::UnsupportedVersion {
                format: "pcapng",
                major,
                minor,
            });
        }
        let section_len = body.order.u64(&body.bytes[shb::SECTION_LEN]) as i64;
        Ok(SectionHeaderRepr {
            order: body.order,
            major,
            minor,
            section_len,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsResol {
    /// 10^-n seconds.
    Pow10(u8),
    /// 2^-n seconds.
    Pow2(u8),
}

impl TsResol {
    pub fn parse(v: u8) -> Result<TsResol, ErrorKind> {
        let r = if v & 0x80 == 0 {
            TsResol::Pow10(v)
        } else {
            TsResol::Pow2(v & 0x7f)
        };
        match r {
            TsResol::Pow10(n) if n > 19 => Err(ErrorKind::BadTsResol(v)),
            TsResol::Pow2(n) if n > 63 => Err(ErrorKind::BadTsResol(v)),
            _ => Ok(r),
        }
    }

    /// The `if_tsresol` byte.
    pub fn to_byte(self) -> u8 {
        match self {
            TsResol::Pow10(n) => n,
            TsResol::Pow2(n) => 0x80 | n,
        }
    }

    /// Timestamp units in `ns` nanoseconds, rounded down, saturating.
    pub fn from_ns(self, ns: u64) -> u64 {
        let units: u128 = match self {
            TsResol::Pow10(n) if n <= 9 => u128::from(ns) / 10u128.pow(9 - u32::from(n)),
            TsResol::Pow10(n) => u128::from(ns) * 10u128.pow(u32::from(n) - 9),
            TsResol::Pow2(n) => (u128::from(ns) << n) / 1_000_000_000,
        };
        u64::try_from(units).unwrap_or(u64::MAX)
    }

    /// Nanoseconds in `units` timestamp units, rounded down (exact: at
    /// most 2^64 * 10^9, far inside a u128).
    pub fn to_ns(self, units: u64) -> u128 {
        match self {
            TsResol::Pow10(n) if n <= 9 => u128::from(units) * 10u128.pow(9 - u32::from(n)),
            // Units finer than 10^-38 s: every u64 count is under 1 ns.
            TsResol::Pow10(n) => 10u128
                .checked_pow(u32::from(n) - 9)
                .map_or(0, |d| u128::from(units) / d),
            // libpcap 1.10 scales the fraction of a unit finer than 1 ns
            // as `frac * 1e9 / 2^n` in 64-bit arithmetic, which wraps once
            // 2^n passes 2^34; we read exactly what it reads (the
            // `capture_read` fuzz target found the difference).
            TsResol::Pow2(n) if n >= 30 => {
                let (sec, frac) = (units >> n, units & ((1u64 << n) - 1));
                u128::from(sec) * 1_000_000_000 + u128::from(frac.wrapping_mul(1_000_000_000) >> n)
            }
            TsResol::Pow2(n) => (u128::from(units) * 1_000_000_000) >> n,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceRepr {
    pub linktype: LinkType,
    /// 0 means no limit.
    pub snaplen: u32,
    pub tsresol: TsResol,
    /// Seconds to add to every timestamp (`if_tsoffset`).
    pub tsoffset: i64,
    pub fcs_len: Option<u8>,
}

impl InterfaceRepr {
    pub fn parse(body: Body<'_>) -> Result<InterfaceRepr, ErrorKind> {
        body.need("interface description", idb::OPTIONS)?;
        let mut repr = InterfaceRepr {
            linktype: LinkType(body.u16(idb::LINKTYPE)),
            snaplen: body.u32(idb::SNAPLEN),
            tsresol: TsResol::Pow10(6),
            tsoffset: 0,
            fcs_len: None,
        };
        // Options as libpcap reads them: each header and padded value must
        // fit the block; the end-of-options option ends them (the rest is
        // not read); if_tsresol and if_tsoffset must have their sizes and
        // come once; any other option is skipped.
        let mut rest = body.bytes.get(idb::OPTIONS..).unwrap_or(&[]);
        let (mut saw_tsresol, mut saw_tsoffset) = (false, false);
        let bad = |code, why| Err(ErrorKind::BadInterfaceOption { code, why });
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(ErrorKind::BlockTooShort {
                    block: "interface description",
                    len: body.bytes.len(),
                    need: body.bytes.len() - rest.len() + 4,
                });
            }
            let code = body.order.u16(&rest[0..2]);
            let len = body.order.u16(&rest[2..4]);
            let padded = (usize::from(len) + 3) & !3;
            let Some(value) = rest.get(4..4 + padded) else {
                return Err(ErrorKind::OptionPastBlock { code, len });
            };
            let value = &value[..usize::from(len)];
            rest = &rest[4 + padded..];
            match code {
                OPT_ENDOFOPT if len != 0 => return bad(code, "opt_endofopt has a length"),
                OPT_ENDOFOPT => break,
                idb::OPT_TSRESOL if len != 1 => return bad(code, "if_tsresol is not 1 byte"),
                idb::OPT_TSRESOL if saw_tsresol => return bad(code, "if_tsresol comes twice"),
                idb::OPT_TSRESOL => {
                    saw_tsresol = true;
                    repr.tsresol = TsResol::parse(value[0])?;
                }
                idb::OPT_TSOFFSET if len != 8 => return bad(code, "if_tsoffset is not 8 bytes"),
                idb::OPT_TSOFFSET if saw_tsoffset => return bad(code, "if_tsoffset comes twice"),
                idb::OPT_TSOFFSET => {
                    saw_tsoffset = true;
                    repr.tsoffset = body.order.u64(value) as i64;
                }
                idb::OPT_FCSLEN => repr.fcs_len = value.first().copied(),
                _ => {}
            }
        }
        Ok(repr)
    }

    /// Nanoseconds since 1970, computed exactly and then clamped to what a
    /// `u64` holds (1970 to 2554); libpcap keeps a 64-bit `tv_sec`, so it
    /// differs only for times outside that span.
    pub fn ts_ns(&self, units: u64) -> u64 {
        let ns = self.tsresol.to_ns(units) as i128 + i128::from(self.tsoffset) * 1_000_000_000;
        ns.clamp(0, i128::from(u64::MAX)) as u64
    }
}

/// A packet block (EPB, SPB or the obsolete PB), before the interface's
/// rules are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketRepr<'a> {
    pub block: &'static str,
    pub interface_id: u32,
    /// In the interface's units; SPBs have none.
    pub timestamp: Option<u64>,
    pub orig_len: u32,
    /// The captured bytes. For an SPB: every data byte in the block,
    /// padding included, to be cut by the reader.
    pub data: &'a [u8],
}

impl<'a> PacketRepr<'a> {
    pub fn parse_epb(body: Body<'a>) -> Result<PacketRepr<'a>, ErrorKind> {
        Self::parse_full("enhanced packet", body, epb::DATA, |b| {
            b.u32(epb::INTERFACE_ID)
        })
    }

    pub fn parse_pb(body: Body<'a>) -> Result<PacketRepr<'a>, ErrorKind> {
        Self::parse_full("packet", body, pb::DATA, |b| {
            u32::from(b.u16(pb::INTERFACE_ID))
        })
    }

    fn parse_full(
        block: &'static str,
        body: Body<'a>,
        data_at: usize,
        interface_id: impl Fn(Body<'_>) -> u32,
    ) -> Result<PacketRepr<'a>, ErrorKind> {
        // EPB and PB place the timestamp and lengths at the same offsets.
        body.need(block, data_at)?;
        let caplen = body.u32(epb::CAPLEN);
        let room = body.bytes.len() - data_at;
        if caplen as usize > room {
            return Err(ErrorKind::CaplenPastBlock {
                block,
                caplen,
                room,
            });
        }
        let ts = (u64::from(body.u32(epb::TS_HIGH)) << 32) | u64::from(body.u32(epb::TS_LOW));
        Ok(PacketRepr {
            block,
            interface_id: interface_id(body),
            timestamp: Some(ts),
            orig_len: body.u32(epb::ORIG_LEN),
            data: &body.bytes[data_at..data_at + caplen as usize],
        })
    }

    pub fn parse_spb(body: Body<'a>) -> Result<PacketRepr<'a>, ErrorKind> {
        body.need("simple packet", spb::DATA)?;
        Ok(PacketRepr {
            block: "simple packet",
            interface_id: 0,
            timestamp: None,
            orig_len: body.u32(spb::ORIG_LEN),
            data: &body.bytes[spb::DATA..],
        })
    }
}
