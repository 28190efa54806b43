//! Tokens of the filter language and the reserved words that produce them.
//! Keywords are case-sensitive, exactly as in libpcap's scanner.

use super::ast::{AtmAbbrev, AtmField, Mtp2Type, Mtp3Field};
use super::qualifiers::{Dir, Proto};
use super::span::Span;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    // Qualifiers.
    Pname(Proto),
    DirQual(Dir),
    Host,
    Net,
    Mask,
    Port,
    Portrange,
    Proto,
    Protochain,
    Gateway,
    // 802.11 frame-control words.
    Type,
    Subtype,
    WlanDir,
    // Other primitives.
    Less,
    Greater,
    Byte,
    Broadcast,
    Multicast,
    Len,
    Inbound,
    Outbound,
    Ifindex,
    Vlan,
    Mpls,
    Pppoed,
    Pppoes,
    Geneve,
    Vxlan,
    Llc,
    PfIfname,
    PfRuleset,
    PfRulenum,
    PfSubrulenum,
    PfReason,
    PfAction,
    Atm(AtmAbbrev),
    AtmField(AtmField),
    Mtp2(Mtp2Type),
    Mtp3(Mtp3Field),
    // Boolean operators (`and`/`&&`, `or`/`||`, `not`/`!`).
    And,
    Or,
    Not,
    // Punctuation and arithmetic/relational operators.
    LParen,
    RParen,
    LBracket,
    RBracket,
    Colon,
    Slash,
    Plus,
    Minus,
    Star,
    Percent,
    Amp,
    Pipe,
    Caret,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    // Values.
    /// A number, including named constants such as `tcpflags` or `icmp-echo`.
    Num(u32),
    /// A name; `escaped` when written with a backslash (`\tcp`).
    Name {
        text: String,
        escaped: bool,
    },
    /// Dotted IPv4 address with 2 to 4 parts (`10.1`, `10.1.2`, `10.1.2.3`).
    Ipv4(String),
    Ipv6(std::net::Ipv6Addr),
    Mac([u8; 6]),
    /// `$XX`: an ARCnet / MS/TP one-byte link-layer address.
    Mac8(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// The reserved words and what they scan to.
pub fn keyword(word: &str) -> Option<Tok> {
    use Proto as P;
    let t = match word {
        "dst" => Tok::DirQual(Dir::Dst),
        "src" => Tok::DirQual(Dir::Src),
        "link" | "ether" | "ppp" | "slip" | "fddi" | "tr" | "wlan" => Tok::Pname(P::Link),
        "arp" => Tok::Pname(P::Arp),
        "rarp" => Tok::Pname(P::Rarp),
        "ip" => Tok::Pname(P::Ip),
        "sctp" => Tok::Pname(P::Sctp),
        "tcp" => Tok::Pname(P::Tcp),
        "udp" => Tok::Pname(P::Udp),
        "icmp" => Tok::Pname(P::Icmp),
        "igmp" => Tok::Pname(P::Igmp),
        "igrp" => Tok::Pname(P::Igrp),
        "pim" => Tok::Pname(P::Pim),
        "vrrp" => Tok::Pname(P::Vrrp),
        "carp" => Tok::Pname(P::Carp),
        "radio" => Tok::Pname(P::Radio),
        "ip6" => Tok::Pname(P::Ip6),
        "icmp6" => Tok::Pname(P::Icmp6),
        "ah" => Tok::Pname(P::Ah),
        "esp" => Tok::Pname(P::Esp),
        "atalk" => Tok::Pname(P::Atalk),
        "aarp" => Tok::Pname(P::Aarp),
        "decnet" => Tok::Pname(P::Decnet),
        "lat" => Tok::Pname(P::Lat),
        "sca" => Tok::Pname(P::Sca),
        "moprc" => Tok::Pname(P::Moprc),
        "mopdl" => Tok::Pname(P::Mopdl),
        "iso" => Tok::Pname(P::Iso),
        "esis" | "es-is" => Tok::Pname(P::Esis),
        "isis" | "is-is" => Tok::Pname(P::Isis),
        "l1" => Tok::Pname(P::IsisL1),
        "l2" => Tok::Pname(P::IsisL2),
        "iih" => Tok::Pname(P::IsisIih),
        "lsp" => Tok::Pname(P::IsisLsp),
        "snp" => Tok::Pname(P::IsisSnp),
        "csnp" => Tok::Pname(P::IsisCsnp),
        "psnp" => Tok::Pname(P::IsisPsnp),
        "clnp" => Tok::Pname(P::Clnp),
        "stp" => Tok::Pname(P::Stp),
        "ipx" => Tok::Pname(P::Ipx),
        "netbeui" => Tok::Pname(P::Netbeui),
        "host" => Tok::Host,
        "net" => Tok::Net,
        "mask" => Tok::Mask,
        "port" => Tok::Port,
        "portrange" => Tok::Portrange,
        "proto" => Tok::Proto,
        "protochain" => Tok::Protochain,
        "gateway" => Tok::Gateway,
        "type" => Tok::Type,
        "subtype" => Tok::Subtype,
        "direction" | "dir" => Tok::WlanDir,
        "address1" | "addr1" => Tok::DirQual(Dir::Addr1),
        "address2" | "addr2" => Tok::DirQual(Dir::Addr2),
        "address3" | "addr3" => Tok::DirQual(Dir::Addr3),
        "address4" | "addr4" => Tok::DirQual(Dir::Addr4),
        "ra" => Tok::DirQual(Dir::Ra),
        "ta" => Tok::DirQual(Dir::Ta),
        "less" => Tok::Less,
        "greater" => Tok::Greater,
        "byte" => Tok::Byte,
        "broadcast" => Tok::Broadcast,
        "multicast" => Tok::Multicast,
        "and" => Tok::And,
        "or" => Tok::Or,
        "not" => Tok::Not,
        "len" | "length" => Tok::Len,
        "inbound" => Tok::Inbound,
        "outbound" => Tok::Outbound,
        "ifindex" => Tok::Ifindex,
        "vlan" => Tok::Vlan,
        "mpls" => Tok::Mpls,
        "pppoed" => Tok::Pppoed,
        "pppoes" => Tok::Pppoes,
        "geneve" => Tok::Geneve,
        "vxlan" => Tok::Vxlan,
        "lane" => Tok::Atm(AtmAbbrev::Lane),
        "llc" => Tok::Llc,
        "metac" => Tok::Atm(AtmAbbrev::Metac),
        "bcc" => Tok::Atm(AtmAbbrev::Bcc),
        "oam" => Tok::Atm(AtmAbbrev::Oam),
        "oamf4" => Tok::Atm(AtmAbbrev::Oamf4),
        "oamf4ec" => Tok::Atm(AtmAbbrev::Oamf4ec),
        "oamf4sc" => Tok::Atm(AtmAbbrev::Oamf4sc),
        "sc" => Tok::Atm(AtmAbbrev::Sc),
        "ilmic" => Tok::Atm(AtmAbbrev::Ilmic),
        "vpi" => Tok::AtmField(AtmField::Vpi),
        "vci" => Tok::AtmField(AtmField::Vci),
        "connectmsg" => Tok::Atm(AtmAbbrev::Connectmsg),
        "metaconnect" => Tok::Atm(AtmAbbrev::Metaconnect),
        "on" | "ifname" => Tok::PfIfname,
        "rset" | "ruleset" => Tok::PfRuleset,
        "rnr" | "rulenum" => Tok::PfRulenum,
        "srnr" | "subrulenum" => Tok::PfSubrulenum,
        "reason" => Tok::PfReason,
        "action" => Tok::PfAction,
        "fisu" => Tok::Mtp2(Mtp2Type::Fisu),
        "lssu" | "lsu" => Tok::Mtp2(Mtp2Type::Lssu),
        "msu" => Tok::Mtp2(Mtp2Type::Msu),
        "hfisu" => Tok::Mtp2(Mtp2Type::Hfisu),
        "hlssu" => Tok::Mtp2(Mtp2Type::Hlssu),
        "hmsu" => Tok::Mtp2(Mtp2Type::Hmsu),
        "sio" => Tok::Mtp3(Mtp3Field::Sio),
        "opc" => Tok::Mtp3(Mtp3Field::Opc),
        "dpc" => Tok::Mtp3(Mtp3Field::Dpc),
        "sls" => Tok::Mtp3(Mtp3Field::Sls),
        "hsio" => Tok::Mtp3(Mtp3Field::Hsio),
        "hopc" => Tok::Mtp3(Mtp3Field::Hopc),
        "hdpc" => Tok::Mtp3(Mtp3Field::Hdpc),
        "hsls" => Tok::Mtp3(Mtp3Field::Hsls),
        _ => return None,
    };
    Some(t)
}

/// The longest reserved word that is a prefix of `rest` (flex matches
/// keyword rules by prefix; a longer name then wins by length).
pub fn longest_keyword_prefix(rest: &[u8]) -> usize {
    // Keywords are letters, digits and '-' only: no longer prefix can be one.
    let run = rest
        .iter()
        .take(16)
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .count();
    let mut end = 0;
    let mut best = 0;
    while end < run {
        end += 1;
        if let Ok(w) = std::str::from_utf8(&rest[..end]) {
            if keyword(w).is_some() {
                best = end;
            }
        }
    }
    best
}

impl Tok {
    /// How the token reads in a message ("'port'", "a number", ...).
    pub fn describe(&self, text: &str) -> String {
        match self {
            Tok::Num(_) => format!("number '{text}'"),
            Tok::Name { .. } => format!("name '{text}'"),
            Tok::Ipv4(_) => format!("IPv4 address '{text}'"),
            Tok::Ipv6(_) => format!("IPv6 address '{text}'"),
            Tok::Mac(_) | Tok::Mac8(_) => format!("MAC address '{text}'"),
            _ => format!("'{text}'"),
        }
    }
}
