//! capfile's link type names are libpcap's: for every LINKTYPE_ value a
//! file can hold, `LinkType::name` (and so `is_known`, which the
//! `known_linktypes_only` reader option asks) says what
//! `pcap_datalink_val_to_name` says of its DLT_ value.

use capfile::LinkType;
use libpcap_oracle as libpcap;

#[test]
fn every_link_type_is_named_as_libpcap_names_it() {
    let mut known = 0;
    for v in 0..=u16::MAX {
        let lt = LinkType(v);
        let theirs = libpcap::dlt_name(lt.to_dlt());
        assert_eq!(
            lt.name(),
            theirs.as_deref(),
            "link type {v} (DLT {})",
            lt.to_dlt()
        );
        assert_eq!(lt.is_known(), theirs.is_some(), "link type {v}");
        known += usize::from(lt.is_known());
    }
    // The five BSD DLTs (11, 12, 15, 16, 19) are named twice: as
    // themselves and through their Linux LINKTYPE_ value.
    assert!(known > 150, "only {known} known link types");
}
