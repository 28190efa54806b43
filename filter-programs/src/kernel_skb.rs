//! `struct sk_buff` as a tracing program reads it. A program on a BTF
//! tracepoint (`tp_btf`) gets the kernel's own socket buffer, not the
//! `__sk_buff` a socket filter or tc program sees, so the packet is found
//! through the kernel's fields: their offsets change between kernels and
//! configurations, so filterd's loader reads them from the running
//! kernel's BTF (`/sys/kernel/btf/vmlinux`); the VM lays out a synthetic
//! socket buffer with the same offsets.
//!
//! ```text
//!  head            first byte of the buffer
//!  data            first byte of the packet as this layer sees it
//!  len             bytes from data on, paged fragments included
//!  data_len        of which in paged fragments (not linear)
//!  mac_header      head + mac_header: the link-layer header (0xffff: unset)
//!  network_header  head + network_header: the network header
//!  vlan_all        vlan_proto (be16) then vlan_tci: the outer tag the
//!                  kernel took out of the bytes, zero when it holds none
//! ```

/// Byte offsets of the fields above in `struct sk_buff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SkbLayout {
    /// `unsigned char *head`.
    pub head: u16,
    /// `unsigned char *data`.
    pub data: u16,
    /// `unsigned int len`.
    pub len: u16,
    /// `unsigned int data_len`.
    pub data_len: u16,
    /// `__u16 mac_header`.
    pub mac_header: u16,
    /// `__u16 network_header`.
    pub network_header: u16,
    /// `u32 vlan_all` (`__be16 vlan_proto`, `__u16 vlan_tci`).
    pub vlan_all: u16,
    /// `sizeof(struct sk_buff)`.
    pub size: u16,
}

/// `mac_header` when the link-layer header is not set.
pub const UNSET: u16 = 0xffff;

impl SkbLayout {
    /// Linux 6.18 on x86_64 (this project's CI kernel), from its BTF. The
    /// loader uses the running kernel's; the VM's engines use this.
    pub const LINUX_6_18_X86_64: SkbLayout = SkbLayout {
        head: 192,
        data: 200,
        len: 112,
        data_len: 116,
        mac_header: 182,
        network_header: 180,
        vlan_all: 152,
        size: 224,
    };

    /// Every field lies inside the struct, and none overlaps another.
    pub fn valid(&self) -> bool {
        let mut fields = [
            (self.head, 8),
            (self.data, 8),
            (self.len, 4),
            (self.data_len, 4),
            (self.mac_header, 2),
            (self.network_header, 2),
            (self.vlan_all, 4),
        ];
        fields.sort();
        fields.iter().all(|(o, n)| o + n <= self.size && o % n == 0)
            && fields.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0)
    }
}

impl Default for SkbLayout {
    fn default() -> SkbLayout {
        SkbLayout::LINUX_6_18_X86_64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_checked() {
        assert!(SkbLayout::default().valid());
        let overlapping = SkbLayout {
            data: 196,
            ..SkbLayout::default()
        };
        assert!(!overlapping.valid());
        let outside = SkbLayout {
            size: 200,
            ..SkbLayout::default()
        };
        assert!(!outside.valid());
    }
}
