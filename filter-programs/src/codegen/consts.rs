//! Protocol numbers libpcap's generator uses (its own values, not the
//! build machine's headers).

pub const ETHERMTU: u32 = 1500;

pub const ETHERTYPE_IP: u32 = 0x0800;
pub const ETHERTYPE_ARP: u32 = 0x0806;
pub const ETHERTYPE_REVARP: u32 = 0x8035;
pub const ETHERTYPE_IPV6: u32 = 0x86dd;
pub const ETHERTYPE_NS: u32 = 0x0600;
pub const ETHERTYPE_MOPDL: u32 = 0x6001;
pub const ETHERTYPE_MOPRC: u32 = 0x6002;
pub const ETHERTYPE_DN: u32 = 0x6003;
pub const ETHERTYPE_LAT: u32 = 0x6004;
pub const ETHERTYPE_SCA: u32 = 0x6007;
pub const ETHERTYPE_ATALK: u32 = 0x809b;
pub const ETHERTYPE_AARP: u32 = 0x80f3;
pub const ETHERTYPE_8021Q: u32 = 0x8100;
pub const ETHERTYPE_IPX: u32 = 0x8137;
pub const ETHERTYPE_MPLS: u32 = 0x8847;
pub const ETHERTYPE_PPPOED: u32 = 0x8863;
pub const ETHERTYPE_PPPOES: u32 = 0x8864;
pub const ETHERTYPE_8021AD: u32 = 0x88a8;
pub const ETHERTYPE_8021QINQ: u32 = 0x9100;

pub const PPP_MPLS_UCAST: u32 = 0x0281;

pub const LLCSAP_IP: u32 = 0x06;
pub const LLCSAP_8021D: u32 = 0x42;
pub const LLCSAP_IPX: u32 = 0xe0;
pub const LLCSAP_NETBEUI: u32 = 0xf0;
pub const LLCSAP_ISONS: u32 = 0xfe;

/// Linux cooked-capture protocol values for 802.2 and raw 802.3 frames.
pub const SLL_P_802_3: u32 = 0x0001;
pub const SLL_P_802_2: u32 = 0x0004;

pub const IPPROTO_ICMP: u32 = 1;
pub const IPPROTO_IGMP: u32 = 2;
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_IGRP: u32 = 9;
pub const IPPROTO_UDP: u32 = 17;
pub const IPPROTO_FRAGMENT: u32 = 44;
pub const IPPROTO_ESP: u32 = 50;
pub const IPPROTO_AH: u32 = 51;
pub const IPPROTO_ICMPV6: u32 = 58;
pub const IPPROTO_PIM: u32 = 103;
pub const IPPROTO_VRRP: u32 = 112;
pub const IPPROTO_CARP: u32 = 112;
pub const IPPROTO_SCTP: u32 = 132;

pub const ISO8473_CLNP: u32 = 0x81;
pub const ISO9542_ESIS: u32 = 0x82;
pub const ISO10589_ISIS: u32 = 0x83;

pub const ISIS_L1_LAN_IIH: u32 = 15;
pub const ISIS_L2_LAN_IIH: u32 = 16;
pub const ISIS_PTP_IIH: u32 = 17;
pub const ISIS_L1_LSP: u32 = 18;
pub const ISIS_L2_LSP: u32 = 20;
pub const ISIS_L1_CSNP: u32 = 24;
pub const ISIS_L2_CSNP: u32 = 25;
pub const ISIS_L1_PSNP: u32 = 26;
pub const ISIS_L2_PSNP: u32 = 27;
