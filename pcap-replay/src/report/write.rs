//! `-w OUT.pcap`: the packets that match, as `tcpdump -r IN -w OUT EXPR`
//! writes them: a classic pcap with the input's link type and snap length,
//! each packet's captured bytes, timestamps and wire length unchanged.
//!
//! "Match" is the reference engine's verdict: libpcap's when it runs (what
//! tcpdump would decide), else our interpreter's, else the first engine's.

use std::io::{self, Write};

use capfile::pcap::{FileHeaderRepr, LinkTypeField, TsResolution};
use capfile::{ByteOrder, LinkType, Packet, Record, Writer, MAX_CAPLEN};

use crate::engine::Verdict;
use crate::replay::{CaptureInfo, FileResult};

use super::VerdictSink;

/// Writes matching packets as a pcap file.
pub struct PcapWriter<W: Write> {
    /// The output until the first capture's header is known.
    pending: Option<W>,
    file: Option<Writer<W>>,
    written: u64,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(out: W) -> PcapWriter<W> {
        PcapWriter {
            pending: Some(out),
            file: None,
            written: 0,
        }
    }

    /// Packets written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn into_inner(self) -> Option<W> {
        match self.file {
            Some(f) => f.finish().ok(),
            None => self.pending,
        }
    }
}

/// The engine whose verdict decides what is written.
fn reference(rets: &[(&'static str, Verdict)]) -> Option<Verdict> {
    let find = |name: &str| rets.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    find("libpcap")
        .or_else(|| find("cbpf"))
        .or_else(|| rets.first().map(|(_, v)| *v))
}

impl<W: Write> VerdictSink for PcapWriter<W> {
    fn start(&mut self, info: &CaptureInfo) -> io::Result<()> {
        let linktype = info.linktype.unwrap_or(LinkType::ETHERNET);
        if let Some(f) = &self.file {
            if f.linktype() != linktype {
                let msg = format!(
                    "-w: link type {linktype} differs from the output file's {}",
                    f.linktype()
                );
                return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
            }
            return Ok(());
        }
        // The input's header, in little-endian order.
        let header = FileHeaderRepr {
            order: ByteOrder::Little,
            resolution: if info.nanosecond {
                TsResolution::Nano
            } else {
                TsResolution::Micro
            },
            version_major: 2,
            version_minor: 4,
            thiszone: 0,
            sigfigs: 0,
            snaplen: if info.snaplen == 0 {
                MAX_CAPLEN
            } else {
                info.snaplen
            },
            linktype: LinkTypeField {
                linktype,
                fcs_len: None,
            },
        };
        let out = self
            .pending
            .take()
            .ok_or_else(|| io::Error::other("-w: the output failed before"))?;
        self.file = Some(Writer::pcap(out, header)?);
        Ok(())
    }

    fn verdict(
        &mut self,
        _: &FileResult,
        packet: &Packet,
        rets: &[(&'static str, Verdict)],
    ) -> io::Result<()> {
        if !reference(rets).is_some_and(|v| v.matched) {
            return Ok(());
        }
        let Some(f) = &mut self.file else {
            return Err(io::Error::other("-w: a packet before the file header"));
        };
        if packet.linktype != f.linktype() {
            let msg = format!(
                "-w: packet {} has link type {}, but the output file has {} (a pcap holds one link type)",
                packet.index, packet.linktype, f.linktype()
            );
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        f.write(&Record {
            ts_ns: packet.ts_ns,
            wire_len: packet.wire_len,
            data: &packet.data,
        })?;
        self.written += 1;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(index: u64, len: usize) -> Packet {
        Packet {
            index,
            offset: 0,
            ts_ns: 1_700_000_000_123_456_789,
            data: vec![index as u8; len],
            wire_len: 100,
            linktype: LinkType::ETHERNET,
        }
    }

    #[test]
    fn writes_what_libpcap_matched_and_reads_back() {
        let mut w = PcapWriter::new(Vec::new());
        let info = CaptureInfo {
            linktype: Some(LinkType::ETHERNET),
            snaplen: 96,
            nanosecond: false,
        };
        w.start(&info).unwrap();
        let r = crate::report::tests_support::result();
        // libpcap decides, even when another engine disagrees.
        w.verdict(
            &r,
            &packet(0, 20),
            &[
                ("cbpf", Verdict::classic(0)),
                ("libpcap", Verdict::classic(96)),
            ],
        )
        .unwrap();
        w.verdict(
            &r,
            &packet(1, 30),
            &[
                ("cbpf", Verdict::classic(96)),
                ("libpcap", Verdict::classic(0)),
            ],
        )
        .unwrap();
        w.verdict(
            &r,
            &packet(2, 40),
            &[(
                "ebpf-xdp",
                Verdict {
                    ret: 2,
                    matched: true,
                },
            )],
        )
        .unwrap();
        assert_eq!(w.written(), 2);
        let bytes = w.into_inner().unwrap();
        let c = capfile::open("w.pcap", &bytes[..]).unwrap();
        assert_eq!(c.snaplen(), Some(96));
        let got: Vec<Packet> = c.map(Result::unwrap).collect();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].data.len(), got[0].wire_len), (20, 100));
        assert_eq!(got[1].data, vec![2u8; 40]);
        // Microseconds: the nanoseconds below them are dropped.
        assert_eq!(got[0].ts_ns, 1_700_000_000_123_456_000);
    }

    #[test]
    fn a_second_link_type_is_an_error() {
        let mut w = PcapWriter::new(Vec::new());
        w.start(&CaptureInfo {
            linktype: Some(LinkType::RAW),
            snaplen: 0,
            nanosecond: true,
        })
        .unwrap();
        let r = crate::report::tests_support::result();
        let err = w
            .verdict(&r, &packet(0, 20), &[("cbpf", Verdict::classic(1))])
            .unwrap_err();
        assert!(
            err.to_string().contains("a pcap holds one link type"),
            "{err}"
        );
    }
}
