//! 802.11 frame-control names for `type`, `subtype` and `dir`
//! (case-insensitive). Values are the bits of the first frame-control byte
//! (type: mask 0x0c, subtype: mask 0xf0) or of the second (dir: mask 0x03).

use super::lookup_ci;

const TYPE_MGT: u8 = 0x00;
const TYPE_CTL: u8 = 0x04;
const TYPE_DATA: u8 = 0x08;

const TYPES: &[(&str, u8)] = &[
    ("data", TYPE_DATA),
    ("mgt", TYPE_MGT),
    ("management", TYPE_MGT),
    ("ctl", TYPE_CTL),
    ("control", TYPE_CTL),
];

const MGT: &[(&str, u8)] = &[
    ("assocreq", 0x00),
    ("assoc-req", 0x00),
    ("assocresp", 0x10),
    ("assoc-resp", 0x10),
    ("reassocreq", 0x20),
    ("reassoc-req", 0x20),
    ("reassocresp", 0x30),
    ("reassoc-resp", 0x30),
    ("probereq", 0x40),
    ("probe-req", 0x40),
    ("proberesp", 0x50),
    ("probe-resp", 0x50),
    ("beacon", 0x80),
    ("atim", 0x90),
    ("disassoc", 0xa0),
    ("disassociation", 0xa0),
    ("auth", 0xb0),
    ("authentication", 0xb0),
    ("deauth", 0xc0),
    ("deauthentication", 0xc0),
];

// `bar` and `ba` are from libpcap master (1.10 lacks them); the shared
// corpus expects them.
const CTL: &[(&str, u8)] = &[
    ("bar", 0x80),
    ("ba", 0x90),
    ("ps-poll", 0xa0),
    ("rts", 0xb0),
    ("cts", 0xc0),
    ("ack", 0xd0),
    ("cf-end", 0xe0),
    ("cf-end-ack", 0xf0),
];

const DATA: &[(&str, u8)] = &[
    ("data", 0x00),
    ("data-cf-ack", 0x10),
    ("data-cf-poll", 0x20),
    ("data-cf-ack-poll", 0x30),
    ("null", 0x40),
    ("cf-ack", 0x50),
    ("cf-poll", 0x60),
    ("cf-ack-poll", 0x70),
    ("qos-data", 0x80),
    ("qos-data-cf-ack", 0x90),
    ("qos-data-cf-poll", 0xa0),
    ("qos-data-cf-ack-poll", 0xb0),
    ("qos", 0xc0),
    ("qos-cf-poll", 0xe0),
    ("qos-cf-ack-poll", 0xf0),
];

const SUBTYPES_BY_TYPE: &[(u8, &[(&str, u8)])] =
    &[(TYPE_MGT, MGT), (TYPE_CTL, CTL), (TYPE_DATA, DATA)];

/// `type NAME`: the type bits.
pub fn wlan_type(name: &str) -> Option<u8> {
    lookup_ci(TYPES, name)
}

/// `type T subtype NAME`: the subtype bits, looked up among T's subtypes.
/// `Err(())` when T has no subtype table (libpcap: "unknown 802.11 type").
#[allow(clippy::result_unit_err)]
pub fn wlan_subtype(ty: u8, name: &str) -> Result<Option<u8>, ()> {
    let table = SUBTYPES_BY_TYPE.iter().find(|(t, _)| *t == ty).ok_or(())?.1;
    Ok(lookup_ci(table, name))
}

/// `subtype NAME` alone: type and subtype bits, searching management,
/// control then data subtypes.
pub fn wlan_type_subtype(name: &str) -> Option<u8> {
    SUBTYPES_BY_TYPE
        .iter()
        .find_map(|(ty, table)| lookup_ci(table, name).map(|st| st | ty))
}

/// `dir NAME`.
pub fn wlan_dir(name: &str) -> Option<u8> {
    lookup_ci(
        &[("nods", 0), ("tods", 1), ("fromds", 2), ("dstods", 3)],
        name,
    )
}
