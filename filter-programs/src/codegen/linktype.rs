//! Link-layer types: where each header field sits, and how "the link-layer
//! protocol is P" is tested on each (libpcap's `gen_linktype`).

use super::block::Cond;
use super::consts::*;
use super::{CompileError, Gen, OffRel};
use crate::cbpf::{JmpOp, Size};

/// The link types code generation knows, as libpcap's DLT_ values name
/// them (tcpdump's `-y`): what a program is compiled for, not the LINKTYPE_
/// value a capture file's header holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dlt {
    /// BSD loopback: a 4-byte address family in host byte order.
    Null,
    /// Ethernet.
    En10mb,
    /// Raw IP, version from the first nibble.
    Raw,
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    Loop,
    /// Linux cooked capture v1.
    LinuxSll,
    /// Raw IPv4 only.
    Ipv4,
    /// Raw IPv6 only.
    Ipv6,
    /// Linux cooked capture v2.
    LinuxSll2,
    /// PPP framing, reached only through `pppoes` (the PPPoE payload).
    Ppp,
}

impl Dlt {
    /// The DLT_ value on Linux.
    pub fn dlt(self) -> i32 {
        match self {
            Dlt::Null => 0,
            Dlt::En10mb => 1,
            Dlt::Raw => 12,
            Dlt::Loop => 108,
            Dlt::LinuxSll => 113,
            Dlt::LinuxSll2 => 276,
            Dlt::Ipv4 => 228,
            Dlt::Ipv6 => 229,
            Dlt::Ppp => 9,
        }
    }

    /// The link type of a DLT_ value (Linux numbering), if supported.
    pub fn from_dlt(dlt: i32) -> Option<Dlt> {
        [
            Dlt::Null,
            Dlt::En10mb,
            Dlt::Raw,
            Dlt::Loop,
            Dlt::LinuxSll,
            Dlt::LinuxSll2,
            Dlt::Ipv4,
            Dlt::Ipv6,
        ]
        .into_iter()
        .find(|l| l.dlt() == dlt)
    }

    /// The link type of a libpcap DLT name (`EN10MB`, `RAW`, ...).
    pub fn from_name(name: &str) -> Option<Dlt> {
        Some(match name.to_ascii_uppercase().as_str() {
            "NULL" => Dlt::Null,
            "EN10MB" => Dlt::En10mb,
            "RAW" => Dlt::Raw,
            "LOOP" => Dlt::Loop,
            "LINUX_SLL" => Dlt::LinuxSll,
            "LINUX_SLL2" => Dlt::LinuxSll2,
            "IPV4" => Dlt::Ipv4,
            "IPV6" => Dlt::Ipv6,
            _ => return None,
        })
    }

    /// libpcap's DLT name without the `DLT_` prefix.
    pub fn dlt_name(self) -> &'static str {
        match self {
            Dlt::Null => "NULL",
            Dlt::En10mb => "EN10MB",
            Dlt::Raw => "RAW",
            Dlt::Loop => "LOOP",
            Dlt::LinuxSll => "LINUX_SLL",
            Dlt::LinuxSll2 => "LINUX_SLL2",
            Dlt::Ipv4 => "IPV4",
            Dlt::Ipv6 => "IPV6",
            Dlt::Ppp => "PPP",
        }
    }

    /// libpcap's description, as its error messages name the link type.
    pub fn description(self) -> &'static str {
        match self {
            Dlt::Null => "BSD loopback",
            Dlt::En10mb => "Ethernet",
            Dlt::Raw => "Raw IP",
            Dlt::Loop => "OpenBSD loopback",
            Dlt::LinuxSll => "Linux cooked v1",
            Dlt::LinuxSll2 => "Linux cooked v2",
            Dlt::Ipv4 => "Raw IPv4",
            Dlt::Ipv6 => "Raw IPv6",
            Dlt::Ppp => "PPP",
        }
    }
}

/// What a PPP header calls an EtherType's protocol.
fn ppp_type(ll: u32) -> u32 {
    match ll {
        ETHERTYPE_IP => 0x0021,
        ETHERTYPE_IPV6 => 0x0057,
        ETHERTYPE_DN => 0x0027,
        ETHERTYPE_ATALK => 0x0029,
        ETHERTYPE_NS => 0x0025,
        LLCSAP_ISONS => 0x0023,
        LLCSAP_8021D => 0x0031,
        LLCSAP_IPX => 0x002b,
        other => other,
    }
}

impl Gen<'_> {
    /// "The link-layer protocol is `ll`": an EtherType above 1500, an LLC
    /// SAP at or below it.
    pub(super) fn linktype(&mut self, ll: u32) -> Result<Cond, CompileError> {
        if self.label_depth > 0 {
            return self.mpls_linktype(ll);
        }
        Ok(match self.lay.link {
            Dlt::En10mb => self.ether_linktype(ll),
            Dlt::LinuxSll => self.sll_linktype(ll),
            Dlt::Raw => match ll {
                ETHERTYPE_IP => self.mcmp(OffRel::LinkHdr, 0, Size::B, 0x40, 0xf0),
                ETHERTYPE_IPV6 => self.mcmp(OffRel::LinkHdr, 0, Size::B, 0x60, 0xf0),
                _ => self.uncond(false),
            },
            Dlt::Ipv4 => self.uncond(ll == ETHERTYPE_IP),
            Dlt::Ipv6 => self.uncond(ll == ETHERTYPE_IPV6),
            Dlt::Ppp => self.cmp(OffRel::LinkType, 0, Size::H, ppp_type(ll)),
            // libpcap 1.10 has no SLL2 case here: any value is compared
            // with the protocol field as an EtherType.
            Dlt::LinuxSll2 => self.cmp(OffRel::LinkType, 0, Size::H, ll),
            Dlt::Null | Dlt::Loop => {
                // The address family of a dead handle's host: AF_INET 2,
                // AF_INET6 10 (Linux). DLT_NULL keeps it in host byte
                // order, which libpcap matches as little-endian.
                let af = match ll {
                    ETHERTYPE_IP => 2u32,
                    ETHERTYPE_IPV6 => 10,
                    _ => return Ok(self.uncond(false)),
                };
                let v = if self.lay.link == Dlt::Null {
                    af.swap_bytes()
                } else {
                    af
                };
                self.cmp(OffRel::LinkHdr, 0, Size::W, v)
            }
        })
    }

    fn not_type_field(&mut self) -> Cond {
        let b = self.cmp_op(OffRel::LinkType, 0, Size::H, JmpOp::Jgt, ETHERMTU);
        self.b.not(b)
    }

    fn ether_linktype(&mut self, ll: u32) -> Cond {
        match ll {
            LLCSAP_ISONS | LLCSAP_IP | LLCSAP_NETBEUI => {
                let b0 = self.not_type_field();
                let b1 = self.cmp(OffRel::Llc, 0, Size::H, (ll << 8) | ll);
                self.b.and(b0, b1)
            }
            LLCSAP_IPX => {
                let b0 = self.cmp(OffRel::Llc, 0, Size::B, LLCSAP_IPX);
                let b1 = self.cmp(OffRel::Llc, 0, Size::H, 0xffff);
                let b1 = self.b.or(b0, b1);
                let b0 = self.snap(0, ETHERTYPE_IPX);
                let b1 = self.b.or(b0, b1);
                let b0 = self.not_type_field();
                let b1 = self.b.and(b0, b1);
                let b0 = self.cmp(OffRel::LinkType, 0, Size::H, ETHERTYPE_IPX);
                self.b.or(b0, b1)
            }
            ETHERTYPE_ATALK | ETHERTYPE_AARP => {
                let b0 = self.not_type_field();
                let b1 = if ll == ETHERTYPE_ATALK {
                    self.snap(0x080007, ETHERTYPE_ATALK)
                } else {
                    self.snap(0, ETHERTYPE_AARP)
                };
                let b1 = self.b.and(b0, b1);
                let b0 = self.cmp(OffRel::LinkType, 0, Size::H, ll);
                self.b.or(b0, b1)
            }
            _ if ll <= ETHERMTU => {
                let b0 = self.not_type_field();
                let b1 = self.cmp(OffRel::LinkType, 2, Size::B, ll);
                self.b.and(b0, b1)
            }
            _ => self.cmp(OffRel::LinkType, 0, Size::H, ll),
        }
    }

    fn sll_linktype(&mut self, ll: u32) -> Cond {
        match ll {
            LLCSAP_ISONS | LLCSAP_IP | LLCSAP_NETBEUI => {
                let b0 = self.cmp(OffRel::LinkType, 0, Size::H, SLL_P_802_2);
                let b1 = self.cmp(OffRel::Llc, 0, Size::H, (ll << 8) | ll);
                self.b.and(b0, b1)
            }
            LLCSAP_IPX => {
                let b0 = self.cmp(OffRel::Llc, 0, Size::B, LLCSAP_IPX);
                let b1 = self.snap(0, ETHERTYPE_IPX);
                let b1 = self.b.or(b0, b1);
                let b0 = self.cmp(OffRel::LinkType, 0, Size::H, SLL_P_802_2);
                let b1 = self.b.and(b0, b1);
                let b0 = self.cmp(OffRel::LinkType, 0, Size::H, SLL_P_802_3);
                let b1 = self.b.or(b0, b1);
                let b0 = self.cmp(OffRel::LinkType, 0, Size::H, ETHERTYPE_IPX);
                self.b.or(b0, b1)
            }
            ETHERTYPE_ATALK | ETHERTYPE_AARP => {
                let b0 = self.cmp(OffRel::LinkType, 0, Size::H, SLL_P_802_2);
                let b1 = if ll == ETHERTYPE_ATALK {
                    self.snap(0x080007, ETHERTYPE_ATALK)
                } else {
                    self.snap(0, ETHERTYPE_AARP)
                };
                let b1 = self.b.and(b0, b1);
                let b0 = self.cmp(OffRel::LinkType, 0, Size::H, ll);
                self.b.or(b0, b1)
            }
            _ if ll <= ETHERMTU => {
                let b0 = self.cmp(OffRel::LinkType, 0, Size::H, SLL_P_802_2);
                let off = self.lay.linkpl.k;
                let b1 = self.cmp(OffRel::LinkHdr, off, Size::B, ll);
                self.b.and(b0, b1)
            }
            _ => self.cmp(OffRel::LinkType, 0, Size::H, ll),
        }
    }

    /// An 802.2 SNAP header with this OUI and protocol type.
    fn snap(&mut self, oui: u32, ptype: u32) -> Cond {
        let bytes = [
            0xaa,
            0xaa,
            0x03,
            (oui >> 16) as u8,
            (oui >> 8) as u8,
            oui as u8,
            (ptype >> 8) as u8,
            ptype as u8,
        ];
        self.bcmp(OffRel::Llc, 0, &bytes)
    }
}
