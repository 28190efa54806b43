//! Property: random rulesets of issue 17's mix (IPv4 and IPv6 blocks,
//! services with port ranges, ICMP and ICMPv6 types, disjunctions, VLAN,
//! TCP flags, fragments; 1 to 300 rules, some count rules), compiled with
//! the cost model's tables, with every table forced, or with few shape
//! tables and the other rules in per-field bitmaps, decide every frame
//! as the rules taken one by one do (the dry run checks each verdict
//! against the reference interpreter) and count as they do: frames aimed
//! at each rule (IPv4 or IPv6, and ARP with its IPv4 addresses), whole
//! and cut anywhere, and frames that match none.

use e2e::mixed::{self, Aim, MixedRule};
use e2e::rng::Rng;
use filter_programs::ruleset::compile::{compile_with, Options};
use filter_programs::ruleset::dryrun::DryRun;
use filter_programs::ruleset::{parse, Outcome, Verdict};
use proptest::prelude::*;

/// Runs `frames` through the dry run, which checks each verdict against
/// the rules taken one by one, and compares its counters with what the
/// outcomes say was counted.
fn counters_agree<'f>(
    dry: &mut DryRun,
    rules: usize,
    frames: impl IntoIterator<Item = &'f [u8]>,
) -> Result<(), TestCaseError> {
    let mut want = vec![0u64; rules + 1];
    for f in frames {
        let o: Outcome = dry
            .packet(f, f.len() as u32)
            .map_err(|e| TestCaseError::fail(format!("{e} on {f:02x?}")))?;
        for &i in &o.counted {
            want[i] += 1;
        }
        want[o.rule.unwrap_or(rules)] += 1;
    }
    let got: Vec<u64> = dry.counters().iter().map(|c| c.packets).collect();
    prop_assert_eq!(got, want);
    Ok(())
}

/// Two frames that match no rule, then each frame `frame` makes of a
/// rule's aim, cut at a random length and whole.
fn aimed_frames(
    rules: &[MixedRule],
    seed: u64,
    frame: impl Fn(&Aim) -> Vec<Vec<u8>>,
) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed | 1);
    let mut frames = vec![Aim::nowhere(false).frame(), Aim::nowhere(true).frame()];
    for r in rules {
        for f in frame(&r.aim) {
            let cut = 14 + rng.below(f.len() as u64 - 13) as usize;
            frames.push(f[..cut].to_vec());
            frames.push(f);
        }
    }
    frames
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 36, ..ProptestConfig::default() })]

    #[test]
    fn mixed_rulesets_decide_as_the_rules_do(
        seed in any::<u64>(),
        n in 1usize..=300,
        count_every in prop_oneof![Just(0usize), 2usize..12],
        mode in 0u8..3,
        shapes in 4usize..12,
        default_drop in any::<bool>(),
    ) {
        let rules = mixed::rules(n, seed, count_every);
        let cfg = parse(&mixed::config(&rules, "lo")).unwrap();
        let default = if default_drop { Verdict::Drop } else { Verdict::Pass };
        // The cost model's choice, every table forced, or few shape tables
        // and the rest of the table shapes in bitmaps.
        let opts = match mode {
            0 => Options::default(),
            1 => Options::forced(),
            _ => Options::bitmaps(shapes),
        };
        let compiled = compile_with(&cfg.rules, default, &opts).unwrap();
        let mut dry = DryRun::new(&compiled, &cfg.rules, default).unwrap();
        let frames = aimed_frames(&rules, seed, |a| vec![a.frame(), a.arp_frame()]);
        counters_agree(&mut dry, n, frames.iter().map(Vec::as_slice))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Rulesets of many shapes (nets of every length with ports or ICMP
    /// types), past what the shape tables hold: the rules left over are
    /// found through per-field bitmaps (`ruleset::bitmap`), and decide and
    /// count as the rules one by one.
    #[test]
    fn many_shaped_rulesets_decide_as_the_rules_do(
        seed in any::<u64>(),
        n in 30usize..=400,
        few in any::<bool>(),
        shapes in 4usize..10,
        negations in any::<bool>(),
    ) {
        let rules = mixed::many_shapes(n, seed);
        // Exclusions (`not src net N`, `not port P`) only the bitmaps hold.
        let rules = if negations { mixed::with_negations(rules, seed) } else { rules };
        let cfg = parse(&mixed::config(&rules, "lo")).unwrap();
        let opts = if few { Options::bitmaps(shapes) } else { Options::default() };
        let compiled = compile_with(&cfg.rules, Verdict::Pass, &opts).unwrap();
        // The cost model leaves a few dozen rules inline.
        prop_assert!(
            n < 200 && !few || compiled.tables.iter().any(|t| t.name.starts_with("lbvs")),
            "no bitmaps for {} rules", n
        );
        let mut dry = DryRun::new(&compiled, &cfg.rules, Verdict::Pass).unwrap();
        let frames = aimed_frames(&rules, seed, |a| vec![a.frame()]);
        counters_agree(&mut dry, n, frames.iter().map(Vec::as_slice))?;
    }
}

/// A VLAN rule of many forms, over a few IDs so that frames hit them.
fn vlan_rule(rng: &mut Rng, ids: &[u16]) -> String {
    let id = ids[rng.below(ids.len() as u64) as usize];
    let other = ids[rng.below(ids.len() as u64) as usize];
    let port = 20 + rng.below(4);
    match rng.below(12) {
        0..=3 => format!("vlan {id} and tcp dst port {port}"),
        4 => format!("vlan {id}"),
        5 => "vlan and udp".into(),
        // `> 4095` could never match, which a config refuses.
        6 => format!("ether[14:2] & 0xfff > {}", id.min(4094)),
        7 => format!("not vlan {id}"),
        8 => format!("vlan {id} or vlan {other}"),
        9 => format!("vlan {id} and vlan {other} and tcp"),
        10 => format!("tcp dst port {port}"),
        _ => format!("ether[14:2] & 0xfff = {id} or udp"),
    }
}

/// A frame with `tags` (TPID, VLAN ID) outermost first, then IPv4 and TCP
/// or UDP to a port the rules name.
fn tagged_frame(rng: &mut Rng, tags: &[(u16, u16)]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for (tpid, id) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        let tci = (rng.below(16) as u16) << 12 | id;
        f.extend_from_slice(&tci.to_be_bytes());
    }
    let proto = if rng.below(2) == 0 { 6 } else { 17 };
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 1, 0, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&[0, 99, 0, 20 + rng.below(4) as u8]);
    f.resize(f.len() + 16, 0);
    f
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Rulesets of VLAN rules (the chains split by VLAN ID, see
    /// `ruleset::vlan`) decide every tagged frame as the rules one by one:
    /// 802.1Q, 802.1ad and 0x9100 tags, IDs named by the rules and not,
    /// stacked tags, frames cut anywhere (within the tag too).
    #[test]
    fn vlan_rulesets_decide_as_the_rules_do(
        seed in any::<u64>(),
        n in 1usize..=60,
        forced in any::<bool>(),
    ) {
        let mut rng = Rng(seed | 1);
        let ids: Vec<u16> = (0..1 + rng.below(6)).map(|_| rng.below(4096) as u16).collect();
        let rules: Vec<String> = (0..n).map(|_| vlan_rule(&mut rng, &ids)).collect();
        let mut text = String::from("[[interface]]\nname = \"lo\"\ndefault = \"pass\"\n");
        for (i, r) in rules.iter().enumerate() {
            let action = ["count", "pass", "drop"][rng.below(3) as usize];
            text.push_str(&format!("\n[[rule]]\nname = \"r{i}\"\nmatch = \"{r}\"\naction = \"{action}\"\n"));
        }
        let cfg = parse(&text).unwrap();
        let opts = if forced { Options::forced() } else { Options::default() };
        let compiled = compile_with(&cfg.rules, Verdict::Pass, &opts).unwrap();
        let mut dry = DryRun::new(&compiled, &cfg.rules, Verdict::Pass).unwrap();
        let mut frames = Vec::new();
        for _ in 0..200 {
            let tpid = [0x8100u16, 0x88a8, 0x9100][rng.below(3) as usize];
            let id = if rng.below(4) == 0 { rng.below(4096) as u16 } else { ids[rng.below(ids.len() as u64) as usize] };
            let mut tags = vec![(tpid, id)];
            if rng.below(4) == 0 {
                tags.push((0x8100, ids[rng.below(ids.len() as u64) as usize]));
            }
            let f = tagged_frame(&mut rng, &tags);
            let cut = if rng.below(3) == 0 { 12 + rng.below(f.len() as u64 - 11) as usize } else { f.len() };
            frames.push(f[..cut].to_vec());
        }
        counters_agree(&mut dry, n, frames.iter().map(Vec::as_slice))?;
    }
}
