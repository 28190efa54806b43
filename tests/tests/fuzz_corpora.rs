//! Replays every committed fuzz corpus (`tests/fuzz/corpus/<target>/`)
//! through its target's check, as plain tests: no fuzzing engine, so CI
//! checks on every run what the fuzzer found and kept, the inputs of
//! crashes it found (kept as regressions) included. See docs/FUZZING.md.

use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    e2e::repo_root().join("tests/fuzz/corpus").join(target)
}

#[test]
fn every_target_has_a_fuzz_binary_and_a_corpus() {
    let dir = e2e::repo_root().join("tests/fuzz/fuzz_targets");
    let mut binaries: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    binaries.sort();
    let mut checks: Vec<String> = fuzz_checks::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    checks.sort();
    assert_eq!(
        binaries, checks,
        "tests/fuzz/fuzz_targets and fuzz_checks::TARGETS"
    );
    for name in checks {
        let n = std::fs::read_dir(corpus(&name)).map_or(0, |d| d.count());
        assert!(n > 0, "{name}: empty corpus at {}", corpus(&name).display());
    }
}

fn replay(target: &str) {
    let check = fuzz_checks::target(target).expect("a known target");
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus(target))
        .unwrap_or_else(|e| panic!("{}: {e}", corpus(target).display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut broken = vec![];
    for f in &files {
        // A fuzzer running on the same corpus replaces inputs as it
        // shrinks them; one gone since the listing is no failure.
        let data = match std::fs::read(f) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", f.display()),
        };
        let outcome = std::panic::catch_unwind(|| check(&data));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(why)) => broken.push(format!("{}: {why}", f.display())),
            Err(_) => broken.push(format!("{}: panicked", f.display())),
        }
    }
    eprintln!("{target}: replayed {} inputs", files.len());
    assert!(
        broken.is_empty(),
        "{target}: {} of {} corpus inputs break the property:\n{}",
        broken.len(),
        files.len(),
        broken.join("\n")
    );
}

#[test]
fn expr_compile() {
    replay("expr_compile");
}

#[test]
fn cbpf_text() {
    replay("cbpf_text");
}

#[test]
fn capture_read() {
    replay("capture_read");
}

#[test]
fn elf_read() {
    replay("elf_read");
}

#[test]
fn ebpf_vm() {
    replay("ebpf_vm");
}

#[test]
fn cbpf_translate() {
    replay("cbpf_translate");
}

#[test]
fn ruleset_toml() {
    replay("ruleset_toml");
}
