//! Corpus proof: for every expression libpcap 1.10.3 compiles in the
//! shared corpus (`expressions/compile_1.10.3.tsv`, status ok), optimized
//! and unoptimized, our interpreter returns exactly what libpcap's
//! `bpf_filter` returns on every packet of every corpus pcap of that DLT.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use filter_programs::cbpf::interp::Program;
use libpcap_oracle::{self as libpcap, CompileOptions, DEFAULT_SNAPLEN, NETMASK_UNKNOWN};

/// One capture, read once: its DLT and every packet (bytes, wire length).
struct Capture {
    name: String,
    dlt: i32,
    packets: Vec<(Vec<u8>, u32)>,
}

fn pcap_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "invalid") {
                pcap_files(&path, out);
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng")
        {
            out.push(path);
        }
    }
}

fn read_captures(root: &Path) -> Vec<Capture> {
    let mut files = Vec::new();
    pcap_files(&root.join("pcaps"), &mut files);
    files
        .iter()
        .map(|path| {
            let mut cap = pcap::Capture::from_file(path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let dlt = cap.get_datalink().0;
            let mut packets = Vec::new();
            loop {
                match cap.next_packet() {
                    Ok(p) => packets.push((p.data.to_vec(), p.header.len)),
                    Err(pcap::Error::NoMorePackets) => break,
                    Err(e) => panic!("{}: packet {}: {e}", path.display(), packets.len()),
                }
            }
            let name = path
                .strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string();
            Capture { name, dlt, packets }
        })
        .collect()
}

/// Undoes the TSV escaping of the corpus tools (`\\`, `\t`, `\n`, `\r`).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Rows of a TSV file as maps from header name to field.
fn read_tsv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header line").split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}

/// One expression to check: the compile options and its source row.
struct Case {
    id: String,
    expr: String,
    opts: CompileOptions,
}

fn cases(root: &Path) -> Vec<Case> {
    let ex = root.join("expressions");
    // accept.tsv holds the netmask and snap length (and the literal text).
    let accept: HashMap<String, HashMap<String, String>> = read_tsv(&ex.join("accept.tsv"))
        .into_iter()
        .map(|r| (r["id"].clone(), r))
        .collect();
    let mut out = Vec::new();
    for row in read_tsv(&ex.join("compile_1.10.3.tsv")) {
        if row["status"] != "ok" {
            continue;
        }
        let expr = unescape(&row["expression"]);
        let dlt = libpcap::dlt_from_name(&row["dlt"])
            .unwrap_or_else(|| panic!("{}: libpcap does not know DLT {}", row["id"], row["dlt"]));
        let mut opts = CompileOptions::new(dlt);
        opts.optimize = row["optimize"] == "1";
        if row["source"] == "accept" {
            let a = accept
                .get(&row["id"])
                .unwrap_or_else(|| panic!("{} not in accept.tsv", row["id"]));
            assert_eq!(
                a["expression"], expr,
                "{}: compile and accept tables disagree",
                row["id"]
            );
            opts.snaplen = if a["snaplen"].is_empty() {
                DEFAULT_SNAPLEN
            } else {
                a["snaplen"]
                    .parse()
                    .unwrap_or_else(|_| panic!("{}: snaplen {}", row["id"], a["snaplen"]))
            };
            opts.netmask = if a["netmask"].is_empty() {
                NETMASK_UNKNOWN
            } else {
                let ip: Ipv4Addr = a["netmask"]
                    .parse()
                    .unwrap_or_else(|_| panic!("{}: netmask", row["id"]));
                u32::from(ip)
            };
        }
        out.push(Case {
            id: row["id"].clone(),
            expr,
            opts,
        });
    }
    out
}

#[test]
fn every_corpus_expression_matches_libpcap_on_every_packet() {
    let root = e2e::corpus_dir();
    let captures = read_captures(&root);
    let cases = cases(&root);
    assert!(
        cases.len() > 1500,
        "only {} compilable rows: corpus changed?",
        cases.len()
    );
    let (mut programs, mut comparisons, mut matched) = (0u64, 0u64, 0u64);
    let mut expressions_with_packets = 0u64;
    let mut looping = 0u64;
    let mut mismatches = String::new();
    let mut n_mismatches = 0u64;
    for case in &cases {
        let dlt_caps: Vec<&Capture> = captures.iter().filter(|c| c.dlt == case.opts.dlt).collect();
        if !dlt_caps.is_empty() {
            expressions_with_packets += 1;
        }
        // Optimized (when the row's compile was) and unoptimized.
        let variants: &[bool] = if case.opts.optimize {
            &[true, false]
        } else {
            &[false]
        };
        for &optimize in variants {
            let opts = CompileOptions {
                optimize,
                ..case.opts
            };
            let insns = libpcap::compile(&case.expr, opts)
                .unwrap_or_else(|e| panic!("{} {:?} optimize={optimize}: {e}", case.id, case.expr));
            let validated = libpcap::Validated::new(&insns)
                .unwrap_or_else(|| panic!("{}: libpcap's own program fails bpf_validate", case.id));
            let prog = Program::new(&insns)
                .unwrap_or_else(|e| panic!("{} {:?}: Program::new: {e}", case.id, case.expr));
            programs += 1;
            // libpcap's protochain loops: backward `ja` (opcode 0x05, negative k).
            if insns.iter().any(|i| i.code == 0x05 && (i.k as i32) < 0) && !dlt_caps.is_empty() {
                looping += 1;
            }
            for cap in &dlt_caps {
                for (i, (pkt, wirelen)) in cap.packets.iter().enumerate() {
                    let theirs = validated.filter(pkt, *wirelen);
                    let ours = prog.run(pkt, *wirelen);
                    comparisons += 1;
                    matched += u64::from(theirs != 0);
                    if ours != theirs {
                        n_mismatches += 1;
                        if n_mismatches <= 50 {
                            let _ = writeln!(
                                mismatches,
                                "{} {:?} (optimize={optimize}) {} packet {i}: ours {ours}, libpcap {theirs}",
                                case.id, case.expr, cap.name
                            );
                        }
                    }
                }
            }
        }
    }
    let packets: usize = captures.iter().map(|c| c.packets.len()).sum();
    println!(
        "interp_corpus: {} expressions ({} with packets of their DLT), {} programs, {} pcaps, \
         {} packets, {} comparisons ({} accepted); {} programs with backward jumps ran on packets",
        cases.len(),
        expressions_with_packets,
        programs,
        captures.len(),
        packets,
        comparisons,
        matched,
        looping
    );
    assert!(
        n_mismatches == 0,
        "{n_mismatches} verdicts differ:\n{mismatches}"
    );
    assert!(
        comparisons > 1_000_000,
        "only {comparisons} comparisons: corpus changed?"
    );
}
