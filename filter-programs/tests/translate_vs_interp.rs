//! Random classic programs x random packets: for every target, our VM's
//! verdict on the translation equals the verdict our reference interpreter
//! gives the classic program, mapped through the target's actions (the
//! property is `fuzz_checks::translate::check`, which the `cbpf_translate`
//! fuzz target drives too).
//!
//! Cases: 20,000 by default; `FILTERD_PROPTEST_CASES=N` for more.

use e2e::gen::{packet, valid_program};
use filter_programs::cbpf::Insn;
use filter_programs::translate::Actions;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn cases() -> u32 {
    std::env::var("FILTERD_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn check(prog: &[Insn], frame: &[u8]) -> Result<bool, TestCaseError> {
    fuzz_checks::translate::check(prog, frame).map_err(TestCaseError::fail)
}

#[test]
fn translation_equals_interpreter_on_random_programs() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let checked = std::cell::Cell::new(0u32);
    runner
        .run(&(valid_program(), packet()), |(prog, (frame, _wire))| {
            if check(&prog, &frame)? {
                checked.set(checked.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    println!(
        "translation vs interpreter: {} cases checked of {}",
        checked.get(),
        cases()
    );
    assert!(
        checked.get() > cases() * 9 / 10,
        "too many cases skipped: {}",
        checked.get()
    );
    let _ = Actions::XDP;
}
