//! Every layer named, `, `-separated: pcap-replay's mismatch report (its
//! `decode` field), enough to see what kind of packet the engines
//! disagreed on. A layer cut short by the capture ends the line with
//! `(truncated)`.
//!
//! The report names IP, ARP, 802.1Q and 802.1ad tags and the transports
//! under IP; it stops at anything else with its number: RARP and QinQ
//! (0x9100) by their EtherType, an IPv6 extension header by its protocol.

use std::fmt::Write;

use pnet_packet::ethernet::{EtherType, EtherTypes};
use pnet_packet::ip::IpNextHeaderProtocol;

use crate::walk::{walk, Layer, Proto, ETH_P_8021AD};
use capfile::LinkType;

/// The packet's layers, outermost first, `, `-separated.
pub fn describe(linktype: LinkType, data: &[u8]) -> String {
    let mut out: Vec<String> = Vec::new();
    for layer in walk(linktype, data) {
        match layer {
            Layer::Ethernet(eth) => out.push(format!(
                "Ethernet {} > {}",
                eth.get_source(),
                eth.get_destination()
            )),
            Layer::LinuxCooked { v2: false } => out.push("Linux cooked".into()),
            Layer::LinuxCooked { v2: true } => out.push("Linux cooked v2".into()),
            Layer::Loopback { family } => out.push(format!("loopback family {family}")),
            Layer::Vlan { tpid, .. }
            | Layer::Arp {
                ethertype: tpid, ..
            } if !named(tpid) => {
                out.push(ethertype(tpid));
                break;
            }
            Layer::Truncated {
                what: Proto::Vlan(t) | Proto::Arp(t),
                ..
            } if !named(t) => {
                out.push(ethertype(t));
                break;
            }
            Layer::Vlan { tag, .. } => out.push(format!(
                "VLAN {} prio {}",
                tag.get_vlan_identifier(),
                tag.get_priority_code_point().0
            )),
            Layer::Length(n) => out.push(format!("802.3 length {n}")),
            Layer::EtherType(t) => out.push(ethertype(t)),
            Layer::Arp { packet: a, .. } => out.push(format!(
                "ARP op {} {} ({}) > {} ({})",
                a.get_operation().0,
                a.get_sender_proto_addr(),
                a.get_sender_hw_addr(),
                a.get_target_proto_addr(),
                a.get_target_hw_addr()
            )),
            Layer::IpVersion(v) => out.push(format!("IP version {v}?")),
            Layer::IpEmpty => out.push("IP (empty)".into()),
            Layer::Ipv4(p) => {
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
                    let last = if more { "(more)" } else { "(last)" };
                    let _ = write!(s, " frag offset {} {last}", frag * 8);
                }
                out.push(s);
            }
            Layer::Fragment { protocol, .. } => {
                out.push(format!("{protocol} (not first fragment)"))
            }
            Layer::Ipv6(p) => out.push(format!(
                "IPv6 {} > {} hlim {} plen {}",
                p.get_source(),
                p.get_destination(),
                p.get_hop_limit(),
                p.get_payload_length()
            )),
            Layer::Ipv6Extension { kind } => {
                out.push(protocol(kind));
                break;
            }
            Layer::Tcp { packet: t, .. } => out.push(format!(
                "TCP {} > {} [{}]",
                t.get_source(),
                t.get_destination(),
                tcp_flags(t.get_flags())
            )),
            Layer::Udp { packet: u, .. } => out.push(format!(
                "UDP {} > {} len {}",
                u.get_source(),
                u.get_destination(),
                u.get_length()
            )),
            Layer::Icmp { packet: i, .. } => out.push(format!(
                "ICMP type {} code {}",
                i.get_icmp_type().0,
                i.get_icmp_code().0
            )),
            Layer::Icmpv6 { packet: i, .. } => out.push(format!(
                "ICMPv6 type {} code {}",
                i.get_icmpv6_type().0,
                i.get_icmpv6_code().0
            )),
            Layer::Protocol { protocol: p, .. } => out.push(protocol(p)),
            Layer::Truncated { what, .. } => out.push(format!("{} (truncated)", name(what))),
            Layer::NotDecoded { linktype, len } => {
                out.push(format!("link type {linktype}: not decoded ({len} bytes)"))
            }
        }
    }
    out.join(", ")
}

/// The EtherTypes of tags and ARP the report spells out: 802.1Q,
/// 802.1ad and ARP (not QinQ's 0x9100, not RARP).
fn named(t: EtherType) -> bool {
    t == EtherTypes::Vlan || t == ETH_P_8021AD || t == EtherTypes::Arp
}

fn ethertype(t: EtherType) -> String {
    format!("ethertype {:#06x} ({t})", t.0)
}

fn protocol(p: IpNextHeaderProtocol) -> String {
    format!("IP protocol {} ({p})", p.0)
}

fn name(what: Proto) -> &'static str {
    match what {
        Proto::Ethernet => "Ethernet",
        Proto::LinuxCooked => "Linux cooked",
        Proto::Loopback => "loopback",
        Proto::Vlan(_) => "VLAN",
        Proto::Arp(_) => "ARP",
        Proto::Ipv4 => "IPv4",
        Proto::Ipv6 => "IPv6",
        // Never reached: the report stops at the extension header.
        Proto::Ipv6Extension => "IPv6 extension header",
        Proto::Tcp => "TCP",
        Proto::Udp => "UDP",
        Proto::Icmp => "ICMP",
        Proto::Icmpv6 => "ICMPv6",
    }
}

/// The flags set, one letter each (`.` for ACK), or `none`.
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

#[cfg(test)]
#[path = "describe_tests.rs"]
mod tests;
