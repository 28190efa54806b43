//! pcapng blocks written from their `Repr`s: the inverse of the `parse`
//! functions in [`super::wire`], with the same field offsets.

use super::wire::{self, epb, idb, shb, InterfaceRepr, SectionHeaderRepr, TsResol};
use crate::ByteOrder;

/// One block being appended to a buffer: the type and a length to be
/// filled in, the body, then the trailer that repeats the length.
struct Block<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    order: ByteOrder,
    options: bool,
}

impl<'a> Block<'a> {
    fn begin(out: &'a mut Vec<u8>, order: ByteOrder, kind: u32) -> Block<'a> {
        let start = out.len();
        let mut b = Block {
            out,
            start,
            order,
            options: false,
        };
        b.u32(kind);
        b.u32(0); // the total length, known at `end`
        b
    }

    fn u16(&mut self, v: u16) {
        let mut b = [0; 2];
        self.order.put_u16(&mut b, v);
        self.out.extend_from_slice(&b);
    }

    fn u32(&mut self, v: u32) {
        let mut b = [0; 4];
        self.order.put_u32(&mut b, v);
        self.out.extend_from_slice(&b);
    }

    fn u64(&mut self, v: u64) {
        let b = match self.order {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        };
        self.out.extend_from_slice(&b);
    }

    /// Bytes, then zeros up to a multiple of 4 from the block's start.
    fn padded(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        let len = self.out.len() - self.start;
        self.out.resize(self.start + len.next_multiple_of(4), 0);
    }

    fn option(&mut self, code: u16, value: &[u8]) {
        self.options = true;
        self.u16(code);
        self.u16(value.len() as u16);
        self.padded(value);
    }

    /// Closes the option list (when there is one) and the block.
    fn end(mut self) {
        if self.options {
            self.u16(wire::OPT_ENDOFOPT);
            self.u16(0);
        }
        let total = (self.out.len() - self.start + 4) as u32;
        let mut len = [0; 4];
        self.order.put_u32(&mut len, total);
        let at = self.start + wire::block::TOTAL_LEN.start;
        self.out[at..at + 4].copy_from_slice(&len);
        self.out.extend_from_slice(&len);
    }
}

impl SectionHeaderRepr {
    /// Appends a section header block, without options.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut b = Block::begin(out, self.order, wire::SHB_TYPE);
        b.u32(wire::BYTE_ORDER_MAGIC);
        b.u16(self.major);
        b.u16(self.minor);
        b.u64(self.section_len as u64);
        debug_assert_eq!(
            b.out.len() - b.start,
            wire::block::BODY_START + shb::OPTIONS
        );
        b.end();
    }
}

impl InterfaceRepr {
    /// Appends an interface description block in `order`, named `name`
    /// (`if_name`; none when empty or too long for an option). Options at
    /// their default values are left out.
    pub fn emit(&self, order: ByteOrder, name: &str, out: &mut Vec<u8>) {
        let mut b = Block::begin(out, order, wire::IDB_TYPE);
        b.u16(self.linktype.0);
        b.u16(0); // reserved
        b.u32(self.snaplen);
        if !name.is_empty() && name.len() < usize::from(u16::MAX) {
            b.option(idb::OPT_NAME, name.as_bytes());
        }
        if self.tsresol != TsResol::Pow10(6) {
            b.option(idb::OPT_TSRESOL, &[self.tsresol.to_byte()]);
        }
        if let Some(n) = self.fcs_len {
            b.option(idb::OPT_FCSLEN, &[n]);
        }
        if self.tsoffset != 0 {
            let mut v = [0; 8];
            v.copy_from_slice(&match order {
                ByteOrder::Little => self.tsoffset.to_le_bytes(),
                ByteOrder::Big => self.tsoffset.to_be_bytes(),
            });
            b.option(idb::OPT_TSOFFSET, &v);
        }
        b.end();
    }
}

/// Appends an enhanced packet block: `data` captured from a packet of
/// `orig_len` bytes on interface `interface_id`, at `timestamp` in that
/// interface's units.
pub fn emit_epb(
    order: ByteOrder,
    interface_id: u32,
    timestamp: u64,
    orig_len: u32,
    data: &[u8],
    out: &mut Vec<u8>,
) {
    let mut b = Block::begin(out, order, wire::EPB_TYPE);
    b.u32(interface_id);
    b.u32((timestamp >> 32) as u32);
    b.u32(timestamp as u32);
    b.u32(data.len() as u32);
    b.u32(orig_len);
    debug_assert_eq!(b.out.len() - b.start, wire::block::BODY_START + epb::DATA);
    b.padded(data);
    b.end();
}
