//! OpenBSD pflog reason and action names (the portable set libpcap uses on
//! Linux), case-insensitive.

use super::lookup_ci;

const REASONS: &[(&str, u8)] = &[
    ("match", 0),
    ("bad-offset", 1),
    ("fragment", 2),
    ("short", 3),
    ("normalize", 4),
    ("memory", 5),
    ("bad-timestamp", 6),
    ("congestion", 7),
    ("ip-option", 8),
    ("proto-cksum", 9),
    ("state-mismatch", 10),
    ("state-insert", 11),
    ("state-limit", 12),
    ("src-limit", 13),
    ("synproxy", 14),
];

const ACTIONS: &[(&str, u8)] = &[
    ("pass", 0),
    ("accept", 0),
    ("drop", 1),
    ("block", 1),
    ("scrub", 2),
    ("noscrub", 3),
    ("nat", 4),
    ("nonat", 5),
    ("binat", 6),
    ("nobinat", 7),
    ("rdr", 8),
    ("nordr", 9),
    ("synproxy-drop", 10),
];

pub fn pf_reason(name: &str) -> Option<u8> {
    lookup_ci(REASONS, name)
}

pub fn pf_action(name: &str) -> Option<u8> {
    lookup_ci(ACTIONS, name)
}
