//! The translator, proven in the kernel over the whole corpus:
//! - every corpus program (libpcap-compiled, every link type) translated
//!   for every target passes the kernel verifier;
//! - for every EN10MB program and every EN10MB corpus packet, the kernel's
//!   `BPF_PROG_TEST_RUN` verdict equals our VM's and libpcap's own
//!   interpreter's (mapped to the hook's verdict), on all three targets;
//! - a program with a loop (`protochain`) does so with both loop forms
//!   (`may_goto`, and the counted one for older kernels).

use std::collections::BTreeSet;

use bpf_kernel::{load, LoadError};
use e2e::corpus::{captures, expressions, Capture};
use filter_programs::cbpf::interp::Program as Classic;
use filter_programs::cbpf::{Insn, Op};
use filter_programs::ebpf::vm::{Env, Input, Maps, Program, SkbMeta};
use filter_programs::translate::{translate, Loops, Target, TranslateError};
use filter_programs::Hook;
use libpcap_oracle::{self as libpcap, CompileOptions};

const TARGETS: [Target; 3] = [Target::socket(), Target::xdp(), Target::tc()];

/// The targets a program is checked on: with a loop, each also with the
/// counted loop form.
fn targets_for(prog: &[Insn]) -> Vec<Target> {
    let mut out = TARGETS.to_vec();
    if prog.iter().enumerate().any(|(pc, i)| is_back_edge(pc, i)) {
        out.extend(TARGETS.map(|t| t.with_loops(Loops::Counted)));
    }
    out
}

fn target_name(t: Target) -> String {
    match t.loops() {
        Loops::MayGoto => t.name().to_string(),
        Loops::Counted => format!("{} (counted loops)", t.name()),
    }
}

/// Every distinct program libpcap compiles from the corpus, with the DLT
/// and one expression that produced it.
fn corpus_programs() -> Vec<(String, String, Vec<Insn>)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for e in expressions() {
        let dlt = libpcap::dlt_from_name(&e.dlt).unwrap_or_else(|| panic!("unknown DLT {}", e.dlt));
        // Both as tcpdump compiles (optimized) and unoptimized: the two
        // give differently shaped code for the translator and verifier.
        for optimize in [e.optimize, false] {
            let opts = CompileOptions {
                dlt,
                snaplen: e.snaplen.unwrap_or(libpcap::DEFAULT_SNAPLEN),
                optimize,
                netmask: e.netmask.unwrap_or(libpcap::NETMASK_UNKNOWN),
            };
            let Ok(prog) = libpcap::compile(&e.expr, opts) else {
                // compile_1.10.3.tsv says it compiled; only name resolution can differ.
                continue;
            };
            let key: Vec<(u16, u8, u8, u32)> =
                prog.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
            if seen.insert((e.dlt.clone(), key)) {
                out.push((e.dlt.clone(), e.expr.clone(), prog));
            }
        }
    }
    out
}

fn vm_input<'a>(t: Target, frame: &'a [u8]) -> Input<'a> {
    // A test run receives on the loopback device: address 0, ifindex 1.
    let meta = SkbMeta::from_ethernet(frame, [0; 6], 1);
    match t.hook {
        // A socket filter's test run pulls the Ethernet header: skb->data
        // is the network header, as ARCHITECTURE.md records.
        Hook::Socket => Input::Skb {
            frame,
            data_off: 14,
            net_off: 14,
            meta,
        },
        Hook::Tc => Input::Skb {
            frame,
            data_off: 0,
            net_off: 14,
            meta,
        },
        Hook::Xdp => Input::Xdp {
            frame,
            ingress_ifindex: 1,
            rx_queue_index: 0,
        },
        Hook::Trace => unreachable!("a test run runs no tracing program"),
    }
}

#[test]
fn every_corpus_program_passes_the_verifier_on_every_target() {
    if !e2e::kernel_available("every_corpus_program_passes_the_verifier_on_every_target") {
        return;
    }
    let programs = corpus_programs();
    let mut loaded = 0;
    let mut not_applicable = 0;
    let mut failures = Vec::new();
    for (dlt, expr, prog) in &programs {
        for t in targets_for(prog) {
            let insns = match translate(prog, t) {
                Ok(i) => i,
                // By design: the hook has no such field (XDP has no packet
                // type or mark). Counted, and checked to be only that.
                Err(TranslateError::Unsupported { what, .. }) if what.contains("ancillary") => {
                    not_applicable += 1;
                    continue;
                }
                Err(e) => {
                    failures.push(format!("{dlt} {expr:?} {}: translate: {e}", target_name(t)));
                    continue;
                }
            };
            match load(t.hook, &insns, "corpus") {
                Ok(_) => loaded += 1,
                Err(LoadError::Verifier { log, .. }) => {
                    let tail: Vec<&str> = log
                        .lines()
                        .rev()
                        .take(4)
                        .map(|l| &l[..l.len().min(160)])
                        .collect();
                    failures.push(format!(
                        "{dlt} {expr:?} {}: verifier: {}",
                        target_name(t),
                        tail.join(" | ")
                    ));
                }
                Err(e) => failures.push(format!("{dlt} {expr:?} {}: {e}", target_name(t))),
            }
        }
    }
    println!(
        "verifier: {loaded} of {} translations loaded ({} distinct programs x {} targets); \
         {not_applicable} not applicable (an ancillary field the hook lacks)",
        programs.len() * TARGETS.len(),
        programs.len(),
        TARGETS.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(programs.len() > 1100, "only {} programs", programs.len());
}

#[test]
fn kernel_test_run_equals_vm_on_every_en10mb_packet() {
    if !e2e::kernel_available("kernel_test_run_equals_vm_on_every_en10mb_packet") {
        return;
    }
    let programs: Vec<_> = corpus_programs()
        .into_iter()
        .filter(|(d, _, _)| d == "EN10MB")
        .collect();
    let caps: Vec<Capture> = captures().into_iter().filter(|c| c.dlt == 1).collect();
    let frames: Vec<(&str, usize, &[u8])> = caps
        .iter()
        .flat_map(|c| {
            c.packets
                .iter()
                .enumerate()
                .map(move |(i, p)| (c.name.as_str(), i, p.data.as_slice()))
        })
        .collect();
    let mut runs = 0u64;
    let mut skipped = 0u64;
    let mut mismatches = Vec::new();
    let env = Env::default();
    for (_, expr, prog) in &programs {
        // Kernel-only fields mean nothing to libpcap's interpreter.
        let uses_ancillary = prog
            .iter()
            .any(|i| matches!(i.decode(), Ok(Op::LdAbs { k, .. }) if (k as i32) < 0));
        let validated =
            libpcap::Validated::new(prog).expect("bpf_validate accepts libpcap's program");
        let classic = Classic::new(prog).expect("libpcap's programs are valid");
        let has_back_edges = prog.iter().enumerate().any(|(pc, i)| is_back_edge(pc, i));
        for t in targets_for(prog) {
            let insns = match translate(prog, t) {
                Ok(i) => i,
                Err(TranslateError::Unsupported { .. }) => continue,
                Err(e) => panic!("{expr:?} {}: {e}", target_name(t)),
            };
            let kernel = match load(t.hook, &insns, "corpus") {
                Ok(k) => k,
                Err(e) => panic!(
                    "{expr:?} {} does not load (see the verifier test): {}",
                    target_name(t),
                    short(&e.to_string())
                ),
            };
            let vm = Program::new(&insns).expect("decodes");
            for (file, index, frame) in &frames {
                // The kernel's test run takes whole Ethernet frames only.
                if frame.len() < 14 {
                    skipped += 1;
                    continue;
                }
                let k = match kernel.test_run(frame, 1) {
                    Ok(r) => r.retval as u64,
                    Err(e) if e.raw_os_error() == Some(libc_einval()) => {
                        // Frames larger than a page do not fit a test run.
                        skipped += 1;
                        continue;
                    }
                    Err(e) => panic!("test run: {e}"),
                };
                let v = vm.run(&vm_input(t, frame), &mut Maps::default(), &env);
                // libpcap's own interpreter on the same bytes, with `len` as
                // the hook defines it: a socket test run's skb->len starts
                // at the network header.
                let len = match t.hook {
                    Hook::Socket => frame.len() - 14,
                    _ => frame.len(),
                } as u32;
                let oracle = (!uses_ancillary).then(|| {
                    // A run that takes more backward jumps than the
                    // target's loops allow rejects (see Target::loop_turns).
                    if has_back_edges && back_edges_taken(&classic, frame, len) > t.loop_turns() {
                        return t.verdict(0) as u64;
                    }
                    t.verdict(validated.filter(frame, len)) as u64
                });
                runs += 1;
                if (v != Ok(k) || oracle.is_some_and(|o| o != k)) && mismatches.len() < 30 {
                    mismatches.push(format!(
                        "{expr:?} {} {file}#{index}: kernel {k}, vm {v:?}, libpcap {oracle:?}",
                        target_name(t)
                    ));
                }
            }
        }
    }
    println!(
        "kernel vs VM: {runs} runs ({} programs x {} frames x {} targets), {skipped} frames skipped, {} mismatches",
        programs.len(),
        frames.len(),
        TARGETS.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "mismatches:\n{}",
        mismatches.join("\n")
    );
    assert!(runs > 1_500_000, "only {runs} runs");
}

fn libc_einval() -> i32 {
    22
}

/// The last lines of a long verifier log.
fn short(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(4)..].join("\n")
}

fn is_back_edge(pc: usize, i: &Insn) -> bool {
    matches!(i.decode(), Ok(Op::Ja { k }) if ((pc as u32).wrapping_add(1).wrapping_add(k) as usize) <= pc)
}

/// How many backward jumps the classic program takes on this packet.
fn back_edges_taken(classic: &Classic, frame: &[u8], len: u32) -> u32 {
    let (_, steps) = classic.trace(frame, len);
    steps.iter().filter(|s| is_back_edge(s.pc, &s.insn)).count() as u32
}

/// The loaders' probe: `may_goto` on a kernel of 6.9 or later, the counted
/// form before.
#[test]
fn the_loaders_bound_loops_as_the_kernel_allows() {
    if !e2e::kernel_available("the_loaders_bound_loops_as_the_kernel_allows") {
        return;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap(), parts.next().unwrap());
    let expected = if version >= (6, 9) {
        Loops::MayGoto
    } else {
        Loops::Counted
    };
    assert_eq!(bpf_kernel::loops(), expected, "kernel {}", release.trim());
}
