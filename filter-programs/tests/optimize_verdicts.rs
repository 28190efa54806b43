//! The optimizer never changes a verdict.
//!
//! The criterion is the strictest one available: for every packet,
//! complete or truncated, `run(optimize(p)) == run(p)` in the reference
//! interpreter (libpcap's `bpf_filter`). Our optimizer only removes a load
//! that might fail when an earlier load on every path already proved it
//! succeeds, or when every path that skips it still fails a load at least
//! as far into the packet (or returns 0 anyway); so even a packet cut
//! short of its wire length gets the same answer. (libpcap's optimizer
//! does not hold to this; see docs/LIBPCAP_DIFFERENCES.md.)
//!
//! - `random_programs`: random valid programs x random packets (each run
//!   both as captured, usually truncated, and as a complete packet).
//!   20,000 cases by default, to keep CI short; `FILTERD_PROPTEST_CASES=N` for more (100,000 pass).
//! - `random_any_programs`: half of them invalid; the optimizer must not
//!   panic, and whatever libpcap would run keeps its verdicts.
//! - `corpus`: every corpus expression our code generator supports, on
//!   every corpus packet of its link type.

use std::cell::Cell;
use std::collections::BTreeMap;

use e2e::corpus::{captures, expressions};
use e2e::gen::{packet, program, valid_program};
use filter_programs::cbpf::interp::Program;
use filter_programs::cbpf::validate::{validate, RuleSet};
use filter_programs::cbpf::Insn;
use filter_programs::codegen::{compile, Dlt, ErrorKind, Options, DEFAULT_SNAPLEN};
use filter_programs::optimize::optimize;
use libpcap_oracle as libpcap;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

thread_local! {
    /// Programs the optimizer made shorter (per test thread): a guard
    /// against a vacuous pass.
    static SHRUNK: Cell<usize> = const { Cell::new(0) };
}

fn cases() -> u32 {
    std::env::var("FILTERD_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Checks one program on packets; `Err` says what differs.
fn same_verdicts(prog: &[Insn], packets: &[(Vec<u8>, u32)]) -> Result<(), String> {
    let Ok(before) = Program::new(prog) else {
        return Ok(());
    };
    let opt = optimize(prog);
    if opt.len() < prog.len() {
        SHRUNK.with(|n| n.set(n.get() + 1));
    }
    if opt.len() > prog.len() {
        return Err(format!(
            "grew from {} to {} instructions",
            prog.len(),
            opt.len()
        ));
    }
    let after = Program::new(&opt)
        .map_err(|e| format!("output invalid under libpcap's rules: {e}\n{opt:?}"))?;
    if validate(prog, RuleSet::Kernel).is_ok() {
        validate(&opt, RuleSet::Kernel)
            .map_err(|e| format!("output invalid under the kernel's rules: {e}"))?;
    }
    for (pkt, wirelen) in packets {
        for wl in [*wirelen, pkt.len() as u32] {
            let (want, got) = (before.run(pkt, wl), after.run(pkt, wl));
            if want != got {
                return Err(format!(
                    "verdict {want} became {got} on {} captured bytes, wire length {wl}\n\
                     in:  {prog:?}\nout: {opt:?}\npacket: {pkt:02x?}",
                    pkt.len()
                ));
            }
        }
    }
    Ok(())
}

fn run_property(strategy: impl Strategy<Value = Vec<Insn>>, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let input = (strategy, proptest::collection::vec(packet(), 1..=8));
    runner
        .run(&input, |(prog, packets)| {
            same_verdicts(&prog, &packets).map_err(TestCaseError::fail)
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn random_programs() {
    run_property(valid_program(), cases());
    let shrunk = SHRUNK.with(Cell::get);
    println!("{shrunk} of {} random programs got shorter", cases());
    assert!(
        shrunk >= cases() as usize / 10,
        "only {shrunk} programs got shorter"
    );
}

#[test]
fn random_any_programs() {
    run_property(program(), cases() / 4);
}

#[derive(Default)]
struct Row {
    expressions: usize,
    complete: usize,
    truncated: usize,
    unopt_len: usize,
    opt_len: usize,
}

#[test]
fn corpus() {
    let caps = captures();
    let mut table: BTreeMap<String, Row> = BTreeMap::new();
    let mut failures = Vec::new();
    for e in expressions() {
        let (Some(lt), Some(dlt)) = (Dlt::from_name(&e.dlt), libpcap::dlt_from_name(&e.dlt)) else {
            continue;
        };
        let snaplen = e.snaplen.map_or(DEFAULT_SNAPLEN, |s| s as u32);
        let opts = Options {
            snaplen,
            netmask: e.netmask,
            optimize: false,
            // libpcap 1.10's dead handle generates Linux ancillary loads.
            linux_ext: true,
            ..Options::new(lt)
        };
        let unopt = match compile(&e.expr, &opts) {
            Ok(p) => p,
            Err(err) if err.kind == ErrorKind::Unsupported => continue,
            Err(err) => panic!("{} {:?}: {}", e.dlt, e.expr, err.render()),
        };
        let opt = optimize(&unopt);
        let row = table.entry(e.dlt.clone()).or_default();
        row.expressions += 1;
        row.unopt_len += unopt.len();
        row.opt_len += opt.len();
        let (Ok(before), Ok(after)) = (Program::new(&unopt), Program::new(&opt)) else {
            failures.push(format!("{} {:?}: invalid program", e.dlt, e.expr));
            continue;
        };
        for cap in caps.iter().filter(|c| c.dlt == dlt) {
            for (i, p) in cap.packets.iter().enumerate() {
                let complete = p.data.len() as u32 >= p.wirelen;
                if complete {
                    row.complete += 1;
                } else {
                    row.truncated += 1;
                }
                let (want, got) = (
                    before.run(&p.data, p.wirelen),
                    after.run(&p.data, p.wirelen),
                );
                if want != got {
                    failures.push(format!(
                        "{} {:?} {} #{i} ({}): unoptimized {want}, optimized {got}",
                        e.dlt,
                        e.expr,
                        cap.name,
                        if complete { "complete" } else { "truncated" }
                    ));
                }
            }
        }
    }
    println!(
        "{:<12} {:>11} {:>9} {:>9} {:>9} {:>9}",
        "linktype", "expressions", "complete", "truncated", "unopt", "opt"
    );
    for (dlt, r) in &table {
        println!(
            "{dlt:<12} {:>11} {:>9} {:>9} {:>9} {:>9}",
            r.expressions, r.complete, r.truncated, r.unopt_len, r.opt_len
        );
    }
    for f in failures.iter().take(30) {
        println!("DIFFERS {f}");
    }
    assert!(failures.is_empty(), "{} verdicts differ", failures.len());
    let runs: usize = table.values().map(|r| r.complete + r.truncated).sum();
    assert!(runs > 100_000, "corpus barely exercised: {runs} runs");
}
