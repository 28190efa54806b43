//! Where an eBPF program runs: the one name for the attach points this
//! toolkit compiles for (three that decide packets, and the tracepoints
//! that watch them). The translator, the checker, the ELF writer,
//! the VM's engines, the kernel loader and the CLIs all speak of a hook
//! through this type, so the kernel's program type, the section name that
//! loaders read and the loop budget are decided once, here.

use std::fmt;
use std::str::FromStr;

/// An attach point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// A socket filter (`SO_ATTACH_BPF`, and packet sockets):
    /// `BPF_PROG_TYPE_SOCKET_FILTER`.
    Socket,
    /// eXpress Data Path, before the kernel allocates an skb:
    /// `BPF_PROG_TYPE_XDP`.
    Xdp,
    /// A tc classifier in direct-action mode: `BPF_PROG_TYPE_SCHED_CLS`.
    Tc,
    /// A BTF tracepoint (`tp_btf`) handed the kernel's own socket buffer:
    /// `BPF_PROG_TYPE_TRACING`. It watches packets and decides nothing;
    /// its filter finds the bytes through `struct sk_buff`
    /// ([`crate::kernel_skb`]).
    Trace,
}

impl Hook {
    /// The hooks whose programs decide packets, and that a kernel test
    /// run (`BPF_PROG_TEST_RUN`) runs on a packet.
    pub const ALL: [Hook; 3] = [Hook::Socket, Hook::Xdp, Hook::Tc];
    /// Every hook, [`Hook::Trace`] too.
    pub const EVERY: [Hook; 4] = [Hook::Socket, Hook::Xdp, Hook::Tc, Hook::Trace];

    /// The short name the CLIs take and print: `socket`, `xdp`, `tc`.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Socket => "socket",
            Hook::Xdp => "xdp",
            Hook::Tc => "tc",
            Hook::Trace => "trace",
        }
    }

    /// The name in prose, as the kernel's documentation says it.
    pub fn description(self) -> &'static str {
        match self {
            Hook::Socket => "socket filter",
            Hook::Xdp => "XDP",
            Hook::Tc => "tc classifier",
            Hook::Trace => "BTF tracepoint",
        }
    }

    /// `BPF_PROG_TYPE_*` from `<linux/bpf.h>`.
    pub fn prog_type(self) -> u32 {
        match self {
            Hook::Socket => 1,
            Hook::Tc => 3,
            Hook::Xdp => 6,
            Hook::Trace => 26,
        }
    }

    /// The ELF section our objects use: the exact names both aya and
    /// libbpf accept (aya refuses `xdp/NAME` and `tc`).
    pub fn section(self) -> &'static str {
        match self {
            Hook::Socket => "socket",
            Hook::Xdp => "xdp",
            Hook::Tc => "classifier",
            // Followed by `/` and the tracepoint's name.
            Hook::Trace => "tp_btf",
        }
    }

    /// The hook libbpf's section naming gives: `socket*`, `xdp*`, and
    /// `classifier*`, `tc*` or `tcx*` for tc.
    pub fn of_section(name: &str) -> Option<Hook> {
        let head = name.split('/').next().unwrap_or(name);
        let head = head.split('.').next().unwrap_or(head);
        match head {
            "socket" | "socket_filter" => Some(Hook::Socket),
            "xdp" => Some(Hook::Xdp),
            "classifier" | "tc" | "tcx" => Some(Hook::Tc),
            "tp_btf" => Some(Hook::Trace),
            _ => None,
        }
    }

    /// Most turns a counted loop (libpcap's `protochain` translated with
    /// `Loops::Counted`, for kernels without `may_goto`) may take on this
    /// hook: what the kernel is known to walk within its complexity limit
    /// here. The translator sets its loop counters to it and the checker
    /// refuses larger ones.
    ///
    /// The verifier walks every turn of the loop, and its
    /// one-million-instruction budget covers about 100 turns of the
    /// `protochain` loop on a socket, 40 on tc (whose helper calls add
    /// states), 32 on a tracepoint, and only about 40 under XDP, where
    /// each turn's
    /// packet-pointer checks multiply the states it must keep apart.
    pub fn loop_budget(self) -> u32 {
        match self {
            Hook::Xdp => 32,
            Hook::Tc => 40,
            // Measured: 32 turns verify in about a second, 40 exceed the
            // instruction budget (each turn's probe reads and length checks
            // keep more states apart than tc's helper loads).
            Hook::Trace => 32,
            Hook::Socket => 100,
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not `socket`, `xdp`, `tc` or `trace`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown hook {0:?}: expected socket, xdp, tc or trace")]
pub struct UnknownHook(pub String);

impl FromStr for Hook {
    type Err = UnknownHook;

    fn from_str(s: &str) -> Result<Hook, UnknownHook> {
        Hook::EVERY
            .into_iter()
            .find(|h| h.name() == s)
            .ok_or_else(|| UnknownHook(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for h in Hook::EVERY {
            assert_eq!(h.name().parse::<Hook>(), Ok(h));
            assert_eq!(Hook::of_section(h.section()), Some(h));
        }
        assert!("classifier".parse::<Hook>().is_err());
    }

    #[test]
    fn libbpf_section_names() {
        assert_eq!(Hook::of_section("xdp/ingress"), Some(Hook::Xdp));
        assert_eq!(Hook::of_section("tcx.ingress"), Some(Hook::Tc));
        assert_eq!(Hook::of_section("socket_filter"), Some(Hook::Socket));
        assert_eq!(Hook::of_section("kprobe/x"), None);
    }

    #[test]
    fn kernel_program_types() {
        assert_eq!(Hook::Socket.prog_type(), 1);
        assert_eq!(Hook::Tc.prog_type(), 3);
        assert_eq!(Hook::Xdp.prog_type(), 6);
        assert_eq!(Hook::Trace.prog_type(), 26);
        assert_eq!(
            Hook::of_section("tp_btf/netif_receive_skb"),
            Some(Hook::Trace)
        );
    }
}
