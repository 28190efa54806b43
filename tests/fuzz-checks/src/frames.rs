//! The packets a check runs programs on: a few typical Ethernet frames,
//! and variants derived from the fuzz input so that the fuzzer can steer
//! the bytes a program looks at.

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = [MAC_B, MAC_A].concat();
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 header (no options; checksum left 0, which no filter reads)
/// with `frag` as the flags and fragment offset field.
fn ipv4(proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let len = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[0, 1]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    h.extend_from_slice(payload);
    h
}

fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    h.extend_from_slice(&[0; 11]);
    h.push(1);
    h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    h.extend_from_slice(&[0; 11]);
    h.push(2);
    h.extend_from_slice(payload);
    h
}

fn ports(sport: u16, dport: u16, rest: &[u8]) -> Vec<u8> {
    [&sport.to_be_bytes()[..], &dport.to_be_bytes(), rest].concat()
}

/// A TCP SYN header with 8 payload bytes.
fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let rest = [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0];
    [ports(sport, dport, &rest), b"GET / HT".to_vec()].concat()
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    ports(sport, dport, &[0, 12, 0, 0, 0xab, 0xcd, 0x01, 0x00])
}

/// The fixed frames: IPv4 TCP/UDP/ICMP, an IPv4 fragment, IPv6 TCP, ARP,
/// an 802.1Q-tagged UDP frame and a runt.
pub fn typical() -> Vec<Vec<u8>> {
    let arp = [
        &[0, 1, 8, 0, 6, 4, 0, 1][..],
        &MAC_A,
        &[10, 0, 0, 1],
        &[0; 6],
        &[10, 0, 0, 2],
    ]
    .concat();
    let mut tagged = vec![0, 100, 0x08, 0x00];
    tagged.extend_from_slice(&ipv4(17, 0, &udp(5353, 53)));
    vec![
        eth(0x0800, &ipv4(6, 0x4000, &tcp(40000, 80))),
        eth(0x0800, &ipv4(17, 0, &udp(33000, 53))),
        eth(0x0800, &ipv4(1, 0, &[8, 0, 0xf7, 0xff, 0, 1, 0, 1])),
        eth(0x0800, &ipv4(6, 0x2005, &tcp(22, 1022))),
        eth(0x86dd, &ipv6(6, &tcp(50000, 443))),
        eth(0x0806, &arp),
        eth(0x8100, &tagged),
        MAC_B[..5].to_vec(),
    ]
}

/// The fixed frames, plus one derived from `seed`: a fixed frame picked by
/// its first byte, with its bytes overwritten from the seed's (pairs of an
/// offset and a value), and cut to a length the seed chooses.
pub fn with_seed(seed: &[u8]) -> Vec<Vec<u8>> {
    let mut all = typical();
    if let Some((&pick, rest)) = seed.split_first() {
        let mut f = all[pick as usize % all.len()].clone();
        for pair in rest.chunks_exact(2) {
            let at = pair[0] as usize;
            if at < f.len() {
                f[at] = pair[1];
            } else if at == 0xff {
                f.truncate(pair[1] as usize);
            }
        }
        all.push(f);
    }
    all
}

/// A cheap 64-bit hash of the input, for choices that must not use up
/// input bytes.
pub fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
