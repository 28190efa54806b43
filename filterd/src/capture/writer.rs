//! Capture files: classic pcap (microsecond timestamps, as tcpdump writes)
//! and pcapng (one Section Header, one Interface Description with
//! nanosecond resolution, then Enhanced Packet Blocks). Both in host byte
//! order, which every reader handles through the magic numbers.

use std::io::{self, Write};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    Pcapng,
}

impl Format {
    /// pcapng for a `.pcapng` name (any case), pcap otherwise, as
    /// Wireshark's tools choose by extension.
    pub fn from_path(p: &Path) -> Format {
        match p.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("pcapng") => Format::Pcapng,
            _ => Format::Pcap,
        }
    }
}

/// One packet to write.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub sec: u32,
    pub nsec: u32,
    /// Length on the wire.
    pub orig_len: u32,
    pub data: &'a [u8],
}

pub struct Writer<W: Write> {
    out: W,
    format: Format,
}

const PCAP_MAGIC_USEC: u32 = 0xa1b2_c3d4;
const SHB: u32 = 0x0a0d_0d0a;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const IDB: u32 = 1;
const EPB: u32 = 6;
const OPT_END: u16 = 0;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// A pcapng option: code, length, value padded to 4 bytes.
fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_ne_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(pad4(buf.len()), 0);
}

/// A pcapng block around `body`: type, total length, body, total length.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let total = (12 + pad4(body.len())) as u32;
    let mut b = Vec::with_capacity(total as usize);
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(&total.to_ne_bytes());
    b.extend_from_slice(body);
    b.resize(8 + pad4(body.len()), 0);
    b.extend_from_slice(&total.to_ne_bytes());
    b
}

impl<W: Write> Writer<W> {
    /// Writes the file header. `linktype` is the LINKTYPE_ value (1 for
    /// Ethernet); `ifname` goes into the pcapng interface block.
    pub fn new(
        mut out: W,
        format: Format,
        linktype: u16,
        snaplen: u32,
        ifname: &str,
    ) -> io::Result<Writer<W>> {
        match format {
            Format::Pcap => {
                let mut h = Vec::with_capacity(24);
                h.extend_from_slice(&PCAP_MAGIC_USEC.to_ne_bytes());
                h.extend_from_slice(&2u16.to_ne_bytes());
                h.extend_from_slice(&4u16.to_ne_bytes());
                h.extend_from_slice(&0i32.to_ne_bytes()); // thiszone
                h.extend_from_slice(&0u32.to_ne_bytes()); // sigfigs
                h.extend_from_slice(&snaplen.to_ne_bytes());
                h.extend_from_slice(&u32::from(linktype).to_ne_bytes());
                out.write_all(&h)?;
            }
            Format::Pcapng => {
                let mut shb = Vec::new();
                shb.extend_from_slice(&BYTE_ORDER_MAGIC.to_ne_bytes());
                shb.extend_from_slice(&1u16.to_ne_bytes());
                shb.extend_from_slice(&0u16.to_ne_bytes());
                shb.extend_from_slice(&(-1i64).to_ne_bytes()); // section length unknown
                out.write_all(&block(SHB, &shb))?;
                let mut idb = Vec::new();
                idb.extend_from_slice(&linktype.to_ne_bytes());
                idb.extend_from_slice(&0u16.to_ne_bytes());
                idb.extend_from_slice(&snaplen.to_ne_bytes());
                if !ifname.is_empty() && ifname.len() < usize::from(u16::MAX) {
                    option(&mut idb, IF_NAME, ifname.as_bytes());
                }
                option(&mut idb, IF_TSRESOL, &[9]); // 10^-9 s
                option(&mut idb, OPT_END, &[]);
                out.write_all(&block(IDB, &idb))?;
            }
        }
        Ok(Writer { out, format })
    }

    pub fn write(&mut self, r: &Record<'_>) -> io::Result<()> {
        let caplen = u32::try_from(r.data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "packet longer than 4 GiB"))?;
        match self.format {
            Format::Pcap => {
                let mut h = [0u8; 16];
                h[0..4].copy_from_slice(&r.sec.to_ne_bytes());
                h[4..8].copy_from_slice(&(r.nsec / 1000).to_ne_bytes());
                h[8..12].copy_from_slice(&caplen.to_ne_bytes());
                h[12..16].copy_from_slice(&r.orig_len.to_ne_bytes());
                self.out.write_all(&h)?;
                self.out.write_all(r.data)
            }
            Format::Pcapng => {
                let ts = u64::from(r.sec) * 1_000_000_000 + u64::from(r.nsec);
                let mut body = Vec::with_capacity(20 + pad4(r.data.len()));
                body.extend_from_slice(&0u32.to_ne_bytes()); // interface 0
                body.extend_from_slice(&((ts >> 32) as u32).to_ne_bytes());
                body.extend_from_slice(&(ts as u32).to_ne_bytes());
                body.extend_from_slice(&caplen.to_ne_bytes());
                body.extend_from_slice(&r.orig_len.to_ne_bytes());
                body.extend_from_slice(r.data);
                self.out.write_all(&block(EPB, &body))
            }
        }
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::from_path(Path::new("a.pcapng")), Format::Pcapng);
        assert_eq!(Format::from_path(Path::new("a.PCAPNG")), Format::Pcapng);
        assert_eq!(Format::from_path(Path::new("a.pcap")), Format::Pcap);
        assert_eq!(Format::from_path(Path::new("a")), Format::Pcap);
    }

    #[test]
    fn pcap_layout() {
        let mut w = Writer::new(Vec::new(), Format::Pcap, 1, 96, "v1").expect("header");
        w.write(&Record {
            sec: 7,
            nsec: 123_456_789,
            orig_len: 60,
            data: &[1, 2, 3],
        })
        .expect("rec");
        let b = w.finish().expect("finish");
        assert_eq!(b.len(), 24 + 16 + 3);
        assert_eq!(u32_at(&b, 0), PCAP_MAGIC_USEC);
        assert_eq!((u32_at(&b, 16), u32_at(&b, 20)), (96, 1));
        assert_eq!(
            [
                u32_at(&b, 24),
                u32_at(&b, 28),
                u32_at(&b, 32),
                u32_at(&b, 36)
            ],
            [7, 123_456, 3, 60]
        );
        assert_eq!(&b[40..], &[1, 2, 3]);
    }

    #[test]
    fn pcapng_blocks_are_padded_and_lengths_match() {
        let mut w = Writer::new(Vec::new(), Format::Pcapng, 1, 262_144, "veth0").expect("header");
        w.write(&Record {
            sec: 1,
            nsec: 5,
            orig_len: 64,
            data: &[0xaa; 5],
        })
        .expect("rec");
        let b = w.finish().expect("finish");
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < b.len() {
            let (kind, total) = (u32_at(&b, at), u32_at(&b, at + 4) as usize);
            assert_eq!(total % 4, 0);
            assert_eq!(
                u32_at(&b, at + total - 4) as usize,
                total,
                "trailing length"
            );
            kinds.push(kind);
            if kind == EPB {
                let ts = (u64::from(u32_at(&b, at + 12)) << 32) | u64::from(u32_at(&b, at + 16));
                assert_eq!(ts, 1_000_000_005);
                assert_eq!((u32_at(&b, at + 20), u32_at(&b, at + 24)), (5, 64));
                assert_eq!(total, 12 + 20 + 8);
            }
            at += total;
        }
        assert_eq!(at, b.len());
        assert_eq!(kinds, [SHB, IDB, EPB]);
    }
}
