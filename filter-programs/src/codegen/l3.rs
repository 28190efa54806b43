//! Network-layer primitives: IPv4/IPv6/ARP hosts and networks, Ethernet
//! addresses, `proto`, protocol abbreviations, broadcast and multicast.

use std::net::Ipv6Addr;

use super::block::Cond;
use super::consts::*;
use super::{CompileError, Dlt, Gen, OffRel};
use crate::cbpf::{JmpOp, Size, Src};
use crate::expr::ast::Ipv4Lit;
use crate::expr::names::{ethertype, llc_sap};
use crate::expr::qualifiers::{Dir, Proto, Qualifiers};

/// The 802.11-only direction qualifiers, as libpcap's messages name them,
/// and whether the wording is plural.
fn wlan_dir_words(d: Dir) -> Option<(&'static str, bool)> {
    Some(match d {
        Dir::Addr1 => ("'addr1' and 'address1'", true),
        Dir::Addr2 => ("'addr2' and 'address2'", true),
        Dir::Addr3 => ("'addr3' and 'address3'", true),
        Dir::Addr4 => ("'addr4' and 'address4'", true),
        Dir::Ra => ("'ra'", false),
        Dir::Ta => ("'ta'", false),
        _ => return None,
    })
}

/// libpcap's refusal of an 802.11 direction for `what`.
pub(super) fn wlan_dir_error(d: Dir, what: &str) -> Option<String> {
    wlan_dir_words(d).map(|(w, plural)| {
        if plural {
            format!("{w} are not valid qualifiers for {what}")
        } else {
            format!("{w} is not a valid qualifier for {what}")
        }
    })
}

impl Gen<'_> {
    /// `src`/`dst`/`src or dst`/`src and dst` of a two-field test;
    /// `one(g, true)` tests the source field.
    pub(super) fn by_dir(
        &mut self,
        dir: Dir,
        what: &str,
        mut one: impl FnMut(&mut Self, bool) -> Result<Cond, CompileError>,
    ) -> Result<Cond, CompileError> {
        if let Some(msg) = wlan_dir_error(dir, what) {
            return Err(self.err(msg));
        }
        Ok(match dir {
            Dir::Src => one(self, true)?,
            Dir::Dst => one(self, false)?,
            Dir::SrcAndDst => {
                let a = one(self, true)?;
                let b = one(self, false)?;
                self.b.and(a, b)
            }
            _ => {
                let a = one(self, true)?;
                let b = one(self, false)?;
                self.b.or(a, b)
            }
        })
    }

    pub(super) fn host(
        &mut self,
        addr: u32,
        mask: u32,
        proto: Option<Proto>,
        dir: Dir,
        net: bool,
    ) -> Result<Cond, CompileError> {
        let typestr = if net { "net" } else { "host" };
        let (ll, src, dst) = match proto {
            None => {
                let b0 = self.host(addr, mask, Some(Proto::Ip), dir, net)?;
                if self.label_depth > 0 {
                    // Inside MPLS only IP can follow.
                    return Ok(b0);
                }
                let b1 = self.host(addr, mask, Some(Proto::Arp), dir, net)?;
                let b1 = self.b.or(b0, b1);
                let b0 = self.host(addr, mask, Some(Proto::Rarp), dir, net)?;
                return Ok(self.b.or(b1, b0));
            }
            Some(Proto::Ip) => (ETHERTYPE_IP, 12, 16),
            Some(Proto::Arp) => (ETHERTYPE_ARP, 14, 24),
            Some(Proto::Rarp) => (ETHERTYPE_REVARP, 14, 24),
            Some(Proto::Link) => {
                return Err(self.err(format!("link-layer modifier applied to {typestr}")))
            }
            Some(Proto::Ip6) => return Err(self.err("'ip6' modifier applied to ip host")),
            Some(p) => {
                let msg = match p {
                    Proto::Atalk => "AppleTalk host filtering not implemented".to_string(),
                    Proto::Lat => "LAT host filtering not implemented".to_string(),
                    Proto::Sca => "SCA host filtering not implemented".to_string(),
                    Proto::Moprc => "MOPRC host filtering not implemented".to_string(),
                    Proto::Mopdl => "MOPDL host filtering not implemented".to_string(),
                    Proto::Aarp => "AARP host filtering not implemented".to_string(),
                    Proto::Iso => "ISO host filtering not implemented".to_string(),
                    Proto::Ipx => "IPX host filtering not implemented".to_string(),
                    p => format!("'{}' modifier applied to {typestr}", p.keyword()),
                };
                return Err(self.err(msg));
            }
        };
        self.by_dir(
            dir,
            "addresses other than 802.11 MAC addresses",
            |g, src_side| {
                let off = if src_side { src } else { dst };
                let b0 = g.linktype(ll)?;
                let b1 = g.mcmp(OffRel::LinkPl, off, Size::W, addr, mask);
                Ok(g.b.and(b0, b1))
            },
        )
    }

    /// `a.b.c.d/len` and `a.b.c.d mask m.m.m.m` (libpcap's `gen_mcode`).
    pub(super) fn mcode(
        &mut self,
        addr: &Ipv4Lit,
        mask: Option<&Ipv4Lit>,
        masklen: u32,
        q: &Qualifiers,
    ) -> Result<Cond, CompileError> {
        let promote = |g: &Self, l: &Ipv4Lit| match l.value {
            Some(v) => Ok(v.checked_shl(32 - 8 * u32::from(l.octets)).unwrap_or(0)),
            None => Err(g.err(format!("invalid IPv4 address '{}'", l.text))),
        };
        let n = promote(self, addr)?;
        let m = match mask {
            Some(ml) => {
                let m = promote(self, ml)?;
                if n & !m != 0 {
                    return Err(self.err(format!(
                        "non-network bits set in \"{} mask {}\"",
                        addr.text, ml.text
                    )));
                }
                m
            }
            None => {
                if masklen > 32 {
                    return Err(self.err("mask length must be <= 32"));
                }
                let m = if masklen == 0 {
                    0
                } else {
                    u32::MAX << (32 - masklen)
                };
                if n & !m != 0 {
                    return Err(self.err(format!(
                        "non-network bits set in \"{}/{}\"",
                        addr.text, masklen
                    )));
                }
                m
            }
        };
        if q.kind != crate::expr::qualifiers::Kind::Net {
            return Err(self.err("Mask syntax for networks only"));
        }
        self.host(n, m, q.proto, q.dir, true)
    }

    /// IPv6 addresses and prefixes (libpcap's `gen_mcode6`).
    pub(super) fn mcode6(
        &mut self,
        addr: Ipv6Addr,
        masklen: u32,
        q: &Qualifiers,
    ) -> Result<Cond, CompileError> {
        use crate::expr::qualifiers::Kind;
        if masklen > 128 {
            return Err(self.err("mask length must be <= 128"));
        }
        let mask: u128 = if masklen == 0 {
            0
        } else {
            u128::MAX << (128 - masklen)
        };
        let a = u128::from(addr);
        if a & !mask != 0 {
            return Err(self.err(format!("non-network bits set in \"{addr}/{masklen}\"")));
        }
        match q.kind {
            Kind::Default | Kind::Host if masklen != 128 => {
                Err(self.err("Mask syntax for networks only"))
            }
            Kind::Default | Kind::Host | Kind::Net => {
                self.host6(a, mask, q.proto, q.dir, q.kind == Kind::Net)
            }
            _ => Err(self.err("invalid qualifier against IPv6 address")),
        }
    }

    pub(super) fn host6(
        &mut self,
        a: u128,
        m: u128,
        proto: Option<Proto>,
        dir: Dir,
        net: bool,
    ) -> Result<Cond, CompileError> {
        let typestr = if net { "net" } else { "host" };
        match proto {
            None | Some(Proto::Ip6) => {}
            Some(Proto::Link) => {
                return Err(self.err(format!("link-layer modifier applied to ip6 {typestr}")))
            }
            Some(Proto::Atalk) => {
                return Err(self.err(format!("AppleTalk modifier applied to ip6 {typestr}")))
            }
            Some(p) => {
                return Err(self.err(format!(
                    "'{}' modifier applied to ip6 {typestr}",
                    p.keyword()
                )))
            }
        }
        let word = |x: u128, i: u32| (x >> (96 - 32 * i)) as u32;
        self.by_dir(
            dir,
            "addresses other than 802.11 MAC addresses",
            |g, src_side| {
                let off = if src_side { 8 } else { 24 };
                // Built last word first, as libpcap does.
                let mut b1 = g.mcmp(OffRel::LinkPl, off + 12, Size::W, word(a, 3), word(m, 3));
                for i in (0..3).rev() {
                    let b0 = g.mcmp(OffRel::LinkPl, off + 4 * i, Size::W, word(a, i), word(m, i));
                    b1 = g.b.and(b0, b1);
                }
                let b0 = g.linktype(ETHERTYPE_IPV6)?;
                Ok(g.b.and(b0, b1))
            },
        )
    }

    /// `ether host/src/dst MAC` (libpcap's `gen_ecode`).
    pub(super) fn ecode(&mut self, mac: &[u8; 6], q: &Qualifiers) -> Result<Cond, CompileError> {
        use crate::expr::qualifiers::Kind;
        if !matches!(q.kind, Kind::Host | Kind::Default) || q.proto != Some(Proto::Link) {
            return Err(self.err("ethernet address used in non-ether expression"));
        }
        let check = self.prevlinkhdr_check();
        let b = self.ehost(mac, q.dir)?;
        Ok(self.and_opt(check, b))
    }

    /// `a and b`, or `b` alone.
    pub(super) fn and_opt(&mut self, a: Option<Cond>, b: Cond) -> Cond {
        match a {
            Some(a) => self.b.and(a, b),
            None => b,
        }
    }

    pub(super) fn ehost(&mut self, mac: &[u8; 6], dir: Dir) -> Result<Cond, CompileError> {
        if self.lay.link != Dlt::En10mb {
            return Err(self.err(
                "ethernet addresses supported only on ethernet/FDDI/token ring/802.11/ATM LANE/Fibre Channel",
            ));
        }
        if let Some((w, plural)) = wlan_dir_words(dir) {
            let verb = if plural { "are" } else { "is" };
            return Err(self.err(format!(
                "{w} {verb} only supported on 802.11 with 802.11 headers"
            )));
        }
        self.by_dir(dir, "addresses", |g, src_side| {
            Ok(g.bcmp(OffRel::LinkHdr, if src_side { 6 } else { 0 }, mac))
        })
    }

    /// `[proto] proto N` (libpcap's `gen_proto`).
    pub(super) fn proto(
        &mut self,
        v: u32,
        proto: Option<Proto>,
        dir: Dir,
    ) -> Result<Cond, CompileError> {
        if dir != Dir::Default {
            return Err(self.err("direction applied to 'proto'"));
        }
        self.check_proto_value(v, proto)?;
        match proto {
            None => {
                let b0 = self.proto(v, Some(Proto::Ip), dir)?;
                let b1 = self.proto(v, Some(Proto::Ip6), dir)?;
                Ok(self.b.or(b0, b1))
            }
            Some(Proto::Link) => self.linktype(v),
            Some(Proto::Ip) => {
                let b0 = self.linktype(ETHERTYPE_IP)?;
                let b1 = self.cmp(OffRel::LinkPl, 9, Size::B, v);
                Ok(self.b.and(b0, b1))
            }
            Some(Proto::Ip6) => {
                let b0 = self.linktype(ETHERTYPE_IPV6)?;
                // One fragment header is looked through, no other.
                let b2 = self.cmp(OffRel::LinkPl, 6, Size::B, IPPROTO_FRAGMENT);
                let b1 = self.cmp(OffRel::LinkPl, 40, Size::B, v);
                let b1 = self.b.and(b2, b1);
                let b2 = self.cmp(OffRel::LinkPl, 6, Size::B, v);
                let b1 = self.b.or(b2, b1);
                Ok(self.b.and(b0, b1))
            }
            Some(Proto::Iso) => {
                let b0 = self.linktype(LLCSAP_ISONS)?;
                let b1 = self.cmp(OffRel::LinkPlNosnap, 0, Size::B, v);
                Ok(self.b.and(b0, b1))
            }
            Some(Proto::Isis) => {
                let b0 = self.proto(ISO10589_ISIS, Some(Proto::Iso), Dir::Default)?;
                let b1 = self.cmp(OffRel::LinkPlNosnap, 4, Size::B, v);
                Ok(self.b.and(b0, b1))
            }
            Some(p) => {
                let msg = match p {
                    Proto::Arp => "arp does not encapsulate another protocol".to_string(),
                    Proto::Rarp => "rarp does not encapsulate another protocol".to_string(),
                    Proto::Atalk => "AppleTalk encapsulation is not specifiable".to_string(),
                    Proto::Decnet => "DECNET encapsulation is not specifiable".to_string(),
                    Proto::Lat => "LAT does not encapsulate another protocol".to_string(),
                    Proto::Sca => "SCA does not encapsulate another protocol".to_string(),
                    Proto::Moprc => "MOPRC does not encapsulate another protocol".to_string(),
                    Proto::Mopdl => "MOPDL does not encapsulate another protocol".to_string(),
                    Proto::Clnp => "'clnp proto' is not supported".to_string(),
                    p => format!("'{} proto' is bogus", p.keyword()),
                };
                Err(self.err(msg))
            }
        }
    }

    /// The range of a `proto` value, as libpcap master checks it (1.10
    /// silently truncates).
    pub(super) fn check_proto_value(
        &self,
        v: u32,
        proto: Option<Proto>,
    ) -> Result<(), CompileError> {
        let over = |what: &str, max: u32| {
            if v > max {
                Err(self.err(format!("{what} {v} greater than maximum {max}")))
            } else {
                Ok(())
            }
        };
        match proto {
            None | Some(Proto::Ip) | Some(Proto::Ip6) => over("protocol number", 255),
            Some(Proto::Iso) => over("ISO protocol", 255),
            Some(Proto::Isis) => over("IS-IS PDU type", 31),
            Some(Proto::Link) if v > ETHERMTU => over("EtherType", 0xffff),
            Some(Proto::Link) => over("LLC DSAP", 255),
            Some(_) => Ok(()),
        }
    }

    /// A protocol name for `proto NAME` (libpcap's `lookup_proto`).
    pub(super) fn lookup_proto(
        &self,
        name: &str,
        proto: Option<Proto>,
    ) -> Result<u32, CompileError> {
        match proto {
            None | Some(Proto::Ip) | Some(Proto::Ip6) => self
                .opts
                .resolver
                .protocol(name)
                .map(u32::from)
                .ok_or_else(|| self.err(format!("unknown ip proto '{name}'"))),
            Some(Proto::Link) => ethertype(name)
                .map(u32::from)
                .or_else(|| llc_sap(name).map(u32::from))
                .ok_or_else(|| self.err(format!("unknown ether proto '{name}'"))),
            Some(Proto::Iso) => match name {
                "esis" => Ok(ISO9542_ESIS),
                "isis" => Ok(ISO10589_ISIS),
                "clnp" => Ok(ISO8473_CLNP),
                _ => Err(self.err(format!("unknown osi proto '{name}'"))),
            },
            Some(_) => Err(self.err(format!("unknown protocol: {name}"))),
        }
    }

    fn protos_or(&mut self, vals: &[u32]) -> Result<Cond, CompileError> {
        // libpcap: b0 = first; b1 = second; or(b0, b1); then or(next, b1)...
        let mut acc = self.proto(vals[0], Some(Proto::Isis), Dir::Default)?;
        let b1 = self.proto(vals[1], Some(Proto::Isis), Dir::Default)?;
        acc = self.b.or(acc, b1);
        for &v in &vals[2..] {
            let b0 = self.proto(v, Some(Proto::Isis), Dir::Default)?;
            acc = self.b.or(b0, acc);
        }
        Ok(acc)
    }

    /// A protocol name alone: `tcp`, `ip6`, `arp`, `stp`, ...
    pub(super) fn proto_abbrev(&mut self, p: Proto) -> Result<Cond, CompileError> {
        let ip = Some(Proto::Ip);
        match p {
            Proto::Sctp => self.proto(IPPROTO_SCTP, None, Dir::Default),
            Proto::Tcp => self.proto(IPPROTO_TCP, None, Dir::Default),
            Proto::Udp => self.proto(IPPROTO_UDP, None, Dir::Default),
            Proto::Icmp => self.proto(IPPROTO_ICMP, ip, Dir::Default),
            Proto::Igmp => self.proto(IPPROTO_IGMP, ip, Dir::Default),
            Proto::Igrp => self.proto(IPPROTO_IGRP, ip, Dir::Default),
            Proto::Pim => self.proto(IPPROTO_PIM, None, Dir::Default),
            Proto::Vrrp => self.proto(IPPROTO_VRRP, ip, Dir::Default),
            Proto::Carp => self.proto(IPPROTO_CARP, ip, Dir::Default),
            Proto::Ip => self.linktype(ETHERTYPE_IP),
            Proto::Arp => self.linktype(ETHERTYPE_ARP),
            Proto::Rarp => self.linktype(ETHERTYPE_REVARP),
            Proto::Link => Err(self.err("link layer applied in wrong context")),
            Proto::Atalk => self.linktype(ETHERTYPE_ATALK),
            Proto::Aarp => self.linktype(ETHERTYPE_AARP),
            Proto::Decnet => self.linktype(ETHERTYPE_DN),
            Proto::Sca => self.linktype(ETHERTYPE_SCA),
            Proto::Lat => self.linktype(ETHERTYPE_LAT),
            Proto::Mopdl => self.linktype(ETHERTYPE_MOPDL),
            Proto::Moprc => self.linktype(ETHERTYPE_MOPRC),
            Proto::Ip6 => self.linktype(ETHERTYPE_IPV6),
            Proto::Icmp6 => self.proto(IPPROTO_ICMPV6, Some(Proto::Ip6), Dir::Default),
            Proto::Ah => self.proto(IPPROTO_AH, None, Dir::Default),
            Proto::Esp => self.proto(IPPROTO_ESP, None, Dir::Default),
            Proto::Iso => self.linktype(LLCSAP_ISONS),
            Proto::Esis => self.proto(ISO9542_ESIS, Some(Proto::Iso), Dir::Default),
            Proto::Isis => self.proto(ISO10589_ISIS, Some(Proto::Iso), Dir::Default),
            Proto::IsisL1 => self.protos_or(&[
                ISIS_L1_LAN_IIH,
                ISIS_PTP_IIH,
                ISIS_L1_LSP,
                ISIS_L1_CSNP,
                ISIS_L1_PSNP,
            ]),
            Proto::IsisL2 => self.protos_or(&[
                ISIS_L2_LAN_IIH,
                ISIS_PTP_IIH,
                ISIS_L2_LSP,
                ISIS_L2_CSNP,
                ISIS_L2_PSNP,
            ]),
            Proto::IsisIih => self.protos_or(&[ISIS_L1_LAN_IIH, ISIS_L2_LAN_IIH, ISIS_PTP_IIH]),
            Proto::IsisLsp => self.protos_or(&[ISIS_L1_LSP, ISIS_L2_LSP]),
            Proto::IsisSnp => {
                self.protos_or(&[ISIS_L1_CSNP, ISIS_L2_CSNP, ISIS_L1_PSNP, ISIS_L2_PSNP])
            }
            Proto::IsisCsnp => self.protos_or(&[ISIS_L1_CSNP, ISIS_L2_CSNP]),
            Proto::IsisPsnp => self.protos_or(&[ISIS_L1_PSNP, ISIS_L2_PSNP]),
            Proto::Clnp => self.proto(ISO8473_CLNP, Some(Proto::Iso), Dir::Default),
            Proto::Stp => self.linktype(LLCSAP_8021D),
            Proto::Ipx => self.linktype(LLCSAP_IPX),
            Proto::Netbeui => self.linktype(LLCSAP_NETBEUI),
            Proto::Radio => Err(self.err("'radio' is not a valid protocol type")),
        }
    }

    /// "Not a fragment other than the first": the fragment offset is 0.
    pub(super) fn ipfrag(&mut self) -> Cond {
        let s = self.load(OffRel::LinkPl, 6, Size::H);
        let c = self.b.test(s, JmpOp::Jset, Src::K(0x1fff));
        self.b.not(c)
    }
}
