//! Linux's special load offsets for classic BPF (`<linux/filter.h>`).
//!
//! A negative `k` (as i32) in an absolute or indirect load does not address
//! the packet: `SKF_AD_OFF + n` reads socket-buffer metadata (ancillary
//! data), `SKF_NET_OFF + n` reads relative to the network header and
//! `SKF_LL_OFF + n` relative to the link-layer header. libpcap knows none of
//! this, so there such a load is simply out of range and rejects the packet.

/// Base of the ancillary loads (`-0x1000`).
pub const SKF_AD_OFF: i32 = -0x1000;
/// Base of loads relative to the network header (`-0x100000`).
pub const SKF_NET_OFF: i32 = -0x100000;
/// Base of loads relative to the link-layer header (`-0x200000`).
pub const SKF_LL_OFF: i32 = -0x200000;

pub const SKF_AD_PROTOCOL: u32 = 0;
pub const SKF_AD_PKTTYPE: u32 = 4;
pub const SKF_AD_IFINDEX: u32 = 8;
pub const SKF_AD_NLATTR: u32 = 12;
pub const SKF_AD_NLATTR_NEST: u32 = 16;
pub const SKF_AD_MARK: u32 = 20;
pub const SKF_AD_QUEUE: u32 = 24;
pub const SKF_AD_HATYPE: u32 = 28;
pub const SKF_AD_RXHASH: u32 = 32;
pub const SKF_AD_CPU: u32 = 36;
pub const SKF_AD_ALU_XOR_X: u32 = 40;
pub const SKF_AD_VLAN_TAG: u32 = 44;
pub const SKF_AD_VLAN_TAG_PRESENT: u32 = 48;
pub const SKF_AD_PAY_OFFSET: u32 = 52;
pub const SKF_AD_RANDOM: u32 = 56;
pub const SKF_AD_VLAN_TPID: u32 = 60;
/// One past the last ancillary offset the kernel knows.
pub const SKF_AD_MAX: u32 = 64;

/// An ancillary field, named as `SKF_AD_*` without the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ancillary {
    Protocol,
    PktType,
    IfIndex,
    NlAttr,
    NlAttrNest,
    Mark,
    Queue,
    HaType,
    RxHash,
    Cpu,
    AluXorX,
    VlanTag,
    VlanTagPresent,
    PayOffset,
    Random,
    VlanTpid,
}

impl Ancillary {
    pub const ALL: [Ancillary; 16] = [
        Ancillary::Protocol,
        Ancillary::PktType,
        Ancillary::IfIndex,
        Ancillary::NlAttr,
        Ancillary::NlAttrNest,
        Ancillary::Mark,
        Ancillary::Queue,
        Ancillary::HaType,
        Ancillary::RxHash,
        Ancillary::Cpu,
        Ancillary::AluXorX,
        Ancillary::VlanTag,
        Ancillary::VlanTagPresent,
        Ancillary::PayOffset,
        Ancillary::Random,
        Ancillary::VlanTpid,
    ];

    /// The offset after `SKF_AD_OFF` (`SKF_AD_PROTOCOL` is 0, ...).
    pub fn offset(self) -> u32 {
        4 * Ancillary::ALL.iter().position(|a| *a == self).unwrap_or(0) as u32
    }

    /// The `k` of an absolute load of this field.
    pub fn k(self) -> u32 {
        (SKF_AD_OFF as u32).wrapping_add(self.offset())
    }

    /// The field an absolute load's `k` names, if it is an ancillary load
    /// the kernel knows.
    pub fn from_k(k: u32) -> Option<Ancillary> {
        let off = k.wrapping_sub(SKF_AD_OFF as u32);
        if off >= SKF_AD_MAX || !off.is_multiple_of(4) {
            return None;
        }
        Ancillary::ALL.get((off / 4) as usize).copied()
    }

    /// The name tcpdump-style tools print (`#proto`, `#ifidx`, ...) without the `#`.
    pub fn name(self) -> &'static str {
        match self {
            Ancillary::Protocol => "proto",
            Ancillary::PktType => "type",
            Ancillary::IfIndex => "ifidx",
            Ancillary::NlAttr => "nla",
            Ancillary::NlAttrNest => "nlan",
            Ancillary::Mark => "mark",
            Ancillary::Queue => "queue",
            Ancillary::HaType => "hatype",
            Ancillary::RxHash => "rxhash",
            Ancillary::Cpu => "cpu",
            Ancillary::AluXorX => "xor_x",
            Ancillary::VlanTag => "vlan_tci",
            Ancillary::VlanTagPresent => "vlan_avail",
            Ancillary::PayOffset => "poff",
            Ancillary::Random => "rand",
            Ancillary::VlanTpid => "vlan_tpid",
        }
    }
}

/// Where a load's `k` points, once the negative bases are taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadBase {
    /// An ordinary packet offset.
    Packet(u32),
    /// `SKF_AD_OFF + n`, `n` in `0..0x1000` (known to the kernel or not).
    Ancillary(u32),
    /// `SKF_NET_OFF + n`, `n` in `0..0x100000`.
    Net(u32),
    /// `SKF_LL_OFF + n`, `n` in `0..0x100000`.
    LinkLayer(u32),
    /// Any other negative offset: the kernel rejects the packet.
    Invalid(i32),
}

impl LoadBase {
    /// Classifies an offset (the sum `X + k` for indirect loads) as the
    /// kernel's `bpf_internal_load_pointer_neg_helper` does.
    pub fn of(k: u32) -> LoadBase {
        let s = k as i32;
        if s >= 0 {
            LoadBase::Packet(k)
        } else if s >= SKF_AD_OFF {
            LoadBase::Ancillary((s - SKF_AD_OFF) as u32)
        } else if s >= SKF_NET_OFF {
            // Between SKF_NET_OFF and SKF_AD_OFF: network-relative.
            LoadBase::Net((s - SKF_NET_OFF) as u32)
        } else if s >= SKF_LL_OFF {
            LoadBase::LinkLayer((s - SKF_LL_OFF) as u32)
        } else {
            LoadBase::Invalid(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancillary_offsets_are_the_kernel_abi() {
        assert_eq!(Ancillary::Protocol.k(), 0xffff_f000);
        assert_eq!(Ancillary::VlanTpid.offset(), SKF_AD_VLAN_TPID);
        assert_eq!(Ancillary::Random.offset(), SKF_AD_RANDOM);
        assert_eq!(Ancillary::Mark.offset(), SKF_AD_MARK);
        for a in Ancillary::ALL {
            assert_eq!(Ancillary::from_k(a.k()), Some(a));
        }
        assert_eq!(Ancillary::from_k(0xffff_f000 + SKF_AD_MAX), None);
        assert_eq!(Ancillary::from_k(0xffff_f002), None);
    }

    #[test]
    fn negative_bases() {
        assert_eq!(LoadBase::of(12), LoadBase::Packet(12));
        assert_eq!(LoadBase::of(0xffff_f000), LoadBase::Ancillary(0));
        assert_eq!(LoadBase::of(SKF_NET_OFF as u32 + 9), LoadBase::Net(9));
        assert_eq!(LoadBase::of(SKF_LL_OFF as u32), LoadBase::LinkLayer(0));
        assert!(matches!(
            LoadBase::of(SKF_LL_OFF as u32 - 1),
            LoadBase::Invalid(_)
        ));
    }
}
