//! The dry run: the compiled ruleset program itself, run by our eBPF VM on
//! frames, with its counters map. Every packet is also decided rule by rule
//! by [`Reference`], and the two must agree: a dry run that disagrees with
//! the meaning of the rules is an error, not a report.

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
    #[error("the program returned {0}, which is neither XDP_PASS nor XDP_DROP")]
    BadReturn(u64),
    #[error("the program says {program}, the rules taken one by one say {reference}")]
    Disagree { program: &'static str, reference: &'static str },
}

pub struct DryRun {
    programs: Vec<vm::Program>,
    maps: Maps,
    reference: Reference,
    names: Vec<String>,
}

impl DryRun {
    pub fn new(compiled: &Compiled, rules: &[Rule], default: Verdict) -> Result<DryRun, DryRunError> {
        let programs = compiled.programs.iter().map(|p| vm::Program::new(p)).collect::<Result<Vec<_>, _>>()?;
        let counters = MapDef {
            kind: MapKind::PerCpuArray,
            key_size: 4,
            value_size: 16,
            max_entries: compiled.counter_names.len() as u32,
        };
        let chain =
            MapDef { kind: MapKind::ProgArray, key_size: 4, value_size: 4, max_entries: programs.len() as u32 };
        let mut maps = Maps::new(&[counters, chain], 1);
        for i in 0..programs.len() {
            maps.set_program(1, i as u32, i);
        }
        Ok(DryRun {
            programs,
            maps,
            reference: Reference::new(rules, default),
            names: compiled.counter_names.clone(),
        })
    }

    /// Runs one frame (`wire_len` counts bytes a capture cut off).
    pub fn packet(&mut self, frame: &[u8], wire_len: u32) -> Result<Outcome, DryRunError> {
        let input = Input::Xdp { frame, ingress_ifindex: 1, rx_queue_index: 0 };
        let env = Env { wire_len: Some(wire_len.max(frame.len() as u32)), ..Env::default() };
        let ret = vm::Program::run_chain(&self.programs, &input, &mut self.maps, &env)?;
        let verdict = u32::try_from(ret).ok().and_then(Verdict::from_xdp).ok_or(DryRunError::BadReturn(ret))?;
        let outcome = self.reference.outcome(frame, wire_len);
        if outcome.verdict != verdict {
            return Err(DryRunError::Disagree { program: verdict.name(), reference: outcome.verdict.name() });
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
                Counter { name: name.clone(), packets, bytes }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            (tcp4([10, 1, 2, 3], 22, 60), Verdict::Pass, Some("admin-ssh")),
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
}
