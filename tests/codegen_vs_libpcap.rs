//! Our code generator against libpcap 1.10.3, packet for packet: every
//! corpus expression on the link types we support, compiled by both, run
//! over every corpus packet of that link type (ours in our interpreter,
//! libpcap's in libpcap). The verdict must equal libpcap's unoptimized
//! program's; on a truncated packet libpcap's optimized verdict is
//! accepted too (the optimizer may drop a load past the capture).

use std::collections::BTreeMap;

use e2e::corpus::{captures, expressions, Capture};
use filter_programs::cbpf::interp::Program;
use filter_programs::codegen::{compile, ErrorKind, LinkType, Options, DEFAULT_SNAPLEN};
use pcap_replay::libpcap::{self, CompileOptions};

/// Supported EN10MB corpus expressions, raised as the generator grows.
const EN10MB_FLOOR: usize = 490;

#[derive(Default)]
struct Row {
    supported: usize,
    unsupported: usize,
    matching: usize,
    mismatching: usize,
    /// Packet runs compared, and how many of them libpcap accepted.
    packets: usize,
    accepted: usize,
}

#[test]
fn codegen_matches_libpcap_on_corpus() {
    let caps = captures();
    let mut by_dlt: BTreeMap<i32, Vec<&Capture>> = BTreeMap::new();
    for c in &caps {
        by_dlt.entry(c.dlt).or_default().push(c);
    }
    let mut table: BTreeMap<String, Row> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let mut unsupported_samples: BTreeMap<String, usize> = BTreeMap::new();
    for e in expressions() {
        let Some(lt) = LinkType::from_name(&e.dlt) else {
            continue;
        };
        let Some(dlt) = libpcap::dlt_from_name(&e.dlt) else {
            continue;
        };
        let row = table.entry(e.dlt.clone()).or_default();
        let snaplen = e.snaplen.map_or(DEFAULT_SNAPLEN, |s| s as u32);
        let opts = Options {
            linktype: lt,
            snaplen,
            netmask: e.netmask,
            optimize: e.optimize,
        };
        let ours = match compile(&e.expr, &opts) {
            Ok(p) => p,
            Err(err) if err.kind == ErrorKind::Unsupported => {
                row.unsupported += 1;
                *unsupported_samples
                    .entry(err.message().to_string())
                    .or_default() += 1;
                continue;
            }
            Err(err) => {
                row.supported += 1;
                row.mismatching += 1;
                mismatches.push(format!(
                    "{} {:?}: we refuse what libpcap compiles:\n{}",
                    e.dlt,
                    e.expr,
                    err.render()
                ));
                continue;
            }
        };
        row.supported += 1;
        let prog = match Program::new(&ours) {
            Ok(p) => p,
            Err(err) => {
                row.mismatching += 1;
                mismatches.push(format!(
                    "{} {:?}: our program is invalid: {err}",
                    e.dlt, e.expr
                ));
                continue;
            }
        };
        let lopts = |optimize| CompileOptions {
            dlt,
            snaplen: snaplen as i32,
            optimize,
            netmask: e.netmask.unwrap_or(0xffff_ffff),
        };
        let unopt =
            libpcap::compile(&e.expr, lopts(false)).expect("libpcap compiles it unoptimized");
        let opt = if e.optimize {
            libpcap::compile(&e.expr, lopts(true)).ok()
        } else {
            None
        };
        assert!(libpcap::validate(&unopt));
        let mut bad = Vec::new();
        for cap in by_dlt.get(&dlt).map(Vec::as_slice).unwrap_or(&[]) {
            for (i, pkt) in cap.packets.iter().enumerate() {
                let got = prog.run(&pkt.data, pkt.wirelen);
                let want = libpcap::filter_validated(&unopt, &pkt.data, pkt.wirelen);
                let complete = pkt.data.len() as u32 >= pkt.wirelen;
                let alt = opt
                    .as_ref()
                    .map(|o| libpcap::filter_validated(o, &pkt.data, pkt.wirelen));
                row.packets += 1;
                row.accepted += usize::from(want != 0);
                let ok = got == want || (!complete && alt == Some(got));
                if !ok {
                    bad.push(format!(
                        "  {} #{i}: ours {got}, libpcap unoptimized {want}, optimized {alt:?}",
                        cap.name
                    ));
                }
            }
        }
        if bad.is_empty() {
            row.matching += 1;
        } else {
            row.mismatching += 1;
            let n = bad.len();
            bad.truncate(5);
            mismatches.push(format!(
                "{} {:?}: {n} packets differ\n{}",
                e.dlt,
                e.expr,
                bad.join("\n")
            ));
        }
    }
    println!(
        "{:<10} {:>9} {:>11} {:>8} {:>11} {:>8} {:>8}",
        "linktype", "supported", "unsupported", "matching", "mismatching", "packets", "accepted"
    );
    for (dlt, r) in &table {
        println!(
            "{dlt:<10} {:>9} {:>11} {:>8} {:>11} {:>8} {:>8}",
            r.supported, r.unsupported, r.matching, r.mismatching, r.packets, r.accepted
        );
    }
    println!("\nwhy unsupported (count):");
    for (why, n) in &unsupported_samples {
        println!("  {n:>4} {why}");
    }
    for m in &mismatches {
        println!("MISMATCH {m}");
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatching expressions",
        mismatches.len()
    );
    let en = table.get("EN10MB").map_or(0, |r| r.supported);
    // Guard against a vacuous pass: the corpus must have exercised both
    // verdicts on Ethernet.
    let en_row = table.get("EN10MB").expect("EN10MB rows");
    assert!(
        en_row.packets > 100_000 && en_row.accepted > 10_000,
        "corpus barely exercised"
    );
    assert!(
        en >= EN10MB_FLOOR,
        "only {en} EN10MB expressions supported (floor {EN10MB_FLOOR})"
    );
}
