//! The rtnetlink calls aya does not expose: the XDP state of every
//! interface (`RTM_GETLINK`, `IFLA_XDP`) and the tc filters under a
//! clsact direction (`RTM_GETTFILTER`, `TCA_BPF_*`), for `status`; and
//! removing a clsact qdisc (`RTM_DELQDISC`), for `detach`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
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

struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        Ok(Socket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sends one dump request (header added here) and returns the payloads
    /// of the replies of type `want`.
    fn dump(&self, kind: u16, body: &[u8], want: u16) -> io::Result<Vec<Vec<u8>>> {
        self.request(kind, NLM_F_DUMP, body, want)
    }

    /// Sends one request with `flags` and collects the replies of type
    /// `want` until the end of the dump or the acknowledgement.
    fn request(&self, kind: u16, flags: u16, body: &[u8], want: u16) -> io::Result<Vec<Vec<u8>>> {
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
        msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel fills it
        msg.extend_from_slice(body);
        // SAFETY: sockaddr_nl is plain data; zero means "the kernel".
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: msg and to are valid for the lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // SAFETY: buf is writable for its length.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= 16 {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let ty = u16::from_ne_bytes([rest[4], rest[5]]);
                if len < 16 || len > rest.len() {
                    return Err(io::Error::other("malformed netlink message"));
                }
                match ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let errno = rest
                            .get(16..20)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        if errno == 0 {
                            return Ok(out);
                        }
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                    t if t == want => out.push(rest[16..len].to_vec()),
                    _ => {}
                }
                rest = &rest[align(len).min(rest.len())..];
            }
        }
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// (type, payload) of each attribute in `b`.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff; // drop NESTED / BYTEORDER bits
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[align(len).min(b.len())..];
    }
    out
}

fn u32_of(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

fn str_of(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Every interface of the calling thread's network namespace.
pub fn links() -> io::Result<Vec<Link>> {
    let sock = Socket::open()?;
    let ifinfomsg = [0u8; 16]; // AF_UNSPEC, every interface
    let mut out = Vec::new();
    for m in sock.dump(RTM_GETLINK, &ifinfomsg, RTM_NEWLINK)? {
        let Some(index) = m.get(4..8).and_then(u32_of) else {
            continue;
        };
        let mut link = Link {
            ifindex: index,
            name: String::new(),
            xdp: Vec::new(),
        };
        for (ty, val) in attrs(m.get(16..).unwrap_or_default()) {
            match ty {
                IFLA_IFNAME => link.name = str_of(val),
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
    for (ty, val) in attrs(nested) {
        match ty {
            IFLA_XDP_ATTACHED => attached = val.first().copied().unwrap_or(0),
            IFLA_XDP_PROG_ID => single = u32_of(val),
            IFLA_XDP_DRV_PROG_ID => per_mode.extend(u32_of(val).map(|id| ("drv", id))),
            IFLA_XDP_SKB_PROG_ID => per_mode.extend(u32_of(val).map(|id| ("skb", id))),
            IFLA_XDP_HW_PROG_ID => per_mode.extend(u32_of(val).map(|id| ("hw", id))),
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
    let mut body = [0u8; 32];
    body[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    body[8..12].copy_from_slice(&CLSACT_HANDLE.to_ne_bytes());
    body[12..16].copy_from_slice(&TC_H_CLSACT.to_ne_bytes());
    // TCA_KIND "clsact": length 4 + 7, padded to 12.
    body[20..22].copy_from_slice(&11u16.to_ne_bytes());
    body[22..24].copy_from_slice(&TCA_KIND.to_ne_bytes());
    body[24..31].copy_from_slice(b"clsact\0");
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
    let mut tcmsg = [0u8; 20];
    tcmsg[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    tcmsg[12..16].copy_from_slice(&parent.to_ne_bytes());
    let mut out = Vec::new();
    let replies = match sock.dump(RTM_GETTFILTER, &tcmsg, RTM_NEWTFILTER) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => {
            return Ok(out)
        }
        r => r?,
    };
    for m in replies {
        let (Some(handle), Some(info)) = (
            m.get(8..12).and_then(u32_of),
            m.get(16..20).and_then(u32_of),
        ) else {
            continue;
        };
        let mut f = Filter {
            priority: (info >> 16) as u16,
            handle,
            kind: String::new(),
            prog_id: None,
            name: None,
            direct_action: false,
        };
        for (ty, val) in attrs(m.get(20..).unwrap_or_default()) {
            match ty {
                TCA_KIND => f.kind = str_of(val),
                TCA_OPTIONS => {
                    for (t, v) in attrs(val) {
                        match t {
                            TCA_BPF_ID => f.prog_id = u32_of(v),
                            TCA_BPF_NAME => f.name = Some(str_of(v)),
                            TCA_BPF_FLAGS => {
                                f.direct_action =
                                    u32_of(v).is_some_and(|x| x & TCA_BPF_FLAG_ACT_DIRECT != 0)
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        // A dump lists each priority's chain head (no handle, no options)
        // before its filters; only real filters are reported.
        if handle != 0 {
            out.push(f);
        }
    }
    Ok(out)
}
