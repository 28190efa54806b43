//! `filterd capture`: live capture on an AF_PACKET ring whose filter is
//! our own eBPF socket program, compiled from a pcap-filter expression.
//!
//! - [`ring`]: the TPACKET_V3 ring; the filter is attached before the socket
//!   is bound, so no unfiltered packet is ever queued.
//! - files: pcap and pcapng, written by `capfile` as tcpdump writes them;
//! - without a file, one line per packet: the time, then
//!   `packet_summary::tcpdump_line`.
//!
//! What a packet socket's filter sees: the kernel removes the outer VLAN
//! tag before any tap runs and reports it beside the packet. Like libpcap
//! on Linux, [`with_tag`] puts it back into the stored bytes so the file
//! holds the frame as it was on the wire. The filter decided on that same
//! frame: socket programs read the outer tag from the skb metadata, so an
//! expression means what `tcpdump -r` makes of the written file. Live
//! `tcpdump -i` differs there: its classic filter sees the frame without
//! the tag (except for `vlan`), so e.g. `ip` also matches 802.1Q-tagged IPv4
//! on Linux. [`VlanView::Tcpdump`] asks for that meaning instead: libpcap's
//! live-handle code for `vlan` (the tag from metadata, see
//! `codegen::Options::vlan_ext`), every other load on the frame as the
//! kernel hands it over. The stored bytes are the frame as sent either way,
//! as tcpdump's are. `tests/tests/filterd_capture.rs` pins down both views.

pub mod ring;

use std::io::{self, Write};

use filter_programs::cbpf::Insn;
use filter_programs::codegen::{self, Dlt};
use filter_programs::translate::{self, Target};

use capfile::{Record, Writer};

use crate::socket::SocketProgram;
pub use ring::{Packet, Ring, Stats, Tag};

/// tcpdump's default and largest snapshot length.
pub const MAX_SNAPLEN: u32 = 262_144;
/// Where the outer tag sits in an Ethernet frame: after both addresses.
const TAG_OFFSET: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}")]
    Compile(String),
    #[error("translating to eBPF: {0}")]
    Translate(#[from] translate::TranslateError),
    #[error("loading the socket filter: {0}")]
    Load(#[from] crate::socket::SocketError),
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The sink failed: what it holds is incomplete.
    #[error("writing the capture: {0}")]
    Write(#[source] io::Error),
    #[error("{iface}: link type {hatype} is not Ethernet; only Ethernet-framed interfaces are supported")]
    LinkType { iface: String, hatype: u32 },
}

/// Which frame the filter judges when the kernel took the outer VLAN tag
/// out of the bytes (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum VlanView {
    /// The frame as on the wire, tag in place, as `tcpdump -r` judges the
    /// file: `ip` skips 802.1Q-tagged IPv4.
    #[default]
    Sent,
    /// What live `tcpdump -i` judges on Linux: the outer tag taken out and
    /// read only by `vlan`, so `ip` matches tagged IPv4 too.
    Tcpdump,
}

/// What to capture.
#[derive(Clone, Debug)]
pub struct Options {
    pub iface: String,
    pub expression: String,
    /// Bytes kept per packet; 0 means [`MAX_SNAPLEN`], as in tcpdump.
    pub snaplen: u32,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Put the interface in promiscuous mode (tcpdump's default).
    pub promisc: bool,
    /// What the filter judges on VLAN-tagged frames.
    pub vlan_view: VlanView,
}

impl Options {
    pub fn effective_snaplen(&self) -> u32 {
        if self.snaplen == 0 || self.snaplen > MAX_SNAPLEN {
            MAX_SNAPLEN
        } else {
            self.snaplen
        }
    }
}

/// Where packets go.
pub enum Sink<'a> {
    File(Writer<Box<dyn Write + 'a>>),
    Summary(&'a mut dyn Write),
}

/// The eBPF socket program for `expression` on Ethernet: [`classic`]
/// translated for `SO_ATTACH_BPF`.
pub fn compile(
    expression: &str,
    snaplen: u32,
    view: VlanView,
) -> Result<Vec<filter_programs::ebpf::insn::Insn>, CaptureError> {
    let classic = classic(expression, snaplen, view)?;
    let options = translate::Options {
        kernel_view: view == VlanView::Tcpdump,
        ..translate::Options::default()
    };
    Ok(translate::translate_with(
        &classic,
        Target::socket().with_loops(bpf_kernel::loops()),
        &options,
    )?)
}

/// libpcap's classic program for `expression` on Ethernet, whose accepting
/// return is `snaplen` (the kernel applies it as the truncation).
///
/// The `sent` view is the program for a capture file: it judges the frame
/// as sent, and its translation reads the outer tag back from metadata.
/// The `tcpdump` view is the program libpcap makes for a live Linux handle,
/// whose `vlan` reads the tag from metadata, translated to read the frame
/// as the kernel hands it over, tag taken out (`kernel_view`): how live
/// tcpdump's filter runs.
pub fn classic(expression: &str, snaplen: u32, view: VlanView) -> Result<Vec<Insn>, CaptureError> {
    let opts = codegen::Options {
        snaplen,
        linux_ext: true,
        vlan_ext: view == VlanView::Tcpdump,
        ..codegen::Options::new(Dlt::En10mb)
    };
    codegen::compile(expression, &opts).map_err(|e| CaptureError::Compile(e.render()))
}

/// The frame as it was on the wire: the tag put back after the MAC
/// addresses, both lengths grown by 4, the stored length clipped to
/// `snaplen` again (libpcap's rule). Frames too short to hold the
/// addresses are returned as they are.
pub fn with_tag(data: &[u8], wire_len: u32, tag: Option<Tag>, snaplen: u32) -> (Vec<u8>, u32) {
    let Some(tag) = tag.filter(|_| data.len() >= TAG_OFFSET) else {
        return (data.to_vec(), wire_len);
    };
    let mut out = Vec::with_capacity(data.len() + 4);
    out.extend_from_slice(&data[..TAG_OFFSET]);
    out.extend_from_slice(&tag.tpid.to_be_bytes());
    out.extend_from_slice(&tag.tci.to_be_bytes());
    out.extend_from_slice(&data[TAG_OFFSET..]);
    out.truncate(snaplen as usize);
    (out, wire_len.saturating_add(4))
}

/// The ARPHRD_ type of an interface, from sysfs.
fn hatype(iface: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/type"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// An open capture: the ring, its filter, and what it was opened with.
pub struct Capture {
    ring: Ring,
    snaplen: u32,
    // The socket holds its own reference on the program; ours keeps the
    // fd for introspection while the capture runs.
    _filter: SocketProgram,
}

impl Capture {
    /// Compiles and loads the filter, then opens the ring with it.
    pub fn open(opts: &Options) -> Result<Capture, CaptureError> {
        let ifindex = ring::ifindex(&opts.iface)?;
        // Ethernet and loopback (which carries Ethernet headers) only: the
        // program is compiled for Ethernet framing.
        match hatype(&opts.iface) {
            Some(1) | Some(772) | None => {}
            Some(other) => {
                return Err(CaptureError::LinkType {
                    iface: opts.iface.clone(),
                    hatype: other,
                })
            }
        }
        let snaplen = opts.effective_snaplen();
        let insns = compile(&opts.expression, snaplen, opts.vlan_view)?;
        let filter = SocketProgram::load(&insns, "filterd_capture")?;
        let ring = Ring::open(ifindex, &filter, snaplen, opts.promisc)?;
        Ok(Capture {
            ring,
            snaplen,
            _filter: filter,
        })
    }

    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Delivers packets to `sink` until `count` packets (when given) or
    /// until `stop` says so (asked between blocks, at least every 100 ms);
    /// returns how many were delivered.
    pub fn run(
        &mut self,
        sink: &mut Sink<'_>,
        count: Option<u64>,
        stop: &dyn Fn() -> bool,
    ) -> Result<u64, CaptureError> {
        let mut n = 0u64;
        let snaplen = self.snaplen;
        while !stop() && count.is_none_or(|c| n < c) {
            let Some(mut block) = self.ring.next_block(100)? else {
                continue;
            };
            while let Some(p) = block.next_packet()? {
                deliver(sink, &p, snaplen).map_err(CaptureError::Write)?;
                n += 1;
                if count.is_some_and(|c| n >= c) {
                    break;
                }
            }
        }
        if let Sink::Summary(w) = sink {
            w.flush().map_err(CaptureError::Write)?;
        }
        Ok(n)
    }

    /// The kernel's counters since the last call.
    pub fn stats(&self) -> io::Result<Stats> {
        self.ring.stats()
    }
}

fn deliver(sink: &mut Sink<'_>, p: &Packet<'_>, snaplen: u32) -> io::Result<()> {
    match sink {
        Sink::File(w) => {
            let (bytes, wire_len) = with_tag(p.data, p.len, p.tag, snaplen);
            w.write(&Record {
                ts_ns: u64::from(p.sec) * 1_000_000_000 + u64::from(p.nsec),
                wire_len,
                data: &bytes,
            })
        }
        Sink::Summary(w) => {
            let tag = p.tag.map(|t| (t.tpid, t.tci));
            let line = packet_summary::tcpdump_line(p.data, p.len, tag);
            writeln!(w, "{} {line}", time_of_day(p.sec, p.nsec))
        }
    }
}

/// `HH:MM:SS.micro` in local time, as tcpdump prints it.
pub fn time_of_day(sec: u32, nsec: u32) -> String {
    // `time_t` by inference: naming the alias warns on musl (the static
    // build of configs/Containerfile), where its width is to change.
    let t = sec.into();
    // SAFETY: tm is plain data; localtime_r writes it and reads only t.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    let (h, m, s) = if ok {
        (tm.tm_hour as u32, tm.tm_min as u32, tm.tm_sec as u32)
    } else {
        ((sec / 3600) % 24, (sec / 60) % 60, sec % 60)
    };
    format!("{h:02}:{m:02}:{s:02}.{:06}", nsec / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_goes_back_after_the_addresses() {
        let frame: Vec<u8> = (0u8..20).collect();
        let tag = Some(Tag {
            tpid: 0x88a8,
            tci: 0x2064,
        });
        let (b, len) = with_tag(&frame, 60, tag, MAX_SNAPLEN);
        assert_eq!(len, 64);
        assert_eq!(&b[..12], &frame[..12]);
        assert_eq!(&b[12..16], &[0x88, 0xa8, 0x20, 0x64]);
        assert_eq!(&b[16..], &frame[12..]);
        // Clipped to the snaplen after the insertion, as libpcap does.
        let (b, len) = with_tag(&frame, 60, tag, 14);
        assert_eq!((b.len(), len), (14, 64));
        // No tag, or too short for one: unchanged.
        assert_eq!(with_tag(&frame, 60, None, 10).0, frame);
        assert_eq!(
            with_tag(&frame[..11], 60, tag, 100),
            (frame[..11].to_vec(), 60)
        );
    }

    #[test]
    fn time_is_hh_mm_ss_micro() {
        let t = time_of_day(3_600 * 5 + 61, 123_456_789);
        assert_eq!(t.len(), "00:00:00.000000".len());
        assert!(t.ends_with(":01.123456"), "{t}");
    }

    #[test]
    fn snaplen_zero_or_too_big_means_the_maximum() {
        let o = |snaplen| Options {
            iface: "lo".into(),
            expression: String::new(),
            snaplen,
            count: None,
            promisc: false,
            vlan_view: VlanView::Sent,
        };
        assert_eq!(o(0).effective_snaplen(), MAX_SNAPLEN);
        assert_eq!(o(96).effective_snaplen(), 96);
        assert_eq!(o(1 << 30).effective_snaplen(), MAX_SNAPLEN);
    }

    #[test]
    fn compile_errors_are_the_expression_errors() {
        let e = compile("tcp port", 96, VlanView::Sent).expect_err("incomplete");
        assert!(matches!(e, CaptureError::Compile(_)), "{e}");
    }

    #[test]
    fn the_tcpdump_view_is_libpcaps_live_program_read_as_the_kernel_does() {
        let plain = |e| classic(e, MAX_SNAPLEN, VlanView::Sent).expect("sent");
        let live = |e| classic(e, MAX_SNAPLEN, VlanView::Tcpdump).expect("tcpdump");
        // `vlan` reads metadata in the live program only.
        assert_ne!(live("vlan 10 and ip"), plain("vlan 10 and ip"));
        // Without `vlan` the classic programs are one; the translations
        // differ, as only the `sent` one puts the tag back.
        for e in ["ip", "tcp port 80"] {
            assert_eq!(live(e), plain(e), "{e:?}");
            let sent = compile(e, MAX_SNAPLEN, VlanView::Sent).expect("sent");
            let tcpdump = compile(e, MAX_SNAPLEN, VlanView::Tcpdump).expect("tcpdump");
            assert!(
                tcpdump.len() < sent.len(),
                "{e:?}: {} vs {}",
                tcpdump.len(),
                sent.len()
            );
        }
    }
}
