//! Shared support for every test suite in the workspace: where the shared
//! corpus is, whether kernel tests may run, and where the built binaries are.
//!
//! Each crate takes this as a dev-dependency, so the rules (fail loudly when
//! the corpus is missing; skip kernel tests only when allowed) live once.
//!
//! This crate's own tests (`tests/tests/`) are the end-to-end ones: those
//! that run the built binaries, or several crates together with the kernel.
//! A test of one crate lives in that crate's `tests/`.

use std::path::{Path, PathBuf};

/// The repository root (the parent of this crate's folder).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `../shared/corpus` beside the repository root. Panics with a clear
/// message when it is missing: corpus tests never skip.
pub fn corpus_dir() -> PathBuf {
    let dir = repo_root().join("../shared/corpus");
    if !dir.join("README.md").is_file() {
        panic!(
            "the shared test corpus is missing: expected it at {} (../shared/corpus beside the \
             repository root). Corpus tests never skip; lay out ../shared before running them.",
            dir.display()
        );
    }
    dir.canonicalize().unwrap_or(dir)
}

/// True when tests that need root and the kernel's bpf() may run.
///
/// Not root: prints why the test is skipped and returns false, unless
/// `FILTERD_REQUIRE_KERNEL=1`, under which a skip is a failure (panic).
pub fn kernel_available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { geteuid() };
    if euid == 0 {
        return true;
    }
    let reason = format!("{test}: skipped, needs root for bpf() and sockets (euid {euid})");
    if std::env::var("FILTERD_REQUIRE_KERNEL").as_deref() == Ok("1") {
        panic!("{reason}; FILTERD_REQUIRE_KERNEL=1 makes this a failure");
    }
    eprintln!("{reason}");
    false
}

extern "C" {
    fn geteuid() -> u32;
}

/// Path of a workspace binary (`pcap-replay`, `filterd`) built by cargo
/// into the same target directory as the running test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join(name);
    if !path.is_file() {
        panic!(
            "{} is not built; run `cargo build --workspace --bins` first (./x test does)",
            path.display()
        );
    }
    path
}

pub mod bench;
pub mod corpus;
pub mod frames;
pub mod gen;
pub mod net;
pub mod rng;
