//! The workspace's layout rules (docs/ARCHITECTURE.md), checked against
//! what Cargo resolves and what the sources say, so that a dependency that
//! breaks them fails here rather than in review.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(e2e::repo_root());
    c
}

/// The packages `pkg` depends on through normal dependencies, transitively,
/// with features resolved as when `pkg` alone is built.
fn normal_deps(pkg: &str) -> BTreeSet<String> {
    let out = cargo()
        .args([
            "tree",
            "--offline",
            "-p",
            pkg,
            "-e",
            "normal",
            "--prefix",
            "none",
            "-f",
            "{p}",
        ])
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {pkg}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != pkg)
        .map(str::to_string)
        .collect()
}

fn metadata() -> serde_json::Value {
    let out = cargo()
        .args([
            "metadata",
            "--offline",
            "--format-version",
            "1",
            "--no-deps",
        ])
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

#[test]
fn applications_do_not_depend_on_each_other() {
    assert!(!normal_deps("pcap-replay").contains("filterd"));
    assert!(!normal_deps("filterd").contains("pcap-replay"));
}

/// The binaries carry no dependency they do not use: `anyhow` serves only
/// filterd's example, the `pcap` crate only tests and benches (the oracle
/// goes through libpcap-oracle's FFI), and the workspace names `pnet_packet`
/// (packet-summary's decoder), not the whole `pnet`.
#[test]
fn binaries_carry_no_unused_dependency() {
    for app in ["pcap-replay", "filterd"] {
        let deps = normal_deps(app);
        for unused in ["anyhow", "pcap", "pnet"] {
            assert!(!deps.contains(unused), "{app} depends on {unused}");
        }
    }
    let manifest = std::fs::read_to_string(e2e::repo_root().join("Cargo.toml")).unwrap();
    assert!(
        !manifest.lines().any(|l| l.starts_with("pnet ")),
        "a `pnet` workspace entry that nothing uses"
    );
}

/// Both applications depend on cli-output: a workspace crate under it
/// would tie them together or make a pure crate reach the file system.
#[test]
fn cli_output_depends_on_no_workspace_crate() {
    let deps = normal_deps("cli-output");
    for c in [
        "pcap-replay",
        "filterd",
        "capfile",
        "packet-summary",
        "libpcap-oracle",
        "bpf-kernel",
        "filter-programs",
    ] {
        assert!(!deps.contains(c), "cli-output depends on {c}: {deps:?}");
    }
    for app in ["pcap-replay", "filterd"] {
        assert!(normal_deps(app).contains("cli-output"), "{app}");
    }
}

#[test]
fn the_compiler_depends_on_no_syscall_crate() {
    let deps = normal_deps("filter-programs");
    let syscall_crates = [
        "libc",
        "rustix",
        "nix",
        "aya",
        "bpf-kernel",
        "filterd",
        "pcap",
        "libpcap-oracle",
    ];
    for c in syscall_crates {
        assert!(
            !deps.contains(c),
            "filter-programs depends on {c}: {deps:?}"
        );
    }
}

#[test]
fn filterd_needs_no_libpcap() {
    let deps = normal_deps("filterd");
    assert!(
        !deps.contains("pcap") && !deps.contains("libpcap-oracle"),
        "{deps:?}"
    );
}

#[test]
fn only_the_oracle_links_libpcap() {
    let meta = metadata();
    for pkg in meta["packages"].as_array().unwrap() {
        let name = pkg["name"].as_str().unwrap();
        for dep in pkg["dependencies"].as_array().unwrap() {
            let normal = dep["kind"].is_null();
            // e2e and fuzz-checks are the tests' own support libraries
            // (fuzz-checks reads captures with libpcap as the oracle).
            if dep["name"] == "pcap" && normal {
                assert!(
                    ["libpcap-oracle", "e2e", "fuzz-checks"].contains(&name),
                    "{name} has the pcap crate as a normal dependency"
                );
            }
        }
    }
}

#[test]
fn tests_are_discovered_not_registered() {
    for pkg in metadata()["packages"].as_array().unwrap() {
        let manifest = std::fs::read_to_string(pkg["manifest_path"].as_str().unwrap()).unwrap();
        assert!(
            !manifest.contains("[[test]]"),
            "{} registers tests by hand",
            pkg["name"]
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The pcap magic numbers (both byte orders, micro and nano) and the pcapng
/// section header's block type and byte-order magic.
const MAGICS: [&str; 6] = [
    "a1b2c3d4", "d4c3b2a1", "a1b23c4d", "4d3cb2a1", "0a0d0d0a", "1a2b3c4d",
];

#[test]
fn only_capfile_knows_the_capture_magic_numbers() {
    let root = e2e::repo_root();
    let capfile = root.join("pcap-replay/capfile");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() > 100,
        "found only {} Rust files under {}",
        files.len(),
        root.display()
    );
    let this = Path::new(file!()).file_name().unwrap();
    for f in files
        .iter()
        .filter(|f| !f.starts_with(&capfile) && f.file_name() != Some(this))
    {
        let text = std::fs::read_to_string(f)
            .unwrap()
            .to_ascii_lowercase()
            .replace('_', "");
        for m in MAGICS {
            assert!(
                !text.contains(m),
                "{} holds the capture magic {m}",
                f.display()
            );
        }
    }
}

/// DEVELOPERS.md fixes the top level: a shared crate nests inside one of
/// these folders (as `pcap-replay/capfile` and `pcap-replay/cli-output` do).
#[test]
fn the_top_level_is_fixed() {
    let allowed = [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "rustfmt.toml",
        "x",
        "filter-programs",
        "filterd",
        "pcap-replay",
        "tests",
        "configs",
        "docs",
        "target",
    ];
    let root = e2e::repo_root();
    for entry in std::fs::read_dir(&root).expect("the repository root") {
        let name = entry.expect("a directory entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            name.starts_with('.') || allowed.contains(&name.as_ref()),
            "{name} at the top level of {}: put it inside one of {allowed:?}",
            root.display()
        );
    }
}
