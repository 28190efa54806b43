//! `broadcast` and `multicast`, link-layer and IPv4/IPv6.

use super::block::Cond;
use super::consts::*;
use super::{CompileError, Dlt, Gen, OffRel};
use crate::cbpf::{JmpOp, Size, Src};
use crate::expr::qualifiers::{Dir, Proto};

impl Gen<'_> {
    pub(super) fn broadcast(&mut self, p: Option<Proto>) -> Result<Cond, CompileError> {
        match p {
            None | Some(Proto::Link) => {
                if self.lay.link != Dlt::En10mb {
                    return Err(self.err("not a broadcast link"));
                }
                let check = self.prevlinkhdr_check();
                let b = self.ehost(&[0xff; 6], Dir::Dst)?;
                Ok(self.and_opt(check, b))
            }
            Some(Proto::Ip) => {
                // All ones is libpcap's PCAP_NETMASK_UNKNOWN.
                let Some(netmask) = self.opts.netmask.filter(|m| *m != u32::MAX) else {
                    return Err(self.err("netmask not known, so 'ip broadcast' not supported"));
                };
                let b0 = self.linktype(ETHERTYPE_IP)?;
                let hostmask = !netmask;
                let b1 = self.mcmp(OffRel::LinkPl, 16, Size::W, 0, hostmask);
                let b2 = self.mcmp(OffRel::LinkPl, 16, Size::W, hostmask, hostmask);
                let b2 = self.b.or(b1, b2);
                Ok(self.b.and(b0, b2))
            }
            Some(_) => Err(self.err("only link-layer/IP broadcast filters supported")),
        }
    }

    pub(super) fn multicast(&mut self, p: Option<Proto>) -> Result<Cond, CompileError> {
        match p {
            None | Some(Proto::Link) if self.lay.link == Dlt::En10mb => {
                let check = self.prevlinkhdr_check();
                let s = self.load(OffRel::LinkHdr, 0, Size::B);
                let b = self.b.test(s, JmpOp::Jset, Src::K(1));
                Ok(self.and_opt(check, b))
            }
            Some(Proto::Ip) => {
                let b0 = self.linktype(ETHERTYPE_IP)?;
                let b1 = self.cmp_op(OffRel::LinkPl, 16, Size::B, JmpOp::Jge, 224);
                Ok(self.b.and(b0, b1))
            }
            Some(Proto::Ip6) => {
                let b0 = self.linktype(ETHERTYPE_IPV6)?;
                let b1 = self.cmp(OffRel::LinkPl, 24, Size::B, 255);
                Ok(self.b.and(b0, b1))
            }
            _ => Err(self.err(
                "link-layer multicast filters supported only on ethernet/FDDI/token ring/ARCNET/802.11/ATM LANE/Fibre Channel",
            )),
        }
    }
}
