//! Name tables: the constants libpcap builds in (scanner constants such as
//! `tcp-syn`, EtherType and LLC SAP names, 802.11 and LLC frame types, PF
//! reasons/actions) and pure lookups over `/etc/services` and
//! `/etc/protocols` text, with a built-in fallback so results do not depend
//! on the machine.

mod constants;
mod link;
mod pf;
mod protocols;
mod services;
mod wlan;

pub use constants::{longest_named_number_prefix, named_number, NAMED_NUMBERS};
pub use link::{ethertype, llc_frame, llc_sap, LlcFrame, ETHERTYPES, LLC_SAPS};
pub use pf::{pf_action, pf_reason};
pub use protocols::Protocols;
pub use services::{PortNumbers, Services};
pub use wlan::{wlan_dir, wlan_subtype, wlan_type, wlan_type_subtype};

/// Case-insensitive table lookup, as libpcap's `str2tok` does.
fn lookup_ci<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}
