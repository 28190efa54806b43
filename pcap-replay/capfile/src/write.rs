//! Writing captures: a classic pcap (one file header, then records) or a
//! pcapng of one section and one interface (then enhanced packet blocks).
//!
//! `filterd capture` writes what tcpdump writes from a live capture (host
//! byte order; pcap in microseconds, pcapng in nanoseconds, see
//! [`Writer::new`]); `pcap-replay -w` writes the header of its input back
//! (see [`Writer::pcap`]).

use std::io::{self, Write};
use std::path::Path;

use crate::pcap::{
    FileHeader, FileHeaderRepr, LinkTypeField, RecordRepr, TsResolution, FILE_HEADER_LEN,
    RECORD_HEADER_LEN,
};
use crate::pcapng::wire::{InterfaceRepr, SectionHeaderRepr, TsResol};
use crate::{pcapng, ByteOrder, Format, LinkType};

/// One packet to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Nanoseconds since the epoch.
    pub ts_ns: u64,
    /// The length of the packet on the wire.
    pub wire_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

impl Format {
    /// pcapng for a `.pcapng` name (any case), pcap otherwise, as
    /// Wireshark's tools choose by extension.
    pub fn from_path(p: &Path) -> Format {
        match p.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("pcapng") => Format::PcapNg,
            _ => Format::Pcap,
        }
    }
}

/// What the file's header said, which shapes every record after it.
#[derive(Clone, Copy, Debug)]
enum Header {
    Pcap(FileHeaderRepr),
    PcapNg {
        order: ByteOrder,
        interface: InterfaceRepr,
    },
}

/// A capture file being written. Its header is written on creation.
pub struct Writer<W: Write> {
    out: W,
    header: Header,
    /// One record or block, reused so that writing allocates nothing per
    /// packet.
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// A capture as tcpdump writes one from a live capture: host byte
    /// order; a pcap with microsecond timestamps, or a pcapng whose one
    /// interface, named `ifname`, has nanosecond ones.
    pub fn new(
        out: W,
        format: Format,
        linktype: LinkType,
        snaplen: u32,
        ifname: &str,
    ) -> io::Result<Writer<W>> {
        match format {
            Format::Pcap => Writer::pcap(
                out,
                FileHeaderRepr {
                    order: ByteOrder::NATIVE,
                    resolution: TsResolution::Micro,
                    version_major: 2,
                    version_minor: 4,
                    thiszone: 0,
                    sigfigs: 0,
                    snaplen,
                    linktype: LinkTypeField {
                        linktype,
                        fcs_len: None,
                    },
                },
            ),
            Format::PcapNg => {
                let interface = InterfaceRepr {
                    linktype,
                    snaplen,
                    tsresol: TsResol::Pow10(9),
                    tsoffset: 0,
                    fcs_len: None,
                };
                Writer::pcapng(out, ByteOrder::NATIVE, interface, ifname)
            }
        }
    }

    /// A classic pcap with `header`.
    pub fn pcap(mut out: W, header: FileHeaderRepr) -> io::Result<Writer<W>> {
        let mut buf = [0u8; FILE_HEADER_LEN];
        if let Some(mut view) = FileHeader::new_for_writing(&mut buf[..], header.order) {
            header.emit(&mut view);
        }
        out.write_all(&buf)?;
        Ok(Writer {
            out,
            header: Header::Pcap(header),
            buf: Vec::new(),
        })
    }

    /// A pcapng in `order` of one section (of unknown length) and one
    /// interface, named `ifname`.
    pub fn pcapng(
        mut out: W,
        order: ByteOrder,
        interface: InterfaceRepr,
        ifname: &str,
    ) -> io::Result<Writer<W>> {
        let section = SectionHeaderRepr {
            order,
            major: 1,
            minor: 0,
            section_len: -1,
        };
        let mut buf = Vec::new();
        section.emit(&mut buf);
        interface.emit(order, ifname, &mut buf);
        out.write_all(&buf)?;
        Ok(Writer {
            out,
            header: Header::PcapNg { order, interface },
            buf,
        })
    }

    /// The link type every record is written under.
    pub fn linktype(&self) -> LinkType {
        match &self.header {
            Header::Pcap(h) => h.linktype.linktype,
            Header::PcapNg { interface, .. } => interface.linktype,
        }
    }

    /// Appends one packet. Timestamps finer than the file's resolution
    /// are cut; a pcap keeps the low 32 bits of the seconds.
    pub fn write(&mut self, r: &Record<'_>) -> io::Result<()> {
        let caplen = u32::try_from(r.data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "packet longer than 4 GiB"))?;
        match &self.header {
            Header::Pcap(h) => {
                let nanos = (r.ts_ns % 1_000_000_000) as u32;
                let rec = RecordRepr {
                    ts_sec: (r.ts_ns / 1_000_000_000) as u32,
                    ts_frac: match h.resolution {
                        TsResolution::Nano => nanos,
                        TsResolution::Micro => nanos / 1_000,
                    },
                    caplen,
                    orig_len: r.wire_len,
                };
                let mut head = [0u8; RECORD_HEADER_LEN];
                rec.emit(&mut head, h.order);
                self.out.write_all(&head)?;
                self.out.write_all(r.data)
            }
            Header::PcapNg { order, interface } => {
                self.buf.clear();
                let ts = interface.tsresol.from_ns(r.ts_ns);
                pcapng::emit_epb(*order, 0, ts, r.wire_len, r.data, &mut self.buf);
                self.out.write_all(&self.buf)
            }
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
