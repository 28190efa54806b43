//! The programs `filterd trace` attaches: one per tracepoint, each the
//! expression's filter on the tracepoint's socket buffer (the trace hook,
//! `translate::trace`) followed, on a match, by one event written to the
//! `events` map: a BPF ring buffer, or a perf event array on kernels
//! without ring buffers ([`Buffer`]). An event the buffer has no room for
//! is counted in the per-CPU `lost` array instead. Pure: the kernel's
//! offsets come in [`Offsets`] (from its BTF, `kernel_btf`).
//!
//! An event, little endian ([`Event`] decodes it):
//!
//! ```text
//!   0 u64 time        bpf_ktime_get_ns
//!   8 u64 skb         the socket buffer's address (groups a packet's path)
//!  16 u32 point       index into the attached points
//!  20 u32 cpu
//!  24 u32 ifindex     skb->dev->ifindex (0: no device)
//!  28 u32 netns       skb->dev->nd_net.net->ns.inum (0: no device)
//!  32 u32 mark
//!  36 u32 len         the packet's length from where the filter read it
//!  40 u32 reason      kfree_skb's drop reason (else 0)
//!  44 u16 protocol    skb->protocol as the kernel keeps it (big endian)
//!  46 u16 caplen      bytes of the packet in `data`
//!  48 u8  from_mac    1: `data` starts at the link-layer header; 0: at
//!                     the network header
//!  50 u16 vlan        the outer tag's TCI when the kernel holds it out of
//!                     the bytes (`len` then counts its 4 bytes, as the
//!                     filter and a capture do), else 0
//!  52 u8  tagged      1 when it does
//!  56 [u8; 128] data  the packet's first bytes (without such a tag)
//! ```

use crate::cbpf;
use crate::ebpf::asm::Asm;
use crate::ebpf::insn::{AluOp, CallTarget, JmpOp, Op, Operand, Reg, Size};
use crate::elf::{MapBtf, Object, ValueLayout};
use crate::kernel_btf::{Btf, BtfError};
use crate::kernel_skb::{SkbLayout, UNSET};
use crate::translate::{self, Loops, Options, Target, TranslateError};
use crate::Hook;

/// Where a program attaches: a BTF tracepoint, or the entry of a kernel
/// function (fentry; not every kernel allows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tracepoint,
    Function,
}

/// A point the tracer knows: a tracepoint's name (after `btf_trace_`) or
/// a function's, each with the socket buffer as its first argument, and
/// the argument holding the drop reason, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    pub name: &'static str,
    pub kind: Kind,
    /// The argument index of `enum skb_drop_reason`.
    pub reason_arg: Option<u8>,
}

/// The skb tracepoints, in the order a received packet meets them, then
/// transmit, then the ends of a packet's life. Each has the skb first.
pub const POINTS: [Point; 9] = [
    Point::plain("napi_gro_receive_entry"),
    Point::plain("netif_rx"),
    Point::plain("netif_receive_skb"),
    Point::plain("skb_copy_datagram_iovec"),
    Point::plain("net_dev_queue"),
    Point::plain("net_dev_start_xmit"),
    Point::plain("net_dev_xmit"),
    Point {
        name: "kfree_skb",
        kind: Kind::Tracepoint,
        reason_arg: Some(2),
    },
    Point::plain("consume_skb"),
];

/// Kernel functions whose first argument is the socket buffer, traced at
/// their entry where the kernel allows fentry: the IP and transport
/// layers the tracepoints do not show.
pub const FUNCTIONS: [Point; 8] = [
    Point::function("ip_rcv"),
    Point::function("ipv6_rcv"),
    Point::function("ip_local_deliver"),
    Point::function("ip_forward"),
    Point::function("udp_rcv"),
    Point::function("tcp_v4_rcv"),
    Point::function("icmp_rcv"),
    Point::function("__dev_queue_xmit"),
];

impl Point {
    const fn plain(name: &'static str) -> Point {
        Point {
            name,
            kind: Kind::Tracepoint,
            reason_arg: None,
        }
    }

    const fn function(name: &'static str) -> Point {
        Point {
            name,
            kind: Kind::Function,
            reason_arg: None,
        }
    }

    /// The ELF section aya and libbpf read: `tp_btf/NAME` or
    /// `fentry/NAME`.
    pub fn section(&self) -> String {
        match self.kind {
            Kind::Tracepoint => format!("{}/{}", Hook::Trace.section(), self.name),
            Kind::Function => format!("fentry/{}", self.name),
        }
    }

    pub fn by_name(name: &str) -> Option<Point> {
        POINTS.into_iter().chain(FUNCTIONS).find(|p| p.name == name)
    }
}

/// The kernel's offsets an event's fields are read at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offsets {
    pub skb: SkbLayout,
    /// `sk_buff.dev`, `.mark`, `.protocol`.
    pub dev: u16,
    pub mark: u16,
    pub protocol: u16,
    /// `net_device.ifindex`, `.nd_net.net`, `.header_ops`;
    /// `header_ops.create`; `net.ns.inum`.
    pub ifindex: u16,
    pub nd_net: u16,
    pub header_ops: u16,
    pub header_create: u16,
    pub ns_inum: u16,
}

impl Offsets {
    pub fn from_btf(btf: &Btf) -> Result<Offsets, BtfError> {
        let at = |s: &str, path: &[&str]| -> Result<u16, BtfError> {
            let off = btf.offset(s, path)?;
            u16::try_from(off)
                .map_err(|_| BtfError::Missing(format!("{s}.{} below 64 KiB", path.join("."))))
        };
        Ok(Offsets {
            skb: btf.skb_layout()?,
            dev: at("sk_buff", &["dev"])?,
            mark: at("sk_buff", &["mark"])?,
            protocol: at("sk_buff", &["protocol"])?,
            ifindex: at("net_device", &["ifindex"])?,
            nd_net: at("net_device", &["nd_net", "net"])?,
            header_ops: at("net_device", &["header_ops"])?,
            header_create: at("header_ops", &["create"])?,
            ns_inum: at("net", &["ns", "inum"])?,
        })
    }
}

/// Bytes of the packet an event carries.
pub const DATA: usize = 128;
/// An event's size.
pub const EVENT_SIZE: usize = 56 + DATA;
/// The ring buffer's size (a power of two of pages).
pub const RING_BYTES: u32 = 1 << 18;
/// Where the event is built: below the saved reason (fp-112) and the
/// filter's own slots (fp-104 up); below it, the program's context (the
/// perf helper takes it) and the `lost` map's key.
const EVENT: i16 = -112 - EVENT_SIZE as i16;
const REASON: i16 = -112;
const CTX: i16 = EVENT - 8;
const LOST_KEY: i16 = CTX - 8;
/// 1 when the filter reads from the link-layer header, else 0.
const FROM_MAC: i16 = LOST_KEY - 8;
/// The maps, by index in the object.
const EVENTS_MAP: u64 = 0;
const LOST_MAP: u64 = 1;

const HELPER_KTIME: i32 = 5;
const HELPER_CPU: i32 = 8;
const HELPER_PROBE_READ_KERNEL: i32 = 113;
const HELPER_RINGBUF_OUTPUT: i32 = 130;
const HELPER_PERF_EVENT_OUTPUT: i32 = 25;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
const BPF_MAP_TYPE_PERF_EVENT_ARRAY: u32 = 4;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;

/// Where the programs write their events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Buffer {
    /// A BPF ring buffer per program, [`RING_BYTES`] (Linux 5.8 and
    /// later): events from every CPU in one order.
    #[default]
    Ring,
    /// A perf event array (older kernels): a buffer per CPU, which the
    /// reader opens; the array's size is the loader's (the CPU count).
    Perf,
}

impl Buffer {
    pub fn name(self) -> &'static str {
        match self {
            Buffer::Ring => "ring",
            Buffer::Perf => "perf",
        }
    }
}

/// The filters of one expression: over the frame from its link-layer
/// header (Ethernet), and over the packet from its network header (raw
/// IP) for socket buffers without a link-layer header; `None` when the
/// expression needs link-layer fields (such buffers then never match, as
/// ARCHITECTURE.md decides for L3 hooks).
#[derive(Clone, Debug)]
pub struct Filters {
    pub l2: Vec<cbpf::Insn>,
    pub l3: Option<Vec<cbpf::Insn>>,
}

/// The program for tracepoint `point` (reported as index `index`),
/// running `filters` on each socket buffer and writing its events to
/// `buffer`, its loops bounded as `loops` says. It returns 0.
pub fn program(
    filters: &Filters,
    index: u32,
    point: &Point,
    offsets: &Offsets,
    buffer: Buffer,
    loops: Loops,
) -> Result<Object, TranslateError> {
    let mut a = Asm::new();
    let (matched, out) = (a.label(), a.label());
    let st = |a: &mut Asm, size: Size, off: i16, reg: Reg| {
        a.stx(size, Reg::R10, reg, EVENT + off);
    };
    a.stx(Size::DW, Reg::R10, Reg::R1, CTX);
    // The reason first: the filter takes every register but r6.
    match point.reason_arg {
        Some(k) => a.ldx(Size::DW, Reg::R2, Reg::R1, 8 * k as i16),
        None => a.mov64(Reg::R2, Operand::Imm(0)),
    };
    a.stx(Size::DW, Reg::R10, Reg::R2, REASON);
    a.ldx(Size::DW, Reg::R6, Reg::R1, 0);
    let options = Options {
        skb: offsets.skb,
        ..Options::default()
    };
    let target = Target::new(Hook::Trace).with_loops(loops);
    // Link-layer header or not, decided per socket buffer: none when the
    // kernel has not set one, or when its device cannot make one (no
    // `header_ops->create`, as packet sockets decide: a tun device, an IP
    // tunnel, `link/none`, where a capture is raw IP and the kernel's "MAC
    // header" is the network header or a tunnel's outer one).
    let (l2, l3) = (a.label(), a.label());
    a.push(Op::St {
        size: Size::DW,
        dst: Reg::R10,
        off: FROM_MAC,
        imm: 0,
    });
    a.ldx(Size::H, Reg::R1, Reg::R6, offsets.skb.mac_header as i16);
    a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(UNSET as i32), l3);
    a.ldx(Size::DW, Reg::R1, Reg::R6, offsets.dev as i16);
    a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), l2);
    a.ldx(Size::DW, Reg::R1, Reg::R1, offsets.header_ops as i16);
    a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), l3);
    a.ldx(Size::DW, Reg::R1, Reg::R1, offsets.header_create as i16);
    a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), l3);
    a.bind(l2);
    a.push(Op::St {
        size: Size::DW,
        dst: Reg::R10,
        off: FROM_MAC,
        imm: 1,
    });
    translate::inline_with(&mut a, &filters.l2, target, &options, matched, out)?;
    a.bind(l3);
    let from_network = Options {
        trace_from_network: true,
        ..options
    };
    match &filters.l3 {
        Some(f) => translate::inline_with(&mut a, f, target, &from_network, matched, out)?,
        None => {
            a.ja(out);
        }
    }
    a.bind(matched);
    // The helpers read every byte of the event: all written first.
    for k in 0..EVENT_SIZE as i16 / 8 {
        a.push(Op::St {
            size: Size::DW,
            dst: Reg::R10,
            off: EVENT + 8 * k,
            imm: 0,
        });
    }
    a.push(Op::Call(CallTarget::Helper(HELPER_KTIME)));
    st(&mut a, Size::DW, 0, Reg::R0);
    st(&mut a, Size::DW, 8, Reg::R6);
    a.push(Op::St {
        size: Size::W,
        dst: Reg::R10,
        off: EVENT + 16,
        imm: index as i32,
    });
    a.push(Op::Call(CallTarget::Helper(HELPER_CPU)));
    st(&mut a, Size::W, 20, Reg::R0);
    // The device, its index and its namespace: kernel pointers the
    // verifier lets us load through (a fault reads 0), tested anyway.
    let no_dev = a.label();
    a.ldx(Size::DW, Reg::R1, Reg::R6, offsets.dev as i16);
    a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), no_dev);
    a.ldx(Size::W, Reg::R2, Reg::R1, offsets.ifindex as i16);
    st(&mut a, Size::W, 24, Reg::R2);
    a.ldx(Size::DW, Reg::R3, Reg::R1, offsets.nd_net as i16);
    a.jmp(true, JmpOp::Jeq, Reg::R3, Operand::Imm(0), no_dev);
    a.ldx(Size::W, Reg::R4, Reg::R3, offsets.ns_inum as i16);
    st(&mut a, Size::W, 28, Reg::R4);
    a.bind(no_dev);
    a.ldx(Size::W, Reg::R1, Reg::R6, offsets.mark as i16);
    st(&mut a, Size::W, 32, Reg::R1);
    a.ldx(Size::DW, Reg::R1, Reg::R10, translate::trace_slots::WIRELEN);
    let untagged = a.label();
    a.ldx(Size::W, Reg::R2, Reg::R6, offsets.skb.vlan_all as i16);
    a.jmp(false, JmpOp::Jeq, Reg::R2, Operand::Imm(0), untagged);
    a.alu64(AluOp::Add, Reg::R1, Operand::Imm(4));
    a.ldx(Size::H, Reg::R3, Reg::R6, offsets.skb.vlan_all as i16 + 2);
    st(&mut a, Size::H, 50, Reg::R3);
    a.push(Op::St {
        size: Size::B,
        dst: Reg::R10,
        off: EVENT + 52,
        imm: 1,
    });
    a.bind(untagged);
    st(&mut a, Size::W, 36, Reg::R1);
    a.ldx(Size::DW, Reg::R1, Reg::R10, REASON);
    st(&mut a, Size::W, 40, Reg::R1);
    a.ldx(Size::H, Reg::R1, Reg::R6, offsets.protocol as i16);
    st(&mut a, Size::H, 44, Reg::R1);
    a.ldx(Size::DW, Reg::R1, Reg::R10, FROM_MAC);
    st(&mut a, Size::B, 48, Reg::R1);
    // The first bytes: min(caplen, DATA).
    let short = a.label();
    a.ldx(Size::DW, Reg::R2, Reg::R10, translate::trace_slots::CAPLEN);
    a.jmp(true, JmpOp::Jle, Reg::R2, Operand::Imm(DATA as i32), short);
    a.mov64(Reg::R2, Operand::Imm(DATA as i32));
    a.bind(short);
    st(&mut a, Size::H, 46, Reg::R2);
    a.mov64(Reg::R1, Operand::Reg(Reg::R10));
    a.alu64(AluOp::Add, Reg::R1, Operand::Imm((EVENT + 56) as i32));
    a.ldx(Size::DW, Reg::R3, Reg::R10, translate::trace_slots::START);
    a.push(Op::Call(CallTarget::Helper(HELPER_PROBE_READ_KERNEL)));
    match buffer {
        Buffer::Ring => {
            a.ld_map(Reg::R1, EVENTS_MAP);
            a.mov64(Reg::R2, Operand::Reg(Reg::R10));
            a.alu64(AluOp::Add, Reg::R2, Operand::Imm(EVENT as i32));
            a.mov64(Reg::R3, Operand::Imm(EVENT_SIZE as i32));
            a.mov64(Reg::R4, Operand::Imm(0));
            a.push(Op::Call(CallTarget::Helper(HELPER_RINGBUF_OUTPUT)));
        }
        Buffer::Perf => {
            a.ldx(Size::DW, Reg::R1, Reg::R10, CTX);
            a.ld_map(Reg::R2, EVENTS_MAP);
            // BPF_F_CURRENT_CPU: the index mask, zero-extended (higher
            // flag bits are an error).
            a.mov32(Reg::R3, Operand::Imm(-1));
            a.mov64(Reg::R4, Operand::Reg(Reg::R10));
            a.alu64(AluOp::Add, Reg::R4, Operand::Imm(EVENT as i32));
            a.mov64(Reg::R5, Operand::Imm(EVENT_SIZE as i32));
            a.push(Op::Call(CallTarget::Helper(HELPER_PERF_EVENT_OUTPUT)));
        }
    }
    // No room (or any other failure): counted, so that the reader can say
    // how many events it never saw.
    a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), out);
    a.push(Op::St {
        size: Size::W,
        dst: Reg::R10,
        off: LOST_KEY,
        imm: 0,
    });
    a.map_lookup(LOST_MAP, LOST_KEY);
    a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), out);
    a.ldx(Size::DW, Reg::R1, Reg::R0, 0);
    a.alu64(AluOp::Add, Reg::R1, Operand::Imm(1));
    a.stx(Size::DW, Reg::R0, Reg::R1, 0);
    a.bind(out);
    a.mov64(Reg::R0, Operand::Imm(0));
    a.exit();
    let insns = a.assemble()?;
    let map_refs = crate::elf::map_refs(&insns);
    Ok(Object {
        hook: Hook::Trace,
        name: format!("trace_{}", point.name),
        insns,
        maps: vec![events_map(buffer), lost_map()],
        map_refs,
        // bpf_probe_read_kernel is for GPL programs only.
        license: "GPL".into(),
    })
}

fn events_map(buffer: Buffer) -> MapBtf {
    let (map_type, max_entries, key_size, value_size) = match buffer {
        Buffer::Ring => (BPF_MAP_TYPE_RINGBUF, RING_BYTES, 0, 0),
        // 0 entries: the loader makes one per CPU.
        Buffer::Perf => (BPF_MAP_TYPE_PERF_EVENT_ARRAY, 0, 4, 4),
    };
    MapBtf {
        name: EVENTS.into(),
        map_type,
        max_entries,
        value: ValueLayout::Opaque {
            key_size,
            value_size,
        },
        map_flags: 0,
    }
}

fn lost_map() -> MapBtf {
    MapBtf {
        name: LOST.into(),
        map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
        max_entries: 1,
        value: ValueLayout::Opaque {
            key_size: 4,
            value_size: 8,
        },
        map_flags: 0,
    }
}

/// The maps' names: the events, and the per-CPU count (one `u64` at key
/// 0) of events the buffer had no room for.
pub const EVENTS: &str = "events";
pub const LOST: &str = "lost";

/// An event, decoded (see the module's layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub time_ns: u64,
    pub skb: u64,
    pub point: u32,
    pub cpu: u32,
    pub ifindex: u32,
    pub netns: u32,
    pub mark: u32,
    pub len: u32,
    pub reason: u32,
    /// Host order.
    pub protocol: u16,
    pub from_mac: bool,
    /// The outer VLAN tag's TCI, when the kernel holds it.
    pub vlan: Option<u16>,
    pub data: Vec<u8>,
}

impl Event {
    /// `None` for fewer than [`EVENT_SIZE`] bytes.
    pub fn parse(b: &[u8]) -> Option<Event> {
        if b.len() < EVENT_SIZE {
            return None;
        }
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().expect("2 bytes"));
        let caplen = (u16_at(46) as usize).min(DATA);
        Some(Event {
            time_ns: u64_at(0),
            skb: u64_at(8),
            point: u32_at(16),
            cpu: u32_at(20),
            ifindex: u32_at(24),
            netns: u32_at(28),
            mark: u32_at(32),
            len: u32_at(36),
            reason: u32_at(40),
            protocol: u16::from_be(u16_at(44)),
            from_mac: b[48] == 1,
            vlan: (b[52] == 1).then(|| u16_at(50)),
            data: b[56..56 + caplen].to_vec(),
        })
    }
}
