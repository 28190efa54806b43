//! `llc` and its frame-type forms: an 802.2 LLC header (not NetWare's raw
//! 802.3) and the kind of its control field (libpcap's `gen_llc*`).

use super::block::Cond;
use super::consts::ETHERMTU;
use super::{CompileError, Dlt, Gen, OffRel};
use crate::cbpf::{JmpOp, Size, Src};
use crate::expr::names::LlcFrame;

/// The low two control bits of S and U frames.
const LLC_S_FMT: u32 = 0x01;
const LLC_U_FMT: u32 = 0x03;
/// The bits naming an S command, and a U command.
const LLC_S_CMD_MASK: u32 = 0x0f;
const LLC_U_CMD_MASK: u32 = 0xef;

impl Gen<'_> {
    /// "This frame has an 802.2 header."
    fn llc_header(&mut self) -> Result<Cond, CompileError> {
        if self.lay.link != Dlt::En10mb {
            return Err(self.err(format!(
                "'llc' not supported for {}",
                self.lay.link.description()
            )));
        }
        // A length, not a type, and not NetWare's DSAP/SSAP 0xffff.
        let b0 = self.cmp_op(OffRel::LinkType, 0, Size::H, JmpOp::Jgt, ETHERMTU);
        let b0 = self.b.not(b0);
        let b1 = self.cmp(OffRel::Llc, 0, Size::H, 0xffff);
        let b1 = self.b.not(b1);
        Ok(self.b.and(b0, b1))
    }

    pub(super) fn llc(&mut self, frame: Option<LlcFrame>) -> Result<Cond, CompileError> {
        let b0 = self.llc_header()?;
        let b1 = match frame {
            None => return Ok(b0),
            Some(LlcFrame::I) => {
                let s = self.load(OffRel::Llc, 2, Size::B);
                let c = self.b.test(s, JmpOp::Jset, Src::K(0x01));
                self.b.not(c)
            }
            Some(LlcFrame::S) => self.mcmp(OffRel::Llc, 2, Size::B, LLC_S_FMT, 0x03),
            Some(LlcFrame::U) => self.mcmp(OffRel::Llc, 2, Size::B, LLC_U_FMT, 0x03),
            Some(LlcFrame::SSubtype(v)) => {
                self.mcmp(OffRel::Llc, 2, Size::B, u32::from(v), LLC_S_CMD_MASK)
            }
            Some(LlcFrame::USubtype(v)) => {
                self.mcmp(OffRel::Llc, 2, Size::B, u32::from(v), LLC_U_CMD_MASK)
            }
        };
        Ok(self.b.and(b0, b1))
    }
}
