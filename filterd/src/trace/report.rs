//! How `filterd trace` prints events: grouped by socket buffer as pwru
//! does (a packet's first line names its tuple, the lines after it its
//! path), or one JSON object per event (`--json`, NDJSON). The JSON
//! fields are an interface: documented in the README, only ever added.

use std::collections::HashMap;
use std::io::{self, Write};

use capfile::LinkType;
use filter_programs::tracer::{Event, Point};
use serde_json::{json, Value};

/// What the report needs besides the event.
pub struct Names<'a> {
    pub points: &'a [Point],
    pub reason: &'a dyn Fn(u32) -> String,
    pub ifnames: &'a IfNames,
}

/// Interface names by (network namespace inode, index): filterd's own
/// namespace directly, a named one (`/run/netns/NAME`) from a thread that
/// enters it; each looked up once. Empty when the namespace has no name
/// (a container's, say) or the index no interface.
pub struct IfNames {
    own: Option<u64>,
    cache: std::cell::RefCell<HashMap<(u32, u32), String>>,
}

impl Default for IfNames {
    fn default() -> IfNames {
        use std::os::unix::fs::MetadataExt;
        IfNames {
            own: std::fs::metadata("/proc/self/ns/net").ok().map(|m| m.ino()),
            cache: Default::default(),
        }
    }
}

impl IfNames {
    pub fn get(&self, netns: u32, ifindex: u32) -> String {
        if let Some(n) = self.cache.borrow().get(&(netns, ifindex)) {
            return n.clone();
        }
        let name = if self.own == Some(u64::from(netns)) {
            ifname(ifindex)
        } else {
            named_netns(netns).map_or(String::new(), |path| {
                std::thread::spawn(move || in_netns(&path, ifindex))
                    .join()
                    .unwrap_or_default()
            })
        };
        self.cache
            .borrow_mut()
            .insert((netns, ifindex), name.clone());
        name
    }
}

/// The `/run/netns` entry of the namespace with inode `ino`.
fn named_netns(ino: u32) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/run/netns")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == u64::from(ino)))
}

/// [`ifname`] on a thread of its own that enters `path`'s namespace.
fn in_netns(path: &std::path::Path, ifindex: u32) -> String {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(path) else {
        return String::new();
    };
    // SAFETY: a namespace file's descriptor; only this thread moves.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return String::new();
    }
    ifname(ifindex)
}

/// The name of interface `ifindex` in this thread's network namespace
/// (empty when it has none here).
pub fn ifname(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The index of interface `name` in this process's network namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

fn proto_name(ethertype: u16) -> String {
    match ethertype {
        0x0800 => "IPv4".into(),
        0x86dd => "IPv6".into(),
        0x0806 => "ARP".into(),
        0x8100 => "802.1Q".into(),
        e => format!("0x{e:04x}"),
    }
}

fn l4_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmp6".into(),
        132 => "sctp".into(),
        p => p.to_string(),
    }
}

/// The tuple of the packet bytes an event carries.
fn tuple(e: &Event) -> Option<packet_summary::FiveTuple> {
    let lt = if e.from_mac {
        LinkType::ETHERNET
    } else {
        LinkType::RAW
    };
    packet_summary::five_tuple(lt, &e.data)
}

/// One event as a JSON object.
pub fn json(e: &Event, n: &Names<'_>) -> Value {
    let point = n.points.get(e.point as usize);
    let mut v = json!({
        "time": e.time_ns,
        "cpu": e.cpu,
        "skb": format!("{:#x}", e.skb),
        "point": point.map_or("", |p| p.name),
        "ifindex": e.ifindex,
        "ifname": n.ifnames.get(e.netns, e.ifindex),
        "netns": e.netns,
        "mark": e.mark,
        "len": e.len,
        "proto": proto_name(e.protocol),
        "vlan": e.vlan.map(|tci| tci & 0xfff),
        "tuple": tuple(e).map(|t| json!({
            "saddr": t.saddr.to_string(),
            "daddr": t.daddr.to_string(),
            "sport": t.sport,
            "dport": t.dport,
            "l4proto": l4_name(t.l4proto),
        })),
    });
    if point.is_some_and(|p| p.reason_arg.is_some()) {
        v["drop_reason"] = Value::String((n.reason)(e.reason));
    }
    v
}

fn tuple_text(e: &Event) -> String {
    match tuple(e) {
        Some(t) => {
            let end = |a: std::net::IpAddr, p: Option<u16>| match p {
                Some(p) => format!("{a}:{p}"),
                None => a.to_string(),
            };
            format!(
                "{} {} > {}",
                l4_name(t.l4proto),
                end(t.saddr, t.sport),
                end(t.daddr, t.dport)
            )
        }
        None => proto_name(e.protocol),
    }
}

/// Text: a header line the first time a socket buffer is seen, then one
/// line per point it passes.
#[derive(Default)]
pub struct Grouped {
    seen: HashMap<u64, usize>,
}

impl Grouped {
    /// With `tuple`, every line ends with the packet's tuple.
    pub fn write(
        &mut self,
        out: &mut dyn Write,
        e: &Event,
        n: &Names<'_>,
        tuple: bool,
    ) -> io::Result<()> {
        let next = self.seen.len() + 1;
        let id = *self.seen.entry(e.skb).or_insert_with(|| {
            let _ = writeln!(
                out,
                "#{next} skb {:#x} {} len {}",
                e.skb,
                tuple_text(e),
                e.len
            );
            next
        });
        let point = n.points.get(e.point as usize);
        let mut line = format!(
            "  #{id} {:>17.6} cpu{:<3} {:<24} {}({}) netns {} mark {:#x} len {}",
            e.time_ns as f64 / 1e9,
            e.cpu,
            point.map_or("?", |p| p.name),
            n.ifnames.get(e.netns, e.ifindex),
            e.ifindex,
            e.netns,
            e.mark,
            e.len
        );
        if point.is_some_and(|p| p.reason_arg.is_some()) {
            line.push_str(&format!(" reason {}", (n.reason)(e.reason)));
        }
        if tuple {
            line.push_str(&format!(" {}", tuple_text(e)));
        }
        writeln!(out, "{line}")
    }
}
