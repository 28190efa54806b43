//! pcapng captures: sections, interfaces and packet blocks.
//!
//! Each section (SHB) sets the byte order and starts a fresh list of
//! interfaces (IDBs); each packet block names its interface, which gives
//! the link type, snap length and timestamp units. Blocks of other types
//! are skipped without being buffered.

mod emit;
pub mod wire;

use std::io::BufRead;

use super::input::Input;
use super::{ByteOrder, CaptureError, ErrorKind, LinkType, Options, Packet, PacketView, Part};
use wire::{block, Body, InterfaceRepr, PacketRepr, SectionHeaderRepr};

pub use emit::emit_epb;
pub use wire::SHB_TYPE;

/// Longest block accepted: libpcap's cap, which bounds the memory one
/// corrupt length can claim. Like libpcap, a reader raises it for a link
/// type with a larger maximum capture length ([`max_block_len_for`]).
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;

/// Longest block accepted once the first interface has `linktype`: an EPB
/// holding a packet of that type's maximum length and 128 KiB of options,
/// as libpcap counts, when that is over [`MAX_BLOCK_LEN`].
pub fn max_block_len_for(linktype: LinkType) -> u32 {
    let epb = (block::MIN_LEN + wire::epb::DATA) as u32 + 128 * 1024;
    MAX_BLOCK_LEN.max(linktype.max_snaplen().saturating_add(epb))
}

/// Reads the packets of a pcapng file one at a time.
pub struct Reader<R> {
    input: Input<R>,
    section: SectionHeaderRepr,
    interfaces: Vec<InterfaceRepr>,
    first_linktype: Option<LinkType>,
    first_snaplen: Option<u32>,
    /// Longest block accepted ([`max_block_len_for`]).
    max_block: u32,
    options: Options,
    index: u64,
    done: bool,
    /// The packet last lent by [`Reader::next_view`]: blocks are copied
    /// whole, so the loan is of this copy.
    lent: Packet,
}

/// One block: `bytes` runs from its type field to its trailer (for a
/// skipped block, just the header and trailer).
struct RawBlock {
    start: u64,
    kind: u32,
    bytes: Vec<u8>,
}

impl RawBlock {
    fn body(&self, order: ByteOrder) -> Body<'_> {
        let end = self.bytes.len() - 4;
        Body {
            bytes: &self.bytes[block::BODY_START..end],
            order,
        }
    }
}

impl<R: BufRead> Reader<R> {
    pub(crate) fn after_magic(
        mut input: Input<R>,
        magic: [u8; 4],
        options: Options,
    ) -> Result<Reader<R>, CaptureError> {
        let raw = read_block(
            &mut input,
            ByteOrder::Little,
            Some(magic),
            MAX_BLOCK_LEN,
            true,
        )?
        .ok_or_else(|| input.error_at(0, ErrorKind::Empty))?;
        let section = parse_section(&input, &raw)?;
        tracing::debug!(?section, "pcapng section");
        Ok(Reader {
            input,
            section,
            interfaces: Vec::new(),
            first_linktype: None,
            first_snaplen: None,
            max_block: MAX_BLOCK_LEN,
            options,
            index: 0,
            done: false,
            lent: Packet {
                index: 0,
                offset: 0,
                ts_ns: 0,
                data: Vec::new(),
                wire_len: 0,
                linktype: LinkType::ETHERNET,
            },
        })
    }

    /// [`Iterator::next`], lending the packet.
    pub fn next_view(&mut self) -> Option<Result<PacketView<'_>, CaptureError>> {
        match self.next()? {
            Ok(p) => {
                self.lent = p;
                Some(Ok(self.lent.view()))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// The link type of the first interface read so far.
    pub fn first_linktype(&self) -> Option<LinkType> {
        self.first_linktype
    }

    /// The snap length of the first interface read so far.
    pub fn first_snaplen(&self) -> Option<u32> {
        self.first_snaplen
    }

    pub fn section(&self) -> &SectionHeaderRepr {
        &self.section
    }

    fn next_packet(&mut self) -> Result<Option<Packet>, CaptureError> {
        loop {
            // Until the first interface, libpcap 1.10 (`pcap_ng_check_header`)
            // reads every block in the first section's byte order and skips
            // all but interfaces and packets: a section header there is not
            // even looked at. (Found by the `capture_read` fuzz target.)
            let opening = self.first_linktype.is_none();
            let Some(raw) = read_block(
                &mut self.input,
                self.section.order,
                None,
                self.max_block,
                !opening,
            )?
            else {
                if self.first_linktype.is_none() {
                    // libpcap cannot open a file without an interface.
                    let at = self.input.offset();
                    return Err(self.input.error_at(at, ErrorKind::NoInterfaces));
                }
                return Ok(None);
            };
            let body = raw.body(self.section.order);
            let at = |e| self.input.error_at(raw.start, e);
            let repr = match raw.kind {
                wire::SHB_TYPE if opening => continue,
                wire::SHB_TYPE => {
                    let section = parse_later_section(&self.input, &raw)?;
                    if section.order != self.section.order {
                        let kind = ErrorKind::SectionByteOrderChanged;
                        return Err(self.input.error_at(raw.start + 8, kind));
                    }
                    self.section = section;
                    self.interfaces.clear();
                    continue;
                }
                wire::IDB_TYPE => {
                    let idb = InterfaceRepr::parse(body).map_err(at)?;
                    if self.options.known_linktypes_only && !idb.linktype.is_known() {
                        let kind = ErrorKind::UnknownLinkType(idb.linktype.0);
                        let field = (block::BODY_START + wire::idb::LINKTYPE.start) as u64;
                        return Err(self.input.error_at(raw.start + field, kind));
                    }
                    // libpcap 1.10 takes one link type and snap length per
                    // file, the first interface's (snap lengths as it
                    // adjusts them), and ends the file at an interface
                    // with others: so do we.
                    if let (Some(first), Some(snap)) = (self.first_linktype, self.first_snaplen) {
                        let field = (block::BODY_START + wire::idb::LINKTYPE.start) as u64;
                        // As libpcap: the first interface's DLT against
                        // this one's LINKTYPE.
                        if first.to_dlt() != i32::from(idb.linktype.0) {
                            let kind = ErrorKind::InterfaceLinkTypeDiffers {
                                first_dlt: first.to_dlt(),
                                this: idb.linktype.0,
                            };
                            return Err(self.input.error_at(raw.start + field, kind));
                        }
                        let (a, b) = (
                            first.adjust_snaplen(snap),
                            first.adjust_snaplen(idb.snaplen),
                        );
                        if a != b {
                            let kind = ErrorKind::InterfaceSnaplenDiffers { first: a, this: b };
                            return Err(self.input.error_at(raw.start + field, kind));
                        }
                    }
                    self.first_linktype.get_or_insert(idb.linktype);
                    self.first_snaplen.get_or_insert(idb.snaplen);
                    self.max_block = self.max_block.max(max_block_len_for(idb.linktype));
                    tracing::debug!(interface = self.interfaces.len(), ?idb, "pcapng interface");
                    self.interfaces.push(idb);
                    continue;
                }
                wire::EPB_TYPE => PacketRepr::parse_epb(body).map_err(at)?,
                wire::PB_TYPE => PacketRepr::parse_pb(body).map_err(at)?,
                wire::SPB_TYPE => PacketRepr::parse_spb(body).map_err(at)?,
                other => {
                    tracing::trace!(
                        block_type = other,
                        offset = raw.start,
                        "skipping pcapng block"
                    );
                    continue;
                }
            };
            return self.packet(&raw, repr).map(Some);
        }
    }

    fn packet(&mut self, raw: &RawBlock, repr: PacketRepr<'_>) -> Result<Packet, CaptureError> {
        let count = self.interfaces.len();
        let iface = usize::try_from(repr.interface_id)
            .ok()
            .and_then(|i| self.interfaces.get(i))
            .ok_or_else(|| {
                let kind = ErrorKind::UnknownInterface {
                    id: repr.interface_id,
                    count,
                };
                self.input.error_at(raw.start, kind)
            })?;
        // The interface's snap length as libpcap adjusts it: 0, or one over
        // i32::MAX, is the link type's maximum.
        let snaplen = iface.linktype.adjust_snaplen(iface.snaplen);
        let mut data = repr.data;
        // The caplen field sits at the same place in EPB and PB.
        let caplen_at = raw.start + (block::BODY_START + wire::epb::CAPLEN.start) as u64;
        if repr.timestamp.is_none() {
            // An SPB stores no captured length: it is the wire length cut
            // to the snap length, and the block must hold that much.
            let caplen = repr.orig_len.min(snaplen);
            if caplen as usize > data.len() {
                let kind = ErrorKind::CaplenPastBlock {
                    block: repr.block,
                    caplen,
                    room: data.len(),
                };
                return Err(self.input.error_at(raw.start, kind));
            }
            data = &data[..caplen as usize];
        }
        let caplen = data.len() as u32;
        // Unlike classic pcap, libpcap refuses a pcapng packet longer than
        // the snap length rather than cutting it.
        if caplen > snaplen {
            let kind = ErrorKind::CaplenOverSnaplen { caplen, snaplen };
            return Err(self.input.error_at(caplen_at, kind));
        }
        let packet = Packet {
            index: self.index,
            offset: raw.start,
            ts_ns: repr.timestamp.map_or(0, |t| iface.ts_ns(t)),
            data: data.to_vec(),
            wire_len: repr.orig_len,
            linktype: iface.linktype,
        };
        self.index += 1;
        Ok(packet)
    }
}

/// Decodes the first section header, which must have a version libpcap
/// reads.
fn parse_section<R: BufRead>(
    input: &Input<R>,
    raw: &RawBlock,
) -> Result<SectionHeaderRepr, CaptureError> {
    decode_section(input, raw, SectionHeaderRepr::parse)
}

/// Decodes a section header after the first: libpcap requires only its
/// major version there (the caller checks the byte order).
fn parse_later_section<R: BufRead>(
    input: &Input<R>,
    raw: &RawBlock,
) -> Result<SectionHeaderRepr, CaptureError> {
    decode_section(input, raw, SectionHeaderRepr::parse_any_minor)
}

fn decode_section<R: BufRead>(
    input: &Input<R>,
    raw: &RawBlock,
    parse: fn(wire::Body<'_>) -> Result<SectionHeaderRepr, ErrorKind>,
) -> Result<SectionHeaderRepr, CaptureError> {
    let err = |off: usize, e| input.error_at(raw.start + off as u64, e);
    let magic = raw.bytes.get(8..12).ok_or_else(|| {
        let len = raw.bytes.len().saturating_sub(block::MIN_LEN);
        err(
            0,
            ErrorKind::BlockTooShort {
                block: "section header",
                len,
                need: wire::shb::OPTIONS,
            },
        )
    })?;
    let order =
        wire::byte_order_of([magic[0], magic[1], magic[2], magic[3]]).map_err(|e| err(8, e))?;
    parse(raw.body(order)).map_err(|e| err(block::BODY_START, e))
}

/// Reads one whole block of at most `max_len` bytes. `None` at a clean
/// end of file. With `sections`, a section header tells its own byte
/// order, so it is read in that order whatever `order` says; without, it
/// is read as any other block. `magic` is its type field when the caller
/// has already read it.
fn read_block<R: BufRead>(
    input: &mut Input<R>,
    order: ByteOrder,
    magic: Option<[u8; 4]>,
    max_len: u32,
    sections: bool,
) -> Result<Option<RawBlock>, CaptureError> {
    let start = input.offset() - if magic.is_some() { 4 } else { 0 };
    let mut head = [0u8; 12];
    let pre = match magic {
        Some(m) => {
            head[..4].copy_from_slice(&m);
            4
        }
        None => 0,
    };
    let got = pre + input.fill(&mut head[pre..8])?;
    if got == 0 {
        return Ok(None);
    }
    let truncated = |what, need: u64, got: usize| ErrorKind::Truncated {
        what,
        need,
        got: got as u64,
    };
    if got < 8 {
        return Err(input.error_at(start, truncated(Part::BlockHeader, 8, got)));
    }
    let mut order = order;
    let mut head_len = 8;
    let section = sections && head[block::TYPE] == SHB_TYPE.to_le_bytes();
    if section {
        let got = 8 + input.fill(&mut head[8..12])?;
        if got < 12 {
            return Err(input.error_at(start, truncated(Part::BlockHeader, 12, got)));
        }
        order = wire::byte_order_of([head[8], head[9], head[10], head[11]])
            .map_err(|e| input.error_at(start + 8, e))?;
        head_len = 12;
    }
    let kind = order.u32(&head[block::TYPE]);
    let len = order.u32(&head[block::TOTAL_LEN]);
    let min = if section { 28 } else { block::MIN_LEN as u32 };
    // libpcap 1.10 reads the file's first section header on its own path
    // (`pcap_ng_check_header`), which checks its length against the
    // bounds only, not for a multiple of 4, and never compares its
    // trailer; every later block goes through `read_block`, which does
    // both. (Both found by the `capture_read` fuzz target.)
    let first = magic.is_some();
    if len < min || (!len.is_multiple_of(4) && !first) || len > max_len {
        return Err(input.error_at(start + 4, ErrorKind::BadBlockLength(len)));
    }
    let known = matches!(
        kind,
        SHB_TYPE | wire::IDB_TYPE | wire::EPB_TYPE | wire::SPB_TYPE | wire::PB_TYPE
    );
    let rest = len as usize - head_len;
    let mut bytes = head[..head_len].to_vec();
    if known {
        match input.take(rest)? {
            Ok(more) => bytes.extend(more),
            Err(n) => {
                let e = truncated(Part::BlockBody, u64::from(len), head_len + n);
                return Err(input.error_at(start, e));
            }
        }
    } else {
        // Skip the body unbuffered; keep the header and trailer only.
        let body = (rest - 4) as u64;
        let skipped = input.skip(body)?;
        if skipped < body {
            let e = truncated(Part::BlockBody, u64::from(len), head_len + skipped as usize);
            return Err(input.error_at(start, e));
        }
        match input.take(4)? {
            Ok(trailer) => bytes.extend(trailer),
            Err(n) => {
                let e = truncated(Part::BlockBody, u64::from(len), len as usize - 4 + n);
                return Err(input.error_at(start, e));
            }
        }
    }
    let trailer = order.u32(&bytes[bytes.len() - 4..]);
    if trailer != len && !first {
        let at = start + u64::from(len) - 4;
        return Err(input.error_at(
            at,
            ErrorKind::BlockLengthMismatch {
                header: len,
                trailer,
            },
        ));
    }
    Ok(Some(RawBlock { start, kind, bytes }))
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Packet, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_packet().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

#[cfg(test)]
mod tests;
