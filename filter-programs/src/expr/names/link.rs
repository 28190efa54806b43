//! Link-layer names libpcap knows without any file: EtherType names for
//! `ether proto NAME`, LLC SAP names (tried after EtherTypes), and LLC frame
//! types for `llc NAME`.

use super::lookup_ci;

/// libpcap 1.10's EtherType names (case-sensitive).
pub const ETHERTYPES: &[(&str, u16)] = &[
    ("aarp", 0x80f3),
    ("arp", 0x0806),
    ("atalk", 0x809b),
    ("decnet", 0x6003),
    ("ip", 0x0800),
    ("ip6", 0x86dd),
    ("lat", 0x6004),
    ("loopback", 0x9000),
    ("mopdl", 0x6001),
    ("moprc", 0x6002),
    ("rarp", 0x8035),
    ("sca", 0x6007),
];

/// LLC SAP names (case-sensitive).
pub const LLC_SAPS: &[(&str, u8)] = &[
    ("iso", 0xfe),
    ("stp", 0x42),
    ("ipx", 0xe0),
    ("netbeui", 0xf0),
];

pub fn ethertype(name: &str) -> Option<u16> {
    ETHERTYPES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

pub fn llc_sap(name: &str) -> Option<u8> {
    LLC_SAPS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// What `llc NAME` selects: a frame class or one S/U frame subtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LlcFrame {
    /// Information frames (`llc i`).
    I,
    /// Supervisory frames (`llc s`).
    S,
    /// Unnumbered frames (`llc u`).
    U,
    /// One supervisory frame type (`rr`, `rnr`, `rej`): its control value.
    SSubtype(u8),
    /// One unnumbered frame type (`ui`, `ua`, `disc`, ...): its control value.
    USubtype(u8),
}

const LLC_S: &[(&str, u8)] = &[("rr", 0x01), ("rnr", 0x05), ("rej", 0x09)];
const LLC_U: &[(&str, u8)] = &[
    ("ui", 0x03),
    ("ua", 0x63),
    ("disc", 0x43),
    ("dm", 0x0f),
    ("sabme", 0x6f),
    ("test", 0xe3),
    ("xid", 0xaf),
    ("frmr", 0x87),
];

/// `llc NAME` (case-insensitive).
pub fn llc_frame(name: &str) -> Option<LlcFrame> {
    if name.eq_ignore_ascii_case("i") {
        return Some(LlcFrame::I);
    }
    if name.eq_ignore_ascii_case("s") {
        return Some(LlcFrame::S);
    }
    if name.eq_ignore_ascii_case("u") {
        return Some(LlcFrame::U);
    }
    lookup_ci(LLC_S, name)
        .map(LlcFrame::SSubtype)
        .or_else(|| lookup_ci(LLC_U, name).map(LlcFrame::USubtype))
}
