//! What the kernel's classic BPF sees besides the packet bytes: the socket
//! buffer's metadata behind the ancillary loads (`SKF_AD_*`) and where the
//! network and link-layer headers are (`SKF_NET_OFF`, `SKF_LL_OFF`).
//!
//! The meaning of each load follows net/core/filter.c (Linux 6.18):
//! `convert_bpf_extensions`, `convert_skb_access`, `convert_bpf_ld_abs`,
//! `bpf_skb_load_helper_convert_offset` and the nlattr helpers.

use super::interp::{be, Env};
use super::skf::{Ancillary, SKF_LL_OFF, SKF_NET_OFF};
use super::Size;

/// The device a packet arrived on (`skb->dev`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetDevice {
    /// `dev->ifindex` (`SKF_AD_IFINDEX`).
    pub ifindex: u32,
    /// `dev->type`, an `ARPHRD_*` value (`SKF_AD_HATYPE`).
    pub hatype: u16,
}

/// Socket-buffer metadata for [`Program::run_with`](super::interp::Program::run_with).
///
/// Offsets are byte positions in the captured frame handed to `run_with`.
/// Values are in host byte order (`protocol` 0x0800 for IPv4), as the
/// program sees them after the kernel's `ntohs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCtx {
    /// Where `skb->data` points: the packet offset 0 of `ld [k]`. 0 for a
    /// packet socket or tc (data at the MAC header), 14 for an Ethernet
    /// frame under a socket filter test run (data at the IP header).
    pub data_offset: u32,
    /// The network header (`SKF_NET_OFF`).
    pub network_offset: u32,
    /// The MAC header (`SKF_LL_OFF`); `None` when the skb has none set, in
    /// which case link-layer-relative loads fail.
    pub mac_offset: Option<u32>,
    /// `skb->protocol` (`SKF_AD_PROTOCOL`): the ethertype.
    pub protocol: u16,
    /// `skb->pkt_type` (`SKF_AD_PKTTYPE`), `PACKET_HOST` = 0 ...; only the low
    /// 3 bits are seen, as in the kernel.
    pub pkt_type: u8,
    /// `skb->dev`; `None` makes `#ifidx` / `#hatype` end the program with A.
    pub dev: Option<NetDevice>,
    /// `skb->mark` (`SKF_AD_MARK`).
    pub mark: u32,
    /// `skb->queue_mapping` (`SKF_AD_QUEUE`).
    pub queue_mapping: u16,
    /// `skb->hash` (`SKF_AD_RXHASH`).
    pub rxhash: u32,
    /// The CPU the filter runs on (`SKF_AD_CPU`).
    pub cpu: u32,
    /// `skb->vlan_tci` (`SKF_AD_VLAN_TAG`): the whole TCI, priority bits too.
    pub vlan_tci: u16,
    /// `skb->vlan_proto` (`SKF_AD_VLAN_TPID`), 0x8100 or 0x88a8 when a tag
    /// was taken off, 0 otherwise. `SKF_AD_VLAN_TAG_PRESENT` is 1 when
    /// `vlan_tci` or `vlan_tpid` is non-zero (`skb->vlan_all != 0`).
    pub vlan_tpid: u16,
    /// What `prandom_u32()` returns for `SKF_AD_RANDOM`: fixed, so runs
    /// are reproducible.
    pub random: u32,
    /// What `skb_get_poff()` returns for `SKF_AD_PAY_OFFSET`. The kernel
    /// computes it with its flow dissector, which is not modelled here: the
    /// caller supplies the value (0 when the dissector fails).
    pub pay_offset: u32,
}

impl KernelCtx {
    /// An Ethernet frame as a packet socket (`SOCK_RAW`) or tc sees it:
    /// data and MAC header at byte 0, network header at 14, the protocol
    /// from the ethertype, and a device of type `ARPHRD_ETHER` (1).
    pub fn ethernet(frame: &[u8]) -> KernelCtx {
        let protocol = frame
            .get(12..14)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        KernelCtx {
            network_offset: 14,
            mac_offset: Some(0),
            protocol,
            dev: Some(NetDevice {
                ifindex: 1,
                hatype: 1,
            }),
            ..KernelCtx::default()
        }
    }

    /// `SKF_AD_VLAN_TAG_PRESENT`.
    pub fn vlan_present(&self) -> bool {
        self.vlan_tci != 0 || self.vlan_tpid != 0
    }
}

/// The kernel's view of one packet.
pub(super) struct Kernel<'a> {
    /// The whole capture; `skb->head` is taken to be its first byte.
    frame: &'a [u8],
    /// `skb->data`.
    data: usize,
    /// Linear bytes from `skb->data` (`skb_headlen`).
    headlen: i64,
    /// `skb->len`.
    skb_len: u32,
    ctx: &'a KernelCtx,
}

impl<'a> Kernel<'a> {
    pub(super) fn new(frame: &'a [u8], wirelen: u32, ctx: &'a KernelCtx) -> Kernel<'a> {
        let data = (ctx.data_offset as usize).min(frame.len());
        let caplen = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        Kernel {
            frame,
            data,
            headlen: (frame.len() - data) as i64,
            skb_len: wirelen.max(caplen).saturating_sub(ctx.data_offset),
            ctx,
        }
    }

    /// `bpf_skb_load_helper_convert_offset`: a signed offset from
    /// `skb->data`, or `None` for `-EFAULT`.
    fn convert(&self, offset: i32) -> Option<i64> {
        let data = i64::from(self.ctx.data_offset);
        if offset >= 0 {
            Some(offset.into())
        } else if offset >= SKF_NET_OFF {
            Some(i64::from(offset - SKF_NET_OFF) + i64::from(self.ctx.network_offset) - data)
        } else if offset >= SKF_LL_OFF {
            let mac = self.ctx.mac_offset?;
            Some(i64::from(offset - SKF_LL_OFF) + i64::from(mac) - data)
        } else {
            None
        }
    }

    /// `bpf_skb_load_helper_{8,16,32}`, linear data only.
    fn load<const N: usize>(&self, offset: i32) -> Option<u32> {
        let off = self.convert(offset)?;
        if self.headlen - off < N as i64 {
            return None;
        }
        // A negative offset reads before skb->data (a header the stack has
        // pulled). Before the captured frame lies headroom we do not have.
        let start = usize::try_from(self.data as i64 + off).ok()?;
        be::<N>(self.frame, start)
    }

    fn ancillary(&self, which: Ancillary, a: u32, x: u32) -> Result<u32, u32> {
        let c = self.ctx;
        Ok(match which {
            Ancillary::Protocol => c.protocol.into(),
            Ancillary::PktType => u32::from(c.pkt_type & 7),
            // No device: the converted program exits with A as it stands.
            Ancillary::IfIndex => c.dev.ok_or(a)?.ifindex,
            Ancillary::HaType => c.dev.ok_or(a)?.hatype.into(),
            Ancillary::Mark => c.mark,
            Ancillary::Queue => c.queue_mapping.into(),
            Ancillary::RxHash => c.rxhash,
            Ancillary::Cpu => c.cpu,
            Ancillary::AluXorX => a ^ x,
            Ancillary::VlanTag => c.vlan_tci.into(),
            Ancillary::VlanTagPresent => u32::from(c.vlan_present()),
            Ancillary::PayOffset => c.pay_offset,
            Ancillary::Random => c.random,
            Ancillary::VlanTpid => c.vlan_tpid.into(),
            Ancillary::NlAttr => self.nlattr(a, x, false),
            Ancillary::NlAttrNest => self.nlattr(a, x, true),
        })
    }

    /// `bpf_skb_get_nlattr` / `bpf_skb_get_nlattr_nest`: the offset (from
    /// `skb->data`) of the first attribute of type `x` in the netlink
    /// attributes at `a` (or, nested, inside the attribute at `a`); 0 if none.
    fn nlattr(&self, a: u32, x: u32, nested: bool) -> u32 {
        const HDR: u32 = 4;
        let len = self.skb_len;
        let data = &self.frame[self.data..];
        // Non-linear: part of the packet is not in the captured bytes.
        if (data.len() as u64) < u64::from(len) || len < HDR || a > len - HDR {
            return 0;
        }
        let nla_len = |at: usize| {
            data.get(at..at + 2)
                .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]))
        };
        let (start, rem) = if nested {
            let outer = u32::from(nla_len(a as usize));
            if outer > len - a {
                return 0;
            }
            // nla_data() and nla_len(): may be negative, which ends the walk.
            (u64::from(a + HDR), i64::from(outer) - i64::from(HDR))
        } else {
            (u64::from(a), i64::from(len - a))
        };
        nla_find(data, start, rem, x).map_or(0, |off| off as u32)
    }
}

/// `nla_find`: walks attributes from `pos` while `nla_ok` holds.
fn nla_find(data: &[u8], mut pos: u64, mut rem: i64, attrtype: u32) -> Option<u64> {
    // nla_type() masks off NLA_F_NESTED and NLA_F_NET_BYTEORDER.
    const TYPE_MASK: u16 = !(0x8000 | 0x4000);
    loop {
        let at = usize::try_from(pos).ok()?;
        let hdr: &[u8; 4] = data.get(at..)?.first_chunk::<4>()?;
        let nla_len = u16::from_ne_bytes([hdr[0], hdr[1]]);
        let nla_type = u16::from_ne_bytes([hdr[2], hdr[3]]) & TYPE_MASK;
        if rem < 4 || nla_len < 4 || i64::from(nla_len) > rem {
            return None;
        }
        if u32::from(nla_type) == attrtype {
            return Some(pos);
        }
        let step = (u64::from(nla_len) + 3) & !3;
        rem -= step as i64;
        pos += step;
    }
}

impl Env for Kernel<'_> {
    #[inline]
    fn len(&self) -> u32 {
        self.skb_len
    }
    #[inline]
    fn abs<const N: usize>(&self, k: u32) -> Option<u32> {
        self.load::<N>(k as i32)
    }
    #[inline]
    fn ind<const N: usize>(&self, x: u32, k: u32) -> Option<u32> {
        // ARG4 = X + k in 64 bits, then passed as an `int`: 32-bit wrap.
        self.load::<N>(x.wrapping_add(k) as i32)
    }
    #[inline]
    fn msh(&self, k: u32) -> Option<u32> {
        // Converted through convert_bpf_ld_abs, never the extensions.
        self.load::<1>(k as i32).map(|b| (b & 0xf) << 2)
    }
    fn neg(&self, size: Size, k: u32, a: u32, x: u32) -> Result<u32, u32> {
        // Any width of `ld [SKF_AD_OFF + n]` reads the whole field.
        if let Some(which) = Ancillary::from_k(k) {
            return self.ancillary(which, a, x);
        }
        let v = match size {
            Size::W => self.load::<4>(k as i32),
            Size::H => self.load::<2>(k as i32),
            Size::B => self.load::<1>(k as i32),
        };
        v.ok_or(0)
    }
    #[inline]
    fn lsh_x(a: u32, x: u32) -> u32 {
        a << (x & 31)
    }
    #[inline]
    fn rsh_x(a: u32, x: u32) -> u32 {
        a >> (x & 31)
    }
}

#[cfg(test)]
mod tests;
