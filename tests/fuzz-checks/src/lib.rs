//! What each fuzz target checks, one module a target, each a function of
//! the input bytes that returns `Err` (or panics) when a property breaks.
//!
//! The fuzz targets in `tests/fuzz` are one line over these, so the same
//! checks replay every committed corpus file in `cargo test`
//! (`tests/tests/fuzz_corpora.rs`) without a fuzzing engine, and a crash
//! the fuzzer finds becomes a regression test by adding its input to the
//! target's corpus directory.

pub mod capture;
pub mod cbpf_text;
pub mod ebpf_vm;
pub mod elf;
pub mod expr;
pub mod frames;
pub mod ruleset;
pub mod translate;

/// A property that broke: what, on which input.
pub type Outcome = Result<(), String>;

/// A target's check.
pub type Check = fn(&[u8]) -> Outcome;

/// The targets by name (the file names under `tests/fuzz/fuzz_targets`),
/// with their checks.
pub const TARGETS: &[(&str, Check)] = &[
    ("expr_compile", expr::check),
    ("cbpf_text", cbpf_text::check),
    ("capture_read", capture::check),
    ("elf_read", elf::check),
    ("ebpf_vm", ebpf_vm::check),
    ("cbpf_translate", translate::check_bytes),
    ("ruleset_toml", ruleset::check),
];

/// The check of the target named `name`.
pub fn target(name: &str) -> Option<Check> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Runs a check and panics with its message, as a fuzz target must for
/// libFuzzer to keep the input.
pub fn run(check: Check, data: &[u8]) {
    if let Err(why) = check(data) {
        panic!("property broken: {why}");
    }
}
