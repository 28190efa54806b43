//! A one-line decode of a packet's layers, for the mismatch report:
//! enough to see what kind of packet the engines disagreed on.
//!
//! pnet's views check lengths on construction; a layer cut short by the
//! capture ends the line with `(truncated)`.

use std::fmt::Write;

use pnet_packet::arp::ArpPacket;
use pnet_packet::ethernet::{EtherType, EtherTypes, EthernetPacket};
use pnet_packet::icmp::IcmpPacket;
use pnet_packet::icmpv6::Icmpv6Packet;
use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;
use pnet_packet::vlan::VlanPacket;
use pnet_packet::Packet;

use crate::capture::LinkType;

const LINKTYPE_IPV4: LinkType = LinkType(228);
const LINKTYPE_IPV6: LinkType = LinkType(229);
/// OpenBSD's and some old DLT_RAW numbers for raw IP.
const RAW_ALIASES: [LinkType; 2] = [LinkType(12), LinkType(14)];
const ETH_P_8021AD: u16 = 0x88a8;

/// The packet's layers, outermost first, `, `-separated.
pub fn decode(linktype: LinkType, data: &[u8]) -> String {
    let mut out = Vec::new();
    match linktype {
        LinkType::ETHERNET => ethernet(data, &mut out),
        LinkType::RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => ip(data, &mut out),
        lt if RAW_ALIASES.contains(&lt) => ip(data, &mut out),
        LinkType::LINUX_SLL => sll(data, 14, 16, &mut out),
        LinkType::LINUX_SLL2 => sll(data, 0, 20, &mut out),
        LinkType::NULL | LinkType::LOOP => null(data, linktype == LinkType::LOOP, &mut out),
        lt => out.push(format!(
            "link type {lt}: not decoded ({} bytes)",
            data.len()
        )),
    }
    out.join(", ")
}

fn ethernet(data: &[u8], out: &mut Vec<String>) {
    let Some(eth) = EthernetPacket::new(data) else {
        out.push("Ethernet (truncated)".into());
        return;
    };
    out.push(format!(
        "Ethernet {} > {}",
        eth.get_source(),
        eth.get_destination()
    ));
    ethertype(eth.get_ethertype(), eth.payload(), out);
}

fn ethertype(t: EtherType, payload: &[u8], out: &mut Vec<String>) {
    match t {
        EtherTypes::Ipv4 | EtherTypes::Ipv6 => ip(payload, out),
        EtherTypes::Arp => arp(payload, out),
        EtherTypes::Vlan | EtherType(ETH_P_8021AD) => match VlanPacket::new(payload) {
            Some(v) => {
                out.push(format!(
                    "VLAN {} prio {}",
                    v.get_vlan_identifier(),
                    v.get_priority_code_point().0
                ));
                ethertype(v.get_ethertype(), v.payload(), out);
            }
            None => out.push("VLAN (truncated)".into()),
        },
        EtherType(n) if n < 0x0600 => out.push(format!("802.3 length {n}")),
        other => out.push(format!("ethertype {:#06x} ({other})", other.0)),
    }
}

/// Linux cooked capture: the protocol field at `proto_at`, the payload
/// after `header` bytes.
fn sll(data: &[u8], proto_at: usize, header: usize, out: &mut Vec<String>) {
    let (Some(p), Some(payload)) = (data.get(proto_at..proto_at + 2), data.get(header..)) else {
        out.push("Linux cooked (truncated)".into());
        return;
    };
    out.push(
        if header == 16 {
            "Linux cooked"
        } else {
            "Linux cooked v2"
        }
        .into(),
    );
    ethertype(EtherType(u16::from_be_bytes([p[0], p[1]])), payload, out);
}

/// BSD loopback: a 4-byte address family, host order (NULL) or network
/// order (LOOP).
fn null(data: &[u8], big_endian: bool, out: &mut Vec<String>) {
    let Some(f) = data.get(..4) else {
        out.push("loopback (truncated)".into());
        return;
    };
    let b = [f[0], f[1], f[2], f[3]];
    let family = if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    };
    out.push(format!("loopback family {family}"));
    ip(&data[4..], out);
}

fn ip(data: &[u8], out: &mut Vec<String>) {
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4(data, out),
        Some(6) => ipv6(data, out),
        Some(v) => out.push(format!("IP version {v}?")),
        None => out.push("IP (empty)".into()),
    }
}

fn ipv4(data: &[u8], out: &mut Vec<String>) {
    let Some(p) = Ipv4Packet::new(data) else {
        out.push("IPv4 (truncated)".into());
        return;
    };
    let mut s = format!(
        "IPv4 {} > {} ttl {} len {}",
        p.get_source(),
        p.get_destination(),
        p.get_ttl(),
        p.get_total_length()
    );
    let frag = p.get_fragment_offset();
    let more = p.get_flags() & 1 != 0;
    if frag != 0 || more {
        let _ = write!(
            s,
            " frag offset {} {}",
            frag * 8,
            if more { "(more)" } else { "(last)" }
        );
    }
    out.push(s);
    let hl = usize::from(p.get_header_length()) * 4;
    if frag != 0 {
        out.push(format!(
            "{} (not first fragment)",
            p.get_next_level_protocol()
        ));
        return;
    }
    transport(
        p.get_next_level_protocol(),
        data.get(hl..).unwrap_or(&[]),
        out,
    );
}

fn ipv6(data: &[u8], out: &mut Vec<String>) {
    let Some(p) = Ipv6Packet::new(data) else {
        out.push("IPv6 (truncated)".into());
        return;
    };
    out.push(format!(
        "IPv6 {} > {} hlim {} plen {}",
        p.get_source(),
        p.get_destination(),
        p.get_hop_limit(),
        p.get_payload_length()
    ));
    transport(p.get_next_header(), data.get(40..).unwrap_or(&[]), out);
}

fn transport(proto: IpNextHeaderProtocol, data: &[u8], out: &mut Vec<String>) {
    match proto {
        IpNextHeaderProtocols::Tcp => match TcpPacket::new(data) {
            Some(t) => out.push(format!(
                "TCP {} > {} [{}]",
                t.get_source(),
                t.get_destination(),
                tcp_flags(t.get_flags())
            )),
            None => out.push("TCP (truncated)".into()),
        },
        IpNextHeaderProtocols::Udp => match UdpPacket::new(data) {
            Some(u) => out.push(format!(
                "UDP {} > {} len {}",
                u.get_source(),
                u.get_destination(),
                u.get_length()
            )),
            None => out.push("UDP (truncated)".into()),
        },
        IpNextHeaderProtocols::Icmp => match IcmpPacket::new(data) {
            Some(i) => out.push(format!(
                "ICMP type {} code {}",
                i.get_icmp_type().0,
                i.get_icmp_code().0
            )),
            None => out.push("ICMP (truncated)".into()),
        },
        IpNextHeaderProtocols::Icmpv6 => match Icmpv6Packet::new(data) {
            Some(i) => out.push(format!(
                "ICMPv6 type {} code {}",
                i.get_icmpv6_type().0,
                i.get_icmpv6_code().0
            )),
            None => out.push("ICMPv6 (truncated)".into()),
        },
        other => out.push(format!("IP protocol {} ({other})", other.0)),
    }
}

fn tcp_flags(f: u8) -> String {
    let names = [
        (0x02, 'S'),
        (0x10, '.'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
    ];
    let s: String = names
        .iter()
        .filter(|(bit, _)| f & bit != 0)
        .map(|(_, c)| *c)
        .collect();
    if s.is_empty() {
        "none".into()
    } else {
        s
    }
}

fn arp(data: &[u8], out: &mut Vec<String>) {
    match ArpPacket::new(data) {
        Some(a) => out.push(format!(
            "ARP op {} {} ({}) > {} ({})",
            a.get_operation().0,
            a.get_sender_proto_addr(),
            a.get_sender_hw_addr(),
            a.get_target_proto_addr(),
            a.get_target_hw_addr()
        )),
        None => out.push("ARP (truncated)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend([0, 1, 2, 3, 4, 5]);
        f.extend(ethertype.to_be_bytes());
        f.extend(payload);
        f
    }

    fn ipv4_tcp_syn() -> Vec<u8> {
        let mut ip = vec![
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        ip.extend(tcp);
        ip
    }

    #[test]
    fn ethernet_vlan_ipv4_tcp() {
        let mut vlan = vec![0x20, 0x64, 0x08, 0x00];
        vlan.extend(ipv4_tcp_syn());
        let line = decode(LinkType::ETHERNET, &eth(0x8100, &vlan));
        assert_eq!(
            line,
            "Ethernet 00:01:02:03:04:05 > ff:ff:ff:ff:ff:ff, VLAN 100 prio 1, \
             IPv4 10.0.0.1 > 10.0.0.2 ttl 64 len 40, TCP 1234 > 80 [S]"
        );
    }

    #[test]
    fn raw_ipv6_udp_arp_and_truncation() {
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 255];
        v6.extend([0u8; 15]);
        v6.push(1);
        v6.extend([0u8; 15]);
        v6.push(2);
        v6.extend([0, 53, 0, 53, 0, 8, 0, 0]);
        assert_eq!(
            decode(LinkType::RAW, &v6),
            "IPv6 ::1 > ::2 hlim 255 plen 8, UDP 53 > 53 len 8"
        );
        let arp = [
            0, 1, 8, 0, 6, 4, 0, 1, 0, 1, 2, 3, 4, 5, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
        ];
        assert!(decode(LinkType::ETHERNET, &eth(0x0806, &arp))
            .ends_with("ARP op 1 10.0.0.1 (00:01:02:03:04:05) > 10.0.0.2 (00:00:00:00:00:00)"));
        assert_eq!(decode(LinkType::ETHERNET, &[0; 5]), "Ethernet (truncated)");
        let cut = eth(0x0800, &ipv4_tcp_syn()[..30]);
        assert!(
            decode(LinkType::ETHERNET, &cut).ends_with("TCP (truncated)"),
            "{}",
            decode(LinkType::ETHERNET, &cut)
        );
        assert_eq!(
            decode(LinkType(147), &[1, 2]),
            "link type 147: not decoded (2 bytes)"
        );
    }
}
