//! The program contexts: `struct __sk_buff` (socket filters and tc) and
//! `struct xdp_md`, with the field offsets of `<linux/bpf.h>`.
//!
//! The context is laid out as bytes, exactly as the UAPI struct, so that a
//! load at any offset reads what the kernel would give. The pointer fields
//! (`data`, `data_end`, `data_meta`) are 32-bit in the UAPI struct but the
//! verifier rewrites their loads into 64-bit pointers; the VM does the same.

use super::memory::{write_le, Region};
use crate::kernel_skb::{SkbLayout, UNSET};

/// `struct __sk_buff` field offsets.
pub mod skb {
    pub const LEN: u32 = 0;
    pub const PKT_TYPE: u32 = 4;
    pub const MARK: u32 = 8;
    pub const QUEUE_MAPPING: u32 = 12;
    pub const PROTOCOL: u32 = 16;
    pub const VLAN_PRESENT: u32 = 20;
    pub const VLAN_TCI: u32 = 24;
    pub const VLAN_PROTO: u32 = 28;
    pub const PRIORITY: u32 = 32;
    pub const INGRESS_IFINDEX: u32 = 36;
    pub const IFINDEX: u32 = 40;
    pub const TC_INDEX: u32 = 44;
    pub const CB: u32 = 48;
    pub const HASH: u32 = 68;
    pub const TC_CLASSID: u32 = 72;
    pub const DATA: u32 = 76;
    pub const DATA_END: u32 = 80;
    pub const NAPI_ID: u32 = 84;
    pub const FAMILY: u32 = 88;
    pub const DATA_META: u32 = 140;
    pub const TSTAMP: u32 = 152;
    pub const WIRE_LEN: u32 = 160;
    pub const SIZE: usize = 192;
}

/// A tracepoint's context: its arguments, 8 bytes each (the first is the
/// socket buffer); the VM keeps the synthetic `struct sk_buff` after them.
pub mod trace {
    pub const ARGS: usize = 64;
    /// Largest `struct sk_buff` the VM lays out.
    pub const MAX_SKB: usize = 512;
}

/// Bytes of context scratch a run may need: the largest context.
pub const CTX_SCRATCH: usize = trace::ARGS + trace::MAX_SKB;
const _: () = assert!(CTX_SCRATCH >= skb::SIZE);

/// `struct xdp_md` field offsets.
pub mod xdp {
    pub const DATA: u32 = 0;
    pub const DATA_END: u32 = 4;
    pub const DATA_META: u32 = 8;
    pub const INGRESS_IFINDEX: u32 = 12;
    pub const RX_QUEUE_INDEX: u32 = 16;
    pub const EGRESS_IFINDEX: u32 = 20;
    pub const SIZE: usize = 24;
}

/// Socket-buffer metadata a socket filter or tc program can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkbMeta {
    pub pkt_type: u32,
    pub mark: u32,
    pub queue_mapping: u32,
    /// The ethertype in network byte order, as the kernel stores it.
    pub protocol: u16,
    pub vlan_present: bool,
    pub vlan_tci: u16,
    /// The VLAN TPID in network byte order.
    pub vlan_proto: u16,
    pub priority: u32,
    pub ingress_ifindex: u32,
    pub ifindex: u32,
    pub hash: u32,
}

impl SkbMeta {
    /// What the kernel's `eth_type_trans` derives from an Ethernet frame
    /// received on a device whose address is `dev_addr` (a test run uses
    /// the loopback device: all zeros, ifindex 1): the packet type from the
    /// destination MAC and the protocol from the ethertype, or 802.3/802.2
    /// for a length field.
    pub fn from_ethernet(frame: &[u8], dev_addr: [u8; 6], ifindex: u32) -> SkbMeta {
        const PACKET_HOST: u32 = 0;
        const PACKET_BROADCAST: u32 = 1;
        const PACKET_MULTICAST: u32 = 2;
        const PACKET_OTHERHOST: u32 = 3;
        let dst = frame.get(0..6).unwrap_or(&[0; 6]);
        let pkt_type = if dst.iter().all(|b| *b == 0xff) {
            PACKET_BROADCAST
        } else if dst[0] & 1 != 0 {
            PACKET_MULTICAST
        } else if dst != dev_addr {
            PACKET_OTHERHOST
        } else {
            PACKET_HOST
        };
        let ethertype = frame
            .get(12..14)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let proto = if ethertype >= 0x0600 {
            ethertype
        } else if frame.get(14..16) == Some(&[0xff, 0xff]) {
            0x0001 // ETH_P_802_3: raw IPX
        } else {
            0x0004 // ETH_P_802_2
        };
        SkbMeta {
            pkt_type,
            // Stored in network byte order, read as a little-endian u32.
            protocol: proto.swap_bytes(),
            ifindex,
            ingress_ifindex: ifindex,
            ..SkbMeta::default()
        }
    }
}

/// What a program runs on.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// A socket buffer. `frame` holds every byte from the link-layer header
    /// on; `data_off` is where `skb->data` points (the network header for a
    /// socket filter in a test run, 0 for tc), `net_off` where the network
    /// header starts.
    Skb {
        frame: &'a [u8],
        data_off: usize,
        net_off: usize,
        meta: SkbMeta,
    },
    /// An XDP buffer: `frame` from the link-layer header on.
    Xdp {
        frame: &'a [u8],
        ingress_ifindex: u32,
        rx_queue_index: u32,
    },
    /// A socket buffer as a tracepoint sees it, in the kernel's own
    /// `struct sk_buff` laid out as `skb` says: `head` is `frame`'s first
    /// byte, `data` is `data_off` bytes in (the network header, as after
    /// the receive path's `eth_type_trans`), `mac_header` 0 when `mac_set`
    /// (else unset), `network_header` at `data`; bytes of the wire length
    /// not in `frame` count as paged (`data_len`).
    Trace {
        frame: &'a [u8],
        data_off: usize,
        mac_set: bool,
        vlan_all: u32,
        skb: SkbLayout,
    },
}

impl<'a> Input<'a> {
    pub fn frame(&self) -> &'a [u8] {
        match *self {
            Input::Skb { frame, .. } | Input::Xdp { frame, .. } | Input::Trace { frame, .. } => {
                frame
            }
        }
    }

    /// Offset in `frame` of the first byte the program sees at `data`.
    pub fn data_off(&self) -> usize {
        match *self {
            Input::Skb {
                frame, data_off, ..
            }
            | Input::Trace {
                frame, data_off, ..
            } => data_off.min(frame.len()),
            Input::Xdp { .. } => 0,
        }
    }

    pub fn ctx_size(&self) -> usize {
        match self {
            Input::Skb { .. } => skb::SIZE,
            Input::Xdp { .. } => xdp::SIZE,
            Input::Trace { skb, .. } => trace::ARGS + skb.size as usize,
        }
    }

    /// The context bytes a program may read as its context (a trace
    /// input's synthetic socket buffer lies after them).
    pub fn ctx_visible(&self) -> usize {
        match self {
            Input::Trace { .. } => trace::ARGS,
            _ => self.ctx_size(),
        }
    }

    /// Fills `buf` with the context struct's bytes.
    pub fn write_ctx(&self, buf: &mut [u8]) {
        buf.fill(0);
        let data = Region::Packet.base() + self.data_off() as u64;
        let data_end = Region::Packet.base() + self.frame().len() as u64;
        let mut put = |off: u32, v: u32| {
            let _ = write_le(buf, off as u64, 4, v as u64);
        };
        match *self {
            Input::Skb { frame, meta, .. } => {
                put(skb::LEN, (frame.len() - self.data_off()) as u32);
                put(skb::PKT_TYPE, meta.pkt_type);
                put(skb::MARK, meta.mark);
                put(skb::QUEUE_MAPPING, meta.queue_mapping);
                put(skb::PROTOCOL, meta.protocol as u32);
                put(skb::VLAN_PRESENT, meta.vlan_present as u32);
                put(skb::VLAN_TCI, meta.vlan_tci as u32);
                put(skb::VLAN_PROTO, meta.vlan_proto as u32);
                put(skb::PRIORITY, meta.priority);
                put(skb::INGRESS_IFINDEX, meta.ingress_ifindex);
                put(skb::IFINDEX, meta.ifindex);
                put(skb::HASH, meta.hash);
                put(skb::DATA, data as u32);
                put(skb::DATA_END, data_end as u32);
                put(skb::DATA_META, data as u32);
                put(skb::WIRE_LEN, frame.len() as u32);
            }
            Input::Xdp {
                ingress_ifindex,
                rx_queue_index,
                ..
            } => {
                put(xdp::DATA, data as u32);
                put(xdp::DATA_END, data_end as u32);
                put(xdp::DATA_META, data as u32);
                put(xdp::INGRESS_IFINDEX, ingress_ifindex);
                put(xdp::RX_QUEUE_INDEX, rx_queue_index);
            }
            Input::Trace {
                frame,
                mac_set,
                vlan_all,
                skb: l,
                ..
            } => {
                let _ = write_le(buf, 0, 8, Region::Kernel.base());
                let obj = &mut buf[trace::ARGS..];
                let at = |o: u16| o as u64;
                let data_off = self.data_off();
                let _ = write_le(obj, at(l.head), 8, Region::Packet.base());
                let _ = write_le(obj, at(l.data), 8, data);
                // `len` and `data_len` count the wire length too: the
                // machine writes them (see `Machine::ctx`); captured only:
                let _ = write_le(obj, at(l.len), 4, (frame.len() - data_off) as u64);
                let mac = if mac_set { 0 } else { UNSET };
                let _ = write_le(obj, at(l.mac_header), 2, mac as u64);
                let _ = write_le(obj, at(l.network_header), 2, data_off as u64);
                let _ = write_le(obj, at(l.vlan_all), 4, vlan_all as u64);
            }
        }
    }

    /// Whether a program may store to this context byte range.
    pub fn writable(&self, off: u64, size: usize) -> bool {
        let end = off + size as u64;
        let within = |lo: u32, hi: u32| off >= lo as u64 && end <= hi as u64;
        match self {
            Input::Skb { .. } => {
                within(skb::MARK, skb::MARK + 4)
                    || within(skb::PRIORITY, skb::PRIORITY + 4)
                    || within(skb::TC_INDEX, skb::TC_INDEX + 4)
                    || within(skb::CB, skb::CB + 20)
                    || within(skb::TC_CLASSID, skb::TC_CLASSID + 4)
            }
            Input::Xdp { .. } | Input::Trace { .. } => false,
        }
    }
}
