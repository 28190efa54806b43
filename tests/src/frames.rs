//! The crafted Ethernet frames sent across the veth pair.
//!
//! Every frame carries its sequence number in the source MAC address
//! (`02:5e:00:00:<seq hi>:<seq lo>`), the only place that survives both
//! truncation to 14 bytes and the kernel's VLAN untagging, and that never
//! appears in the frames the kernel sends itself.

pub const SRC_OUI: [u8; 4] = [0x02, 0x5e, 0x00, 0x00];

pub struct Frame {
    pub seq: u16,
    pub kind: String,
    pub bytes: Vec<u8>,
    /// The outer tag's TPID and TCI, when the frame is sent tagged.
    pub tag: Option<(u16, u16)>,
}

/// The sequence number of a received frame, or None for a frame this test
/// did not send.
pub fn seq_of(bytes: &[u8]) -> Option<u16> {
    if bytes.len() >= 12 && bytes[6..10] == SRC_OUI {
        Some(u16::from_be_bytes([bytes[10], bytes[11]]))
    } else {
        None
    }
}

const OTHERHOST: [u8; 6] = [0x02, 0x5e, 0xff, 0x00, 0x00, 0x01];
const BROADCAST: [u8; 6] = [0xff; 6];
const MCAST_V4: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];
const MCAST_V6: [u8; 6] = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];

const V4: [[u8; 4]; 6] = [
    [10, 0, 0, 1],
    [10, 0, 0, 2],
    [192, 168, 1, 5],
    [192, 168, 200, 1],
    [172, 16, 0, 1],
    [8, 8, 8, 8],
];
const V6: [[u8; 16]; 3] = [
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    [0x24, 0x04, 0x68, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0e],
];
const PORTS: [u16; 12] = [
    22, 53, 80, 443, 999, 1000, 1500, 2000, 2001, 8080, 40000, 65535,
];
const TCP_FLAGS: [u8; 8] = [0x02, 0x12, 0x10, 0x11, 0x04, 0x18, 0x20, 0x29];

use crate::rng::Rng;

fn tcp(sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    h[14..16].copy_from_slice(&512u16.to_be_bytes());
    h.extend(std::iter::repeat_n(0xab, payload));
    h
}

fn udp(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut h = vec![0u8; 8];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    h.extend(std::iter::repeat_n(0xcd, payload));
    h
}

fn icmp(kind: u8, code: u8) -> Vec<u8> {
    vec![kind, code, 0, 0, 0, 1, 0, 1, 0xee, 0xee, 0xee, 0xee]
}

struct V4Opts {
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    /// Flags and fragment offset, as the 16-bit field.
    frag: u16,
    options: usize,
    ttl: u8,
}

fn ipv4(o: &V4Opts, l4: &[u8]) -> Vec<u8> {
    let ihl = 5 + o.options / 4;
    let mut h = vec![0u8; ihl * 4];
    h[0] = 0x40 | ihl as u8;
    h[2..4].copy_from_slice(&((ihl * 4 + l4.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
    h[6..8].copy_from_slice(&o.frag.to_be_bytes());
    h[8] = o.ttl;
    h[9] = o.proto;
    h[12..16].copy_from_slice(&o.src);
    h[16..20].copy_from_slice(&o.dst);
    for b in &mut h[20..] {
        *b = 1; // NOP options
    }
    h.extend_from_slice(l4);
    h
}

/// IPv6 with the extension headers `exts` (by next-header number) before
/// the upper-layer header `proto`.
fn ipv6(exts: &[u8], proto: u8, src: [u8; 16], dst: [u8; 16], l4: &[u8]) -> Vec<u8> {
    let mut chain = Vec::new();
    let nexts: Vec<u8> = exts
        .iter()
        .copied()
        .skip(1)
        .chain(std::iter::once(proto))
        .collect();
    for (&ext, &next) in exts.iter().zip(&nexts) {
        if ext == 44 {
            chain.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 7]); // fragment, offset 0
        } else {
            chain.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]); // 8 bytes, PadN
        }
    }
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&((chain.len() + l4.len()) as u16).to_be_bytes());
    h[6] = exts.first().copied().unwrap_or(proto);
    h[7] = 64;
    h[8..24].copy_from_slice(&src);
    h[24..40].copy_from_slice(&dst);
    h.extend(chain);
    h.extend_from_slice(l4);
    h
}

fn arp(op: u16, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&[0x02, 0x5e, 0, 0, 0, 9]);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&tpa);
    a
}

pub struct Builder {
    pub frames: Vec<Frame>,
}

impl Builder {
    fn push(
        &mut self,
        kind: String,
        dst: [u8; 6],
        tags: &[(u16, u16)],
        ethertype: u16,
        body: &[u8],
    ) {
        let seq = self.frames.len() as u16;
        let mut b = dst.to_vec();
        b.extend_from_slice(&SRC_OUI);
        b.extend_from_slice(&seq.to_be_bytes());
        for &(tpid, tci) in tags {
            b.extend_from_slice(&tpid.to_be_bytes());
            b.extend_from_slice(&tci.to_be_bytes());
        }
        b.extend_from_slice(&ethertype.to_be_bytes());
        b.extend_from_slice(body);
        self.frames.push(Frame {
            seq,
            kind,
            bytes: b,
            tag: tags.first().copied(),
        });
    }
}

/// About three hundred frames: IPv4 TCP/UDP/ICMP with options and
/// fragments, IPv6 with extension headers, ARP, 802.1Q and 802.1ad tagged
/// frames, other ethertypes, and truncations down to a bare header.
pub fn all() -> Vec<Frame> {
    let mut b = Builder { frames: Vec::new() };
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..150 {
        let src = r.pick(&V4);
        let dst = r.pick(&V4);
        let (proto, l4, what) = match i % 3 {
            0 => {
                let (s, d, f) = (r.pick(&PORTS), r.pick(&PORTS), r.pick(&TCP_FLAGS));
                (
                    6,
                    tcp(s, d, f, (r.next_u64() % 120) as usize),
                    format!("tcp {s}>{d} flags {f:#x}"),
                )
            }
            1 => {
                let (s, d) = (r.pick(&PORTS), r.pick(&PORTS));
                (
                    17,
                    udp(s, d, (r.next_u64() % 200) as usize),
                    format!("udp {s}>{d}"),
                )
            }
            _ => {
                let t = r.pick(&[0u8, 3, 8, 11]);
                (1, icmp(t, 0), format!("icmp type {t}"))
            }
        };
        let frag = match r.next_u64() % 8 {
            0 => 0x2000,       // MF, first fragment
            1 => 0x2000 | 185, // MF, later fragment
            2 => 64,           // last fragment
            3 | 4 => 0x4000,   // DF
            _ => 0,
        };
        let options = if r.next_u64().is_multiple_of(5) {
            4 * (1 + (r.next_u64() % 3) as usize)
        } else {
            0
        };
        let ttl = r.pick(&[1u8, 64, 128, 255]);
        let dmac = r.pick(&[OTHERHOST, OTHERHOST, BROADCAST, MCAST_V4]);
        let pkt = ipv4(
            &V4Opts {
                proto,
                src,
                dst,
                frag,
                options,
                ttl,
            },
            &l4,
        );
        b.push(
            format!("ipv4 {what} frag {frag:#x} opts {options}"),
            dmac,
            &[],
            0x0800,
            &pkt,
        );
    }
    for i in 0..50 {
        let exts: &[u8] = [&[][..], &[0], &[60], &[43], &[44], &[0, 60], &[0, 43, 44]][i % 7];
        let (src, dst) = (r.pick(&V6), r.pick(&V6));
        let (proto, l4) = match i % 3 {
            0 => (
                6,
                tcp(r.pick(&PORTS), r.pick(&PORTS), r.pick(&TCP_FLAGS), 10),
            ),
            1 => (
                17,
                udp(
                    r.pick(&PORTS),
                    r.pick(&PORTS),
                    (r.next_u64() % 100) as usize,
                ),
            ),
            _ => (58, icmp(r.pick(&[128u8, 129, 135, 136]), 0)),
        };
        let dmac = r.pick(&[OTHERHOST, MCAST_V6]);
        b.push(
            format!("ipv6 exts {exts:?} proto {proto}"),
            dmac,
            &[],
            0x86dd,
            &ipv6(exts, proto, src, dst, &l4),
        );
    }
    for (op, spa, tpa) in [
        (1, V4[0], V4[1]),
        (2, V4[1], V4[0]),
        (1, V4[2], V4[3]),
        (2, V4[4], V4[0]),
    ] {
        b.push(
            format!("arp op {op}"),
            BROADCAST,
            &[],
            0x0806,
            &arp(op, spa, tpa),
        );
    }
    b.push("rarp".into(), BROADCAST, &[], 0x8035, &arp(3, V4[0], V4[1]));
    // Tagged frames: the inner packet varies like the untagged ones.
    for i in 0..40u16 {
        let vid = [1u16, 100, 200, 4094][i as usize % 4];
        let tci = (u16::from(i % 8 > 5) << 13) | vid;
        let tags: Vec<(u16, u16)> = match i % 10 {
            9 => vec![(0x88a8, 10), (0x8100, tci)],
            8 => vec![(0x8100, 0)], // priority tag only
            _ => vec![(0x8100, tci)],
        };
        let (et, body, what) = match i % 4 {
            0 => (
                0x0800,
                ipv4(
                    &v4(6, r.pick(&V4), r.pick(&V4)),
                    &tcp(1234, r.pick(&PORTS), 0x02, 0),
                ),
                "ipv4 tcp",
            ),
            1 => (
                0x0800,
                ipv4(
                    &v4(17, r.pick(&V4), r.pick(&V4)),
                    &udp(53, r.pick(&PORTS), 150),
                ),
                "ipv4 udp",
            ),
            2 => (
                0x86dd,
                ipv6(&[], 6, V6[0], V6[1], &tcp(80, 1000, 0x12, 0)),
                "ipv6 tcp",
            ),
            _ => (0x0806, arp(1, V4[0], V4[1]), "arp"),
        };
        b.push(
            format!("vlan {tags:x?} {what}"),
            OTHERHOST,
            &tags,
            et,
            &body,
        );
    }
    // Other ethertypes and an 802.3 length field with LLC.
    b.push(
        "lldp".into(),
        [0x01, 0x80, 0xc2, 0, 0, 0x0e],
        &[],
        0x88cc,
        &[0x02, 0x07, 0x04, 1, 2, 3, 4, 5, 6],
    );
    b.push(
        "802.3 llc".into(),
        OTHERHOST,
        &[],
        46,
        &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    b.push("ipx".into(), BROADCAST, &[], 0x8137, &[0xff; 30]);
    // Truncations: the same packets cut at every interesting boundary.
    let v4tcp = ipv4(&v4(6, V4[0], V4[1]), &tcp(80, 1000, 0x02, 0));
    let v4udp = ipv4(&v4(17, V4[2], V4[0]), &udp(53, 1500, 0));
    let v6tcp = ipv6(&[0], 6, V6[0], V6[1], &tcp(443, 80, 0x02, 0));
    for cut in [0usize, 1, 9, 10, 13, 16, 19, 20, 21, 22, 23, 24, 33, 34] {
        b.push(
            format!("ipv4 tcp cut to {cut}"),
            OTHERHOST,
            &[],
            0x0800,
            &v4tcp[..cut.min(v4tcp.len())],
        );
        b.push(
            format!("ipv4 udp cut to {cut}"),
            OTHERHOST,
            &[],
            0x0800,
            &v4udp[..cut.min(v4udp.len())],
        );
    }
    for cut in [0usize, 6, 7, 20, 39, 40, 41, 48, 49, 50, 60] {
        b.push(
            format!("ipv6 tcp cut to {cut}"),
            MCAST_V6,
            &[],
            0x86dd,
            &v6tcp[..cut.min(v6tcp.len())],
        );
    }
    for cut in [0usize, 2, 8, 24] {
        b.push(
            format!("arp cut to {cut}"),
            BROADCAST,
            &[],
            0x0806,
            &arp(1, V4[0], V4[1])[..cut],
        );
    }
    for cut in [0usize, 2, 10, 20] {
        b.push(
            format!("vlan ipv4 cut to {cut}"),
            OTHERHOST,
            &[(0x8100, 100)],
            0x0800,
            &v4tcp[..cut],
        );
    }
    b.frames
}

fn v4(proto: u8, src: [u8; 4], dst: [u8; 4]) -> V4Opts {
    V4Opts {
        proto,
        src,
        dst,
        frag: 0,
        options: 0,
        ttl: 64,
    }
}
