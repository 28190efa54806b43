//! Link types as capture files store them (LINKTYPE_ values), and the
//! few places where they differ from the DLT_ values libpcap's API takes.

mod names;

use serde::Serialize;

use crate::MAX_CAPLEN;

/// A LINKTYPE_ value: what the pcap header and a pcapng IDB say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LinkType(pub u16);

/// LINKTYPE_ and DLT_ values that differ on Linux. Files use the left
/// column everywhere; libpcap's compile and name functions want the right
/// one, because some BSDs gave these DLTs other numbers.
const LINKTYPE_TO_DLT: &[(u16, i32)] = &[
    (100, 11),  // ATM_RFC1483
    (101, 12),  // RAW
    (102, 15),  // SLIP_BSDOS
    (103, 16),  // PPP_BSDOS
    (106, 19),  // ATM_CLIP
    (117, 117), // PFLOG (same, listed so the reverse lookup of 117 is unambiguous)
];

impl LinkType {
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    pub const RAW: LinkType = LinkType(101);
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// The name libpcap gives this link type (that of its DLT_ value, such
    /// as `EN10MB` or `RAW`), if it knows one.
    pub fn name(self) -> Option<&'static str> {
        dlt_name(self.to_dlt())
    }

    /// Whether libpcap knows this link type by name.
    pub fn is_known(self) -> bool {
        self.name().is_some()
    }

    /// The DLT_ value libpcap's API uses for this link type.
    pub fn to_dlt(self) -> i32 {
        LINKTYPE_TO_DLT
            .iter()
            .find(|(lt, _)| *lt == self.0)
            .map_or(i32::from(self.0), |(_, dlt)| *dlt)
    }

    /// The longest captured length a reader accepts for this link type, as
    /// libpcap 1.10 does (`max_snaplen_for_dlt`): [`MAX_CAPLEN`] for almost
    /// every type, more for those whose records are larger by nature (D-Bus
    /// messages, EBHSCR traces, USBPcap transfers).
    pub fn max_snaplen(self) -> u32 {
        match self.to_dlt() {
            231 => 128 * 1024 * 1024, // DBUS
            279 => 8 * 1024 * 1024,   // EBHSCR
            249 => 1024 * 1024,       // USBPCAP
            _ => MAX_CAPLEN,
        }
    }

    /// The snap length libpcap reads a file with, given the one its header
    /// (or interface) announces: 0, or one over `i32::MAX`, means this link
    /// type's maximum (`pcap_adjust_snapshot`); any other is kept as is,
    /// even when over the maximum.
    pub fn adjust_snaplen(self, snaplen: u32) -> u32 {
        if snaplen == 0 || snaplen > i32::MAX as u32 {
            self.max_snaplen()
        } else {
            snaplen
        }
    }

    /// The link type a file stores for a DLT_ value.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        if let Some((lt, _)) = LINKTYPE_TO_DLT.iter().find(|(_, d)| *d == dlt) {
            return Some(LinkType(*lt));
        }
        u16::try_from(dlt).ok().map(LinkType)
    }
}

/// The name libpcap gives a DLT_ value (`pcap_datalink_val_to_name`).
pub fn dlt_name(dlt: i32) -> Option<&'static str> {
    let dlt = u16::try_from(dlt).ok()?;
    let i = names::NAMES.binary_search_by_key(&dlt, |(v, _)| *v).ok()?;
    Some(names::NAMES[i].1)
}

impl std::fmt::Display for LinkType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_differs_between_file_and_api() {
        assert_eq!(LinkType::RAW.to_dlt(), 12);
        assert_eq!(LinkType::from_dlt(12), Some(LinkType::RAW));
        assert_eq!(LinkType::ETHERNET.to_dlt(), 1);
        assert_eq!(LinkType::from_dlt(113), Some(LinkType::LINUX_SLL));
        assert_eq!(LinkType::from_dlt(-1), None);
    }

    #[test]
    fn maximum_capture_length_is_per_link_type_as_in_libpcap() {
        assert_eq!(LinkType::ETHERNET.max_snaplen(), 262_144);
        assert_eq!(LinkType(231).max_snaplen(), 128 << 20);
        assert_eq!(LinkType(279).max_snaplen(), 8 << 20);
        assert_eq!(LinkType(249).max_snaplen(), 1 << 20);
        assert_eq!(LinkType::ETHERNET.adjust_snaplen(0), 262_144);
        assert_eq!(LinkType(231).adjust_snaplen(0), 128 << 20);
        assert_eq!(LinkType::ETHERNET.adjust_snaplen(96), 96);
        // Over the maximum but a valid int: kept, as libpcap keeps it.
        assert_eq!(LinkType::ETHERNET.adjust_snaplen(1 << 20), 1 << 20);
        assert_eq!(LinkType::ETHERNET.adjust_snaplen(0x8000_0000), 262_144);
    }

    #[test]
    fn names_are_those_of_the_dlt_value() {
        assert_eq!(LinkType::ETHERNET.name(), Some("EN10MB"));
        // A file's RAW (101) is libpcap's DLT_RAW (12).
        assert_eq!(LinkType::RAW.name(), Some("RAW"));
        assert_eq!(LinkType(101).to_dlt(), 12);
        assert_eq!(LinkType::LINUX_SLL2.name(), Some("LINUX_SLL2"));
        assert!(!LinkType(60_000).is_known());
        assert_eq!(dlt_name(-1), None);
        assert!(names::NAMES.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
    }
}
