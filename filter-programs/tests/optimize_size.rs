//! Instruction counts: our optimizer against libpcap 1.10.3's, on every
//! corpus expression our code generator supports and libpcap can optimize.
//!
//! Prints the distribution (better / equal / worse, by how many
//! instructions) that docs/OPTIMIZER.md records:
//!
//! ```text
//! cargo test -p filter-programs --test optimize_size -- --nocapture
//! ```

use std::collections::BTreeMap;

use e2e::corpus::expressions;
use filter_programs::cbpf::interp::Program;
use filter_programs::codegen::{compile, Dlt, ErrorKind, Options, DEFAULT_SNAPLEN};
use filter_programs::optimize::optimize;
use libpcap_oracle::{self as libpcap, CompileOptions};

/// The issue's goal: no longer than libpcap's for at least this share.
const GOAL_PERCENT: f64 = 95.0;

#[test]
fn optimized_length_vs_libpcap() {
    // Signed difference ours - libpcap's -> count.
    let mut diffs: BTreeMap<i64, usize> = BTreeMap::new();
    let mut worst: Vec<(i64, String, usize, usize)> = Vec::new();
    let (mut ours_total, mut theirs_total, mut unopt_total) = (0usize, 0usize, 0usize);
    for e in expressions().into_iter().filter(|e| e.optimize) {
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
        let ours = optimize(&unopt);
        Program::new(&ours)
            .unwrap_or_else(|err| panic!("{} {:?}: invalid output: {err}", e.dlt, e.expr));
        let lopts = CompileOptions {
            dlt,
            snaplen: snaplen as i32,
            optimize: true,
            netmask: e.netmask.unwrap_or(libpcap::NETMASK_UNKNOWN),
        };
        let theirs = libpcap::compile(&e.expr, lopts).expect("libpcap optimizes it");
        let d = ours.len() as i64 - theirs.len() as i64;
        *diffs.entry(d).or_default() += 1;
        ours_total += ours.len();
        theirs_total += theirs.len();
        unopt_total += unopt.len();
        if d > 0 {
            worst.push((
                d,
                format!("{} {:?}", e.dlt, e.expr),
                ours.len(),
                theirs.len(),
            ));
        }
    }
    let total: usize = diffs.values().sum();
    let count = |f: &dyn Fn(i64) -> bool| {
        diffs
            .iter()
            .filter(|(d, _)| f(**d))
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    let better = count(&|d| d < 0);
    let equal = count(&|d| d == 0);
    let worse = count(&|d| d > 0);
    println!("expressions compared: {total}");
    println!(
        "instructions: ours {ours_total}, libpcap -O {theirs_total}, unoptimized {unopt_total}"
    );
    println!("| ours - libpcap | expressions |");
    println!("|---:|---:|");
    for (d, n) in &diffs {
        println!("| {d:+} | {n} |");
    }
    println!("better {better}, equal {equal}, worse {worse}");
    worst.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (d, what, o, t) in worst.iter().take(40) {
        println!("worse by {d}: {what} (ours {o}, libpcap {t})");
    }
    assert!(total > 500, "only {total} expressions compared");
    let share = 100.0 * (better + equal) as f64 / total as f64;
    println!("no longer than libpcap: {share:.1}%");
    assert!(
        share >= GOAL_PERCENT,
        "only {share:.1}% no longer than libpcap's"
    );
}
