//! Encapsulations that move the headers after them: 802.1Q/802.1ad tags,
//! MPLS labels and PPPoE sessions. Each shifts the layout for everything
//! compiled later in the expression (libpcap's rule, source order), so
//! `vlan 10 and ip` looks for IP after the tag.

use super::block::Cond;
use super::consts::*;
use super::{CompileError, Dlt, Gen, Off, OffRel};
use crate::cbpf::Size;

impl Gen<'_> {
    /// `vlan [ID]`. A dead or offline handle sees tags in the packet
    /// bytes, so this is libpcap's test without BPF extensions, except for
    /// the outermost tag with [`Options::vlan_ext`](super::Options) (see
    /// `vlan_ext`).
    pub(super) fn vlan(&mut self, id: Option<u32>) -> Result<Cond, CompileError> {
        if self.label_depth > 0 {
            return Err(self.err("no VLAN match after MPLS"));
        }
        if self.lay.link != Dlt::En10mb {
            return Err(self.err(format!(
                "no VLAN support for {}",
                self.lay.link.description()
            )));
        }
        let c = if self.vlan_ext_applies() {
            self.vlan_metadata(id)?
        } else {
            self.vlan_in_bytes(id)?
        };
        self.vlan_depth += 1;
        Ok(c)
    }

    /// The tag is in the packet bytes: test its TPID (and VID), then move
    /// everything after it 4 bytes on.
    fn vlan_in_bytes(&mut self, id: Option<u32>) -> Result<Cond, CompileError> {
        let mut c = self.vlan_tpid_test()?;
        if let Some(id) = id {
            let vid = self.vlan_vid_test(id)?;
            c = self.b.and(c, vid);
        }
        self.lay.linkpl.k = self.lay.linkpl.k.wrapping_add(4);
        if let Some(t) = &mut self.lay.linktype {
            t.k = t.k.wrapping_add(4);
        }
        Ok(c)
    }

    /// 802.1Q, 802.1ad or the old QinQ TPID where the link type is.
    pub(super) fn vlan_tpid_test(&mut self) -> Result<Cond, CompileError> {
        let b0 = self.linktype(ETHERTYPE_8021Q)?;
        let b1 = self.linktype(ETHERTYPE_8021AD)?;
        let b1 = self.b.or(b0, b1);
        let b2 = self.linktype(ETHERTYPE_8021QINQ)?;
        Ok(self.b.or(b1, b2))
    }

    /// The VID in the tag's TCI, at the link payload.
    pub(super) fn vlan_vid_test(&mut self, id: u32) -> Result<Cond, CompileError> {
        if id > 0x0fff {
            return Err(self.err(format!("VLAN tag {id} greater than maximum {}", 0x0fff)));
        }
        Ok(self.mcmp(OffRel::LinkPl, 0, Size::H, id, 0x0fff))
    }

    /// `mpls [LABEL]`: the first one tests the EtherType, later ones that
    /// the previous label was not the bottom of the stack.
    pub(super) fn mpls(&mut self, label: Option<u32>) -> Result<Cond, CompileError> {
        let mut c = if self.label_depth > 0 {
            self.mcmp(OffRel::PrevMplsHdr, 2, Size::B, 0, 0x01)
        } else {
            match self.lay.link {
                Dlt::En10mb => self.linktype(ETHERTYPE_MPLS)?,
                Dlt::Ppp => self.linktype(PPP_MPLS_UCAST)?,
                l => return Err(self.err(format!("no MPLS support for {}", l.description()))),
            }
        };
        if let Some(label) = label {
            if label > 0xfffff {
                return Err(self.err(format!(
                    "MPLS label {label} greater than maximum {}",
                    0xfffff
                )));
            }
            let b1 = self.mcmp(OffRel::LinkPl, 0, Size::W, label << 12, 0xffff_f000);
            c = self.b.and(c, b1);
        }
        self.lay.nl_nosnap += 4;
        self.lay.nl += 4;
        self.label_depth += 1;
        Ok(c)
    }

    /// `pppoes [SESSION]`: afterwards the link layer is the PPP header
    /// inside the session.
    pub(super) fn pppoes(&mut self, sess: Option<u32>) -> Result<Cond, CompileError> {
        let mut c = self.linktype(ETHERTYPE_PPPOES)?;
        if let Some(sess) = sess {
            if sess > 0xffff {
                return Err(self.err(format!(
                    "PPPoE session number {sess} greater than maximum {}",
                    0xffff
                )));
            }
            let b1 = self.mcmp(OffRel::LinkPl, 0, Size::W, sess, 0xffff);
            c = self.b.and(c, b1);
        }
        let pl = self.lay.linkpl;
        let hdr = Off {
            k: pl.k.wrapping_add(self.lay.nl).wrapping_add(6),
            reg: pl.reg,
        };
        self.lay.push_linkhdr(Dlt::Ppp, hdr);
        self.lay.linktype = Some(hdr);
        self.lay.linkpl = Off {
            k: hdr.k.wrapping_add(2),
            reg: pl.reg,
        };
        self.lay.nl = 0;
        self.lay.nl_nosnap = 0;
        Ok(c)
    }

    /// "The protocol is `ll`" inside MPLS: only IPv4 and IPv6 can be told
    /// apart, by the bottom-of-stack bit and the IP version nibble.
    pub(super) fn mpls_linktype(&mut self, ll: u32) -> Result<Cond, CompileError> {
        let version = match ll {
            ETHERTYPE_IP => 0x40,
            ETHERTYPE_IPV6 => 0x60,
            _ => return Err(self.err("unsupported protocol over mpls")),
        };
        let b0 = self.mcmp(OffRel::LinkPl, (-2i32) as u32, Size::B, 0x01, 0x01);
        let b1 = self.mcmp(OffRel::LinkPl, 0, Size::B, version, 0xf0);
        Ok(self.b.and(b0, b1))
    }
}
