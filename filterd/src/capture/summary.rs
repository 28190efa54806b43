//! One line per packet, in the spirit of tcpdump's default output:
//!
//! ```text
//! 12:00:01.000123 IP 10.0.0.1.80 > 10.0.0.2.1000: TCP [S.], length 20
//! 12:00:01.000456 vlan 100, IP6 2001:db8::1.53 > fe80::1.999: UDP, length 42
//! 12:00:01.000789 ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28
//! ```
//!
//! `length` is the transport payload for TCP and UDP (as tcpdump prints
//! it), the network-layer payload otherwise. Decoding goes through
//! `pnet_packet`, whose accessors clip to the bytes present, so a truncated
//! or lying header gives a shorter line, never a panic.

use std::fmt::Write as _;
use std::net::IpAddr;

use pnet_packet::arp::{ArpOperations, ArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::icmp::IcmpPacket;
use pnet_packet::icmpv6::Icmpv6Packet;
use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols as P};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;
use pnet_packet::vlan::VlanPacket;
use pnet_packet::Packet;

/// `HH:MM:SS.micro` in local time, as tcpdump prints it.
pub fn time_of_day(sec: u32, nsec: u32) -> String {
    let t = libc::time_t::from(sec);
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

/// The summary line of one Ethernet frame (without a trailing newline).
/// `tag` is the outer VLAN tag the kernel removed, if any.
pub fn line(sec: u32, nsec: u32, frame: &[u8], wire_len: u32, tag: Option<(u16, u16)>) -> String {
    let mut out = time_of_day(sec, nsec);
    out.push(' ');
    if let Some((_, tci)) = tag {
        let _ = write!(out, "vlan {}, p {}, ", tci & 0xfff, tci >> 13);
    }
    let Some(eth) = EthernetPacket::new(frame) else {
        let _ = write!(out, "truncated Ethernet header, length {wire_len}");
        return out;
    };
    ethertype(&mut out, eth.get_ethertype().0, eth.payload(), wire_len);
    out
}

fn ethertype(out: &mut String, et: u16, body: &[u8], wire_len: u32) {
    match et {
        e if e == EtherTypes::Ipv4.0 => ipv4(out, body),
        e if e == EtherTypes::Ipv6.0 => ipv6(out, body),
        e if e == EtherTypes::Arp.0 || e == EtherTypes::Rarp.0 => arp(out, e, body),
        0x8100 | 0x88a8 | 0x9100 => match VlanPacket::new(body) {
            Some(v) => {
                let _ = write!(
                    out,
                    "vlan {}, p {}, ",
                    v.get_vlan_identifier(),
                    v.get_priority_code_point().0
                );
                ethertype(out, v.get_ethertype().0, v.payload(), wire_len);
            }
            None => {
                let _ = write!(out, "truncated 802.1Q tag, length {wire_len}");
            }
        },
        e if e <= 1500 => {
            let _ = write!(out, "802.3, length {e}");
        }
        e => {
            let _ = write!(out, "ethertype {e:#06x}, length {wire_len}");
        }
    }
}

fn ipv4(out: &mut String, body: &[u8]) {
    let Some(ip) = Ipv4Packet::new(body) else {
        let _ = write!(out, "IP truncated, length {}", body.len());
        return;
    };
    let (src, dst) = (
        IpAddr::V4(ip.get_source()),
        IpAddr::V4(ip.get_destination()),
    );
    let proto = ip.get_next_level_protocol();
    let payload = ip.payload();
    let frag_off = ip.get_fragment_offset();
    if frag_off != 0 {
        // A later fragment has no transport header to decode.
        let _ = write!(
            out,
            "IP {src} > {dst}: ip-proto-{} (frag {}:{}@{}), length {}",
            proto.0,
            ip.get_identification(),
            payload.len(),
            u32::from(frag_off) * 8,
            payload.len()
        );
        return;
    }
    transport(out, "IP", src, dst, proto, payload);
}

/// The extension headers the walk steps over: hop-by-hop, routing,
/// destination options and fragment.
fn ipv6(out: &mut String, body: &[u8]) {
    let Some(ip) = Ipv6Packet::new(body) else {
        let _ = write!(out, "IP6 truncated, length {}", body.len());
        return;
    };
    let (src, dst) = (
        IpAddr::V6(ip.get_source()),
        IpAddr::V6(ip.get_destination()),
    );
    let mut next = ip.get_next_header();
    let mut rest = ip.payload();
    loop {
        let ext_len = match next {
            P::Hopopt | P::Ipv6Route | P::Ipv6Opts => {
                rest.get(1).map(|&l| (usize::from(l) + 1) * 8)
            }
            P::Ipv6Frag => {
                let later = rest
                    .get(2..4)
                    .is_some_and(|o| u16::from_be_bytes([o[0], o[1]]) & 0xfff8 != 0);
                if later {
                    let _ = write!(out, "IP6 {src} > {dst}: frag, length {}", rest.len());
                    return;
                }
                Some(8)
            }
            _ => break,
        };
        let (Some(len), Some(&nh)) = (ext_len, rest.first()) else {
            let _ = write!(out, "IP6 {src} > {dst}: truncated extension header");
            return;
        };
        next = IpNextHeaderProtocol(nh);
        rest = rest.get(len..).unwrap_or(&[]);
    }
    transport(out, "IP6", src, dst, next, rest);
}

fn transport(
    out: &mut String,
    net: &str,
    src: IpAddr,
    dst: IpAddr,
    proto: IpNextHeaderProtocol,
    l4: &[u8],
) {
    match proto {
        P::Tcp => match TcpPacket::new(l4) {
            Some(t) => {
                let _ = write!(
                    out,
                    "{net} {src}.{} > {dst}.{}: TCP [{}], length {}",
                    t.get_source(),
                    t.get_destination(),
                    tcp_flags(t.get_flags()),
                    t.payload().len()
                );
            }
            None => {
                let _ = write!(
                    out,
                    "{net} {src} > {dst}: TCP truncated, length {}",
                    l4.len()
                );
            }
        },
        P::Udp => match UdpPacket::new(l4) {
            Some(u) => {
                let _ = write!(
                    out,
                    "{net} {src}.{} > {dst}.{}: UDP, length {}",
                    u.get_source(),
                    u.get_destination(),
                    u.payload().len()
                );
            }
            None => {
                let _ = write!(
                    out,
                    "{net} {src} > {dst}: UDP truncated, length {}",
                    l4.len()
                );
            }
        },
        P::Icmp => match IcmpPacket::new(l4) {
            Some(i) => {
                let _ = write!(
                    out,
                    "{net} {src} > {dst}: ICMP type {} code {}, length {}",
                    i.get_icmp_type().0,
                    i.get_icmp_code().0,
                    l4.len()
                );
            }
            None => {
                let _ = write!(
                    out,
                    "{net} {src} > {dst}: ICMP truncated, length {}",
                    l4.len()
                );
            }
        },
        P::Icmpv6 => match Icmpv6Packet::new(l4) {
            Some(i) => {
                let _ = write!(
                    out,
                    "{net} {src} > {dst}: ICMP6 type {} code {}, length {}",
                    i.get_icmpv6_type().0,
                    i.get_icmpv6_code().0,
                    l4.len()
                );
            }
            None => {
                let _ = write!(
                    out,
                    "{net} {src} > {dst}: ICMP6 truncated, length {}",
                    l4.len()
                );
            }
        },
        p => {
            let _ = write!(
                out,
                "{net} {src} > {dst}: ip-proto-{}, length {}",
                p.0,
                l4.len()
            );
        }
    }
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

fn arp(out: &mut String, et: u16, body: &[u8]) {
    let name = if et == EtherTypes::Rarp.0 {
        "RARP"
    } else {
        "ARP"
    };
    // pnet's ArpPacket::new only needs 28 bytes; anything shorter is cut.
    let Some(a) = ArpPacket::new(body) else {
        let _ = write!(out, "{name} truncated, length {}", body.len());
        return;
    };
    let (spa, tpa) = (a.get_sender_proto_addr(), a.get_target_proto_addr());
    let _ = match a.get_operation() {
        ArpOperations::Request => write!(out, "{name}, Request who-has {tpa} tell {spa}"),
        ArpOperations::Reply => write!(out, "{name}, Reply {spa} is-at {}", a.get_sender_hw_addr()),
        op => write!(out, "{name}, op {} {spa} > {tpa}", op.0),
    };
    let _ = write!(out, ", length {}", body.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eth(et: u16, body: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0x5e, 0, 0, 0, 1]);
        f.extend_from_slice(&et.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn v4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut h = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        h.extend_from_slice(l4);
        h
    }

    fn after_time(l: &str) -> &str {
        l.split_once(' ').map(|(_, r)| r).unwrap_or("")
    }

    #[test]
    fn tcp_udp_arp_and_vlan_lines() {
        let mut tcp = vec![
            0, 80, 0x03, 0xe8, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x12, 0, 0, 0, 0, 0, 0,
        ];
        tcp.extend_from_slice(&[0xab; 7]);
        let l = line(0, 0, &eth(0x0800, &v4(6, &tcp)), 61, None);
        assert_eq!(
            after_time(&l),
            "IP 10.0.0.1.80 > 10.0.0.2.1000: TCP [S.], length 7"
        );
        let udp = [0, 53, 0x05, 0xdc, 0, 10, 0, 0, 1, 2];
        let l = line(
            0,
            0,
            &eth(0x0800, &v4(17, &udp)),
            60,
            Some((0x8100, 100 | (3 << 13))),
        );
        assert_eq!(
            after_time(&l),
            "vlan 100, p 3, IP 10.0.0.1.53 > 10.0.0.2.1500: UDP, length 2"
        );
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1, 2, 0x5e, 0, 0, 0, 9, 10, 0, 0, 1];
        arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        let l = line(0, 0, &eth(0x0806, &arp), 60, None);
        assert_eq!(
            after_time(&l),
            "ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28"
        );
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let udp = [0, 53, 0, 80, 0, 8, 0, 0];
        let mut ip = vec![0x60, 0, 0, 0, 0, 16, 0, 64];
        ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop, then UDP
        ip.extend_from_slice(&udp);
        let l = line(0, 0, &eth(0x86dd, &ip), 70, None);
        assert_eq!(
            after_time(&l),
            "IP6 2001:db8::1.53 > fe80::1.80: UDP, length 0"
        );
    }

    #[test]
    fn short_frames_say_truncated() {
        assert!(line(0, 0, &[1, 2, 3], 3, None).ends_with("truncated Ethernet header, length 3"));
        assert!(line(0, 0, &eth(0x0800, &[0x45, 0]), 16, None).contains("IP truncated"));
        assert!(line(0, 0, &eth(0x88cc, &[]), 14, None).ends_with("ethertype 0x88cc, length 14"));
    }

    #[test]
    fn time_is_hh_mm_ss_micro() {
        let t = time_of_day(3_600 * 5 + 61, 123_456_789);
        assert_eq!(t.len(), "00:00:00.000000".len());
        assert!(t.ends_with(":01.123456"), "{t}");
    }

    proptest! {
        #[test]
        fn any_bytes_give_a_line(et in prop::sample::select(vec![0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x1234, 40]),
                                 body in prop::collection::vec(any::<u8>(), 0..120)) {
            let l = line(1, 2, &eth(et, &body), 200, None);
            prop_assert!(!l.is_empty());
        }
    }
}
