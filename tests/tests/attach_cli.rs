//! `filterd attach xdp|tc`, `detach`, `status` through the binary, run in
//! a test namespace with `nsenter --net=` (which, unlike `ip netns exec`,
//! keeps the host's /sys, so the pins stay where the test can see them).
//! Every failure is checked for its exit code and message, and for leaving
//! nothing behind: no program attached, no pin.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::net::Netns;
use filter_programs::ebpf::asm::Asm;
use filter_programs::ebpf::insn::{Operand, Reg};
use filter_programs::elf::{self, Object};
use filter_programs::Hook;
use serde_json::Value;

/// The namespace and its filterd pin scope, removed on drop.
struct Env {
    ns: Netns,
    scope: PathBuf,
    tmp: PathBuf,
}

impl Env {
    fn new(tag: &str) -> Env {
        let ns = Netns::with_veth(tag);
        let ino = std::fs::metadata(ns.path()).expect("netns file").ino();
        let tmp = std::env::temp_dir().join(format!("filterd-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("tmp");
        Env {
            ns,
            scope: PathBuf::from(format!("/sys/fs/bpf/filterd/netns-{ino}")),
            tmp,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(&[], args)
    }

    /// `nsenter --net=<ns> [wrapper..] filterd args..`
    fn run_with(&self, wrapper: &[&str], args: &[&str]) -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.ns.path()));
        cmd.args(wrapper).arg(e2e::bin("filterd")).args(args);
        cmd.output().expect("run filterd")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "filterd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a failing command; returns stderr after checking the code.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "filterd {args:?}: {err}");
        err
    }

    fn status(&self) -> Vec<Value> {
        let v: Value = serde_json::from_str(&self.ok(&["status", "--json"])).expect("status JSON");
        v["attached"].as_array().expect("attached list").clone()
    }

    /// Every pin file under this namespace's scope.
    fn pins(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.scope, &mut out);
        out.sort();
        out
    }

    fn assert_clean(&self, after: &str) {
        assert_eq!(
            self.status(),
            Vec::<Value>::new(),
            "{after}: something is still attached"
        );
        assert_eq!(
            self.pins(),
            Vec::<PathBuf>::new(),
            "{after}: pins left behind"
        );
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let p = self.tmp.join(name);
        std::fs::write(&p, bytes).expect("write");
        p.display().to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scope);
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

fn prog_tag(id: u64) -> Option<String> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    words.find(|w| *w == "tag")?;
    words.next().map(str::to_string)
}

/// `r0 = r2; exit`: r2 is never written, which the verifier refuses.
fn bad_object(hook: Hook) -> Vec<u8> {
    let mut a = Asm::new();
    a.mov64(Reg::R0, Operand::Reg(Reg::R2));
    a.exit();
    let insns = a.assemble().expect("assembles");
    elf::write(&Object {
        hook,
        name: "bad".into(),
        insns,
        maps: vec![],
        map_refs: vec![],
        license: "GPL".into(),
    })
    .expect("object")
}

fn one(list: &[Value], hook: &str) -> Value {
    let found: Vec<&Value> = list.iter().filter(|v| v["hook"] == hook).collect();
    assert_eq!(found.len(), 1, "{hook} in {list:?}");
    found[0].clone()
}

#[test]
fn cli_xdp_attach_status_replace_detach() {
    if !e2e::kernel_available("cli_xdp_attach_status_replace_detach") {
        return;
    }
    let env = Env::new("clixdp");
    let out = env.ok(&[
        "attach", "xdp", "-i", "v1", "--mode", "skb", "tcp", "port", "80",
    ]);
    assert!(out.starts_with("attached XDP program"), "{out}");
    let first = one(&env.status(), "xdp");
    assert_eq!(
        (first["interface"].as_str(), first["mode"].as_str()),
        (Some("v1"), Some("skb"))
    );
    assert_eq!(
        (first["name"].as_str(), first["filterd"].as_bool()),
        (Some("filter"), Some(true))
    );
    let id1 = first["prog_id"].as_u64().expect("prog id");
    assert_eq!(
        prog_tag(id1).as_deref(),
        first["tag"].as_str(),
        "tag as bpftool shows it"
    );
    let dir = env.scope.join("v1/xdp");
    assert_eq!(first["pin"].as_str(), Some(dir.to_str().expect("utf-8")));
    assert_eq!(env.pins(), vec![dir.join("link"), dir.join("prog")]);

    // Replace with an ELF from `filterd compile`, then with a classic
    // program: the same pinned link, a new program each time.
    let obj = env.tmp.join("udp.o");
    env.ok(&[
        "compile",
        "--target",
        "xdp",
        "-o",
        obj.to_str().expect("utf-8"),
        "udp",
    ]);
    let out = env.ok(&[
        "attach",
        "xdp",
        "-i",
        "v1",
        "--ebpf",
        obj.to_str().expect("utf-8"),
    ]);
    assert!(
        out.starts_with(&format!("replaced program {id1} with XDP program")),
        "{out}"
    );
    let id2 = one(&env.status(), "xdp")["prog_id"].as_u64().expect("id");
    assert_ne!(id1, id2);
    assert_eq!(prog_tag(id1), None, "the replaced program is unloaded");
    let ddd = env.file("icmp.ddd", env.ok(&["compile", "-ddd", "icmp"]).as_bytes());
    let out = env.ok(&["attach", "xdp", "-i", "v1", "--cbpf", &ddd]);
    assert!(out.starts_with(&format!("replaced program {id2}")), "{out}");
    let third = one(&env.status(), "xdp");
    assert_eq!(
        third["mode"].as_str(),
        Some("skb"),
        "a link update keeps the mode"
    );
    assert_eq!(env.pins(), vec![dir.join("link"), dir.join("prog")]);
    // Changing the mode needs a detach: refused, nothing changes.
    let err = env.fails(2, &["attach", "xdp", "-i", "v1", "--mode", "drv", "tcp"]);
    assert!(err.contains("cannot change the mode"), "{err}");
    assert_eq!(one(&env.status(), "xdp")["prog_id"], third["prog_id"]);

    let out = env.ok(&["detach", "xdp", "-i", "v1"]);
    assert!(out.starts_with("detached XDP program"), "{out}");
    env.assert_clean("after detach");
    let err = env.fails(2, &["detach", "xdp", "-i", "v1"]);
    assert!(err.contains("no filterd XDP link pinned"), "{err}");
}

#[test]
fn cli_tc_attach_status_replace_detach() {
    if !e2e::kernel_available("cli_tc_attach_status_replace_detach") {
        return;
    }
    let env = Env::new("clitc");
    env.ok(&["attach", "tc", "-i", "v1", "--direction", "ingress", "udp"]);
    env.ok(&["attach", "tc", "-i", "v1", "--direction", "egress", "arp"]);
    let list = env.status();
    let (ing, eg) = (one(&list, "tc-ingress"), one(&list, "tc-egress"));
    for v in [&ing, &eg] {
        assert_eq!(v["mode"].as_str(), Some("direct-action"), "{v}");
        assert_eq!(
            (v["priority"].as_u64(), v["handle"].as_u64()),
            (Some(1), Some(0xfd)),
            "{v}"
        );
        assert_eq!(v["filterd"].as_bool(), Some(true), "{v}");
    }
    let out = env.ok(&["attach", "tc", "-i", "v1", "--direction", "ingress", "tcp"]);
    assert!(
        out.starts_with(&format!(
            "replaced program {} with tc ingress",
            ing["prog_id"]
        )),
        "{out}"
    );
    let list = env.status();
    assert_eq!(list.len(), 2, "a replace adds no filter: {list:?}");
    assert_ne!(one(&list, "tc-ingress")["prog_id"], ing["prog_id"]);
    let has_clsact = || {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", env.ns.path()))
            .args(["tc", "qdisc", "show", "dev", "v1"])
            .output()
            .expect("tc qdisc show");
        assert!(out.status.success(), "tc qdisc show failed");
        String::from_utf8_lossy(&out.stdout).contains("clsact")
    };
    assert!(has_clsact(), "attach added the clsact qdisc");
    env.ok(&["detach", "tc", "-i", "v1", "--direction", "ingress"]);
    assert!(has_clsact(), "the egress filter still needs the qdisc");
    env.ok(&["detach", "tc", "-i", "v1", "--direction", "egress"]);
    assert!(!has_clsact(), "no filter left: the qdisc goes too");
    env.assert_clean("after detaching both directions");
    let err = env.fails(2, &["detach", "tc", "-i", "v1", "--direction", "egress"]);
    assert!(err.contains("no filterd tc egress program"), "{err}");
}

#[test]
fn cli_failures_are_clear_and_leave_nothing_attached() {
    if !e2e::kernel_available("cli_failures_are_clear_and_leave_nothing_attached") {
        return;
    }
    let env = Env::new("clifail");
    let err = env.fails(2, &["attach", "xdp", "-i", "nope0", "tcp"]);
    assert!(
        err.contains("no network interface named \"nope0\""),
        "{err}"
    );
    let err = env.fails(
        2,
        &[
            "attach",
            "tc",
            "-i",
            "nope0",
            "--direction",
            "ingress",
            "tcp",
        ],
    );
    assert!(
        err.contains("no network interface named \"nope0\""),
        "{err}"
    );
    let err = env.fails(1, &["attach", "xdp", "-i", "v1", "tcp", "port"]);
    assert!(err.contains("syntax error"), "{err}");

    let bad = env.file("bad.o", &bad_object(Hook::Xdp));
    let err = env.fails(1, &["attach", "xdp", "-i", "v1", "--ebpf", &bad]);
    assert!(
        err.contains("the kernel verifier rejected the program"),
        "{err}"
    );
    let marked: Vec<&str> = err.lines().filter(|l| l.starts_with(">>")).collect();
    assert_eq!(marked.len(), 1, "one instruction marked: {err}");
    assert!(
        marked[0].contains("r0 = r2") && marked[0].contains("R2 !read_ok"),
        "{err}"
    );
    assert!(err.contains("kernel verifier log:"), "{err}");
    let bad_tc = env.file("bad_tc.o", &bad_object(Hook::Tc));
    let err = env.fails(
        1,
        &[
            "attach",
            "tc",
            "-i",
            "v1",
            "--direction",
            "ingress",
            "--ebpf",
            &bad_tc,
        ],
    );
    assert!(err.contains("R2 !read_ok"), "{err}");
    let err = env.fails(
        1,
        &[
            "attach",
            "tc",
            "-i",
            "v1",
            "--direction",
            "ingress",
            "--ebpf",
            &bad,
        ],
    );
    assert!(err.contains("no `classifier` section"), "{err}");

    env.ns.ip(&["link", "set", "lo", "up"]);
    let err = env.fails(2, &["attach", "xdp", "-i", "lo", "--mode", "drv", "tcp"]);
    assert!(
        err.contains("lo: the driver does not support XDP in drv mode"),
        "{err}"
    );
    let err = env.fails(2, &["attach", "xdp", "-i", "v1", "--mode", "hw", "tcp"]);
    assert!(
        err.contains("v1: the driver does not support XDP in hw mode"),
        "{err}"
    );

    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ];
    for args in [
        &["attach", "xdp", "-i", "v1", "tcp"][..],
        &["attach", "tc", "-i", "v1", "--direction", "egress", "tcp"],
    ] {
        let out = env.run_with(&nobody, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} as nobody: {err}");
        assert!(err.contains("needs root, or CAP_BPF"), "{err}");
    }
    env.assert_clean("after the failures");

    // A failed replace keeps the program that was there, and its pins.
    env.ok(&["attach", "xdp", "-i", "v1", "tcp"]);
    let before = env.status();
    let pins = env.pins();
    env.fails(1, &["attach", "xdp", "-i", "v1", "--ebpf", &bad]);
    env.fails(2, &["attach", "xdp", "-i", "v1", "--mode", "hw", "tcp"]);
    assert_eq!(
        env.status(),
        before,
        "a failed replace changed what is attached"
    );
    assert_eq!(env.pins(), pins, "a failed replace left pins behind");
    env.ok(&["attach", "tc", "-i", "v1", "--direction", "ingress", "tcp"]);
    let before = env.status();
    env.fails(
        1,
        &[
            "attach",
            "tc",
            "-i",
            "v1",
            "--direction",
            "ingress",
            "--ebpf",
            &bad_tc,
        ],
    );
    assert_eq!(
        env.status(),
        before,
        "a failed tc replace changed what is attached"
    );
    env.ok(&["detach", "xdp", "-i", "v1"]);
    env.ok(&["detach", "tc", "-i", "v1", "--direction", "ingress"]);
    env.assert_clean("after detaching");
}

#[test]
fn cli_mounts_bpffs_when_missing() {
    if !e2e::kernel_available("cli_mounts_bpffs_when_missing") {
        return;
    }
    let env = Env::new("climount");
    // A private mount namespace without bpffs: filterd mounts it, pins
    // there, and the pins (so the link) go when that namespace ends. The
    // host may or may not have bpffs mounted (a fresh machine has not):
    // the namespace's copy is unmounted only if it is there.
    let bin = e2e::bin("filterd");
    let net = format!("--net={}", env.ns.path());
    let script = format!(
        "{{ umount /sys/fs/bpf 2>/dev/null || true; }} && ! stat -f -c %T /sys/fs/bpf | grep -q bpf && \
         nsenter {net} {bin} attach xdp -i v1 --mode skb tcp && stat -f -c %T /sys/fs/bpf && \
         nsenter {net} {bin} status --json",
        bin = bin.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bpf_fs"), "bpffs was not mounted: {stdout}");
    assert!(
        stdout.contains("\"hook\":\"xdp\"") && stdout.contains("\"filterd\":true"),
        "{stdout}"
    );
    // The private bpffs is gone with its namespace, and the link with it.
    let start = std::time::Instant::now();
    while !env.status().is_empty() && start.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    env.assert_clean("after the mount namespace ended");
}

/// A `--pin DIR` elsewhere on bpffs is recorded at the default place:
/// `status` names the program as filterd's with that directory, and
/// `detach` without `--pin` finds it. Without the record, `detach` says
/// to pass the same `--pin`.
#[test]
fn cli_custom_pins_are_found_by_status_and_detach() {
    if !e2e::kernel_available("cli_custom_pins_are_found_by_status_and_detach") {
        return;
    }
    let env = Env::new("clipin");
    let custom = PathBuf::from(format!(
        "/sys/fs/bpf/filterd-clipin-{}/edge",
        std::process::id()
    ));
    let _cleanup = RemoveOnDrop(custom.parent().expect("parent").to_path_buf());
    let c = custom.to_str().expect("utf-8");
    env.ok(&[
        "attach", "xdp", "-i", "v1", "--mode", "skb", "--pin", c, "tcp",
    ]);
    let xdp = one(&env.status(), "xdp");
    assert_eq!(
        (xdp["filterd"].as_bool(), xdp["pin"].as_str()),
        (Some(true), Some(c))
    );
    assert!(custom.join("link").exists() && custom.join("prog").exists());
    // Another --pin is refused with that directory's own error.
    let err = env.fails(
        2,
        &["detach", "xdp", "-i", "v1", "--pin", "/sys/fs/bpf/nowhere"],
    );
    assert!(err.contains("/sys/fs/bpf/nowhere/link"), "{err}");
    // A record that is gone (as after an attach by an older filterd):
    // status still lists the program, not as filterd's; detach says what
    // to pass, and with it succeeds.
    std::fs::remove_file(env.scope.join("v1/xdp")).expect("the record is a symlink");
    assert_eq!(one(&env.status(), "xdp")["filterd"], false);
    let err = env.fails(2, &["detach", "xdp", "-i", "v1"]);
    assert!(err.contains("pass the same --pin DIR"), "{err}");
    assert_eq!(one(&env.status(), "xdp")["prog_id"], xdp["prog_id"]);
    env.ok(&["detach", "xdp", "-i", "v1", "--pin", c]);
    env.assert_clean("after detach with --pin");
    assert!(!custom.join("link").exists(), "the custom pins are removed");

    // tc: found through the record, without --pin.
    env.ok(&[
        "attach",
        "tc",
        "-i",
        "v1",
        "--direction",
        "ingress",
        "--pin",
        c,
        "udp",
    ]);
    let tc = one(&env.status(), "tc-ingress");
    assert_eq!(
        (tc["filterd"].as_bool(), tc["pin"].as_str()),
        (Some(true), Some(c))
    );
    let out = env.ok(&["detach", "tc", "-i", "v1", "--direction", "ingress"]);
    assert!(out.starts_with("detached tc ingress"), "{out}");
    env.assert_clean("after detach through the record");
    assert!(!custom.join("prog").exists(), "the custom pin is removed");
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
