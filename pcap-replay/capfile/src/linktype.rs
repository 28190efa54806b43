//! Link types as capture files store them (LINKTYPE_ values), and the
//! few places where they differ from the DLT_ values libpcap's API takes.

mod names;

use serde::Serialize;

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
