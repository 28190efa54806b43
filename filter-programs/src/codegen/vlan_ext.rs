//! `vlan` for a live Linux capture ([`Options::vlan_ext`]): libpcap
//! 1.10.3's code for a handle with `BPF_SPECIAL_VLAN_HANDLING`.
//!
//! On a packet socket the kernel has usually taken the outer tag out of
//! the bytes and reported it in metadata (`SKF_AD_VLAN_TAG_PRESENT`,
//! `SKF_AD_VLAN_TAG`), but not always (a tag the device or the stack did
//! not strip stays in the bytes). So the outermost `vlan` accepts either,
//! and whether what follows is 4 bytes further on is only known at run
//! time: the payload and link-type offsets get a run-time part in a
//! scratch cell, 0 on entry and 4 once the tag was found in the bytes.
//! Later tags are always in the bytes and move the constant parts, as
//! without extensions.
//!
//! The code is libpcap's instruction for instruction, including where it
//! puts the run-time updates: at the head of the TPID test, so they run
//! whenever the metadata says "no tag", whatever the TPID test then says.
//!
//! [`Options::vlan_ext`]: super::Options::vlan_ext

use super::block::{BlockId, Cond};
use super::{CompileError, Gen, Off};
use crate::cbpf::skf::Ancillary;
use crate::cbpf::{AluOp, JmpOp, Op, Size, Src};

/// The tag's length: how far the run-time parts move when it is in the bytes.
const TAG_LEN: u32 = 4;

fn ancillary(field: Ancillary) -> Op {
    // libpcap loads both fields as bytes; the kernel ignores the size of
    // an ancillary load.
    Op::LdAbs {
        size: Size::B,
        k: field.k(),
    }
}

impl Gen<'_> {
    /// libpcap's choice: the metadata path only for the first `vlan`, and
    /// only while the link header is the outermost one at a fixed offset
    /// (not inside a tunnel).
    pub(super) fn vlan_ext_applies(&self) -> bool {
        self.opts.vlan_ext
            && self.vlan_depth == 0
            && self.lay.linkhdr.reg.is_none()
            && self.lay.linkhdr.k == 0
    }

    /// `vlan [ID]` where the tag may be in metadata or in the bytes.
    pub(super) fn vlan_metadata(&mut self, id: Option<u32>) -> Result<Cond, CompileError> {
        let present = self.b.test(
            vec![ancillary(Ancillary::VlanTagPresent)],
            JmpOp::Jeq,
            Src::K(1),
        );
        // Both in-bytes tests are built before the offsets become run-time
        // ones: they read the tag where it is when it is in the bytes.
        let tpid = self.vlan_tpid_test()?;
        let vid = match id {
            Some(id) => Some(self.vlan_vid_test(id)?),
            None => None,
        };
        let mut shift = Vec::with_capacity(6);
        let pl = self.vloffset_add(self.lay.linkpl, &mut shift)?;
        self.lay.linkpl = pl;
        let ty = self.lay.linktype.unwrap_or(Off::fixed(u32::MAX));
        let ty = self.vloffset_add(ty, &mut shift)?;
        self.lay.linktype = Some(ty);
        self.vlan_vloffset = true;
        self.prepend(tpid.head, shift);
        let mut c = self.b.or(present, tpid);
        if let Some(vid) = vid {
            self.vid_from_metadata(&vid);
            c = self.b.and(c, vid);
        }
        Ok(c)
    }

    /// `M[reg] += 4` for a run-time offset part, allocating its cell on
    /// first use (libpcap's `gen_vlan_vloffset_add`).
    fn vloffset_add(&mut self, o: Off, s: &mut Vec<Op>) -> Result<Off, CompileError> {
        let reg = match o.reg {
            Some(r) => r,
            None => self.alloc_reg()?,
        };
        s.extend([
            Op::LdMem { k: reg },
            Op::Alu {
                op: AluOp::Add,
                src: Src::K(TAG_LEN),
            },
            Op::St { k: reg },
        ]);
        Ok(Off {
            k: o.k,
            reg: Some(reg),
        })
    }

    /// Makes the VID test read the TCI from metadata when the tag is
    /// there, skipping the in-bytes load but not the mask after it:
    /// `ldb [vlanp]; jeq #1, 0, 2; ldb [vlan_tci]; ja <to the mask>`.
    fn vid_from_metadata(&mut self, vid: &Cond) {
        let own = self.b.blocks[vid.head].stmts.len() as u32;
        let s = vec![
            ancillary(Ancillary::VlanTagPresent),
            Op::Jmp {
                op: JmpOp::Jeq,
                src: Src::K(1),
                jt: 0,
                jf: 2,
            },
            ancillary(Ancillary::VlanTag),
            Op::Ja {
                k: own.saturating_sub(1),
            },
        ];
        self.prepend(vid.head, s);
    }

    fn prepend(&mut self, block: BlockId, mut s: Vec<Op>) {
        let stmts = &mut self.b.blocks[block].stmts;
        s.append(stmts);
        *stmts = s;
    }

    /// Once the whole expression is built: zero the run-time parts at the
    /// program's entry (libpcap's `insert_compute_vloffsets`). The cells
    /// are those of the offsets as they are at the end, as in libpcap.
    pub(super) fn vlan_vloffset_init(&mut self, root: BlockId) -> Result<(), CompileError> {
        if !self.vlan_vloffset {
            return Ok(());
        }
        let pl = match self.lay.linkpl.reg {
            Some(r) => r,
            None => {
                let r = self.alloc_reg()?;
                self.lay.linkpl.reg = Some(r);
                r
            }
        };
        let ty = match self.lay.linktype.and_then(|t| t.reg) {
            Some(r) => r,
            None => {
                let r = self.alloc_reg()?;
                if let Some(t) = &mut self.lay.linktype {
                    t.reg = Some(r);
                }
                r
            }
        };
        let s = vec![Op::LdImm { k: 0 }, Op::St { k: pl }, Op::St { k: ty }];
        self.prepend(root, s);
        Ok(())
    }
}

#[cfg(test)]
#[path = "vlan_ext_tests.rs"]
mod tests;
