//! The layer walk both summaries render: which header sits where, read
//! through pnet's views, outermost first.
//!
//! A header is decoded from the bytes the capture holds, even where the
//! length field of the IP header around it says the packet ends sooner
//! (the report shows what the engines read). Each layer under IP also
//! carries `claimed`: how many of its bytes that IP header counts, which
//! is what tcpdump-style lengths print.

use pnet_packet::arp::ArpPacket;
use pnet_packet::ethernet::{EtherType, EtherTypes, EthernetPacket};
use pnet_packet::icmp::IcmpPacket;
use pnet_packet::icmpv6::Icmpv6Packet;
use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols as P};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;
use pnet_packet::vlan::VlanPacket;
use pnet_packet::Packet;

use capfile::LinkType;

const LINKTYPE_IPV4: LinkType = LinkType(228);
const LINKTYPE_IPV6: LinkType = LinkType(229);
/// OpenBSD's and some old DLT_RAW numbers for raw IP.
const RAW_ALIASES: [LinkType; 2] = [LinkType(12), LinkType(14)];
/// The tag protocol identifiers of 802.1ad and of pre-standard QinQ.
pub const ETH_P_8021AD: EtherType = EtherType(0x88a8);

/// One header of a packet.
pub enum Layer<'a> {
    Ethernet(EthernetPacket<'a>),
    /// Linux cooked capture, v1 or v2 (the protocol field is walked on).
    LinuxCooked {
        v2: bool,
    },
    /// BSD loopback's address family.
    Loopback {
        family: u32,
    },
    /// A VLAN tag whose tag protocol identifier was `tpid`.
    Vlan {
        tpid: EtherType,
        tag: VlanPacket<'a>,
    },
    /// An 802.3 length where an EtherType would be.
    Length(u16),
    /// An EtherType the walk stops at.
    EtherType(EtherType),
    /// ARP or RARP, as `ethertype` says.
    Arp {
        ethertype: EtherType,
        packet: ArpPacket<'a>,
    },
    /// The version nibble of an IP header is neither 4 nor 6.
    IpVersion(u8),
    /// No bytes where an IP header should be.
    IpEmpty,
    Ipv4(Ipv4Packet<'a>),
    Ipv6(Ipv6Packet<'a>),
    /// An IPv6 extension header of type `kind`, stepped over.
    Ipv6Extension {
        kind: IpNextHeaderProtocol,
    },
    /// The payload of a fragment other than the first: no header to read.
    Fragment {
        protocol: IpNextHeaderProtocol,
        claimed: usize,
    },
    Tcp {
        packet: TcpPacket<'a>,
        claimed: usize,
    },
    Udp {
        packet: UdpPacket<'a>,
        claimed: usize,
    },
    Icmp {
        packet: IcmpPacket<'a>,
        claimed: usize,
    },
    Icmpv6 {
        packet: Icmpv6Packet<'a>,
        claimed: usize,
    },
    /// An IP payload of a protocol the walk does not decode.
    Protocol {
        protocol: IpNextHeaderProtocol,
        claimed: usize,
    },
    /// Too few bytes for the header of `what`: `len` were there.
    Truncated {
        what: Proto,
        len: usize,
        claimed: usize,
    },
    /// A link type the walk does not know.
    NotDecoded {
        linktype: LinkType,
        len: usize,
    },
}

/// What a [`Layer::Truncated`] was cut short in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Ethernet,
    LinuxCooked,
    Loopback,
    Vlan(EtherType),
    Arp(EtherType),
    Ipv4,
    Ipv6,
    Ipv6Extension,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
}

/// The layers of a packet captured on `linktype`, outermost first.
pub fn walk(linktype: LinkType, data: &[u8]) -> Vec<Layer<'_>> {
    let mut out = Vec::new();
    match linktype {
        LinkType::ETHERNET => ethernet(data, &mut out),
        LinkType::RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => ip(data, &mut out),
        lt if RAW_ALIASES.contains(&lt) => ip(data, &mut out),
        LinkType::LINUX_SLL => sll(data, 14, 16, &mut out),
        LinkType::LINUX_SLL2 => sll(data, 0, 20, &mut out),
        LinkType::NULL | LinkType::LOOP => null(data, linktype == LinkType::LOOP, &mut out),
        lt => out.push(Layer::NotDecoded {
            linktype: lt,
            len: data.len(),
        }),
    }
    out
}

fn truncated(what: Proto, bytes: &[u8]) -> Layer<'_> {
    Layer::Truncated {
        what,
        len: bytes.len(),
        claimed: bytes.len(),
    }
}

fn ethernet<'a>(data: &'a [u8], out: &mut Vec<Layer<'a>>) {
    let Some(eth) = EthernetPacket::new(data) else {
        out.push(truncated(Proto::Ethernet, data));
        return;
    };
    let t = eth.get_ethertype();
    out.push(Layer::Ethernet(eth));
    ethertype(t, &data[14..], out);
}

fn ethertype<'a>(t: EtherType, payload: &'a [u8], out: &mut Vec<Layer<'a>>) {
    match t {
        EtherTypes::Ipv4 | EtherTypes::Ipv6 => ip(payload, out),
        EtherTypes::Arp | EtherTypes::Rarp => match ArpPacket::new(payload) {
            Some(packet) => out.push(Layer::Arp {
                ethertype: t,
                packet,
            }),
            None => out.push(truncated(Proto::Arp(t), payload)),
        },
        EtherTypes::Vlan | ETH_P_8021AD | EtherTypes::QinQ => match VlanPacket::new(payload) {
            Some(tag) => {
                let (inner, rest) = (tag.get_ethertype(), &payload[4..]);
                out.push(Layer::Vlan { tpid: t, tag });
                ethertype(inner, rest, out);
            }
            None => out.push(truncated(Proto::Vlan(t), payload)),
        },
        EtherType(n) if n < 0x0600 => out.push(Layer::Length(n)),
        other => out.push(Layer::EtherType(other)),
    }
}

/// Linux cooked capture: the protocol field at `proto_at`, the payload
/// after `header` bytes.
fn sll<'a>(data: &'a [u8], proto_at: usize, header: usize, out: &mut Vec<Layer<'a>>) {
    let (Some(p), Some(payload)) = (data.get(proto_at..proto_at + 2), data.get(header..)) else {
        out.push(truncated(Proto::LinuxCooked, data));
        return;
    };
    out.push(Layer::LinuxCooked { v2: header != 16 });
    ethertype(EtherType(u16::from_be_bytes([p[0], p[1]])), payload, out);
}

/// BSD loopback: a 4-byte address family, host order (NULL) or network
/// order (LOOP).
fn null<'a>(data: &'a [u8], big_endian: bool, out: &mut Vec<Layer<'a>>) {
    let Some(f) = data.first_chunk::<4>() else {
        out.push(truncated(Proto::Loopback, data));
        return;
    };
    let family = if big_endian {
        u32::from_be_bytes(*f)
    } else {
        u32::from_le_bytes(*f)
    };
    out.push(Layer::Loopback { family });
    ip(&data[4..], out);
}

/// An IP header of the version its first nibble gives.
fn ip<'a>(data: &'a [u8], out: &mut Vec<Layer<'a>>) {
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4(data, out),
        Some(6) => ipv6(data, out),
        Some(v) => out.push(Layer::IpVersion(v)),
        None => out.push(Layer::IpEmpty),
    }
}

fn ipv4<'a>(data: &'a [u8], out: &mut Vec<Layer<'a>>) {
    let Some(p) = Ipv4Packet::new(data) else {
        out.push(truncated(Proto::Ipv4, data));
        return;
    };
    let protocol = p.get_next_level_protocol();
    let later_fragment = p.get_fragment_offset() != 0;
    let claimed = p.payload().len();
    let hl = usize::from(p.get_header_length()) * 4;
    out.push(Layer::Ipv4(p));
    if later_fragment {
        out.push(Layer::Fragment { protocol, claimed });
        return;
    }
    transport(protocol, data.get(hl..).unwrap_or(&[]), claimed, out);
}

fn ipv6<'a>(data: &'a [u8], out: &mut Vec<Layer<'a>>) {
    let Some(p) = Ipv6Packet::new(data) else {
        out.push(truncated(Proto::Ipv6, data));
        return;
    };
    let next = p.get_next_header();
    let claimed = p.payload().len();
    out.push(Layer::Ipv6(p));
    if is_extension(next) {
        // The chain of extension headers lies within the payload the
        // header counts; so does what follows it.
        extensions(next, &data[40..40 + claimed], out);
    } else {
        transport(next, &data[40..], claimed, out);
    }
}

/// The extension headers the walk steps over: hop-by-hop, routing,
/// destination options and fragment.
fn is_extension(p: IpNextHeaderProtocol) -> bool {
    matches!(p, P::Hopopt | P::Ipv6Route | P::Ipv6Opts | P::Ipv6Frag)
}

fn extensions<'a>(mut next: IpNextHeaderProtocol, mut rest: &'a [u8], out: &mut Vec<Layer<'a>>) {
    while is_extension(next) {
        out.push(Layer::Ipv6Extension { kind: next });
        let len = if next == P::Ipv6Frag {
            let later = rest
                .get(2..4)
                .is_some_and(|o| u16::from_be_bytes([o[0], o[1]]) & 0xfff8 != 0);
            if later {
                let protocol = IpNextHeaderProtocol(rest[0]);
                let claimed = rest.len();
                out.push(Layer::Fragment { protocol, claimed });
                return;
            }
            Some(8)
        } else {
            rest.get(1).map(|&l| (usize::from(l) + 1) * 8)
        };
        let (Some(len), Some(&nh)) = (len, rest.first()) else {
            out.push(truncated(Proto::Ipv6Extension, rest));
            return;
        };
        next = IpNextHeaderProtocol(nh);
        rest = rest.get(len..).unwrap_or(&[]);
    }
    transport(next, rest, rest.len(), out);
}

/// The transport header in `bytes`, of which the IP header counts
/// `claimed`.
fn transport<'a>(
    protocol: IpNextHeaderProtocol,
    bytes: &'a [u8],
    claimed: usize,
    out: &mut Vec<Layer<'a>>,
) {
    let cut = |what| Layer::Truncated {
        what,
        len: bytes.len(),
        claimed,
    };
    out.push(match protocol {
        P::Tcp => {
            TcpPacket::new(bytes).map_or(cut(Proto::Tcp), |packet| Layer::Tcp { packet, claimed })
        }
        P::Udp => {
            UdpPacket::new(bytes).map_or(cut(Proto::Udp), |packet| Layer::Udp { packet, claimed })
        }
        P::Icmp => IcmpPacket::new(bytes)
            .map_or(cut(Proto::Icmp), |packet| Layer::Icmp { packet, claimed }),
        P::Icmpv6 => Icmpv6Packet::new(bytes).map_or(cut(Proto::Icmpv6), |packet| Layer::Icmpv6 {
            packet,
            claimed,
        }),
        protocol => Layer::Protocol { protocol, claimed },
    });
}
