use super::*;

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend([0, 1, 2, 3, 4, 5]);
    f.extend(ethertype.to_be_bytes());
    f.extend(payload);
    f
}

fn ipv4_tcp_syn() -> Vec<u8> {
    let mut ip = vec![
        0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x02;
    ip.extend(tcp);
    ip
}

#[test]
fn ethernet_vlan_ipv4_tcp() {
    let mut vlan = vec![0x20, 0x64, 0x08, 0x00];
    vlan.extend(ipv4_tcp_syn());
    let line = describe(LinkType::ETHERNET, &eth(0x8100, &vlan));
    assert_eq!(
        line,
        "Ethernet 00:01:02:03:04:05 > ff:ff:ff:ff:ff:ff, VLAN 100 prio 1, \
         IPv4 10.0.0.1 > 10.0.0.2 ttl 64 len 40, TCP 1234 > 80 [S]"
    );
}

#[test]
fn raw_ipv6_udp_arp_and_truncation() {
    let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 255];
    v6.extend([0u8; 15]);
    v6.push(1);
    v6.extend([0u8; 15]);
    v6.push(2);
    v6.extend([0, 53, 0, 53, 0, 8, 0, 0]);
    assert_eq!(
        describe(LinkType::RAW, &v6),
        "IPv6 ::1 > ::2 hlim 255 plen 8, UDP 53 > 53 len 8"
    );
    let arp = [
        0, 1, 8, 0, 6, 4, 0, 1, 0, 1, 2, 3, 4, 5, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ];
    assert!(describe(LinkType::ETHERNET, &eth(0x0806, &arp))
        .ends_with("ARP op 1 10.0.0.1 (00:01:02:03:04:05) > 10.0.0.2 (00:00:00:00:00:00)"));
    assert_eq!(
        describe(LinkType::ETHERNET, &[0; 5]),
        "Ethernet (truncated)"
    );
    let cut = eth(0x0800, &ipv4_tcp_syn()[..30]);
    assert!(
        describe(LinkType::ETHERNET, &cut).ends_with("TCP (truncated)"),
        "{}",
        describe(LinkType::ETHERNET, &cut)
    );
    assert_eq!(
        describe(LinkType(147), &[1, 2]),
        "link type 147: not decoded (2 bytes)"
    );
}

#[test]
fn what_the_report_does_not_name_stops_it() {
    // QinQ (0x9100) and RARP by EtherType, an IPv6 extension header by
    // protocol, even where the bytes beyond would decode.
    let qinq = eth(0x9100, &[0x20, 0x64, 0x08, 0x00, 0x45]);
    assert!(describe(LinkType::ETHERNET, &qinq).ends_with(", ethertype 0x9100 (QinQ)"));
    assert!(describe(LinkType::ETHERNET, &eth(0x9100, &[1])).ends_with(", ethertype 0x9100 (QinQ)"));
    let rarp = eth(0x8035, &[0; 28]);
    assert!(describe(LinkType::ETHERNET, &rarp).ends_with(", ethertype 0x8035 (Rarp)"));
    let mut v6 = vec![0x60, 0, 0, 0, 0, 16, 0, 255];
    v6.extend([0u8; 32]);
    v6.extend([17, 0, 0, 0, 0, 0, 0, 0, 0, 53, 0, 53, 0, 8, 0, 0]);
    assert_eq!(
        describe(LinkType::RAW, &v6),
        "IPv6 :: > :: hlim 255 plen 16, IP protocol 0 (Hopopt)"
    );
    assert_eq!(
        describe(LinkType::ETHERNET, &eth(0x05dc, &[]))
            .rsplit(", ")
            .next(),
        Some("802.3 length 1500")
    );
    assert_eq!(
        describe(LinkType::ETHERNET, &eth(0x05ff, &[]))
            .rsplit(", ")
            .next(),
        Some("802.3 length 1535")
    );
}
