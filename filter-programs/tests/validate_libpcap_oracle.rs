//! libpcap is the oracle for `validate(_, RuleSet::Libpcap)`: every program
//! goes through libpcap 1.10's own `bpf_validate` (through FFI), and our
//! verdict must equal it.

use e2e::gen::{self, edge};
use filter_programs::cbpf::validate::{validate, RuleSet};
use filter_programs::cbpf::Insn;
use libpcap_oracle as libpcap;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[derive(Default, Debug)]
struct Counts {
    accepted: usize,
    rejected: usize,
}

fn check(name: &str, prog: &[Insn], counts: &mut Counts) -> Result<(), String> {
    let ours = validate(prog, RuleSet::Libpcap);
    let theirs = libpcap::validate(prog);
    if theirs {
        counts.accepted += 1;
    } else {
        counts.rejected += 1;
    }
    if ours.is_ok() == theirs {
        return Ok(());
    }
    let shown: Vec<_> = prog.iter().take(8).collect();
    Err(format!(
        "{name}: bpf_validate says {theirs}, validate says {ours:?}; program ({} insns) starts \
         {shown:?}",
        prog.len()
    ))
}

#[test]
fn edge_cases_agree_with_libpcap() {
    let cases = edge::edge_cases();
    let mut counts = Counts::default();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(&c.name, &c.prog, &mut counts).err())
        .collect();
    eprintln!("libpcap oracle, {} edge cases: {counts:?}", cases.len());
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cases.len() >= 300);
    assert!(counts.accepted > 100 && counts.rejected > 50, "{counts:?}");
}

/// Cases where libpcap's rules are looser than the kernel's, pinned so
/// that a libpcap upgrade that tightens them shows up here.
#[test]
fn libpcap_specific_leniency_is_real() {
    let ret0 = Insn::new(0x06, 0, 0, 0);
    let lenient: [(&str, Vec<Insn>); 6] = [
        (
            "no length limit",
            vec![Insn::new(0x00, 0, 0, 1); 5000]
                .into_iter()
                .chain([ret0])
                .collect(),
        ),
        (
            "ja wraps around 32 bits",
            vec![Insn::new(0x05, 0, 0, u32::MAX), ret0],
        ),
        ("ret x", vec![Insn::new(0x0e, 0, 0, 0)]),
        ("ldx [k]", vec![Insn::new(0x21, 0, 0, 0), ret0]),
        ("high opcode bits", vec![Insn::new(0xff06, 0, 0, 0)]),
        (
            "lsh #32 and uninitialized M[3]",
            vec![Insn::new(0x64, 0, 0, 32), Insn::new(0x60, 0, 0, 3), ret0],
        ),
    ];
    for (name, p) in lenient {
        assert!(libpcap::validate(&p), "{name}: libpcap now rejects it");
        assert_eq!(validate(&p, RuleSet::Libpcap), Ok(()), "{name}");
        assert!(
            validate(&p, RuleSet::Kernel).is_err(),
            "{name}: the kernel rejects it"
        );
    }
}

#[test]
fn seeded_random_programs_agree_with_libpcap() {
    let mut programs = gen::sample(&gen::valid_program(), 200, 0x1bca_0001);
    programs.extend(gen::sample(&gen::mutated_program(), 400, 0x1bca_0002));
    let mut counts = Counts::default();
    let failures: Vec<String> = programs
        .iter()
        .enumerate()
        .filter_map(|(n, p)| check(&format!("random #{n}"), p, &mut counts).err())
        .collect();
    eprintln!(
        "libpcap oracle, {} seeded random programs: {counts:?}",
        programs.len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let total = programs.len();
    assert!(
        counts.accepted * 4 > total && counts.rejected * 10 > total,
        "{counts:?}"
    );
}

#[test]
fn generated_valid_programs_pass_bpf_validate() {
    for (n, p) in gen::sample(&gen::valid_program(), 300, 0x1bca_0003)
        .iter()
        .enumerate()
    {
        assert!(libpcap::validate(p), "valid_program #{n}: {p:?}");
    }
}

#[test]
fn proptest_programs_agree_with_libpcap() {
    let mut runner = TestRunner::new(Config {
        cases: 1024,
        failure_persistence: None,
        ..Config::default()
    });
    let counts = std::cell::RefCell::new(Counts::default());
    let result = runner.run(&gen::program(), |p| {
        check("proptest", &p, &mut counts.borrow_mut()).map_err(TestCaseError::fail)
    });
    eprintln!("libpcap oracle, proptest: {:?}", counts.borrow());
    if let Err(e) = result {
        panic!("{e}");
    }
}
