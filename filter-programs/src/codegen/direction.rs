//! `inbound`, `outbound` and `ifindex N`: packet metadata, found in the
//! Linux cooked headers, or else (on a live Linux capture) in the socket
//! buffer through the kernel's ancillary loads.

use super::block::Cond;
use super::{CompileError, Dlt, Gen, OffRel};
use crate::cbpf::skf::{SKF_AD_IFINDEX, SKF_AD_OFF, SKF_AD_PKTTYPE};
use crate::cbpf::Size;

/// The cooked headers' and the kernel's packet type for "sent by us".
const PACKET_OUTGOING: u32 = 4;

impl Gen<'_> {
    /// The ancillary field at `field`, if the program may use them.
    fn ancillary(&self, what: &str, field: u32) -> Result<u32, CompileError> {
        if !self.opts.linux_ext {
            return Err(self.err(format!(
                "not a live capture, '{what}' not supported on DLT_{}",
                self.lay.link.dlt_name()
            )));
        }
        Ok((SKF_AD_OFF as u32).wrapping_add(field))
    }

    pub(super) fn direction(&mut self, outbound: bool) -> Result<Cond, CompileError> {
        let what = if outbound { "outbound" } else { "inbound" };
        let out = match self.lay.link {
            Dlt::LinuxSll => self.cmp(OffRel::LinkHdr, 0, Size::H, PACKET_OUTGOING),
            Dlt::LinuxSll2 => self.cmp(OffRel::LinkHdr, 10, Size::B, PACKET_OUTGOING),
            _ => {
                let k = self.ancillary(what, SKF_AD_PKTTYPE)?;
                self.cmp(OffRel::LinkHdr, k, Size::H, PACKET_OUTGOING)
            }
        };
        Ok(if outbound { out } else { self.b.not(out) })
    }

    pub(super) fn ifindex(&mut self, index: u32) -> Result<Cond, CompileError> {
        Ok(match self.lay.link {
            Dlt::LinuxSll2 => self.cmp(OffRel::LinkHdr, 4, Size::W, index),
            _ => {
                let k = self.ancillary("ifindex", SKF_AD_IFINDEX)?;
                self.cmp(OffRel::LinkHdr, k, Size::W, index)
            }
        })
    }
}
