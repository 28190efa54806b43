//! The dry run: the compiled ruleset program itself, run by our eBPF VM on
//! frames, with its counters map. Every packet is also decided rule by rule
//! by [`Reference`], and the two must agree: a dry run that disagrees with
//! the meaning of the rules is an error, not a report.

use super::cold;
use super::compile::Compiled;
use super::{Outcome, Reference, Rule, Verdict};
use crate::ebpf::vm::{self, Env, Input, MapDef, MapKind, Maps};

/// A rule's (or the default's) counters, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("the compiled program does not decode: {0}")]
    Decode(#[from] crate::ebpf::insn::DecodeError),
    #[error("the compiled program failed in the VM: {0}")]
    Vm(#[from] vm::VmError),
    #[error("the VM refuses the program's maps: {0}")]
    Maps(#[from] vm::MapError),
    #[error("filling table {0} failed")]
    Table(String),
    #[error("the program returned {0}, which is neither XDP_PASS nor XDP_DROP")]
    BadReturn(u64),
    #[error("the program says {program}, the rules taken one by one say {reference}")]
    Disagree {
        program: &'static str,
        reference: &'static str,
    },
}

pub struct DryRun {
    programs: Vec<vm::Program>,
    /// Budget the cold path may add to a run.
    cold_budget: u64,
    maps: Maps,
    reference: Reference,
    names: Vec<String>,
}

impl DryRun {
    pub fn new(
        compiled: &Compiled,
        rules: &[Rule],
        default: Verdict,
    ) -> Result<DryRun, DryRunError> {
        let programs = compiled
            .programs
            .iter()
            .map(|p| vm::Program::new(p))
            .collect::<Result<Vec<_>, _>>()?;
        let counters = MapDef {
            kind: MapKind::PerCpuArray,
            key_size: 4,
            value_size: 16,
            max_entries: compiled.counter_names.len() as u32,
        };
        let chain = MapDef {
            kind: MapKind::ProgArray,
            key_size: 4,
            value_size: 4,
            max_entries: programs.len() as u32,
        };
        let mut defs = vec![counters, chain];
        for t in &compiled.tables {
            defs.push(MapDef {
                kind: MapKind::from_bpf(t.map_type)
                    .ok_or_else(|| DryRunError::Table(t.name.clone()))?,
                key_size: t.key_size,
                value_size: t.value_size,
                max_entries: t.entries.len().max(1) as u32,
            });
        }
        if let Some(cold) = &compiled.cold {
            defs.push(MapDef {
                kind: MapKind::Array,
                key_size: 4,
                value_size: (cold::CHUNK * 8) as u32,
                max_entries: cold.code_map().max_entries,
            });
            defs.push(MapDef {
                kind: MapKind::PerCpuArray,
                key_size: 4,
                value_size: cold::STATE_SIZE,
                max_entries: 1,
            });
        }
        let mut maps = Maps::new(&defs, 1)?;
        for i in 0..programs.len() {
            maps.set_program(1, i as u32, i);
        }
        for (t, table) in compiled.tables.iter().enumerate() {
            for (key, value) in &table.entries {
                if maps.update(2 + t, key, value, 0) != 0 {
                    return Err(DryRunError::Table(table.name.clone()));
                }
            }
        }
        if let (Some(cold), Some(map)) = (&compiled.cold, compiled.cold_code_map()) {
            for (k, chunk) in cold.chunks().iter().enumerate() {
                if maps.update(map, &(k as u32).to_le_bytes(), chunk, 0) != 0 {
                    return Err(DryRunError::Table(cold::CODE_MAP.into()));
                }
            }
        }
        Ok(DryRun {
            cold_budget: compiled.cold.as_ref().map_or(0, |_| cold::VM_BUDGET),
            programs,
            maps,
            reference: Reference::new(rules, default),
            names: compiled.counter_names.clone(),
        })
    }

    /// Runs one frame (`wire_len` counts bytes a capture cut off).
    pub fn packet(&mut self, frame: &[u8], wire_len: u32) -> Result<Outcome, DryRunError> {
        let input = Input::Xdp {
            frame,
            ingress_ifindex: 1,
            rx_queue_index: 0,
        };
        // The kernel verifies each program of the chain within its
        // complexity limit, the VM's default budget; so the dry run allows
        // each program that much. (A chain of the longest programs the
        // segment budget makes runs to about a million instructions.)
        let per_program = Env::default().budget;
        let env = Env {
            wire_len: Some(wire_len.max(frame.len() as u32)),
            budget: per_program
                .saturating_mul(self.programs.len() as u64)
                .saturating_add(self.cold_budget),
            ..Env::default()
        };
        let ret = vm::Program::run_chain(&self.programs, &input, &mut self.maps, &env)?;
        let verdict = u32::try_from(ret)
            .ok()
            .and_then(Verdict::from_xdp)
            .ok_or(DryRunError::BadReturn(ret))?;
        let outcome = self.reference.outcome(frame, wire_len);
        if outcome.verdict != verdict {
            return Err(DryRunError::Disagree {
                program: verdict.name(),
                reference: outcome.verdict.name(),
            });
        }
        Ok(outcome)
    }

    /// The counters as the program left them.
    pub fn counters(&self) -> Vec<Counter> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let key = (i as u32).to_le_bytes();
                let (mut packets, mut bytes) = (0u64, 0u64);
                for v in self.maps.values(0, &key).unwrap_or_default() {
                    packets += u64::from_le_bytes(v[0..8].try_into().unwrap_or_default());
                    bytes += u64::from_le_bytes(v[8..16].try_into().unwrap_or_default());
                }
                Counter {
                    name: name.clone(),
                    packets,
                    bytes,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::compile::{compile_with, COLD_MIN_RULES};
    use crate::ruleset::fast::{LOOKUP_COST, MAX_TABLES};
    use crate::ruleset::{compile, parse};

    const RULES: &str = r#"
[[interface]]
name = "eth0"
default = "drop"

[[rule]]
name = "web-count"
match = "tcp port 80"
action = "count"

[[rule]]
name = "admin-ssh"
match = "tcp dst port 22 and src net 10.0.0.0/8"
action = "pass"

[[rule]]
name = "no-ssh"
match = "tcp dst port 22"
action = "drop"

[[rule]]
name = "web"
match = "tcp port 80 or tcp port 443"
action = "pass"

[[rule]]
name = "arp"
match = "arp"
action = "pass"

[[rule]]
name = "v6"
match = "ip6 and not ip6 multicast"
action = "pass"
"#;

    fn tcp4(src: [u8; 4], dport: u16, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len.max(54)];
        f[12] = 0x08;
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&[192, 0, 2, 1]);
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn first_match_wins_and_counters_follow() {
        let c = parse(RULES).unwrap();
        let prog = compile(&c.rules, Verdict::Drop).unwrap();
        let mut d = DryRun::new(&prog, &c.rules, Verdict::Drop).unwrap();
        let cases: [(Vec<u8>, Verdict, Option<&str>); 5] = [
            (
                tcp4([10, 1, 2, 3], 22, 60),
                Verdict::Pass,
                Some("admin-ssh"),
            ),
            (tcp4([11, 1, 2, 3], 22, 60), Verdict::Drop, Some("no-ssh")),
            (tcp4([11, 1, 2, 3], 80, 100), Verdict::Pass, Some("web")),
            (tcp4([11, 1, 2, 3], 25, 60), Verdict::Drop, None),
            (vec![0u8; 10], Verdict::Drop, None),
        ];
        for (frame, verdict, rule) in &cases {
            let o = d.packet(frame, frame.len() as u32).unwrap();
            assert_eq!(o.verdict, *verdict);
            assert_eq!(o.rule.map(|i| c.rules[i].name.as_str()), *rule);
        }
        let counters = d.counters();
        let get = |n: &str| counters.iter().find(|c| c.name == n).unwrap().clone();
        assert_eq!((get("web-count").packets, get("web-count").bytes), (1, 100));
        assert_eq!((get("web").packets, get("web").bytes), (1, 100));
        assert_eq!(get("admin-ssh").packets, 1);
        assert_eq!(get("no-ssh").packets, 1);
        assert_eq!((get("default").packets, get("default").bytes), (2, 70));
        assert_eq!(get("arp").packets, 0);
    }

    use e2e::rng::Rng;

    /// The fast path (tuple tables) and the rule-by-rule path agree with
    /// the rules' own classic programs on frames built to hit them:
    /// truncated, fragmented, odd header lengths, all protocols.
    #[test]
    fn fast_path_agrees_with_the_rules() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let addrs = ["10.0.0.1", "10.0.0.2", "192.168.1.7", "172.16.0.9"];
        let nets = ["10.0.0.0/8", "192.168.1.0/24", "172.16.0.0/12", "0.0.0.0/0"];
        let ports = [22u16, 53, 80, 443];
        for round in 0..60 {
            let n = 1 + rng.below(12) as usize;
            let mut text = String::new();
            for i in 0..n {
                let a = addrs[rng.below(4) as usize];
                let net = nets[rng.below(4) as usize];
                let p = ports[rng.below(4) as usize];
                let dir = ["", "src ", "dst "][rng.below(3) as usize];
                let proto = ["", "tcp ", "udp ", "sctp "][rng.below(4) as usize];
                let expr = match rng.below(15) {
                    // Guarded chain rules: a load's protocol or an operand.
                    10 => format!("tcp[tcpflags] & tcp-syn != 0 and tcp {dir}port {p}"),
                    11 => format!("icmp[icmptype] == {}", [0, 8][rng.below(2) as usize]),
                    12 => format!("udp port {p} or icmp[icmptype] == 8"),
                    13 => format!("ip[6:2] & 0x1fff != 0 and {dir}net {net}"),
                    14 => format!("{proto}{dir}portrange {p}-{}", p + 3),
                    0 => format!("{dir}host {a}"),
                    1 => format!("{dir}net {net}"),
                    2 => format!("{proto}{dir}port {p}"),
                    3 => format!("{proto}{dir}port {p} and {dir}host {a}"),
                    4 => format!("host {a} or {proto}port {p}"),
                    5 => format!("tcp or {dir}net {net}"),
                    6 => format!("src and dst host {a}"),
                    7 if round % 3 == 0 => format!("not {proto}port {p}"),
                    8 if round % 4 == 0 => "icmp".to_string(),
                    _ => format!("{dir}net {net} and {proto}{dir}port {p}").replace("  ", " "),
                };
                let expr = expr.trim();
                let action = ["pass", "drop", "drop", "count"]
                    [rng.below(if round % 2 == 0 { 3 } else { 4 }) as usize];
                text.push_str(&format!(
                    "[[rule]]\nname = \"r{i}\"\nmatch = \"{expr}\"\naction = \"{action}\"\n"
                ));
            }
            let c = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let default = if round % 2 == 0 {
                Verdict::Pass
            } else {
                Verdict::Drop
            };
            // Half the rounds through the tables whatever they cost, and
            // every other round with rare frames interpreted.
            let opts = crate::ruleset::compile::Options {
                lookup_cost: if round % 4 < 2 { 0 } else { LOOKUP_COST },
                cold_min_rules: if round % 2 == 0 { 0 } else { COLD_MIN_RULES },
                // Every third round, few shape tables: the rest in bitmaps.
                max_shapes: if round % 3 == 2 {
                    4 + round % 5
                } else {
                    MAX_TABLES
                },
            };
            let prog = compile_with(&c.rules, default, &opts).unwrap();
            let mut d = DryRun::new(&prog, &c.rules, default).unwrap();
            let mut want = vec![0u64; c.rules.len() + 1];
            for _ in 0..300 {
                let mut f = vec![0u8; 14 + 20 + 8 + rng.below(20) as usize];
                f[12] = 0x08;
                let ihl = [5u8, 5, 5, 6, 15, 0][rng.below(6) as usize];
                f[14] = 0x40 | ihl;
                f[23] = [6u8, 17, 132, 1, 6][rng.below(5) as usize];
                if rng.below(8) == 0 {
                    f[20] = 0x00;
                    f[21] = 0x10; // fragment offset 16
                }
                let ip = |s: &str| {
                    s.split('/')
                        .next()
                        .unwrap()
                        .split('.')
                        .map(|o| o.parse::<u8>().unwrap())
                        .collect::<Vec<u8>>()
                };
                f[26..30].copy_from_slice(&ip(addrs[rng.below(4) as usize]));
                f[30..34].copy_from_slice(&ip(addrs[rng.below(4) as usize]));
                let l4 = 14 + 4 * ihl as usize;
                let (sp, dp) = (ports[rng.below(4) as usize], ports[rng.below(4) as usize]);
                if f.len() < l4 + 4 {
                    f.resize(l4 + 4, 0);
                }
                f[l4..l4 + 2].copy_from_slice(&sp.to_be_bytes());
                f[l4 + 2..l4 + 4].copy_from_slice(&dp.to_be_bytes());
                if f[23] == 1 {
                    f[l4] = [0u8, 8, 3][rng.below(3) as usize];
                }
                if f.len() > l4 + 13 {
                    f[l4 + 13] = [0x02u8, 0x12, 0x10][rng.below(3) as usize];
                }
                let cut = match rng.below(6) {
                    0 => 14 + rng.below(30) as usize,
                    1 => l4 + rng.below(4) as usize,
                    _ => f.len(),
                };
                f.truncate(cut.min(f.len()));
                let o = d
                    .packet(&f, f.len() as u32)
                    .unwrap_or_else(|e| panic!("{e}\n{text}\nframe {f:02x?}"));
                tally(&mut want, &o);
            }
            assert_eq!(packets(&d), want, "counters\n{text}");
        }
    }

    /// The same for IPv6: host/net tests of /48 to /128, ports and port
    /// ranges, icmp6 and guarded rules, against frames with and without
    /// transport headers, a fragment header, and cut anywhere.
    #[test]
    fn ipv6_fast_path_agrees_with_the_rules() {
        let mut rng = Rng(0x0006_4567_89ab_cdef);
        let addrs = ["2a01:db8::1", "2a01:db8::2", "2a01:db8:0:1::7", "2a02::9"];
        let nets = [
            "2a01:db8::/32",
            "2a01:db8::/48",
            "2a01:db8:0:1::/64",
            "::/0",
        ];
        let ports = [22u16, 53, 80, 443];
        let mut v6_tables = 0;
        for round in 0..60 {
            let n = 1 + rng.below(12) as usize;
            let mut text = String::new();
            for i in 0..n {
                let a = addrs[rng.below(4) as usize];
                let net = nets[rng.below(4) as usize];
                let p = ports[rng.below(4) as usize];
                let dir = ["", "src ", "dst "][rng.below(3) as usize];
                let proto = ["", "tcp ", "udp ", "sctp "][rng.below(4) as usize];
                let expr = match rng.below(11) {
                    0 => format!("{dir}host {a}"),
                    1 => format!("{dir}net {net}"),
                    2 => format!("{proto}{dir}port {p}"),
                    3 => format!("{proto}{dir}port {p} and {dir}host {a}"),
                    4 => format!("host {a} or {proto}port {p}"),
                    5 => format!("tcp or {dir}net {net}"),
                    6 => "icmp6".to_string(),
                    7 => format!("icmp6[icmp6type] == {}", [128, 129][rng.below(2) as usize]),
                    8 => format!("{proto}{dir}portrange {p}-{}", p + 2),
                    9 => format!("ip6 and {dir}host {a} and udp"),
                    _ => format!("{dir}net {net} and {proto}{dir}port {p}").replace("  ", " "),
                };
                let action = ["pass", "drop", "drop", "count"][rng.below(4) as usize];
                text.push_str(&format!(
                    "[[rule]]\nname = \"r{i}\"\nmatch = \"{}\"\naction = \"{action}\"\n",
                    expr.trim()
                ));
            }
            let c = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let opts = crate::ruleset::compile::Options {
                lookup_cost: if round % 4 < 2 { 0 } else { LOOKUP_COST },
                cold_min_rules: if round % 2 == 0 { 0 } else { COLD_MIN_RULES },
                // Every third round, few shape tables: the rest in bitmaps.
                max_shapes: if round % 3 == 2 {
                    4 + round % 5
                } else {
                    MAX_TABLES
                },
            };
            let prog = compile_with(&c.rules, Verdict::Drop, &opts).unwrap();
            v6_tables += (prog.tables.iter())
                .filter(|t| t.family == crate::ruleset::tuple::Family::V6)
                .count();
            let mut d = DryRun::new(&prog, &c.rules, Verdict::Drop).unwrap();
            let mut want = vec![0u64; c.rules.len() + 1];
            let ip6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
            for _ in 0..300 {
                let mut f = vec![0u8; 14 + 40 + 8 + rng.below(20) as usize];
                f[12] = 0x86;
                f[13] = 0xdd;
                f[14] = 0x60;
                f[20] = [6u8, 17, 132, 58, 44, 0, 6][rng.below(7) as usize];
                f[22..38].copy_from_slice(&ip6(addrs[rng.below(4) as usize]));
                f[38..54].copy_from_slice(&ip6(addrs[rng.below(4) as usize]));
                let (sp, dp) = (ports[rng.below(4) as usize], ports[rng.below(4) as usize]);
                f[54..56].copy_from_slice(&sp.to_be_bytes());
                f[56..58].copy_from_slice(&(dp + rng.below(3) as u16).to_be_bytes());
                if f[20] == 58 {
                    f[54] = [128u8, 129, 1][rng.below(3) as usize];
                }
                let cut = match rng.below(6) {
                    0 => 14 + rng.below(44) as usize,
                    _ => f.len(),
                };
                f.truncate(cut);
                let o = d
                    .packet(&f, f.len() as u32)
                    .unwrap_or_else(|e| panic!("{e}\n{text}\nframe {f:02x?}"));
                tally(&mut want, &o);
            }
            assert_eq!(packets(&d), want, "counters\n{text}");
        }
        assert!(
            v6_tables > 60,
            "only {v6_tables} IPv6 tables in 60 rulesets"
        );
    }

    /// Per counter, the packets the reference's outcomes count.
    fn tally(want: &mut [u64], o: &Outcome) {
        for &i in &o.counted {
            want[i] += 1;
        }
        want[o.rule.unwrap_or(want.len() - 1)] += 1;
    }

    fn packets(d: &DryRun) -> Vec<u64> {
        d.counters().iter().map(|c| c.packets).collect()
    }

    /// Count rules and rules of other shapes before, between and after
    /// thousands of table rules, across chained programs: the tables still
    /// hold every pass and drop rule of the common shapes, and each frame
    /// gets the reference's verdict and counters.
    #[test]
    fn rules_outside_the_tables_keep_their_place() {
        let mut text = String::new();
        let mut rule = |name: String, expr: String, action: &str| {
            text.push_str(&format!(
                "[[rule]]\nname = \"{name}\"\nmatch = \"{expr}\"\naction = \"{action}\"\n"
            ));
        };
        rule("ssh-seen".into(), "tcp dst port 22".into(), "count");
        let host = |i: usize| format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256);
        let n = 2_400;
        // Odd rules are guarded (their `ip[8]` test keeps them in the
        // chain), enough code for several programs.
        for i in 0..n {
            let ttl = if i % 2 == 1 { " and ip[8] != 0" } else { "" };
            rule(
                format!("h{i}"),
                format!("src host {}{ttl}", host(i)),
                if i % 3 == 0 { "pass" } else { "drop" },
            );
            match i {
                500 => rule("small".into(), "less 80".into(), "drop"),
                1200 => rule("web-seen".into(), "tcp port 80".into(), "count"),
                1900 => rule("icmp".into(), "icmp".into(), "pass"),
                _ => {}
            }
        }
        rule("late-count".into(), "udp".into(), "count");
        let c = parse(&text).unwrap();
        let prog = compile(&c.rules, Verdict::Pass).unwrap();
        assert!(prog.programs.len() > 1, "{} programs", prog.programs.len());
        // Every plain host rule, and `icmp` when its protocol is a table
        // shape.
        assert!(
            prog.fast_rules >= n / 2 && prog.fast_rules <= n / 2 + 1,
            "{} rules in the tables",
            prog.fast_rules
        );
        let mut d = DryRun::new(&prog, &c.rules, Verdict::Pass).unwrap();
        let mut want = vec![0u64; c.rules.len() + 1];
        let mut rng = Rng(0xfeed_f00d);
        let mut decided_by = std::collections::BTreeSet::new();
        for k in 0..3_000usize {
            let i = rng.below(n as u64 + 200) as usize;
            let src = [
                10,
                (i / 65536 % 256) as u8,
                (i / 256 % 256) as u8,
                (i % 256) as u8,
            ];
            let port = [22u16, 80, 443][k % 3];
            let mut f = tcp4(src, port, 54 + rng.below(60) as usize);
            match k % 7 {
                0 => f[23] = 1,
                1 => f[23] = 17,
                2 => f.truncate(14 + rng.below(40) as usize),
                _ => {}
            }
            let o = d
                .packet(&f, f.len() as u32)
                .unwrap_or_else(|e| panic!("{e}: frame {f:02x?}"));
            decided_by.insert(o.rule.map(|r| c.rules[r].name.clone()));
            tally(&mut want, &o);
        }
        assert_eq!(packets(&d), want);
        for name in ["small", "icmp"] {
            assert!(
                decided_by.contains(&Some(name.to_string())),
                "no frame decided by {name}"
            );
        }
        assert!(
            want[0] > 0 && want[c.rules.len() - 1] > 0,
            "count rules never counted"
        );
    }
}
