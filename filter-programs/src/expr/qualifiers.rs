//! The three qualifier axes of a pcap-filter primitive (pcap-filter(7)):
//! protocol (`ip`, `tcp`, `ether`, ...), direction (`src`, `dst`, ...) and
//! address kind (`host`, `net`, `port`, ...). An id either gets them from the
//! qualifiers written before it or inherits the last ones in effect, as in
//! `port 80 or 443`.

use super::span::Span;

/// Protocol qualifier (libpcap's `pname`). `ether`, `ppp`, `slip`, `fddi`,
/// `tr` and `wlan` are all spellings of [`Proto::Link`], as in libpcap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Link,
    Ip,
    Arp,
    Rarp,
    Sctp,
    Tcp,
    Udp,
    Icmp,
    Igmp,
    Igrp,
    Pim,
    Vrrp,
    Carp,
    Atalk,
    Aarp,
    Decnet,
    Lat,
    Sca,
    Moprc,
    Mopdl,
    Ip6,
    Icmp6,
    Ah,
    Esp,
    Iso,
    Esis,
    Isis,
    IsisL1,
    IsisL2,
    IsisIih,
    IsisLsp,
    IsisSnp,
    IsisCsnp,
    IsisPsnp,
    Clnp,
    Stp,
    Ipx,
    Netbeui,
    Radio,
}

impl Proto {
    /// The canonical keyword, as libpcap's error messages name it.
    pub fn keyword(self) -> &'static str {
        use Proto::*;
        match self {
            Link => "link",
            Ip => "ip",
            Arp => "arp",
            Rarp => "rarp",
            Sctp => "sctp",
            Tcp => "tcp",
            Udp => "udp",
            Icmp => "icmp",
            Igmp => "igmp",
            Igrp => "igrp",
            Pim => "pim",
            Vrrp => "vrrp",
            Carp => "carp",
            Atalk => "atalk",
            Aarp => "aarp",
            Decnet => "decnet",
            Lat => "lat",
            Sca => "sca",
            Moprc => "moprc",
            Mopdl => "mopdl",
            Ip6 => "ip6",
            Icmp6 => "icmp6",
            Ah => "ah",
            Esp => "esp",
            Iso => "iso",
            Esis => "esis",
            Isis => "isis",
            IsisL1 => "l1",
            IsisL2 => "l2",
            IsisIih => "iih",
            IsisLsp => "lsp",
            IsisSnp => "snp",
            IsisCsnp => "csnp",
            IsisPsnp => "psnp",
            Clnp => "clnp",
            Stp => "stp",
            Ipx => "ipx",
            Netbeui => "netbeui",
            Radio => "radio",
        }
    }
}

/// Direction qualifier (libpcap's `dqual`), including the 802.11 address
/// fields `addr1`..`addr4`, `ra` and `ta`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dir {
    /// None written: "src or dst" for most primitives.
    #[default]
    Default,
    Src,
    Dst,
    /// `src or dst` / `dst or src`.
    SrcOrDst,
    /// `src and dst` / `dst and src`.
    SrcAndDst,
    Addr1,
    Addr2,
    Addr3,
    Addr4,
    Ra,
    Ta,
}

impl Dir {
    pub fn keyword(self) -> &'static str {
        match self {
            Dir::Default => "",
            Dir::Src => "src",
            Dir::Dst => "dst",
            Dir::SrcOrDst => "src or dst",
            Dir::SrcAndDst => "src and dst",
            Dir::Addr1 => "addr1",
            Dir::Addr2 => "addr2",
            Dir::Addr3 => "addr3",
            Dir::Addr4 => "addr4",
            Dir::Ra => "ra",
            Dir::Ta => "ta",
        }
    }
}

/// Address-kind qualifier (libpcap's `aqual`, `ndaqual`, `proto`, `protochain`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kind {
    /// None written: the id's own form decides (a number or address is a
    /// host, a name is a host or, with a protocol qualifier, may be more).
    #[default]
    Default,
    Host,
    Net,
    Port,
    Portrange,
    Gateway,
    Proto,
    Protochain,
}

impl Kind {
    pub fn keyword(self) -> &'static str {
        match self {
            Kind::Default => "",
            Kind::Host => "host",
            Kind::Net => "net",
            Kind::Port => "port",
            Kind::Portrange => "portrange",
            Kind::Gateway => "gateway",
            Kind::Proto => "proto",
            Kind::Protochain => "protochain",
        }
    }
}

/// The qualifiers in effect for one id. `span` covers the qualifier words
/// that set them (for an inherited id, the words of the term it inherits
/// from); it is empty when no qualifier word was written (`src 1` has one,
/// a bare `host` too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Qualifiers {
    /// `None` is libpcap's `Q_DEFAULT`: no protocol written.
    pub proto: Option<Proto>,
    pub dir: Dir,
    pub kind: Kind,
    pub span: Span,
}

impl Qualifiers {
    /// The qualifier words, e.g. "tcp src port", for messages.
    pub fn describe(&self) -> String {
        let words = [
            self.proto.map(Proto::keyword).unwrap_or(""),
            self.dir.keyword(),
            self.kind.keyword(),
        ];
        words
            .iter()
            .filter(|w| !w.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }
}
