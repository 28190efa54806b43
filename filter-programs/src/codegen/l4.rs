//! Transport ports: `port`, `portrange`, over IPv4 (first fragments only)
//! and IPv6 (no extension headers), for TCP, UDP and SCTP.

use super::block::Cond;
use super::consts::*;
use super::Transport;
use super::{CompileError, Gen, OffRel};
use crate::expr::qualifiers::{Dir, Proto};

/// Port tests per address family.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Gen<'_> {
    /// The IP protocol a port qualifier restricts to (`None`: TCP, UDP
    /// and SCTP).
    pub(super) fn port_proto(
        &self,
        p: Option<Proto>,
        range: bool,
    ) -> Result<Option<u32>, CompileError> {
        match p {
            None => Ok(None),
            Some(Proto::Tcp) => Ok(Some(IPPROTO_TCP)),
            Some(Proto::Udp) => Ok(Some(IPPROTO_UDP)),
            Some(Proto::Sctp) => Ok(Some(IPPROTO_SCTP)),
            Some(_) => Err(self.err(if range {
                "illegal qualifier of 'portrange'"
            } else {
                "illegal qualifier of 'port'"
            })),
        }
    }

    /// libpcap's `pcap_nametoport`: the TCP port of a name, or its UDP
    /// port; both transports when they agree. SCTP entries are not looked
    /// up (libpcap 1.10 does not).
    fn nametoport(&self, name: &str) -> Option<(u32, Option<u32>)> {
        if let Ok(n) = name.parse::<u16>() {
            // A numeric service, as getaddrinfo() reads it.
            return Some((u32::from(n), None));
        }
        let r = &self.opts.resolver;
        match (
            r.service(name, Transport::Tcp),
            r.service(name, Transport::Udp),
        ) {
            (Some(t), Some(u)) if t == u => Some((u32::from(t), None)),
            (Some(t), _) => Some((u32::from(t), Some(IPPROTO_TCP))),
            (None, Some(u)) => Some((u32::from(u), Some(IPPROTO_UDP))),
            (None, None) => None,
        }
    }

    /// Reconciles the transport a port name belongs to with the written
    /// qualifier, with libpcap's messages.
    fn name_proto(
        &self,
        name: &str,
        qual: Option<Proto>,
        real: Option<u32>,
        range: bool,
    ) -> Result<Option<u32>, CompileError> {
        let want = self.port_proto(qual, range)?;
        let Some(want) = want else { return Ok(real) };
        let what = if range { "port in range" } else { "port" };
        match real {
            Some(r) if r != want => {
                let is = match r {
                    IPPROTO_TCP => "tcp",
                    IPPROTO_UDP => "udp",
                    _ => "sctp",
                };
                Err(self.err(format!("{what} '{name}' is {is}")))
            }
            _ => Ok(Some(want)),
        }
    }

    pub(super) fn name_port(
        &self,
        name: &str,
        qual: Option<Proto>,
    ) -> Result<(u32, Option<u32>), CompileError> {
        self.port_proto(qual, false)?;
        let Some((port, real)) = self.nametoport(name) else {
            return Err(self.err(format!("unknown port '{name}'")));
        };
        let proto = self.name_proto(name, qual, real, false)?;
        Ok((port, proto))
    }

    pub(super) fn name_portrange(
        &self,
        name: &str,
        qual: Option<Proto>,
    ) -> Result<(u32, u32, Option<u32>), CompileError> {
        self.port_proto(qual, true)?;
        let unknown = || self.err(format!("unknown port in range '{name}'"));
        let (p1, p2, real) = match numeric_range(name) {
            Some((a, b)) => (a, b, None),
            None => {
                let (a, b) = name.split_once('-').ok_or_else(unknown)?;
                let (p1, r1) = self.nametoport(a).ok_or_else(unknown)?;
                let (p2, r2) = self.nametoport(b).ok_or_else(unknown)?;
                (p1, p2, if r1 == r2 { r2 } else { None })
            }
        };
        let proto = self.name_proto(name, qual, real, true)?;
        for p in [p1, p2] {
            if p > 65535 {
                return Err(self.err(format!("illegal port number {p} > 65535")));
            }
        }
        Ok((p1, p2, proto))
    }

    /// One family's `port N` for one transport (libpcap's `gen_port`,
    /// `gen_port6`).
    pub(super) fn port_one(
        &mut self,
        v6: bool,
        port: u32,
        proto: u32,
        dir: Dir,
    ) -> Result<Cond, CompileError> {
        let fam = if v6 { Family::V6 } else { Family::V4 };
        self.ports(fam, port, port, Some(proto), dir, false)
    }

    /// `port N` over IPv6, then over IPv4 (libpcap tries IPv6 first).
    pub(super) fn port_both(
        &mut self,
        port: u32,
        proto: Option<u32>,
        dir: Dir,
    ) -> Result<Cond, CompileError> {
        let v4 = self.ports(Family::V4, port, port, proto, dir, false)?;
        let v6 = self.ports(Family::V6, port, port, proto, dir, false)?;
        Ok(self.b.or(v6, v4))
    }

    pub(super) fn portrange_both(
        &mut self,
        p1: u32,
        p2: u32,
        proto: Option<u32>,
        dir: Dir,
    ) -> Result<Cond, CompileError> {
        let v4 = self.ports(Family::V4, p1, p2, proto, dir, true)?;
        let v6 = self.ports(Family::V6, p1, p2, proto, dir, true)?;
        Ok(self.b.or(v6, v4))
    }

    /// libpcap's `gen_port`/`gen_portrange` and their IPv6 twins.
    fn ports(
        &mut self,
        fam: Family,
        p1: u32,
        p2: u32,
        proto: Option<u32>,
        dir: Dir,
        range: bool,
    ) -> Result<Cond, CompileError> {
        let b0 = self.linktype(if fam == Family::V4 {
            ETHERTYPE_IP
        } else {
            ETHERTYPE_IPV6
        })?;
        let b1 = match proto {
            Some(p) => self.portop(fam, p1, p2, p, dir, range)?,
            None => {
                let tmp = self.portop(fam, p1, p2, IPPROTO_TCP, dir, range)?;
                let b1 = self.portop(fam, p1, p2, IPPROTO_UDP, dir, range)?;
                let b1 = self.b.or(tmp, b1);
                let tmp = self.portop(fam, p1, p2, IPPROTO_SCTP, dir, range)?;
                self.b.or(tmp, b1)
            }
        };
        Ok(self.b.and(b0, b1))
    }

    fn portop(
        &mut self,
        fam: Family,
        p1: u32,
        p2: u32,
        proto: u32,
        dir: Dir,
        range: bool,
    ) -> Result<Cond, CompileError> {
        let b0 = match fam {
            Family::V4 => {
                let tmp = self.cmp(OffRel::LinkPl, 9, crate::cbpf::Size::B, proto);
                let frag = self.ipfrag();
                self.b.and(tmp, frag)
            }
            Family::V6 => self.cmp(OffRel::LinkPl, 6, crate::cbpf::Size::B, proto),
        };
        let what = if range { "port ranges" } else { "ports" };
        let b1 = self.by_dir(dir, what, |g, src_side| {
            let off = if src_side { 0 } else { 2 };
            Ok(g.port_atom(fam, off, p1, p2, range))
        })?;
        Ok(self.b.and(b0, b1))
    }

    fn port_atom(&mut self, fam: Family, off: u32, p1: u32, p2: u32, range: bool) -> Cond {
        use crate::cbpf::Size;
        let rel = if fam == Family::V4 {
            OffRel::TranIpv4
        } else {
            OffRel::TranIpv6
        };
        if !range {
            return self.cmp(rel, off, Size::H, p1);
        }
        let (lo, hi) = if p1 > p2 { (p2, p1) } else { (p1, p2) };
        let b1 = self.cmp_op(rel, off, Size::H, crate::cbpf::JmpOp::Jge, lo);
        let b2 = self.cmp_le(rel, off, Size::H, hi);
        self.b.and(b1, b2)
    }
}

/// `N-M` as `sscanf("%d-%d")` reads it (plain decimal here).
fn numeric_range(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let num = |t: &str| -> Option<u32> {
        let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            None
        } else {
            digits.parse().ok()
        }
    };
    Some((num(a.trim_start())?, num(b.trim_start())?))
}
