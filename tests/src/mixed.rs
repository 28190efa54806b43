//! A realistic mixed firewall ruleset, drawn deterministically, with for
//! every rule a frame aimed at it. The proportions are issue 17's:
//!
//! - 40% IPv4 host and net block entries (`host A`, `src net N/len`, ...);
//! - 25% IPv6 /48–/64 nets and hosts;
//! - 20% service rules: tcp/udp dst port or portrange, some with a v4 or
//!   v6 source net;
//! - 10% ICMP/ICMPv6 type rules and disjunctions of two shapes;
//! - 5% other: `vlan N and …`, TCP flags, fragments.
//!
//! Used by the `ruleset_kernel` bench, the 2,000-rule agreement test and
//! `configs/mixed-10k.toml` (written by the `mixed-ruleset` example).

use crate::rng::Rng;

/// What a frame aimed at a rule carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aim {
    /// The outer 802.1Q VLAN ID, if the frame is tagged.
    pub vlan: Option<u16>,
    pub ip: Ip,
    /// IP protocol / IPv6 next header.
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// ICMP/ICMPv6 type (for protocols 1 and 58).
    pub icmp_type: u8,
    pub tcp_flags: u8,
    /// IPv4 fragment offset (in 8-byte units); nonzero makes a fragment.
    pub frag_offset: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ip {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

/// Addresses no generated rule names: TEST-NET-2/-3 and 2001:db8::/32
/// (documentation), so a frame between them matches no block entry.
pub const NOWHERE_V4: ([u8; 4], [u8; 4]) = ([198, 51, 100, 7], [203, 0, 113, 9]);
pub const NOWHERE_V6: ([u8; 16], [u8; 16]) = (
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7],
    [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
);
/// A destination port no generated service rule names.
pub const NOWHERE_PORT: u16 = 9;

impl Aim {
    /// A TCP frame between the "nowhere" addresses: matches no rule of a
    /// mixed ruleset.
    pub fn nowhere(v6: bool) -> Aim {
        Aim {
            vlan: None,
            ip: if v6 {
                Ip::V6 {
                    src: NOWHERE_V6.0,
                    dst: NOWHERE_V6.1,
                }
            } else {
                Ip::V4 {
                    src: NOWHERE_V4.0,
                    dst: NOWHERE_V4.1,
                }
            },
            proto: 6,
            sport: 40000,
            dport: NOWHERE_PORT,
            icmp_type: 0,
            tcp_flags: 0x10,
            frag_offset: 0,
        }
    }

    pub fn is_v6(&self) -> bool {
        matches!(self.ip, Ip::V6 { .. })
    }

    /// The Ethernet frame: 64 bytes for IPv4, 86 for IPv6 (a 20-byte TCP
    /// header or an 8-byte UDP/ICMP one, zero padded), 4 more when tagged.
    /// An ARP request whose sender and target protocol addresses are the
    /// aim's IPv4 source and destination (the documentation addresses for
    /// an IPv6 aim), padded to Ethernet's 60 bytes: libpcap's `host` and
    /// `net` test these.
    pub fn arp_frame(&self) -> Vec<u8> {
        let (spa, tpa) = match &self.ip {
            Ip::V4 { src, dst } => (*src, *dst),
            Ip::V6 { .. } => NOWHERE_V4,
        };
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f.resize(60, 0);
        f
    }

    pub fn frame(&self) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        if let Some(id) = self.vlan {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&id.to_be_bytes());
        }
        let l4 = self.l4();
        match &self.ip {
            Ip::V4 { src, dst } => {
                f.extend_from_slice(&[0x08, 0x00]);
                let total = (20 + l4.len()) as u16;
                f.extend_from_slice(&[0x45, 0]);
                f.extend_from_slice(&total.to_be_bytes());
                f.extend_from_slice(&[0, 1]);
                f.extend_from_slice(&self.frag_offset.to_be_bytes());
                f.extend_from_slice(&[64, self.proto, 0, 0]);
                f.extend_from_slice(src);
                f.extend_from_slice(dst);
            }
            Ip::V6 { src, dst } => {
                f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
                f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                f.extend_from_slice(&[self.proto, 64]);
                f.extend_from_slice(src);
                f.extend_from_slice(dst);
            }
        }
        f.extend_from_slice(&l4);
        let min = if self.is_v6() { 86 } else { 64 } + 4 * self.vlan.is_some() as usize;
        f.resize(f.len().max(min), 0);
        f
    }

    fn l4(&self) -> Vec<u8> {
        let mut h = match self.proto {
            6 => vec![0u8; 20],
            _ => vec![0u8; 8],
        };
        match self.proto {
            1 | 58 => h[0] = self.icmp_type,
            _ => {
                h[0..2].copy_from_slice(&self.sport.to_be_bytes());
                h[2..4].copy_from_slice(&self.dport.to_be_bytes());
            }
        }
        if self.proto == 6 {
            h[12] = 5 << 4;
            h[13] = self.tcp_flags;
        }
        h
    }
}

/// One rule of the mix: its expression, action and a frame aimed at it.
#[derive(Clone, Debug)]
pub struct MixedRule {
    pub expr: String,
    pub action: &'static str,
    pub aim: Aim,
}

fn v4_block(rng: &mut Rng) -> (String, Aim) {
    // First octets from public-looking ranges, never TEST-NET.
    let a = [23u8, 45, 62, 81, 91, 104, 141, 185][rng.below(8) as usize];
    let (b, c, d) = (
        rng.below(256) as u8,
        rng.below(256) as u8,
        1 + rng.below(254) as u8,
    );
    let mut aim = Aim::nowhere(false);
    let Ip::V4 { src, dst } = &mut aim.ip else {
        unreachable!()
    };
    let (expr, to_src, addr) = match rng.below(6) {
        0 => (format!("host {a}.{b}.{c}.{d}"), true, [a, b, c, d]),
        1 => (format!("src host {a}.{b}.{c}.{d}"), true, [a, b, c, d]),
        2 => (format!("dst host {a}.{b}.{c}.{d}"), false, [a, b, c, d]),
        3 => (format!("src net {a}.{b}.{c}.0/24"), true, [a, b, c, d]),
        4 => (format!("net {a}.{b}.0.0/16"), false, [a, b, c, d]),
        _ => (format!("dst net {a}.{b}.{c}.0/24"), false, [a, b, c, d]),
    };
    if to_src {
        *src = addr;
    } else {
        *dst = addr;
    }
    (expr, aim)
}

fn v6_addr(rng: &mut Rng) -> [u8; 16] {
    let mut a = [0u8; 16];
    // 2a0x: global unicast, never the 2001:db8:: documentation prefix.
    a[0] = 0x2a;
    a[1] = 1 + rng.below(15) as u8;
    for b in a.iter_mut().skip(2) {
        *b = rng.below(256) as u8;
    }
    a
}

fn v6_text(a: &[u8; 16]) -> String {
    std::net::Ipv6Addr::from(*a).to_string()
}

fn masked(a: [u8; 16], len: u32) -> [u8; 16] {
    let m = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    (u128::from_be_bytes(a) & m).to_be_bytes()
}

fn v6_block(rng: &mut Rng) -> (String, Aim) {
    let addr = v6_addr(rng);
    let mut aim = Aim::nowhere(true);
    let Ip::V6 { src, dst } = &mut aim.ip else {
        unreachable!()
    };
    let len = [48u32, 56, 64][rng.below(3) as usize];
    let net = v6_text(&masked(addr, len));
    let (expr, to_src) = match rng.below(5) {
        0 => (format!("src net {net}/{len}"), true),
        1 => (format!("dst net {net}/{len}"), false),
        2 => (format!("net {net}/{len}"), true),
        3 => (format!("src host {}", v6_text(&addr)), true),
        _ => (format!("host {}", v6_text(&addr)), false),
    };
    if to_src {
        *src = addr;
    } else {
        *dst = addr;
    }
    (expr, aim)
}

fn service(rng: &mut Rng) -> (String, Aim) {
    let udp = rng.below(3) == 0;
    let (proto, name) = if udp { (17, "udp") } else { (6, "tcp") };
    let port = 1024 + rng.below(60000) as u16;
    let range = rng.below(4) == 0;
    let (ports, dport) = if range {
        let span = [8u16, 16, 64, 100][rng.below(4) as usize];
        let lo = port.min(65535 - span);
        (format!("portrange {lo}-{}", lo + span - 1), lo + span / 2)
    } else {
        (format!("port {port}"), port)
    };
    let mut aim = Aim::nowhere(false);
    aim.proto = proto;
    aim.dport = dport;
    let expr = match rng.below(4) {
        0 => {
            let a = [23u8, 45, 62, 81][rng.below(4) as usize];
            let b = rng.below(256) as u8;
            aim.ip = Ip::V4 {
                src: [a, b, 7, 1],
                dst: NOWHERE_V4.1,
            };
            format!("{name} dst {ports} and src net {a}.{b}.0.0/16")
        }
        1 => {
            let addr = v6_addr(rng);
            aim.ip = Ip::V6 {
                src: addr,
                dst: NOWHERE_V6.1,
            };
            format!(
                "{name} dst {ports} and src net {}/48",
                v6_text(&masked(addr, 48))
            )
        }
        _ => {
            if rng.below(2) == 0 {
                aim.ip = Ip::V6 {
                    src: NOWHERE_V6.0,
                    dst: NOWHERE_V6.1,
                };
            }
            format!("{name} dst {ports}")
        }
    };
    (expr, aim)
}

fn icmp(rng: &mut Rng) -> (String, Aim) {
    let mut aim = Aim::nowhere(false);
    let expr = match rng.below(3) {
        0 => {
            let t = [0u8, 3, 5, 8, 11, 13, 17][rng.below(7) as usize];
            aim.proto = 1;
            aim.icmp_type = t;
            format!("icmp[icmptype] == {t}")
        }
        1 => {
            let t = [1u8, 2, 3, 4, 128, 129, 133, 134, 135, 136][rng.below(10) as usize];
            aim = Aim::nowhere(true);
            aim.proto = 58;
            aim.icmp_type = t;
            format!("icmp6[icmp6type] == {t}")
        }
        _ => {
            let port = 1024 + rng.below(60000) as u16;
            let t = [13u8, 15, 17][rng.below(3) as usize];
            aim.proto = 17;
            aim.dport = port;
            format!("udp port {port} or icmp[icmptype] == {t}")
        }
    };
    (expr, aim)
}

fn other(rng: &mut Rng) -> (String, Aim) {
    let mut aim = Aim::nowhere(false);
    let port = 1024 + rng.below(60000) as u16;
    let expr = match rng.below(3) {
        0 => {
            let id = 2 + rng.below(4000) as u16;
            aim.vlan = Some(id);
            aim.dport = port;
            format!("vlan {id} and tcp dst port {port}")
        }
        1 => {
            aim.dport = port;
            aim.tcp_flags = 0x02;
            format!("tcp[tcpflags] & tcp-syn != 0 and tcp dst port {port}")
        }
        _ => {
            let (a, b) = (
                [23u8, 45, 62, 81][rng.below(4) as usize],
                rng.below(256) as u8,
            );
            aim.ip = Ip::V4 {
                src: [a, b, 3, 4],
                dst: NOWHERE_V4.1,
            };
            aim.frag_offset = 0x20 | (1 + rng.below(100) as u16);
            format!("ip[6:2] & 0x1fff != 0 and src net {a}.{b}.0.0/16")
        }
    };
    (expr, aim)
}

/// The seed of `configs/mixed-10k.toml` and of the bench's rulesets.
pub const EXAMPLE_SEED: u64 = 0x005e_ed17;

/// `n` rules of the mix, shuffled by `seed`. Actions: mostly drop, one in
/// ten pass; `count_every` > 0 makes every such rule a count rule.
pub fn rules(n: usize, seed: u64, count_every: usize) -> Vec<MixedRule> {
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|i| {
            let roll = rng.below(100);
            let (expr, aim) = match roll {
                0..=39 => v4_block(&mut rng),
                40..=64 => v6_block(&mut rng),
                65..=84 => service(&mut rng),
                85..=94 => icmp(&mut rng),
                _ => other(&mut rng),
            };
            let action = if count_every > 0 && i % count_every == count_every - 1 {
                "count"
            } else if rng.below(10) == 0 {
                "pass"
            } else {
                "drop"
            };
            MixedRule { expr, action, aim }
        })
        .collect()
}

/// `n` rules of many shapes: source and destination nets of every
/// prefix length from /8 (IPv4; IPv6 from /16) with a TCP or UDP
/// destination or source port, or an ICMP (ICMPv6) type, so that most
/// shapes have few rules and the family's shape tables overflow (see
/// `ruleset::bitmap`). Mostly drop, one in eight pass.
pub fn many_shapes(n: usize, seed: u64) -> Vec<MixedRule> {
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|_| {
            let v6 = rng.below(3) == 0;
            let mut aim = Aim::nowhere(v6);
            let mut terms = Vec::new();
            if v6 {
                let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
                for a in [&mut src, &mut dst] {
                    a[0] = 0x2a;
                    for b in a[1..].iter_mut() {
                        *b = rng.below(256) as u8;
                    }
                }
                let (ls, ld) = (16 + 8 * rng.below(8) as u8, 16 + 8 * rng.below(8) as u8);
                if rng.below(4) > 0 {
                    terms.push(format!("src net {}/{ls}", v6_net(&src, ls)));
                }
                terms.push(format!("dst net {}/{ld}", v6_net(&dst, ld)));
                aim.ip = Ip::V6 { src, dst };
            } else {
                let src = [
                    23,
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                ];
                let dst = [
                    45,
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                    rng.below(256) as u8,
                ];
                let (ls, ld) = (8 + rng.below(25) as u32, 8 + rng.below(25) as u32);
                let net = |a: [u8; 4], l: u32| {
                    let m = u32::from_be_bytes(a) & (u32::MAX << (32 - l));
                    let b = m.to_be_bytes();
                    format!("{}.{}.{}.{}/{l}", b[0], b[1], b[2], b[3])
                };
                if rng.below(4) > 0 {
                    terms.push(format!("src net {}", net(src, ls)));
                }
                terms.push(format!("dst net {}", net(dst, ld)));
                aim.ip = Ip::V4 { src, dst };
            }
            let port = 1 + rng.below(1000) as u16;
            match rng.below(5) {
                0 => {
                    let (proto, name) = if v6 { (58, "icmp6") } else { (1, "icmp") };
                    aim.proto = proto;
                    aim.icmp_type = rng.below(20) as u8;
                    terms.push(format!("{name}[0] == {}", aim.icmp_type));
                }
                1 => {
                    aim.proto = 17;
                    aim.sport = port;
                    terms.push(format!("udp src port {port}"));
                }
                k => {
                    aim.proto = if k == 2 { 17 } else { 6 };
                    aim.dport = port;
                    let name = if k == 2 { "udp" } else { "tcp" };
                    terms.push(format!("{name} dst port {port}"));
                }
            }
            let action = if rng.below(8) == 0 { "pass" } else { "drop" };
            MixedRule {
                expr: terms.join(" and "),
                action,
                aim,
            }
        })
        .collect()
}

/// Adds `not` to about a third of `rules` (see `ruleset::negate`): an
/// excluded source or destination host or net, an excluded port or ICMP
/// type, or two excluded addresses; a few rules become the exclusion
/// alone. Half of the changed rules' frames fall inside what they
/// exclude, so that both sides of each exclusion are tried.
pub fn with_negations(rules: Vec<MixedRule>, seed: u64) -> Vec<MixedRule> {
    let mut rng = Rng(seed ^ 0x6e07);
    rules
        .into_iter()
        .map(|mut r| {
            if rng.below(3) != 0 {
                return r;
            }
            let inside = rng.below(2) == 0;
            let (v6, proto) = (r.aim.is_v6(), r.aim.proto);
            let not = match (rng.below(6), &mut r.aim.ip) {
                (0, Ip::V4 { src, .. }) => {
                    let h = [
                        91,
                        rng.below(256) as u8,
                        rng.below(256) as u8,
                        1 + rng.below(254) as u8,
                    ];
                    if inside {
                        *src = h;
                    }
                    format!("not src host {}.{}.{}.{}", h[0], h[1], h[2], h[3])
                }
                (1, Ip::V4 { dst, .. }) => {
                    let (a, b) = (104, rng.below(256) as u8);
                    if inside {
                        *dst = [a, b, rng.below(256) as u8, 7];
                    }
                    format!("not dst net {a}.{b}.0.0/16")
                }
                (2, Ip::V4 { src, dst }) => {
                    let (h, n) = ([62, 1, rng.below(256) as u8, 5], [81, rng.below(256) as u8]);
                    if inside {
                        *src = h;
                        *dst = [n[0], n[1], 3, 3];
                    }
                    format!(
                        "not (host {}.{}.{}.{} or net {}.{}.0.0/16)",
                        h[0], h[1], h[2], h[3], n[0], n[1]
                    )
                }
                (0..=2, Ip::V6 { src, .. }) => {
                    let a = v6_addr(&mut rng);
                    if inside {
                        *src = a;
                    }
                    format!("not src net {}/56", v6_text(&masked(a, 56)))
                }
                (3, _) if proto == 1 || proto == 58 => {
                    let t = r.aim.icmp_type ^ 1;
                    if inside {
                        r.aim.icmp_type = t;
                    }
                    let name = if v6 { "icmp6" } else { "icmp" };
                    format!("not {name}[0] == {t}")
                }
                _ => {
                    let p = 2000 + rng.below(1000) as u16;
                    if inside && proto != 1 && proto != 58 {
                        r.aim.sport = p;
                    }
                    format!("not port {p}")
                }
            };
            r.expr = if rng.below(12) == 0 {
                not
            } else {
                format!("{} and {not}", r.expr)
            };
            r
        })
        .collect()
}

/// An IPv6 prefix of `len` bits (a multiple of 8 up to 72) in colon form.
fn v6_net(a: &[u8; 16], len: u8) -> String {
    let mut b = *a;
    for (i, x) in b.iter_mut().enumerate() {
        let keep = (u32::from(len)).saturating_sub(8 * i as u32).min(8);
        *x &= (0xff00u16 >> keep) as u8;
    }
    std::net::Ipv6Addr::from(b).to_string()
}

/// A filterd config of `rules` on interface `iface` (default pass).
pub fn config(rules: &[MixedRule], iface: &str) -> String {
    let mut t = format!(
        "# {} rules of a mixed realistic ruleset (see tests/src/mixed.rs).\n\
         [[interface]]\nname = \"{iface}\"\ndefault = \"pass\"\n",
        rules.len()
    );
    for (i, r) in rules.iter().enumerate() {
        t.push_str(&format!(
            "\n[[rule]]\nname = \"r{i}\"\nmatch = \"{}\"\naction = \"{}\"\n",
            r.expr, r.action
        ));
    }
    t
}

/// Ten rules of the typical shapes (host, net, port and their
/// conjunctions), two of them count rules: issue 17's small ruleset.
pub fn typical_10() -> Vec<MixedRule> {
    let v4 = |src: [u8; 4], dst: [u8; 4], proto: u8, dport: u16| {
        let mut aim = Aim::nowhere(false);
        aim.ip = Ip::V4 { src, dst };
        aim.proto = proto;
        aim.dport = dport;
        aim
    };
    let (ns, nd) = NOWHERE_V4;
    let r = |expr: &str, action, aim| MixedRule {
        expr: expr.into(),
        action,
        aim,
    };
    vec![
        r(
            "tcp dst port 22 and src net 10.0.0.0/8",
            "pass",
            v4([10, 1, 2, 3], nd, 6, 22),
        ),
        r(
            "tcp dst port 80 or tcp dst port 443",
            "count",
            v4(ns, nd, 6, 80),
        ),
        r("host 192.0.2.66", "drop", v4(ns, [192, 0, 2, 66], 6, 9)),
        r(
            "src net 172.16.5.0/24",
            "drop",
            v4([172, 16, 5, 1], nd, 6, 9),
        ),
        r(
            "udp port 53 and dst net 192.168.1.0/24",
            "pass",
            v4(ns, [192, 168, 1, 5], 17, 53),
        ),
        r(
            "tcp dst port 3306 and src host 10.9.8.7",
            "drop",
            v4([10, 9, 8, 7], nd, 6, 3306),
        ),
        r(
            "dst net 10.3.0.0/16 and tcp",
            "drop",
            v4(ns, [10, 3, 0, 1], 6, 9),
        ),
        r("udp", "count", v4(ns, nd, 17, 9)),
        r("src host 100.64.1.1", "drop", v4([100, 64, 1, 1], nd, 6, 9)),
        r("tcp dst port 25", "drop", v4(ns, nd, 6, 25)),
    ]
}
