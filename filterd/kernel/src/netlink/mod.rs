//! The rtnetlink calls aya does not expose: the XDP state of every
//! interface (`RTM_GETLINK`, `IFLA_XDP`) and the tc filters under a
//! clsact direction (`RTM_GETTFILTER`, `TCA_BPF_*`), for filterd's
//! `status`; and removing a clsact qdisc (`RTM_DELQDISC`), for `detach`.
//! Each call opens its own socket, in the calling thread's network
//! namespace.

mod socket;
mod wire;

use std::io;

use socket::{Socket, NLM_F_ACK, NLM_F_DUMP};
use wire::{attributes, ifinfo, string, tc, u32_at};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const IFLA_IFNAME: u16 = 3;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_ID: u16 = 11;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
/// `TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS / TC_H_MIN_EGRESS)`.
pub const CLSACT_INGRESS: u32 = 0xffff_fff2;
pub const CLSACT_EGRESS: u32 = 0xffff_fff3;
/// `TC_H_CLSACT`: the clsact qdisc's parent; its handle is `ffff:`.
const TC_H_CLSACT: u32 = 0xffff_fff1;
const CLSACT_HANDLE: u32 = 0xffff_0000;

/// One interface and its XDP programs: (mode, program id) per attached
/// mode (several when a generic and a native program coexist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    pub xdp: Vec<(&'static str, u32)>,
}

/// A tc filter under one clsact direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub priority: u16,
    pub handle: u32,
    pub kind: String,
    /// For `bpf` filters.
    pub prog_id: Option<u32>,
    pub name: Option<String>,
    pub direct_action: bool,
}

/// Every interface of the calling thread's network namespace.
pub fn links() -> io::Result<Vec<Link>> {
    let sock = Socket::open()?;
    let every_interface = [0u8; ifinfo::LEN]; // AF_UNSPEC, index 0
    let mut out = Vec::new();
    for m in sock.request(RTM_GETLINK, NLM_F_DUMP, &every_interface, RTM_NEWLINK)? {
        let Some(ifindex) = u32_at(&m, ifinfo::INDEX) else {
            continue;
        };
        let mut link = Link {
            ifindex,
            name: String::new(),
            xdp: Vec::new(),
        };
        for (ty, val) in attributes(m.get(ifinfo::LEN..).unwrap_or_default()) {
            match ty {
                IFLA_IFNAME => link.name = string(val),
                IFLA_XDP => link.xdp = xdp_state(val),
                _ => {}
            }
        }
        out.push(link);
    }
    Ok(out)
}

fn xdp_state(nested: &[u8]) -> Vec<(&'static str, u32)> {
    let (mut attached, mut single, mut per_mode) = (0u8, None, Vec::new());
    let id = |val: &[u8]| u32_at(val, 0..4);
    for (ty, val) in attributes(nested) {
        match ty {
            IFLA_XDP_ATTACHED => attached = val.first().copied().unwrap_or(0),
            IFLA_XDP_PROG_ID => single = id(val),
            IFLA_XDP_DRV_PROG_ID => per_mode.extend(id(val).map(|id| ("drv", id))),
            IFLA_XDP_SKB_PROG_ID => per_mode.extend(id(val).map(|id| ("skb", id))),
            IFLA_XDP_HW_PROG_ID => per_mode.extend(id(val).map(|id| ("hw", id))),
            _ => {}
        }
    }
    // XDP_ATTACHED_{DRV,SKB,HW} = 1, 2, 3 come with IFLA_XDP_PROG_ID;
    // MULTI (4) with one id per mode.
    let mode = match attached {
        1 => "drv",
        2 => "skb",
        3 => "hw",
        _ => return per_mode,
    };
    single.map(|id| vec![(mode, id)]).unwrap_or(per_mode)
}

/// Removes the clsact qdisc of `ifindex` (and every filter under it).
/// `Ok(false)` when there was none.
pub fn delete_clsact(ifindex: u32) -> io::Result<bool> {
    let sock = Socket::open()?;
    let mut body = wire::tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT);
    wire::push_attribute(&mut body, TCA_KIND, b"clsact\0");
    match sock.request(RTM_DELQDISC, NLM_F_ACK, &body, 0) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EINVAL)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The filters under clsact `parent` ([`CLSACT_INGRESS`] or
/// [`CLSACT_EGRESS`]) of `ifindex`; empty without a clsact qdisc.
pub fn filters(ifindex: u32, parent: u32) -> io::Result<Vec<Filter>> {
    let sock = Socket::open()?;
    let replies = match sock.request(
        RTM_GETTFILTER,
        NLM_F_DUMP,
        &wire::tcmsg(ifindex, 0, parent),
        RTM_NEWTFILTER,
    ) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => {
            return Ok(Vec::new())
        }
        r => r?,
    };
    // A dump lists each priority's chain head (no handle, no options)
    // before its filters; only real filters are reported.
    Ok(replies
        .iter()
        .filter_map(|m| filter(m))
        .filter(|f| f.handle != 0)
        .collect())
}

/// One `RTM_NEWTFILTER` payload.
fn filter(m: &[u8]) -> Option<Filter> {
    let handle = u32_at(m, tc::HANDLE)?;
    let info = u32_at(m, tc::INFO)?;
    let mut f = Filter {
        priority: (info >> 16) as u16,
        handle,
        kind: String::new(),
        prog_id: None,
        name: None,
        direct_action: false,
    };
    for (ty, val) in attributes(m.get(tc::LEN..).unwrap_or_default()) {
        match ty {
            TCA_KIND => f.kind = string(val),
            TCA_OPTIONS => {
                for (t, v) in attributes(val) {
                    match t {
                        TCA_BPF_ID => f.prog_id = u32_at(v, 0..4),
                        TCA_BPF_NAME => f.name = Some(string(v)),
                        TCA_BPF_FLAGS => {
                            f.direct_action =
                                u32_at(v, 0..4).is_some_and(|x| x & TCA_BPF_FLAG_ACT_DIRECT != 0)
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        wire::push_attribute(&mut out, ty, value);
        out
    }

    #[test]
    fn xdp_state_one_mode_or_several() {
        let one = [
            attr(IFLA_XDP_ATTACHED, &[2]),
            attr(IFLA_XDP_PROG_ID, &9u32.to_ne_bytes()),
        ]
        .concat();
        assert_eq!(xdp_state(&one), vec![("skb", 9)]);
        let multi = [
            attr(IFLA_XDP_ATTACHED, &[4]),
            attr(IFLA_XDP_DRV_PROG_ID, &3u32.to_ne_bytes()),
            attr(IFLA_XDP_SKB_PROG_ID, &4u32.to_ne_bytes()),
        ]
        .concat();
        assert_eq!(xdp_state(&multi), vec![("drv", 3), ("skb", 4)]);
        assert_eq!(xdp_state(&attr(IFLA_XDP_ATTACHED, &[0])), vec![]);
    }

    #[test]
    fn a_bpf_filter_reply() {
        let mut m = wire::tcmsg(2, 1, CLSACT_INGRESS);
        m[tc::INFO].copy_from_slice(&((49152u32 << 16) | 0x0300).to_ne_bytes());
        m.extend(attr(TCA_KIND, b"bpf\0"));
        let options = [
            attr(TCA_BPF_ID, &42u32.to_ne_bytes()),
            attr(TCA_BPF_NAME, b"filterd\0"),
            attr(TCA_BPF_FLAGS, &TCA_BPF_FLAG_ACT_DIRECT.to_ne_bytes()),
        ]
        .concat();
        m.extend(attr(TCA_OPTIONS | 0x8000, &options));
        let f = filter(&m).expect("parses");
        assert_eq!(
            f,
            Filter {
                priority: 49152,
                handle: 1,
                kind: "bpf".into(),
                prog_id: Some(42),
                name: Some("filterd".into()),
                direct_action: true,
            }
        );
    }

    #[test]
    fn loopback_is_listed() {
        let links = links().expect("RTM_GETLINK needs no privilege");
        let lo = links.iter().find(|l| l.name == "lo").expect("lo");
        assert_eq!(Some(lo.ifindex), crate::iface::index("lo"));
    }

    #[test]
    fn filters_dump_on_loopback() {
        if !e2e::kernel_available("netlink::tests::filters_dump_on_loopback") {
            return;
        }
        let lo = crate::iface::index("lo").expect("lo");
        // Another test may have put one there; this only checks the call.
        let _ = filters(lo, CLSACT_INGRESS).expect("dump or empty");
    }
}
