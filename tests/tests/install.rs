//! `./x install` into a scratch DESTDIR, with the binaries this test run
//! built: every file lands where its consumer looks, the man pages render
//! without a warning, each shell parses its completions and bash's
//! complete filterd's commands and flags, the unit verifies and its
//! hardening scores as the README says, and an existing config is never
//! overwritten. The tools are the ones `./x test` installs (groff, zsh,
//! fish, systemd's systemd-analyze).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("filterd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    Scratch(d)
}

fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{name} is missing: ./x test installs it");
    Command::new(name)
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn install(destdir: &Path) {
    let from = e2e::bin("filterd").parent().expect("bin dir").to_path_buf();
    let out = Command::new(e2e::repo_root().join("x"))
        .arg("install")
        .arg("--destdir")
        .arg(destdir)
        .arg("--from")
        .arg(from)
        .output()
        .expect("./x install");
    ok(out, "./x install");
}

/// What bash completes for `words` (the last one being completed).
fn bash_completes(script: &Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let array = words
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let prog = format!(
        "source {}; COMP_WORDS=({array}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
         _{} {} '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words.len() - 1,
        line.len(),
        words[0].replace('-', "__"),
        words[0],
        words[words.len() - 1],
        words[words.len() - 2],
    );
    ok(
        tool("bash").args(["-c", &prog]).output().expect("bash"),
        &prog,
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn x_install_puts_each_file_where_its_consumer_looks() {
    let dir = scratch("install");
    let dest = dir.0.join("root");
    install(&dest);
    let usr = dest.join("usr/local");
    for bin in ["filterd", "pcap-replay"] {
        let m = std::fs::metadata(usr.join("bin").join(bin)).expect(bin);
        assert_eq!(m.permissions().mode() & 0o777, 0o755, "{bin}");
    }
    let installed = ok(
        Command::new(usr.join("bin/filterd"))
            .arg("--version")
            .output()
            .unwrap(),
        "filterd --version",
    );
    assert!(installed.starts_with("filterd "), "{installed}");

    // Man pages: one per command, each rendering without a warning.
    let man1 = usr.join("share/man/man1");
    let mut pages: Vec<String> = std::fs::read_dir(&man1)
        .expect("man1")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for want in [
        "filterd.1",
        "filterd-run.1",
        "filterd-compile.1",
        "filterd-attach-xdp.1",
        "filterd-completions.1",
        "pcap-replay.1",
    ] {
        assert!(pages.iter().any(|p| p == want), "{want} not in {pages:?}");
    }
    for p in &pages {
        let out = tool("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(man1.join(p))
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let run = std::fs::read_to_string(man1.join("filterd-run.1")).unwrap();
    assert!(
        run.contains("\\-\\-keep") && run.contains("/etc/filterd/filterd.toml"),
        "{run}"
    );

    // Completions: where bash-completion, zsh and fish look; each parses,
    // and bash's complete commands and a command's flags.
    let share = usr.join("share");
    for t in ["filterd", "pcap-replay"] {
        let zsh = share.join(format!("zsh/site-functions/_{t}"));
        ok(tool("zsh").arg("-n").arg(&zsh).output().unwrap(), "zsh -n");
        let fish = share.join(format!("fish/vendor_completions.d/{t}.fish"));
        ok(
            tool("fish")
                .arg("--no-execute")
                .arg(&fish)
                .output()
                .unwrap(),
            "fish -n",
        );
    }
    let bash = share.join("bash-completion/completions/filterd");
    let got = bash_completes(&bash, &["filterd", "att"]);
    assert_eq!(got, ["attach"], "filterd att<TAB>");
    let got = bash_completes(&bash, &["filterd", "run", "--k"]);
    assert_eq!(got, ["--keep"], "filterd run --k<TAB>");
    let got = bash_completes(&bash, &["filterd", "completions", "z"]);
    assert_eq!(got, ["zsh"], "filterd completions z<TAB>");
    let replay = share.join("bash-completion/completions/pcap-replay");
    let got = bash_completes(&replay, &["pcap-replay", "--engi"]);
    assert_eq!(got, ["--engines"], "pcap-replay --engi<TAB>");

    // The unit runs the installed binary and verifies (with the path it
    // will have once DESTDIR is the root).
    let unit = std::fs::read_to_string(dest.join("etc/systemd/system/filterd.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/filterd run"),
        "{unit}"
    );
    let verifiable = dir.0.join("filterd.service");
    std::fs::write(
        &verifiable,
        unit.replace(
            "/usr/local/bin/filterd",
            &usr.join("bin/filterd").display().to_string(),
        ),
    )
    .unwrap();
    ok(
        tool("systemd-analyze")
            .arg("verify")
            .arg(&verifiable)
            .output()
            .unwrap(),
        "systemd-analyze verify",
    );

    // The example config, private, and never overwritten.
    let config = dest.join("etc/filterd/filterd.toml");
    let example = std::fs::read_to_string(e2e::repo_root().join("configs/example.toml")).unwrap();
    assert_eq!(std::fs::read_to_string(&config).unwrap(), example);
    let m = std::fs::metadata(&config).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    ok(
        Command::new(usr.join("bin/filterd"))
            .arg("check")
            .arg(&config)
            .output()
            .unwrap(),
        "filterd check on the installed example",
    );
    std::fs::write(&config, "# mine\n").unwrap();
    install(&dest);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "# mine\n");
}

/// The unit's hardening: the directives the README lists, and the exposure
/// score it reports (`systemd-analyze security`, offline).
#[test]
fn the_unit_is_hardened_as_documented() {
    let unit = e2e::repo_root().join("configs/filterd.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for d in [
        "Type=notify",
        "ExecReload=/usr/local/bin/filterd reload --pid $MAINPID",
        "SystemCallFilter=@system-service bpf",
        "ProtectKernelTunables=yes",
        "ProtectProc=invisible",
        "IPAddressDeny=any",
        "IPAddressAllow=localhost",
        "CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_PERFMON",
    ] {
        assert!(text.lines().any(|l| l == d), "{d} missing from the unit");
    }
    let out = tool("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let score: f64 = report
        .lines()
        .find_map(|l| l.split("filterd.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in {report}"));
    let readme = std::fs::read_to_string(e2e::repo_root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("exposure level {score:.1}")),
        "the README does not give the unit's score {score:.1}"
    );
    assert!(score <= 2.0, "exposure {score}: {report}");
}
