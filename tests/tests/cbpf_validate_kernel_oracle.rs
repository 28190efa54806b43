//! The kernel is the oracle for `validate(_, RuleSet::Kernel)`: every
//! program here is attached with SO_ATTACH_FILTER to a fresh UDP socket,
//! and our verdict must equal the kernel's.
//!
//! Attaching a classic filter to one's own socket needs no privileges, so
//! this test never skips (it runs as any user).

use std::net::UdpSocket;
use std::os::fd::AsFd;

use bpf_kernel::socket::attach_classic;
use e2e::gen::{self, edge};
use filter_programs::cbpf::validate::{validate, RuleSet};
use filter_programs::cbpf::Insn;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[derive(Default, Debug)]
struct Counts {
    accepted: usize,
    rejected: usize,
    /// Passed every check, then refused because the eBPF translation is
    /// larger than the socket's option memory (`net.core.optmem_max`).
    too_big: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum Kernel {
    Accepts,
    Rejects,
    /// ENOMEM: the checks passed; only the memory charge failed.
    AcceptsButTooBig,
}

fn kernel_verdict(prog: &[Insn]) -> Kernel {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket on loopback");
    match attach_classic(sock.as_fd(), prog) {
        Ok(()) => Kernel::Accepts,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Kernel::Rejects,
        Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => Kernel::AcceptsButTooBig,
        Err(e) => panic!("SO_ATTACH_FILTER failed unexpectedly: {e} for {prog:?}"),
    }
}

/// Compares one program; returns a description of the disagreement.
fn check(name: &str, prog: &[Insn], counts: &mut Counts) -> Result<(), String> {
    let ours = validate(prog, RuleSet::Kernel);
    let kernel = kernel_verdict(prog);
    match kernel {
        Kernel::Accepts => counts.accepted += 1,
        Kernel::Rejects => counts.rejected += 1,
        Kernel::AcceptsButTooBig => counts.too_big += 1,
    }
    let kernel_ok = kernel != Kernel::Rejects;
    if ours.is_ok() == kernel_ok {
        return Ok(());
    }
    let shown: Vec<_> = prog.iter().take(8).collect();
    Err(format!(
        "{name}: kernel says {kernel:?}, validate says {ours:?}; program ({} insns) starts {shown:?}",
        prog.len()
    ))
}

#[test]
fn edge_cases_agree_with_the_kernel() {
    let cases = edge::edge_cases();
    let mut counts = Counts::default();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(&c.name, &c.prog, &mut counts).err())
        .collect();
    eprintln!("kernel oracle, {} edge cases: {counts:?}", cases.len());
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases.len() >= 300);
    // Both sides of the rules are exercised, including the memory limit.
    assert!(
        counts.accepted > 100 && counts.rejected > 100 && counts.too_big > 0,
        "{counts:?}"
    );
}

#[test]
fn seeded_random_programs_agree_with_the_kernel() {
    let mut programs = gen::sample(&gen::valid_program(), 200, 0x5eed_0001);
    programs.extend(gen::sample(&gen::mutated_program(), 400, 0x5eed_0002));
    let mut counts = Counts::default();
    let failures: Vec<String> = programs
        .iter()
        .enumerate()
        .filter_map(|(n, p)| check(&format!("random #{n}"), p, &mut counts).err())
        .collect();
    eprintln!(
        "kernel oracle, {} seeded random programs: {counts:?}",
        programs.len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // "Roughly half valid": neither side may be starved.
    let total = programs.len();
    assert!(
        counts.accepted * 4 > total && counts.rejected * 4 > total,
        "{counts:?}"
    );
}

#[test]
fn generated_valid_programs_are_all_accepted() {
    for (n, p) in gen::sample(&gen::valid_program(), 300, 0x5eed_0003)
        .iter()
        .enumerate()
    {
        assert_eq!(
            kernel_verdict(p),
            Kernel::Accepts,
            "valid_program #{n}: {p:?}"
        );
        assert_eq!(validate(p, RuleSet::Kernel), Ok(()), "valid_program #{n}");
    }
}

#[test]
fn proptest_programs_agree_with_the_kernel() {
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });
    let counts = std::cell::RefCell::new(Counts::default());
    let result = runner.run(&gen::program(), |p| {
        check("proptest", &p, &mut counts.borrow_mut()).map_err(TestCaseError::fail)
    });
    eprintln!("kernel oracle, proptest: {:?}", counts.borrow());
    if let Err(e) = result {
        panic!("{e}");
    }
}
