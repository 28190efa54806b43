//! Host, network and Ethernet host names, through the [`Resolver`] in
//! [`Options`](super::Options) (libpcap's `gen_scode` for host and net
//! kinds). A name with several addresses matches any of them.
//!
//! [`Resolver`]: super::Resolver

use std::net::IpAddr;

use super::block::Cond;
use super::{CompileError, Dlt, Gen};
use crate::expr::qualifiers::{Proto, Qualifiers};

impl Gen<'_> {
    /// `net NAME`: a network from the networks database, left-justified
    /// with its implied mask (`10.20` is 10.20.0.0/16).
    pub(super) fn net_name(&mut self, name: &str, q: &Qualifiers) -> Result<Cond, CompileError> {
        let mut addr = match self.opts.resolver.net(name) {
            Some(a) if a != 0 => a,
            _ => return Err(self.err(format!("unknown network '{name}'"))),
        };
        let mut mask = u32::MAX;
        while addr != 0 && addr & 0xff00_0000 == 0 {
            addr <<= 8;
            mask <<= 8;
        }
        self.host(addr, mask, q.proto, q.dir, true)
    }

    /// `[proto] host NAME` and a bare `NAME`.
    pub(super) fn host_name(&mut self, name: &str, q: &Qualifiers) -> Result<Cond, CompileError> {
        if q.proto == Some(Proto::Link) {
            return self.ether_name(name, q);
        }
        let addrs = match self.opts.resolver.host(name) {
            Ok(a) => a,
            Err(why) => return Err(self.err(why)),
        };
        if addrs.is_empty() {
            return Err(self.err(format!("unknown host '{name}'")));
        }
        // Without a link-layer type field, ARP and RARP cannot be told
        // apart, so a bare name means IPv4 or IPv6 only.
        let (p4, p6) = match q.proto {
            None if self.lay.linktype.is_none() => (Some(Proto::Ip), Some(Proto::Ip6)),
            p => (p, p),
        };
        let mut acc: Option<Cond> = None;
        for a in addrs {
            let c = match a {
                IpAddr::V4(v4) if p4 != Some(Proto::Ip6) => {
                    self.host(u32::from(v4), u32::MAX, p4, q.dir, false)?
                }
                IpAddr::V6(v6) if p6 != Some(Proto::Ip) => {
                    self.host6(u128::from(v6), u128::MAX, p6, q.dir, false)?
                }
                _ => continue,
            };
            acc = Some(match acc {
                Some(prev) => self.b.or(prev, c),
                None => c,
            });
        }
        acc.ok_or_else(|| {
            let fam = if q.proto.is_none() {
                ""
            } else {
                " for specified address family"
            };
            self.err(format!("unknown host '{name}'{fam}"))
        })
    }

    /// `ether host NAME`, from the ethers database.
    fn ether_name(&mut self, name: &str, q: &Qualifiers) -> Result<Cond, CompileError> {
        if self.lay.link != Dlt::En10mb {
            return Err(self.err(
                "only ethernet/FDDI/token ring/802.11/ATM LANE/Fibre Channel supports link-level host name",
            ));
        }
        let Some(mac) = self.opts.resolver.ether(name) else {
            return Err(self.err(format!("unknown ether host '{name}'")));
        };
        let check = self.prevlinkhdr_check();
        let b = self.ehost(&mac, q.dir)?;
        Ok(self.and_opt(check, b))
    }
}
