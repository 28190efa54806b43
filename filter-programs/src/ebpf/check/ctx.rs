//! Per-hook rules: which context fields may be read or written, at which
//! sizes, and which helpers may be called. Written from the kernel's
//! `sk_filter_is_valid_access`, `tc_cls_act_is_valid_access`,
//! `bpf_skb_is_valid_access`, `xdp_is_valid_access` and the hooks'
//! `func_proto` tables, restricted to what this checker can reason about
//! (a field it does not model is refused, never guessed).

use super::value::{Range, Val};
use crate::Hook;

/// `[start, end)` byte ranges of `struct __sk_buff` fields.
mod skb {
    pub const CB: (i64, i64) = (48, 68);
    pub const MARK: (i64, i64) = (8, 12);
    pub const QUEUE_MAPPING: (i64, i64) = (12, 16);
    pub const PRIORITY: (i64, i64) = (32, 36);
    pub const TC_INDEX: (i64, i64) = (44, 48);
    pub const TC_CLASSID: (i64, i64) = (72, 76);
    pub const DATA: (i64, i64) = (76, 80);
    pub const DATA_END: (i64, i64) = (80, 84);
    /// family, remote/local ip4 and ip6, remote/local port.
    pub const SOCK_FIELDS: (i64, i64) = (88, 140);
    pub const DATA_META: (i64, i64) = (140, 144);
    pub const FLOW_KEYS: (i64, i64) = (144, 152);
    pub const TSTAMP: (i64, i64) = (152, 160);
    pub const WIRE_LEN: (i64, i64) = (160, 164);
    pub const SK: (i64, i64) = (168, 176);
    /// tstamp_type and the padding after it.
    pub const TSTAMP_TYPE: (i64, i64) = (180, 184);
    pub const HWTSTAMP: (i64, i64) = (184, 192);
    pub const SIZE: i64 = 192;
}

mod xdp {
    pub const DATA: i64 = 0;
    pub const DATA_END: i64 = 4;
    pub const DATA_META: i64 = 8;
    pub const EGRESS_IFINDEX: i64 = 20;
    pub const SIZE: i64 = 24;
}

fn within(off: i64, (a, b): (i64, i64)) -> bool {
    off >= a && off < b
}

/// A tracepoint's arguments this checker reads: the first (the socket
/// buffer) and those after it, as numbers.
const TRACE_ARGS: i64 = 6;

/// The value a context access yields (for a write, `Some(_)` just means
/// allowed), or `None` when the hook forbids it.
pub(super) fn access(kind: Hook, off: i64, size: usize, write: bool) -> Option<Val> {
    match kind {
        // The context is the tracepoint's arguments, 8 bytes each, read
        // only.
        Hook::Trace => {
            let ok = !write && size == 8 && off % 8 == 0 && (0..8 * TRACE_ARGS).contains(&off);
            ok.then_some(if off == 0 {
                Val::Kernel
            } else {
                Val::Scalar(Range::FULL)
            })
        }
        Hook::Xdp => {
            let ok = (0..xdp::SIZE).contains(&off)
                && off != xdp::EGRESS_IFINDEX
                && !write
                && size == 4
                && off % 4 == 0;
            ok.then_some(match off {
                xdp::DATA => Val::Pkt {
                    id: 0,
                    off: 0,
                    var: 0,
                    range: 0,
                },
                xdp::DATA_END => Val::PktEnd,
                xdp::DATA_META => Val::PktMeta,
                _ => Val::Scalar(Range::bytes(4)),
            })
        }
        Hook::Socket => {
            let banned = [
                skb::TC_CLASSID,
                skb::DATA,
                skb::DATA_META,
                skb::DATA_END,
                skb::SOCK_FIELDS,
                skb::TSTAMP,
                skb::WIRE_LEN,
                skb::HWTSTAMP,
            ];
            if banned.iter().any(|r| within(off, *r)) || (write && !within(off, skb::CB)) {
                return None;
            }
            skb_access(off, size, write)
        }
        Hook::Tc => {
            let writable = [
                skb::MARK,
                skb::TC_INDEX,
                skb::PRIORITY,
                skb::TC_CLASSID,
                skb::CB,
                skb::TSTAMP,
                skb::QUEUE_MAPPING,
            ];
            if (write && !writable.iter().any(|r| within(off, *r))) || within(off, skb::SOCK_FIELDS)
            {
                return None;
            }
            let v = skb_access(off, size, write)?;
            Some(match off {
                o if o == skb::DATA.0 => Val::Pkt {
                    id: 0,
                    off: 0,
                    var: 0,
                    range: 0,
                },
                o if o == skb::DATA_END.0 => Val::PktEnd,
                o if o == skb::DATA_META.0 => Val::PktMeta,
                _ => v,
            })
        }
    }
}

/// `bpf_skb_is_valid_access`: sizes and alignment common to skb hooks.
fn skb_access(off: i64, size: usize, write: bool) -> Option<Val> {
    let size_i = size as i64;
    if !(0..skb::SIZE).contains(&off) || off % size_i != 0 {
        return None;
    }
    let word = [skb::DATA, skb::DATA_END, skb::DATA_META, skb::SOCK_FIELDS];
    let ok = if within(off, skb::CB) {
        off + size_i <= skb::CB.1
    } else if word.iter().any(|r| within(off, *r)) {
        size == 4
    } else if within(off, skb::FLOW_KEYS) || within(off, skb::SK) || within(off, skb::TSTAMP_TYPE) {
        false
    } else if within(off, skb::HWTSTAMP) {
        !write && size == 8
    } else if within(off, skb::TSTAMP) {
        size == 8
    } else if write {
        size == 4
    } else {
        size <= 4
    };
    ok.then_some(Val::Scalar(Range::bytes(size)))
}

/// The helpers this checker knows the argument kinds of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Helper {
    /// No arguments (`bpf_get_prandom_u32`, `bpf_get_smp_processor_id`).
    NoArgs,
    /// `(ctx)`: `bpf_xdp_get_buff_len`.
    CtxOnly,
    /// `(ctx, offset, stack buffer, constant size[, start header])`:
    /// `bpf_skb_load_bytes` and `bpf_skb_load_bytes_relative`.
    LoadBytes { relative: bool },
    /// `(stack buffer, constant size, any address)`:
    /// `bpf_probe_read_kernel`, which fails (and zeroes the buffer)
    /// rather than fault.
    ProbeRead,
}

/// The helper with this id as this checker models it, and whether `kind`
/// may call it; `None` for helpers it does not model.
pub(super) fn helper(id: i32, kind: Hook) -> Option<(Helper, bool)> {
    let skb = matches!(kind, Hook::Socket | Hook::Tc);
    Some(match id {
        7 | 8 => (Helper::NoArgs, true),
        26 => (Helper::LoadBytes { relative: false }, skb),
        68 => (Helper::LoadBytes { relative: true }, skb),
        188 => (Helper::CtxOnly, kind == Hook::Xdp),
        113 => (Helper::ProbeRead, kind == Hook::Trace),
        _ => return None,
    })
}
