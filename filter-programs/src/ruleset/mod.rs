//! A filterd ruleset: firewall rules written in the tcpdump language,
//! compiled into ONE XDP program with per-rule counters.
//!
//! Meaning (the reference is [`reference`]): rules are tried in order; a
//! `count` rule that matches counts the packet and the search goes on; the
//! first `pass` or `drop` rule that matches counts the packet and decides
//! it; a packet no deciding rule matches is counted against the default and
//! gets the interface's default verdict. A rule matches a packet when its
//! expression does, by libpcap's verdict on the frame.
//!
//! How (see `compile`, `fast`, `tuple`): per IPv4/IPv6 family, rules of
//! exact host/net/port/protocol shapes are found by one hash lookup per
//! term shape; other rules run in order in the chain, skipped when a
//! necessary condition of theirs (a guard) found nothing in the tables; a
//! cost model leaves small rulesets as straight-line code. Frames the
//! lookups cannot read, and the rare ethertypes of large rulesets, run the
//! rules' classic programs in an interpreter (see `cold`).
//!
//! Counters: a per-CPU array map named `counters`, one `{packets, bytes}`
//! entry per rule in config order and a last entry for the default. Bytes
//! are the frame's full length (`bpf_xdp_get_buff_len`).

pub mod bitmap;
pub mod cold;
pub mod compile;
pub mod config;
pub mod dryrun;
pub mod fast;
pub mod negate;
pub mod specialize;
pub mod tuple;
pub mod vlan;

pub use compile::{compile, Compiled};
pub use config::{parse, Config, ConfigError, Interface, Mode, Rule};

use crate::cbpf::interp::Program;

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Pass,
    Drop,
    /// Count and fall through to the next rule.
    Count,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Drop => "drop",
            Action::Count => "count",
        }
    }
}

/// The final fate of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Pass,
    Drop,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Drop => "drop",
        }
    }

    /// The XDP return code.
    pub fn xdp(self) -> u32 {
        match self {
            Verdict::Pass => crate::translate::Actions::XDP_PASS,
            Verdict::Drop => crate::translate::Actions::XDP_DROP,
        }
    }

    pub fn from_xdp(code: u32) -> Option<Verdict> {
        match code {
            c if c == crate::translate::Actions::XDP_PASS => Some(Verdict::Pass),
            c if c == crate::translate::Actions::XDP_DROP => Some(Verdict::Drop),
            _ => None,
        }
    }
}

/// How one packet fared, rule by rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The deciding rule's index, or `None` for the default.
    pub rule: Option<usize>,
    /// The `count` rules that matched before the decision.
    pub counted: Vec<usize>,
}

/// The meaning of a ruleset, computed the slow, obvious way: each rule's
/// match verdict is asked for in order, through `matches(rule index)`.
pub fn decide(
    actions: &[Action],
    default: Verdict,
    mut matches: impl FnMut(usize) -> bool,
) -> Outcome {
    let mut counted = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        if !matches(i) {
            continue;
        }
        match action {
            Action::Count => counted.push(i),
            Action::Pass => {
                return Outcome {
                    verdict: Verdict::Pass,
                    rule: Some(i),
                    counted,
                }
            }
            Action::Drop => {
                return Outcome {
                    verdict: Verdict::Drop,
                    rule: Some(i),
                    counted,
                }
            }
        }
    }
    Outcome {
        verdict: default,
        rule: None,
        counted,
    }
}

/// [`decide`] with each rule's own classic program run by our reference
/// interpreter on the frame.
pub struct Reference {
    programs: Vec<Program>,
    actions: Vec<Action>,
    default: Verdict,
}

impl Reference {
    pub fn new(rules: &[Rule], default: Verdict) -> Reference {
        Reference {
            // Rules come from `config::parse`, which compiled them with our
            // own code generator: they validate.
            programs: rules
                .iter()
                .map(|r| Program::new_unvalidated(&r.program))
                .collect(),
            actions: rules.iter().map(|r| r.action).collect(),
            default,
        }
    }

    pub fn outcome(&self, frame: &[u8], wire_len: u32) -> Outcome {
        decide(&self.actions, self.default, |i| {
            self.programs[i].run(frame, wire_len) != 0
        })
    }
}
