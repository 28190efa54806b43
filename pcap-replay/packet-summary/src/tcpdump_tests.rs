use super::*;
use proptest::prelude::*;

fn eth(et: u16, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[2, 0x5e, 0, 0, 0, 1]);
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn v4(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    h[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    h.extend_from_slice(l4);
    h
}

#[test]
fn tcp_udp_arp_and_vlan_lines() {
    let mut tcp = vec![
        0, 80, 0x03, 0xe8, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x12, 0, 0, 0, 0, 0, 0,
    ];
    tcp.extend_from_slice(&[0xab; 7]);
    let l = tcpdump_line(&eth(0x0800, &v4(6, &tcp)), 61, None);
    assert_eq!(l, "IP 10.0.0.1.80 > 10.0.0.2.1000: TCP [S.], length 7");
    let udp = [0, 53, 0x05, 0xdc, 0, 10, 0, 0, 1, 2];
    let l = tcpdump_line(
        &eth(0x0800, &v4(17, &udp)),
        60,
        Some((0x8100, 100 | (3 << 13))),
    );
    assert_eq!(
        l,
        "vlan 100, p 3, IP 10.0.0.1.53 > 10.0.0.2.1500: UDP, length 2"
    );
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1, 2, 0x5e, 0, 0, 0, 9, 10, 0, 0, 1];
    arp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    let l = tcpdump_line(&eth(0x0806, &arp), 60, None);
    assert_eq!(l, "ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28");
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let udp = [0, 53, 0, 80, 0, 8, 0, 0];
    let mut ip = vec![0x60, 0, 0, 0, 0, 16, 0, 64];
    ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop, then UDP
    ip.extend_from_slice(&udp);
    let l = tcpdump_line(&eth(0x86dd, &ip), 70, None);
    assert_eq!(l, "IP6 2001:db8::1.53 > fe80::1.80: UDP, length 0");
}

#[test]
fn short_frames_say_truncated() {
    assert!(tcpdump_line(&[1, 2, 3], 3, None).ends_with("truncated Ethernet header, length 3"));
    assert!(tcpdump_line(&eth(0x0800, &[0x45, 0]), 16, None).contains("IP truncated"));
    assert!(tcpdump_line(&eth(0x88cc, &[]), 14, None).ends_with("ethertype 0x88cc, length 14"));
}

proptest! {
    #[test]
    fn any_bytes_give_a_line(et in prop::sample::select(vec![0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x1234, 40]),
                             body in prop::collection::vec(any::<u8>(), 0..120)) {
        let l = tcpdump_line(&eth(et, &body), 200, None);
        prop_assert!(!l.is_empty());
    }
}
