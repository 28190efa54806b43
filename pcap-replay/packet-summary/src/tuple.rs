//! A packet's five-tuple, from the same walk over its headers as the
//! summaries: addresses and protocol of the innermost IP header the walk
//! reaches, and the TCP or UDP ports after it.

use std::net::IpAddr;

use crate::walk::{walk, Layer};
use capfile::LinkType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FiveTuple {
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    /// The IP protocol (IPv6: the last next header).
    pub l4proto: u8,
    /// TCP and UDP only.
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

/// `None` for a packet without an IP header.
pub fn five_tuple(linktype: LinkType, data: &[u8]) -> Option<FiveTuple> {
    let mut out: Option<FiveTuple> = None;
    for layer in walk(linktype, data) {
        match layer {
            Layer::Ipv4(p) => {
                out = Some(FiveTuple {
                    saddr: p.get_source().into(),
                    daddr: p.get_destination().into(),
                    l4proto: p.get_next_level_protocol().0,
                    sport: None,
                    dport: None,
                })
            }
            Layer::Ipv6(p) => {
                out = Some(FiveTuple {
                    saddr: p.get_source().into(),
                    daddr: p.get_destination().into(),
                    l4proto: p.get_next_header().0,
                    sport: None,
                    dport: None,
                })
            }
            Layer::Ipv6Extension { .. } => {}
            Layer::Tcp { packet, .. } => {
                if let Some(t) = &mut out {
                    (t.l4proto, t.sport, t.dport) =
                        (6, Some(packet.get_source()), Some(packet.get_destination()));
                }
            }
            Layer::Udp { packet, .. } => {
                if let Some(t) = &mut out {
                    (t.l4proto, t.sport, t.dport) = (
                        17,
                        Some(packet.get_source()),
                        Some(packet.get_destination()),
                    );
                }
            }
            Layer::Icmpv6 { .. } => {
                if let Some(t) = &mut out {
                    t.l4proto = 58;
                }
            }
            Layer::Protocol { protocol, .. } | Layer::Fragment { protocol, .. } => {
                if let Some(t) = &mut out {
                    t.l4proto = protocol.0;
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_over_ipv4() {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&28u16.to_be_bytes());
        f[23] = 17;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&5353u16.to_be_bytes());
        f[36..38].copy_from_slice(&9999u16.to_be_bytes());
        f[38..40].copy_from_slice(&8u16.to_be_bytes());
        let t = five_tuple(LinkType::ETHERNET, &f).unwrap();
        assert_eq!(
            (
                t.saddr.to_string(),
                t.daddr.to_string(),
                t.l4proto,
                t.sport,
                t.dport
            ),
            (
                "10.0.0.1".into(),
                "10.0.0.2".into(),
                17,
                Some(5353),
                Some(9999)
            )
        );
        // From the network header.
        let t = five_tuple(LinkType::RAW, &f[14..]).unwrap();
        assert_eq!(t.dport, Some(9999));
        assert_eq!(five_tuple(LinkType::ETHERNET, &f[..20]), None);
    }
}
