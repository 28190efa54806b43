//! Our code generator against libpcap 1.10.3, packet for packet: every
//! corpus expression on the link types we support, compiled by both, run
//! over every corpus packet of that link type (ours in our interpreter,
//! libpcap's in libpcap). The verdict must equal libpcap's unoptimized
//! program's; on a truncated packet libpcap's optimized verdict is
//! accepted too (the optimizer may drop a load past the capture). Our
//! unoptimized program must moreover be libpcap's, instruction for
//! instruction. libpcap runs as a dead handle: Linux extensions on, names
//! from this machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use e2e::corpus::{captures, expressions, Capture};
use filter_programs::cbpf::interp::Program;
use filter_programs::cbpf::text;
use filter_programs::codegen::{compile, Dlt, ErrorKind, Options, Resolver, DEFAULT_SNAPLEN};
use libpcap_oracle::resolve::SystemResolver;
use libpcap_oracle::{self as libpcap, CompileOptions};

/// Supported EN10MB corpus expressions, raised as the generator grows.
const EN10MB_FLOOR: usize = 522;

/// libpcap 1.10's dead handle on Linux: Linux extensions on, this
/// machine's names.
fn options(lt: Dlt, snaplen: u32, netmask: Option<u32>, resolver: &Arc<dyn Resolver>) -> Options {
    Options {
        snaplen,
        netmask,
        linux_ext: true,
        resolver: Arc::clone(resolver),
        ..Options::new(lt)
    }
}

#[derive(Default)]
struct Row {
    supported: usize,
    unsupported: usize,
    matching: usize,
    mismatching: usize,
    /// Programs equal to libpcap's unoptimized one, instruction for
    /// instruction.
    identical: usize,
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
    let resolver: Arc<dyn Resolver> = Arc::new(SystemResolver::new());
    for e in expressions() {
        let Some(lt) = Dlt::from_name(&e.dlt) else {
            continue;
        };
        let Some(dlt) = libpcap::dlt_from_name(&e.dlt) else {
            continue;
        };
        let row = table.entry(e.dlt.clone()).or_default();
        let snaplen = e.snaplen.map_or(DEFAULT_SNAPLEN, |s| s as u32);
        let opts = Options {
            optimize: e.optimize,
            ..options(lt, snaplen, e.netmask, &resolver)
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
            Err(err) if err.message() == "expression rejects all packets" => {
                // Ours proves it, libpcap's optimizer does not (see
                // docs/LIBPCAP_DIFFERENCES.md): fine only if libpcap's own
                // program provably matches nothing.
                row.supported += 1;
                let lopts = CompileOptions {
                    dlt,
                    snaplen: snaplen as i32,
                    optimize: true,
                    netmask: e.netmask.unwrap_or(0xffff_ffff),
                };
                let theirs = libpcap::compile(&e.expr, lopts).expect("libpcap compiles it");
                if e2e::corpus::reads_no_packet(&theirs)
                    && libpcap::filter(&theirs, &[0u8; 64], 64) == 0
                {
                    row.matching += 1;
                } else {
                    row.mismatching += 1;
                    mismatches.push(format!(
                        "{} {:?}: we say it rejects all packets, libpcap's program may match",
                        e.dlt, e.expr
                    ));
                }
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
        let unopt_validated =
            libpcap::Validated::new(&unopt).expect("bpf_validate accepts libpcap's program");
        let opt_validated = opt
            .as_deref()
            .map(|o| libpcap::Validated::new(o).expect("bpf_validate accepts libpcap's program"));
        let ours_unopt = compile(
            &e.expr,
            &Options {
                optimize: false,
                ..opts.clone()
            },
        )
        .expect("compiles unoptimized when it compiles optimized");
        row.identical += usize::from(unopt == ours_unopt);
        if unopt != ours_unopt {
            mismatches.push(format!(
                "{} {:?}: not libpcap's unoptimized program",
                e.dlt, e.expr
            ));
        }
        if unopt != ours_unopt && std::env::var_os("CODEGEN_SHOW_DIFF").is_some() {
            println!(
                "DIFF {} {:?}\nours:\n{}libpcap:\n{}",
                e.dlt,
                e.expr,
                text::print(&ours_unopt, text::Format::Asm),
                text::print(&unopt, text::Format::Asm)
            );
        }
        let mut bad = Vec::new();
        for cap in by_dlt.get(&dlt).map(Vec::as_slice).unwrap_or(&[]) {
            for (i, pkt) in cap.packets.iter().enumerate() {
                let got = prog.run(&pkt.data, pkt.wirelen);
                let want = unopt_validated.filter(&pkt.data, pkt.wirelen);
                let complete = pkt.data.len() as u32 >= pkt.wirelen;
                let alt = opt_validated
                    .as_ref()
                    .map(|o| o.filter(&pkt.data, pkt.wirelen));
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
        "{:<10} {:>9} {:>11} {:>8} {:>11} {:>9} {:>8} {:>8}",
        "linktype",
        "supported",
        "unsupported",
        "matching",
        "mismatching",
        "identical",
        "packets",
        "accepted"
    );
    for (dlt, r) in &table {
        println!(
            "{dlt:<10} {:>9} {:>11} {:>8} {:>11} {:>9} {:>8} {:>8}",
            r.supported,
            r.unsupported,
            r.matching,
            r.mismatching,
            r.identical,
            r.packets,
            r.accepted
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

/// What libpcap master compiles and 1.10 cannot (`vxlan`): our program
/// must be master's unoptimized program from the suite, instruction for
/// instruction.
#[test]
fn master_only_expressions_match_masters_program() {
    let path = e2e::corpus_dir().join("expressions/accept_expected.jsonl");
    let text_all = std::fs::read_to_string(&path).expect("accept_expected.jsonl");
    let resolver: Arc<dyn Resolver> = Arc::new(SystemResolver::new());
    let mut compared = 0;
    let mut bad = Vec::new();
    for line in text_all.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("jsonl row");
        let (Some(dlt), Some(unopt)) = (v["dlt"].as_str(), v["unopt"].as_str()) else {
            continue;
        };
        let (Some(lt), Some(dltv)) = (Dlt::from_name(dlt), libpcap::dlt_from_name(dlt)) else {
            continue;
        };
        // Default options only: no skip reason, flag, netmask or snaplen.
        let plain = v["skip"].as_str() == Some("")
            && v["flags"].as_array().is_some_and(|f| f.is_empty())
            && v["netmask"].is_null()
            && v["snaplen"].is_null();
        if !plain {
            continue;
        }
        let want = text::parse(unopt).expect("master's program text parses");
        for alias in v["aliases"].as_array().into_iter().flatten() {
            let Some(expr) = alias.as_str() else { continue };
            let lopts = CompileOptions {
                optimize: false,
                ..CompileOptions::new(dltv)
            };
            if libpcap::compile(expr, lopts).is_ok() {
                continue;
            }
            let opts = Options {
                optimize: false,
                ..options(lt, DEFAULT_SNAPLEN, None, &resolver)
            };
            let Ok(ours) = compile(expr, &opts) else {
                continue;
            };
            compared += 1;
            if ours != want {
                bad.push(format!(
                    "{dlt} {expr:?}:\n{}",
                    text::print(&ours, text::Format::Asm)
                ));
            }
        }
    }
    println!("{compared} master-only expressions compared");
    assert!(bad.is_empty(), "differ from master:\n{}", bad.join("\n"));
    assert!(
        compared >= 3,
        "only {compared} master-only expressions (vxlan forms) compiled"
    );
}

/// Names resolved on this machine (/etc/hosts, /etc/networks,
/// /etc/services, /etc/protocols) give libpcap's program, instruction for
/// instruction.
#[test]
fn names_compile_as_libpcap() {
    let resolver: Arc<dyn Resolver> = Arc::new(SystemResolver::new());
    let exprs = [
        "host localhost",
        "src host localhost and dst host vm",
        "ip host localhost",
        "arp host localhost",
        "net loopback",
        "dst net loopback",
        "tcp port http or udp port domain",
        "portrange ftp-data-ssh",
        "proto tcp or ip6 proto udp",
        "ip protochain tcp",
    ];
    let mut compared = 0;
    for lt in [Dlt::En10mb, Dlt::Raw, Dlt::LinuxSll] {
        let dlt = lt.dlt();
        for expr in exprs {
            let lopts = CompileOptions {
                optimize: false,
                ..CompileOptions::new(dlt)
            };
            let want = libpcap::compile(expr, lopts);
            let opts = Options {
                optimize: false,
                ..options(lt, DEFAULT_SNAPLEN, None, &resolver)
            };
            let got = compile(expr, &opts);
            match (want, got) {
                (Ok(w), Ok(g)) => {
                    assert_eq!(g, w, "{lt:?} {expr:?}");
                    compared += 1;
                }
                (Err(_), Err(_)) => {}
                (w, g) => panic!(
                    "{lt:?} {expr:?}: libpcap {:?}, ours {:?}",
                    w.map(|_| "ok"),
                    g.map(|_| "ok")
                ),
            }
        }
    }
    assert!(compared >= 20, "only {compared} name expressions compared");
}
