//! Capture files, pure: classic pcap and pcapng, read and written.
//!
//! Both tools of the workspace read and write captures (pcap-replay
//! replays them, `filterd test` dry-runs them, `filterd capture` and
//! `pcap-replay -w` write them), so the formats live once, here, and this
//! is the only crate that knows their magic numbers. It makes no system
//! call and has no `unsafe`: callers hand it any `Read`, `BufRead` or
//! `Write` (pcap-replay hands it a file mapping of its own).
//!
//! Ours rather than libpcap's so that every error names the file and the
//! byte offset of the bad field, and so that a corrupt file still yields
//! the packets before the fault. Each format is modelled as typed views
//! over byte slices (`wire` types with named field offsets) and a `Repr`
//! for the decoded header, as smoltcp does; the readers pull one record at
//! a time from any `Read` (or `BufRead`), never the whole file. The
//! [`write`] module emits the same `Repr`s.

#![forbid(unsafe_code)]

mod error;
mod input;
mod linktype;
pub mod pcap;
pub mod pcapng;
pub mod write;

use std::io::{BufRead, BufReader, Read};

pub use error::{CaptureError, ErrorKind, Part};
pub use linktype::LinkType;
pub use write::{Record, Writer};

use input::Input;

/// Largest captured length accepted for almost every link type: libpcap's
/// `MAXIMUM_SNAPLEN` ([`LinkType::max_snaplen`] gives the few larger ones).
/// A larger one means a corrupt file, and refusing it keeps one bad length
/// from allocating gigabytes.
pub const MAX_CAPLEN: u32 = 262_144;

/// One packet as read from a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Position in the file, from 0, counting packets only.
    pub index: u64,
    /// Byte offset of the packet's record (or block) in the file.
    pub offset: u64,
    /// Nanoseconds since the epoch.
    pub ts_ns: u64,
    /// The captured bytes (`caplen` of them).
    pub data: Vec<u8>,
    /// The length of the packet on the wire.
    pub wire_len: u32,
    pub linktype: LinkType,
}

impl Packet {
    pub fn view(&self) -> PacketView<'_> {
        PacketView {
            index: self.index,
            offset: self.offset,
            ts_ns: self.ts_ns,
            data: &self.data,
            wire_len: self.wire_len,
            linktype: self.linktype,
        }
    }
}

/// A packet lent by a reader, often straight from its buffer: valid until
/// the reader's next read. The fields mean what [`Packet`]'s do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketView<'a> {
    pub index: u64,
    pub offset: u64,
    pub ts_ns: u64,
    pub data: &'a [u8],
    pub wire_len: u32,
    pub linktype: LinkType,
}

impl PacketView<'_> {
    /// Copies the packet into `into`, reusing its buffer.
    pub fn copy_into(&self, into: &mut Packet) {
        into.index = self.index;
        into.offset = self.offset;
        into.ts_ns = self.ts_ns;
        into.data.clear();
        into.data.extend_from_slice(self.data);
        into.wire_len = self.wire_len;
        into.linktype = self.linktype;
    }
}

/// Byte order of a capture's integers, given by its magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    /// This machine's order: what a capture written "in host order", as
    /// tcpdump and `filterd capture` write, uses.
    pub const NATIVE: ByteOrder = if cfg!(target_endian = "big") {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };

    /// Reads a u16 from the first 2 bytes of `b` (callers pass exact slices).
    pub fn u16(self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        match self {
            ByteOrder::Little => u16::from_le_bytes(a),
            ByteOrder::Big => u16::from_be_bytes(a),
        }
    }

    pub fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        match self {
            ByteOrder::Little => u32::from_le_bytes(a),
            ByteOrder::Big => u32::from_be_bytes(a),
        }
    }

    pub fn u64(self, b: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        match self {
            ByteOrder::Little => u64::from_le_bytes(a),
            ByteOrder::Big => u64::from_be_bytes(a),
        }
    }

    pub fn put_u16(self, b: &mut [u8], v: u16) {
        b[..2].copy_from_slice(&match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        });
    }

    pub fn put_u32(self, b: &mut [u8], v: u32) {
        b[..4].copy_from_slice(&match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        });
    }
}

/// Which format a capture is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

/// A capture of either format, read packet by packet.
///
/// Yields `Err` at most once: after an error the stream position is
/// unknown, so iteration ends.
pub enum CaptureReader<R: BufRead> {
    Pcap(pcap::Reader<R>),
    PcapNg(pcapng::Reader<R>),
}

/// How strictly to read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Refuse a classic pcap record whose captured length is over the
    /// file's snap length. By default such a record is cut to the snap
    /// length, as libpcap does ("read up to the snapshot length, discard
    /// the rest"), and tcpdump's own test files rely on it; so this is off
    /// in both tools. (In pcapng, libpcap refuses such a record, and so do
    /// we, whatever this says.)
    pub strict_snaplen: bool,
    /// Refuse a link type that libpcap has no name for ([`LinkType::name`]):
    /// no filter can be compiled for it, so it means a corrupt or foreign
    /// file.
    pub known_linktypes_only: bool,
}

/// Opens a capture, telling the format from its first four bytes. `name`
/// is what errors call the file.
pub fn open<R: Read>(
    name: impl Into<String>,
    reader: R,
) -> Result<CaptureReader<BufReader<R>>, CaptureError> {
    open_with(name, reader, Options::default())
}

/// [`open`] with explicit [`Options`]. The reader is buffered here, so
/// callers pass unbuffered ones.
pub fn open_with<R: Read>(
    name: impl Into<String>,
    reader: R,
    options: Options,
) -> Result<CaptureReader<BufReader<R>>, CaptureError> {
    open_buffered(
        name,
        BufReader::with_capacity(input::BUFFER, reader),
        options,
    )
}

/// [`open_with`] over a reader that buffers itself, such as a file
/// mapping.
pub fn open_buffered<R: BufRead>(
    name: impl Into<String>,
    reader: R,
    options: Options,
) -> Result<CaptureReader<R>, CaptureError> {
    let mut input = Input::new(name.into(), reader);
    let mut magic = [0u8; 4];
    let got = input.fill(&mut magic)?;
    if got == 0 {
        return Err(input.error_at(0, ErrorKind::Empty));
    }
    if got < magic.len() {
        let kind = ErrorKind::Truncated {
            what: Part::FileHeader,
            need: 4,
            got: got as u64,
        };
        return Err(input.error_at(0, kind));
    }
    if pcap::magic_kind(magic).is_some() {
        pcap::Reader::after_magic(input, magic, options).map(CaptureReader::Pcap)
    } else if magic == pcapng::SHB_TYPE.to_le_bytes() {
        pcapng::Reader::after_magic(input, magic, options).map(CaptureReader::PcapNg)
    } else {
        Err(input.error_at(0, ErrorKind::BadMagic(u32::from_be_bytes(magic))))
    }
}

impl<R: BufRead> CaptureReader<R> {
    pub fn format(&self) -> Format {
        match self {
            CaptureReader::Pcap(_) => Format::Pcap,
            CaptureReader::PcapNg(_) => Format::PcapNg,
        }
    }

    /// The snap length the header announces (pcapng: the first
    /// interface's, once read); 0 means none.
    pub fn snaplen(&self) -> Option<u32> {
        match self {
            CaptureReader::Pcap(r) => Some(r.header().snaplen),
            CaptureReader::PcapNg(r) => r.first_snaplen(),
        }
    }

    /// Whether timestamps carry nanoseconds (a nanosecond pcap, or any
    /// pcapng, whose resolution is per interface).
    pub fn nanosecond(&self) -> bool {
        match self {
            CaptureReader::Pcap(r) => r.header().resolution == pcap::TsResolution::Nano,
            CaptureReader::PcapNg(_) => true,
        }
    }

    /// The link type the header announces (pcapng: the first interface's,
    /// once it has been read; `None` before any IDB).
    pub fn linktype(&self) -> Option<LinkType> {
        match self {
            CaptureReader::Pcap(r) => Some(r.header().linktype.linktype),
            CaptureReader::PcapNg(r) => r.first_linktype(),
        }
    }
}

impl<R: BufRead> CaptureReader<R> {
    /// The next packet, lent: straight from the input's buffer when the
    /// format and the record allow (classic pcap, almost always), so the
    /// replay's loop neither copies nor allocates per packet. `None` at
    /// the end; after an error, iteration ends.
    pub fn next_view(&mut self) -> Option<Result<PacketView<'_>, CaptureError>> {
        match self {
            CaptureReader::Pcap(r) => r.next_view(),
            CaptureReader::PcapNg(r) => r.next_view(),
        }
    }

    /// Lends each packet to `f` in turn, as [`CaptureReader::next_view`]
    /// would, until `f` returns `false` (`Ok(false)`), the end
    /// (`Ok(true)`) or an error. Classic pcap lends many records from one
    /// look at the input's buffer, with no call per record.
    pub fn for_each_view(
        &mut self,
        mut f: impl FnMut(PacketView<'_>) -> bool,
    ) -> Result<bool, CaptureError> {
        match self {
            CaptureReader::Pcap(r) => r.for_each_view(f),
            CaptureReader::PcapNg(r) => loop {
                match r.next_view() {
                    None => return Ok(true),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(view)) => {
                        if !f(view) {
                            return Ok(false);
                        }
                    }
                }
            },
        }
    }

    /// The next packet into `packet`, reusing its buffer where the format
    /// allows (classic pcap): the replay's loop allocates nothing per
    /// packet. `None` at the end; after an error, iteration ends.
    pub fn next_into(&mut self, packet: &mut Packet) -> Option<Result<(), CaptureError>> {
        match self {
            CaptureReader::Pcap(r) => r.next_into(packet),
            CaptureReader::PcapNg(r) => r.next().map(|item| item.map(|p| *packet = p)),
        }
    }
}

impl<R: BufRead> Iterator for CaptureReader<R> {
    type Item = Result<Packet, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            CaptureReader::Pcap(r) => r.next(),
            CaptureReader::PcapNg(r) => r.next(),
        }
    }
}
