//! One line per packet in the spirit of tcpdump's default output, for
//! `filterd capture` (which puts the time in front):
//!
//! ```text
//! IP 10.0.0.1.80 > 10.0.0.2.1000: TCP [S.], length 20
//! vlan 100, p 0, IP6 2001:db8::1.53 > fe80::1.999: UDP, length 42
//! ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28
//! ```
//!
//! `length` is the transport payload for TCP and UDP (as tcpdump prints
//! it), the network-layer payload otherwise, both as the IP header counts
//! them: a transport header that count leaves out is `truncated`.

use std::fmt::Write as _;
use std::net::IpAddr;

use pnet_packet::arp::ArpOperations;
use pnet_packet::ethernet::{EtherType, EtherTypes};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;
use pnet_packet::Packet;

use crate::walk::{walk, Layer, Proto};
use capfile::LinkType;

/// The shortest TCP, UDP and ICMP (v4 or v6) headers.
const TCP_MIN: usize = 20;
const UDP_MIN: usize = 8;
const ICMP_MIN: usize = 4;

/// The IP header a transport line is about.
struct Net<'a> {
    name: &'static str,
    src: IpAddr,
    dst: IpAddr,
    v4: Option<&'a Ipv4Packet<'a>>,
}

/// The summary line of one Ethernet frame (no time, no newline). `tag` is
/// the outer VLAN tag `(tpid, tci)` the kernel took out of the frame.
pub fn tcpdump_line(frame: &[u8], wire_len: u32, tag: Option<(u16, u16)>) -> String {
    let mut out = String::new();
    if let Some((_, tci)) = tag {
        let _ = write!(out, "vlan {}, p {}, ", tci & 0xfff, tci >> 13);
    }
    let layers = walk(LinkType::ETHERNET, frame);
    // The EtherType an IP header was expected under, and the IP header
    // a transport line names.
    let mut ethertype = None;
    let mut net: Option<Net<'_>> = None;
    for layer in &layers {
        let w = &mut out;
        let _ = match layer {
            Layer::Ethernet(eth) => {
                ethertype = Some(eth.get_ethertype());
                Ok(())
            }
            Layer::Vlan { tag, .. } => {
                ethertype = Some(tag.get_ethertype());
                let pcp = tag.get_priority_code_point().0;
                write!(w, "vlan {}, p {pcp}, ", tag.get_vlan_identifier())
            }
            Layer::Length(n) if *n <= 1500 => write!(w, "802.3, length {n}"),
            Layer::Length(n) | Layer::EtherType(EtherType(n)) => {
                write!(w, "ethertype {n:#06x}, length {wire_len}")
            }
            Layer::Arp { ethertype, packet } => {
                let name = arp_name(*ethertype);
                let (spa, tpa) = (
                    packet.get_sender_proto_addr(),
                    packet.get_target_proto_addr(),
                );
                let _ = match packet.get_operation() {
                    ArpOperations::Request => write!(w, "{name}, Request who-has {tpa} tell {spa}"),
                    ArpOperations::Reply => {
                        write!(
                            w,
                            "{name}, Reply {spa} is-at {}",
                            packet.get_sender_hw_addr()
                        )
                    }
                    op => write!(w, "{name}, op {} {spa} > {tpa}", op.0),
                };
                write!(w, ", length {}", packet.packet().len())
            }
            Layer::IpEmpty if ethertype == Some(EtherTypes::Ipv6) => {
                write!(w, "IP6 truncated, length 0")
            }
            Layer::IpEmpty => write!(w, "IP truncated, length 0"),
            Layer::IpVersion(v) => write!(w, "IP version {v}, length {wire_len}"),
            Layer::Ipv4(p) => {
                net = Some(Net {
                    name: "IP",
                    src: IpAddr::V4(p.get_source()),
                    dst: IpAddr::V4(p.get_destination()),
                    v4: Some(p),
                });
                Ok(())
            }
            Layer::Ipv6(p) => {
                net = Some(Net {
                    name: "IP6",
                    src: IpAddr::V6(p.get_source()),
                    dst: IpAddr::V6(p.get_destination()),
                    v4: None,
                });
                Ok(())
            }
            Layer::Ipv6Extension { .. } => Ok(()),
            Layer::Truncated { what, len, claimed } => {
                truncated(w, *what, *len, *claimed, net.as_ref(), wire_len)
            }
            Layer::NotDecoded { linktype, len } => {
                write!(w, "link type {linktype}, length {len}")
            }
            Layer::LinuxCooked { .. } | Layer::Loopback { .. } => Ok(()),
            transport => match &net {
                Some(net) => transport_line(w, net, transport),
                None => Ok(()),
            },
        };
    }
    out
}

fn arp_name(ethertype: EtherType) -> &'static str {
    if ethertype == EtherTypes::Rarp {
        "RARP"
    } else {
        "ARP"
    }
}

/// A header cut short: by the capture (`len` bytes there) or, under IP,
/// by what the IP header counts (`claimed`).
fn truncated(
    w: &mut String,
    what: Proto,
    len: usize,
    claimed: usize,
    net: Option<&Net<'_>>,
    wire_len: u32,
) -> std::fmt::Result {
    let l4 = |w: &mut String, name: &str| match net {
        Some(n) => write!(
            w,
            "{} {} > {}: {name} truncated, length {claimed}",
            n.name, n.src, n.dst
        ),
        None => write!(w, "{name} truncated, length {claimed}"),
    };
    match what {
        Proto::Ethernet => write!(w, "truncated Ethernet header, length {wire_len}"),
        Proto::LinuxCooked => write!(w, "truncated Linux cooked header, length {wire_len}"),
        Proto::Loopback => write!(w, "truncated loopback header, length {wire_len}"),
        Proto::Vlan(_) => write!(w, "truncated 802.1Q tag, length {wire_len}"),
        Proto::Arp(t) => write!(w, "{} truncated, length {len}", arp_name(t)),
        Proto::Ipv4 => write!(w, "IP truncated, length {len}"),
        Proto::Ipv6 => write!(w, "IP6 truncated, length {len}"),
        Proto::Ipv6Extension => match net {
            Some(n) => write!(w, "IP6 {} > {}: truncated extension header", n.src, n.dst),
            None => write!(w, "IP6 truncated extension header"),
        },
        Proto::Tcp => l4(w, "TCP"),
        Proto::Udp => l4(w, "UDP"),
        Proto::Icmp => l4(w, "ICMP"),
        Proto::Icmpv6 => l4(w, "ICMP6"),
    }
}

/// What follows an IP header: `NET SRC[.PORT] > DST[.PORT]: ...`.
fn transport_line(w: &mut String, net: &Net<'_>, layer: &Layer<'_>) -> std::fmt::Result {
    let Net { name, src, dst, .. } = net;
    let cut = |w: &mut String, what: &str, claimed: usize| {
        write!(
            w,
            "{name} {src} > {dst}: {what} truncated, length {claimed}"
        )
    };
    match layer {
        Layer::Tcp { packet, claimed } => {
            // The header and payload as the IP header counts them.
            let Some(t) = counted(packet.packet(), *claimed, TCP_MIN).and_then(TcpPacket::new)
            else {
                return cut(w, "TCP", *claimed);
            };
            let (sp, dp) = (t.get_source(), t.get_destination());
            let flags = tcp_flags(t.get_flags());
            let len = t.payload().len();
            write!(
                w,
                "{name} {src}.{sp} > {dst}.{dp}: TCP [{flags}], length {len}"
            )
        }
        Layer::Udp { packet, claimed } => {
            let Some(u) = counted(packet.packet(), *claimed, UDP_MIN).and_then(UdpPacket::new)
            else {
                return cut(w, "UDP", *claimed);
            };
            let (sp, dp, len) = (u.get_source(), u.get_destination(), u.payload().len());
            write!(w, "{name} {src}.{sp} > {dst}.{dp}: UDP, length {len}")
        }
        Layer::Icmp { packet, claimed } if *claimed >= ICMP_MIN => {
            let (t, c) = (packet.get_icmp_type().0, packet.get_icmp_code().0);
            write!(
                w,
                "{name} {src} > {dst}: ICMP type {t} code {c}, length {claimed}"
            )
        }
        Layer::Icmp { claimed, .. } => cut(w, "ICMP", *claimed),
        Layer::Icmpv6 { packet, claimed } if *claimed >= ICMP_MIN => {
            let (t, c) = (packet.get_icmpv6_type().0, packet.get_icmpv6_code().0);
            write!(
                w,
                "{name} {src} > {dst}: ICMP6 type {t} code {c}, length {claimed}"
            )
        }
        Layer::Icmpv6 { claimed, .. } => cut(w, "ICMP6", *claimed),
        Layer::Fragment { protocol, claimed } => match net.v4 {
            Some(ip) => write!(
                w,
                "{name} {src} > {dst}: ip-proto-{} (frag {}:{claimed}@{}), length {claimed}",
                protocol.0,
                ip.get_identification(),
                u32::from(ip.get_fragment_offset()) * 8
            ),
            None => write!(w, "{name} {src} > {dst}: frag, length {claimed}"),
        },
        Layer::Protocol { protocol, claimed } => {
            write!(
                w,
                "{name} {src} > {dst}: ip-proto-{}, length {claimed}",
                protocol.0
            )
        }
        _ => Ok(()),
    }
}

/// The first `claimed` bytes of a header's bytes, when they hold at
/// least `min`.
fn counted(bytes: &[u8], claimed: usize, min: usize) -> Option<&[u8]> {
    bytes.get(..claimed).filter(|b| b.len() >= min)
}

/// tcpdump's flag letters: S F P R U W E, and `.` for ACK.
fn tcp_flags(f: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x08, 'P'),
        (0x04, 'R'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    if f & 0x10 != 0 {
        s.push('.');
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

#[cfg(test)]
#[path = "tcpdump_tests.rs"]
mod tests;
