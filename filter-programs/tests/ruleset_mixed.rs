//! Property: random rulesets of issue 17's mix (IPv4 and IPv6 blocks,
//! services with port ranges, ICMP and ICMPv6 types, disjunctions, VLAN,
//! TCP flags, fragments; 1 to 300 rules, some count rules), compiled with
//! the cost model's tables or with every table forced, decide every frame
//! as the rules taken one by one do (the dry run checks each verdict
//! against the reference interpreter) and count as they do: frames aimed
//! at each rule (IPv4 or IPv6, and ARP with its IPv4 addresses), whole
//! and cut anywhere, and frames that match none.

use e2e::mixed::{self, Aim};
use e2e::rng::Rng;
use filter_programs::ruleset::compile::{compile_with, Options};
use filter_programs::ruleset::dryrun::DryRun;
use filter_programs::ruleset::{parse, Outcome, Verdict};
use proptest::prelude::*;

fn tally(want: &mut [u64], o: &Outcome) {
    for &i in &o.counted {
        want[i] += 1;
    }
    want[o.rule.unwrap_or(want.len() - 1)] += 1;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn mixed_rulesets_decide_as_the_rules_do(
        seed in any::<u64>(),
        n in 1usize..=300,
        count_every in prop_oneof![Just(0usize), 2usize..12],
        forced in any::<bool>(),
        default_drop in any::<bool>(),
    ) {
        let rules = mixed::rules(n, seed, count_every);
        let cfg = parse(&mixed::config(&rules, "lo")).unwrap();
        let default = if default_drop { Verdict::Drop } else { Verdict::Pass };
        let opts = if forced { Options::forced() } else { Options::default() };
        let compiled = compile_with(&cfg.rules, default, &opts).unwrap();
        let mut dry = DryRun::new(&compiled, &cfg.rules, default).unwrap();
        let mut want = vec![0u64; n + 1];
        let mut rng = Rng(seed | 1);
        let mut frames = vec![Aim::nowhere(false).frame(), Aim::nowhere(true).frame()];
        for r in &rules {
            for f in [r.aim.frame(), r.aim.arp_frame()] {
                let cut = 14 + rng.below(f.len() as u64 - 13) as usize;
                frames.push(f[..cut].to_vec());
                frames.push(f);
            }
        }
        for f in &frames {
            let o = dry.packet(f, f.len() as u32).map_err(|e| {
                TestCaseError::fail(format!("{e} on {f:02x?}"))
            })?;
            tally(&mut want, &o);
        }
        let got: Vec<u64> = dry.counters().iter().map(|c| c.packets).collect();
        prop_assert_eq!(got, want);
    }
}
