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

/// tcpdump's `tests` directory (its test captures, `*.pcap*`), if a copy is
/// on this machine: `TCPDUMP_TESTS_DIR`, or a git mirror of
/// the-tcpdump-group/tcpdump under `/work/.mirror/` unpacked into a
/// temporary directory (remove it with [`remove_tcpdump_tests`]). Nothing
/// of tcpdump's is committed here.
pub fn tcpdump_tests() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TCPDUMP_TESTS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let mirror = std::fs::read_dir("/work/.mirror")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("the-tcpdump-group+tcpdump"))
        })?;
    let git_dir = [mirror.join("repo"), mirror.clone()]
        .into_iter()
        .find(|d| d.join("HEAD").is_file())?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let out = std::env::temp_dir().join(format!("tcpdump-tests-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&out).ok()?;
    let archive = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&git_dir)
        .args(["archive", "--format=tar", "HEAD", "tests"])
        .output()
        .ok()?;
    if !archive.status.success() {
        return None;
    }
    let mut tar = std::process::Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    tar.stdin.take()?.write_all(&archive.stdout).ok()?;
    tar.wait().ok()?.success().then(|| out.join("tests"))
}

/// Removes a copy [`tcpdump_tests`] unpacked (not a `TCPDUMP_TESTS_DIR`).
pub fn remove_tcpdump_tests(dir: &Path) {
    if std::env::var_os("TCPDUMP_TESTS_DIR").is_none() && dir.starts_with(std::env::temp_dir()) {
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

pub mod bench;
pub mod corpus;
pub mod frames;
pub mod gen;
pub mod mixed;
pub mod net;
pub mod rng;
