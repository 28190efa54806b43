//! Classic pcap savefiles.
//!
//! ```text
//!  file header (24 bytes, in the writer's byte order)
//!  0        4        6        8            12          16          20          24
//!  +--------+--------+--------+------------+-----------+-----------+-----------+
//!  | magic  | major  | minor  |  thiszone  |  sigfigs  |  snaplen  | linktype  |
//!  +--------+--------+--------+------------+-----------+-----------+-----------+
//!  linktype: bits 0-15 LINKTYPE_, 16-25 reserved (0), 26 FCS length present,
//!            27 reserved, 28-31 FCS length in 16-bit words
//!
//!  record header (16 bytes), then caplen bytes of packet
//!  0          4            8          12         16
//!  +----------+------------+----------+----------+
//!  |  ts_sec  |  ts_frac   |  caplen  | orig_len |
//!  +----------+------------+----------+----------+
//!  ts_frac is microseconds (magic a1b2c3d4) or nanoseconds (magic a1b23c4d)
//! ```

use std::io::BufRead;

use super::input::Input;
use super::{ByteOrder, CaptureError, ErrorKind, LinkType, Options, Packet, PacketView, Part};

mod field {
    pub type Field = std::ops::Range<usize>;
    pub const MAGIC: Field = 0..4;
    pub const VERSION_MAJOR: Field = 4..6;
    pub const VERSION_MINOR: Field = 6..8;
    pub const THISZONE: Field = 8..12;
    pub const SIGFIGS: Field = 12..16;
    pub const SNAPLEN: Field = 16..20;
    pub const LINKTYPE: Field = 20..24;

    pub const TS_SEC: Field = 0..4;
    pub const TS_FRAC: Field = 4..8;
    pub const CAPLEN: Field = 8..12;
    pub const ORIG_LEN: Field = 12..16;
}

pub const FILE_HEADER_LEN: usize = field::LINKTYPE.end;
pub const RECORD_HEADER_LEN: usize = field::ORIG_LEN.end;

/// The magic numbers of a microsecond and a nanosecond file.
pub const MAGIC_MICRO: u32 = 0xa1b2_c3d4;
pub const MAGIC_NANO: u32 = 0xa1b2_3c4d;

/// The magic of Alexey Kuznetsov's patched libpcap: microseconds, and
/// record headers of 24 bytes (8 more: interface index, protocol, packet
/// type, padding), which libpcap reads and we skip.
pub const MAGIC_KUZNETZOV: u32 = 0xa1b2_cd34;
const KUZNETZOV_RECORD_HEADER_LEN: usize = 24;

/// The major version DG/UX tcpdump wrote (as 543.0).
const DGUX_MAJOR: u16 = 543;

/// What the fractional part of a timestamp counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsResolution {
    Micro,
    Nano,
}

/// The byte order and timestamp resolution a magic number announces.
pub fn magic_kind(magic: [u8; 4]) -> Option<(ByteOrder, TsResolution)> {
    let kind = |v| match v {
        MAGIC_MICRO | MAGIC_KUZNETZOV => Some(TsResolution::Micro),
        MAGIC_NANO => Some(TsResolution::Nano),
        _ => None,
    };
    if let Some(res) = kind(u32::from_le_bytes(magic)) {
        return Some((ByteOrder::Little, res));
    }
    kind(u32::from_be_bytes(magic)).map(|res| (ByteOrder::Big, res))
}

/// The 32-bit link type field, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTypeField {
    pub linktype: LinkType,
    /// Bytes of FCS at the end of every packet, when the file says.
    pub fcs_len: Option<u8>,
}

const LT_FCS_PRESENT: u32 = 0x0400_0000;

impl LinkTypeField {
    /// Decodes the field. Never fails: libpcap reads only the low 16 bits
    /// as the link type and ignores the reserved ones, so we do too.
    pub fn parse(raw: u32) -> LinkTypeField {
        // The FCS length is counted in 16-bit words.
        let fcs_len = (raw & LT_FCS_PRESENT != 0).then_some(((raw >> 28) as u8) * 2);
        LinkTypeField {
            linktype: LinkType(raw as u16),
            fcs_len,
        }
    }

    pub fn to_raw(self) -> u32 {
        let fcs = self
            .fcs_len
            .map_or(0, |n| LT_FCS_PRESENT | (u32::from(n / 2) << 28));
        u32::from(self.linktype.0) | fcs
    }
}

/// A read-only or writable view of a file header.
#[derive(Debug)]
pub struct FileHeader<T: AsRef<[u8]>> {
    buffer: T,
    order: ByteOrder,
}

impl<T: AsRef<[u8]>> FileHeader<T> {
    /// A view over a buffer that holds a whole header with a known magic.
    pub fn new_checked(buffer: T) -> Option<FileHeader<T>> {
        let b = buffer.as_ref();
        if b.len() < FILE_HEADER_LEN {
            return None;
        }
        let (order, _) = magic_kind([b[0], b[1], b[2], b[3]])?;
        Some(FileHeader { buffer, order })
    }

    fn get32(&self, f: field::Field) -> u32 {
        self.order.u32(&self.buffer.as_ref()[f])
    }

    pub fn order(&self) -> ByteOrder {
        self.order
    }
    pub fn resolution(&self) -> TsResolution {
        let m = self.get32(field::MAGIC);
        if m == MAGIC_NANO {
            TsResolution::Nano
        } else {
            TsResolution::Micro
        }
    }
    pub fn version_major(&self) -> u16 {
        self.order.u16(&self.buffer.as_ref()[field::VERSION_MAJOR])
    }
    pub fn version_minor(&self) -> u16 {
        self.order.u16(&self.buffer.as_ref()[field::VERSION_MINOR])
    }
    pub fn thiszone(&self) -> i32 {
        self.get32(field::THISZONE) as i32
    }
    pub fn sigfigs(&self) -> u32 {
        self.get32(field::SIGFIGS)
    }
    pub fn snaplen(&self) -> u32 {
        self.get32(field::SNAPLEN)
    }
    pub fn linktype_raw(&self) -> u32 {
        self.get32(field::LINKTYPE)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FileHeader<T> {
    /// A view for writing a header in `order`; the buffer must hold one.
    pub fn new_for_writing(buffer: T, order: ByteOrder) -> Option<FileHeader<T>> {
        (buffer.as_ref().len() >= FILE_HEADER_LEN).then_some(FileHeader { buffer, order })
    }
    fn put32(&mut self, f: field::Field, v: u32) {
        self.order.put_u32(&mut self.buffer.as_mut()[f], v);
    }
    fn put16(&mut self, f: field::Field, v: u16) {
        self.order.put_u16(&mut self.buffer.as_mut()[f], v);
    }
}

/// A decoded, validated file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeaderRepr {
    pub order: ByteOrder,
    pub resolution: TsResolution,
    pub version_major: u16,
    pub version_minor: u16,
    pub thiszone: i32,
    pub sigfigs: u32,
    pub snaplen: u32,
    pub linktype: LinkTypeField,
}

impl FileHeaderRepr {
    /// Decodes a header; the error carries the offset of the bad field.
    pub fn parse<T: AsRef<[u8]>>(h: &FileHeader<T>) -> Result<FileHeaderRepr, (u64, ErrorKind)> {
        let (major, minor) = (h.version_major(), h.version_minor());
        // 2.4 is current; 2.0-2.3 differ only in how lengths were written,
        // and DG/UX tcpdump wrote 543.0 with the lengths of 2.2 (libpcap
        // reads all of these).
        if !((major == 2 && minor <= 4) || (major == DGUX_MAJOR && minor == 0)) {
            let kind = ErrorKind::UnsupportedVersion {
                format: "pcap",
                major,
                minor,
            };
            return Err((field::VERSION_MAJOR.start as u64, kind));
        }
        let linktype = LinkTypeField::parse(h.linktype_raw());
        Ok(FileHeaderRepr {
            order: h.order(),
            resolution: h.resolution(),
            version_major: major,
            version_minor: minor,
            thiszone: h.thiszone(),
            sigfigs: h.sigfigs(),
            snaplen: h.snaplen(),
            linktype,
        })
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut FileHeader<T>) {
        let magic = match self.resolution {
            TsResolution::Micro => MAGIC_MICRO,
            TsResolution::Nano => MAGIC_NANO,
        };
        h.put32(field::MAGIC, magic);
        h.put16(field::VERSION_MAJOR, self.version_major);
        h.put16(field::VERSION_MINOR, self.version_minor);
        h.put32(field::THISZONE, self.thiszone as u32);
        h.put32(field::SIGFIGS, self.sigfigs);
        h.put32(field::SNAPLEN, self.snaplen);
        h.put32(field::LINKTYPE, self.linktype.to_raw());
    }

    /// The snap length libpcap reads the file with
    /// ([`LinkType::adjust_snaplen`]): 0 or one over `i32::MAX` means the
    /// link type's maximum.
    pub fn snapshot(&self) -> u32 {
        self.linktype.linktype.adjust_snaplen(self.snaplen)
    }

    /// The longest captured length a record may have: a longer one is an
    /// error, as in libpcap ([`LinkType::max_snaplen`]).
    pub fn max_caplen(&self) -> u32 {
        self.linktype.linktype.max_snaplen()
    }

    /// The most bytes a record keeps: a record with more (but not over
    /// [`FileHeaderRepr::max_caplen`]) is cut to this many, as libpcap cuts
    /// it.
    pub fn effective_snaplen(&self) -> u32 {
        self.snapshot().min(self.max_caplen())
    }
}

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRepr {
    pub ts_sec: u32,
    pub ts_frac: u32,
    pub caplen: u32,
    pub orig_len: u32,
}

impl RecordRepr {
    pub fn parse(b: &[u8; RECORD_HEADER_LEN], order: ByteOrder) -> RecordRepr {
        RecordRepr {
            ts_sec: order.u32(&b[field::TS_SEC]),
            ts_frac: order.u32(&b[field::TS_FRAC]),
            caplen: order.u32(&b[field::CAPLEN]),
            orig_len: order.u32(&b[field::ORIG_LEN]),
        }
    }

    pub fn emit(&self, b: &mut [u8; RECORD_HEADER_LEN], order: ByteOrder) {
        order.put_u32(&mut b[field::TS_SEC], self.ts_sec);
        order.put_u32(&mut b[field::TS_FRAC], self.ts_frac);
        order.put_u32(&mut b[field::CAPLEN], self.caplen);
        order.put_u32(&mut b[field::ORIG_LEN], self.orig_len);
    }

    pub fn ts_ns(&self, res: TsResolution) -> u64 {
        let frac = match res {
            TsResolution::Micro => u64::from(self.ts_frac) * 1_000,
            TsResolution::Nano => u64::from(self.ts_frac),
        };
        u64::from(self.ts_sec) * 1_000_000_000 + frac
    }
}

/// Reads the records of a classic pcap file one at a time.
pub struct Reader<R> {
    input: Input<R>,
    header: FileHeaderRepr,
    options: Options,
    index: u64,
    done: bool,
    /// Bytes of the record last lent in place, consumed on the next read
    /// (the loan borrows the input's buffer until then).
    lent: usize,
    /// Where a record that straddles the input's buffer is copied.
    scratch: Packet,
    /// Bytes of each record header: 16, or 24 in a Kuznetsov file.
    record_len: usize,
    /// The most bytes a record keeps ([`FileHeaderRepr::effective_snaplen`],
    /// 14 more for a Kuznetsov Ethernet file, as libpcap allows).
    snaplen: u32,
    /// Whether a cut record has been reported.
    warned_cut: bool,
}

impl<R: BufRead> Reader<R> {
    pub(crate) fn after_magic(
        mut input: Input<R>,
        magic: [u8; 4],
        options: Options,
    ) -> Result<Reader<R>, CaptureError> {
        let mut buf = [0u8; FILE_HEADER_LEN];
        buf[..4].copy_from_slice(&magic);
        let got = 4 + input.fill(&mut buf[4..])?;
        if got < FILE_HEADER_LEN {
            let need = FILE_HEADER_LEN as u64;
            let kind = ErrorKind::Truncated {
                what: Part::FileHeader,
                need,
                got: got as u64,
            };
            return Err(input.error_at(0, kind));
        }
        let view = FileHeader::new_checked(&buf[..])
            .ok_or_else(|| input.error_at(0, ErrorKind::BadMagic(u32::from_be_bytes(magic))))?;
        let header = FileHeaderRepr::parse(&view).map_err(|(off, k)| input.error_at(off, k))?;
        tracing::debug!(?header, "pcap file header");
        if options.known_linktypes_only && !header.linktype.linktype.is_known() {
            let kind = ErrorKind::UnknownLinkType(header.linktype.linktype.0);
            return Err(input.error_at(field::LINKTYPE.start as u64, kind));
        }
        let scratch = Packet {
            index: 0,
            offset: 0,
            ts_ns: 0,
            data: Vec::new(),
            wire_len: 0,
            linktype: header.linktype.linktype,
        };
        let patched =
            [u32::from_le_bytes(magic), u32::from_be_bytes(magic)].contains(&MAGIC_KUZNETZOV);
        let mut snaplen = header.effective_snaplen();
        if patched && header.linktype.linktype == LinkType::ETHERNET {
            // libpcap assumes such a capture was made in cooked mode, with
            // a 14-byte Ethernet header made up on top of the snap length.
            snaplen = (header.snapshot().min(i32::MAX as u32 - 14) + 14).min(header.max_caplen());
        }
        Ok(Reader {
            input,
            header,
            options,
            record_len: if patched {
                KUZNETZOV_RECORD_HEADER_LEN
            } else {
                RECORD_HEADER_LEN
            },
            snaplen,
            warned_cut: false,
            index: 0,
            done: false,
            lent: 0,
            scratch,
        })
    }

    pub fn header(&self) -> &FileHeaderRepr {
        &self.header
    }

    fn read_record(&mut self) -> Result<Option<Packet>, CaptureError> {
        let mut packet = Packet {
            index: 0,
            offset: 0,
            ts_ns: 0,
            data: Vec::new(),
            wire_len: 0,
            linktype: self.header.linktype.linktype,
        };
        Ok(self.read_record_into(&mut packet)?.then_some(packet))
    }

    /// Reads the next record into `packet`, reusing its buffer. `false` at
    /// a clean end of file.
    pub(crate) fn read_record_into(&mut self, packet: &mut Packet) -> Result<bool, CaptureError> {
        self.return_loan();
        let start = self.input.offset();
        let mut hdr = [0u8; RECORD_HEADER_LEN];
        let got = self.input.fill(&mut hdr)?;
        if got == 0 {
            return Ok(false);
        }
        if got < RECORD_HEADER_LEN {
            let need = RECORD_HEADER_LEN as u64;
            let kind = ErrorKind::Truncated {
                what: Part::RecordHeader,
                need,
                got: got as u64,
            };
            return Err(self.input.error_at(start, kind));
        }
        let rec = self.check_record(&hdr, start)?;
        let extra = (self.record_len - RECORD_HEADER_LEN) as u64;
        let skipped = self.input.skip(extra)?;
        if skipped < extra {
            let kind = ErrorKind::Truncated {
                what: Part::RecordHeader,
                need: self.record_len as u64,
                got: RECORD_HEADER_LEN as u64 + skipped,
            };
            return Err(self.input.error_at(start, kind));
        }
        let snaplen = self.snaplen;
        let data_at = self.input.offset();
        match self
            .input
            .take_into(rec.caplen as usize, &mut packet.data)?
        {
            Ok(()) => {}
            Err(got) => {
                let need = u64::from(rec.caplen);
                let kind = ErrorKind::Truncated {
                    what: Part::PacketData,
                    need,
                    got: got as u64,
                };
                return Err(self.input.error_at(data_at, kind));
            }
        }
        if rec.caplen > snaplen {
            self.warn_cut(start, rec.caplen);
            packet.data.truncate(snaplen as usize);
        }
        packet.index = self.index;
        packet.offset = start;
        packet.ts_ns = rec.ts_ns(self.header.resolution);
        packet.wire_len = rec.orig_len;
        packet.linktype = self.header.linktype.linktype;
        self.index += 1;
        Ok(true)
    }

    /// Decodes and validates a record header read at `start`: the same
    /// checks, errors and offsets whether the record is lent or copied.
    fn check_record(
        &self,
        hdr: &[u8; RECORD_HEADER_LEN],
        start: u64,
    ) -> Result<RecordRepr, CaptureError> {
        check_record(&self.header, &self.options, self.snaplen, hdr)
            .map_err(|(off, kind)| self.input.error_at(start + off, kind))
    }

    /// Says once per file that records are cut: a file may cut every
    /// record, and one line per record would drown the output.
    fn warn_cut(&mut self, start: u64, caplen: u32) {
        if self.warned_cut {
            return;
        }
        self.warned_cut = true;
        tracing::warn!(
            file = self.input.name(),
            offset = start,
            caplen,
            snaplen = self.snaplen,
            "captured length over the snap length; keeping the first snaplen bytes, as libpcap \
             does (said once per file)"
        );
    }

    fn return_loan(&mut self) {
        if self.lent > 0 {
            self.input.consume(self.lent);
            self.lent = 0;
        }
    }

    /// The next record, lent straight from the input's buffer when it lies
    /// whole there (almost always: a file mapping, or a stream's 64 KiB
    /// buffer away from its edge), else copied into a scratch buffer by
    /// [`Reader::read_record_into`], which also handles every truncation.
    /// Clears `done` when it yields a record (see [`Reader::next_view`]).
    fn read_record_view(&mut self) -> Result<Option<PacketView<'_>>, CaptureError> {
        self.return_loan();
        let start = self.input.offset();
        if let Some((hdr, avail)) = self.input.peek::<RECORD_HEADER_LEN>()? {
            let rec = self.check_record(&hdr, start)?;
            let caplen = rec.caplen as usize;
            let head = self.record_len;
            let total = head + caplen;
            if avail >= total {
                let snaplen = self.snaplen;
                if rec.caplen > snaplen {
                    self.warn_cut(start, rec.caplen);
                }
                let keep = caplen.min(snaplen as usize);
                let index = self.index;
                let ts_ns = rec.ts_ns(self.header.resolution);
                let linktype = self.header.linktype.linktype;
                let data = self.input.buffered(head..head + keep)?;
                self.lent = total;
                self.index += 1;
                self.done = false;
                return Ok(Some(PacketView {
                    index,
                    offset: start,
                    ts_ns,
                    data,
                    wire_len: rec.orig_len,
                    linktype,
                }));
            }
        }
        let placeholder = Packet {
            index: 0,
            offset: 0,
            ts_ns: 0,
            data: Vec::new(),
            wire_len: 0,
            linktype: self.header.linktype.linktype,
        };
        let mut scratch = std::mem::replace(&mut self.scratch, placeholder);
        let got = self.read_record_into(&mut scratch);
        self.scratch = scratch;
        if !got? {
            return Ok(None);
        }
        self.done = false;
        Ok(Some(self.scratch.view()))
    }

    /// Like [`Reader::next_into`], but lends the packet: no copy when the
    /// record lies whole in the input's buffer. `None` at the end.
    pub fn next_view(&mut self) -> Option<Result<PacketView<'_>, CaptureError>> {
        if self.done {
            return None;
        }
        // Ends the stream unless a record is read: the result borrows the
        // reader, so it cannot be updated after an `Err` or a clean end.
        self.done = true;
        self.read_record_view().transpose()
    }
}

/// Decodes and validates a record header: libpcap's checks. An error
/// comes with the offset of its field within the record.
fn check_record(
    header: &FileHeaderRepr,
    options: &Options,
    snaplen: u32,
    hdr: &[u8; RECORD_HEADER_LEN],
) -> Result<RecordRepr, (u64, ErrorKind)> {
    let mut rec = RecordRepr::parse(hdr, header.order);
    // Before 2.3 the two lengths were written the other way round, and
    // some 2.3 writers did either.
    // libpcap calls 2.3 MAYBE_SWAPPED: swapped when the captured
    // length is the larger.
    let swapped = match (header.version_major, header.version_minor) {
        (DGUX_MAJOR, _) | (_, 0..=2) => true,
        (_, 3) => rec.caplen > rec.orig_len,
        _ => false,
    };
    if swapped {
        std::mem::swap(&mut rec.caplen, &mut rec.orig_len);
    }
    let caplen_at = field::CAPLEN.start as u64;
    let limit = header.max_caplen();
    if rec.caplen > limit {
        let kind = ErrorKind::CaplenTooLarge {
            caplen: rec.caplen,
            limit,
        };
        return Err((caplen_at, kind));
    }
    if rec.caplen > snaplen && options.strict_snaplen {
        let kind = ErrorKind::CaplenOverSnaplen {
            caplen: rec.caplen,
            snaplen,
        };
        return Err((caplen_at, kind));
    }
    Ok(rec)
}

/// Bytes of records lent from one look at the input's buffer: a few
/// dozen small records, so that a reader that prefetches on each look
/// (pcap-replay's) keeps the lines ahead coming.
const BATCH_BYTES: usize = 4096;

/// How a batch ended.
enum Batch {
    /// The buffer holds no further whole record (or holds nothing).
    More,
    /// The caller asked to stop.
    Stop,
    /// A record header failed its checks: (offset, error).
    Bad(u64, ErrorKind),
}

impl<R: BufRead> Reader<R> {
    /// Lends each record to `f` in turn: the same packets, checks and
    /// errors as [`Reader::next_view`], but as many records from one look
    /// at the input's buffer as lie whole in it (up to a few KiB), with
    /// no call per record. Stops when `f` returns `false` (`Ok(false)`),
    /// at the end of the file (`Ok(true)`) or at an error (after which the
    /// reader yields nothing more).
    pub fn for_each_view(
        &mut self,
        mut f: impl FnMut(PacketView<'_>) -> bool,
    ) -> Result<bool, CaptureError> {
        loop {
            if self.done {
                return Ok(true);
            }
            self.return_loan();
            let start = self.input.offset();
            let (head, snaplen) = (self.record_len, self.snaplen);
            let linktype = self.header.linktype.linktype;
            let mut cut = None;
            let (used, batch) = {
                let avail = self.input.available()?;
                let mut pos = 0;
                let mut batch = Batch::More;
                while pos < BATCH_BYTES {
                    let Some(hdr) = avail[pos..].first_chunk::<RECORD_HEADER_LEN>() else {
                        break;
                    };
                    let rec = match check_record(&self.header, &self.options, snaplen, hdr) {
                        Ok(rec) => rec,
                        Err((off, kind)) => {
                            batch = Batch::Bad(start + (pos as u64) + off, kind);
                            break;
                        }
                    };
                    let caplen = rec.caplen as usize;
                    if avail.len() - pos < head + caplen {
                        break;
                    }
                    if rec.caplen > snaplen && cut.is_none() {
                        cut = Some((start + pos as u64, rec.caplen));
                    }
                    let keep = caplen.min(snaplen as usize);
                    let view = PacketView {
                        index: self.index,
                        offset: start + pos as u64,
                        ts_ns: rec.ts_ns(self.header.resolution),
                        data: &avail[pos + head..pos + head + keep],
                        wire_len: rec.orig_len,
                        linktype,
                    };
                    self.index += 1;
                    pos += head + caplen;
                    if !f(view) {
                        batch = Batch::Stop;
                        break;
                    }
                }
                (pos, batch)
            };
            self.input.consume(used);
            if let Some((at, caplen)) = cut {
                self.warn_cut(at, caplen);
            }
            match batch {
                Batch::Stop => return Ok(false),
                Batch::Bad(at, kind) => {
                    self.done = true;
                    return Err(self.input.error_at(at, kind));
                }
                Batch::More if used > 0 => {}
                // The next record does not lie whole in the buffer, or the
                // input ended: one record the way `next_view` reads it.
                Batch::More => {
                    self.done = true;
                    match self.read_record_view()? {
                        None => return Ok(true),
                        Some(view) => {
                            if !f(view) {
                                return Ok(false);
                            }
                        }
                    }
                }
            }
        }
    }

    /// [`Iterator::next`] into a reused packet: `None` at the end.
    pub fn next_into(&mut self, packet: &mut Packet) -> Option<Result<(), CaptureError>> {
        if self.done {
            return None;
        }
        match self.read_record_into(packet) {
            Ok(true) => Some(Ok(())),
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Packet, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.read_record().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

#[cfg(test)]
#[path = "pcap_tests.rs"]
mod tests;
