//! `filterd validate` and `filterd compile --cbpf`, through the binary.

use std::process::{Command, Output};

fn filterd(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(e2e::bin("filterd"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("filterd runs");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn tcpdump_ddd(expr: &str) -> String {
    let out = Command::new("tcpdump")
        .args(["-ddd", "-y", "EN10MB", expr])
        .output()
        .expect("tcpdump (apt-get install tcpdump)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn validate_reports_ok_and_the_broken_rule_with_its_index() {
    let ok = filterd(&["validate", "-"], Some(&tcpdump_ddd("tcp port 80")));
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok: "));
    // ld M[3] before any store: the kernel refuses, libpcap does not.
    let prog = "2\n96 0 0 3\n22 0 0 0\n";
    let k = filterd(&["validate", "-"], Some(prog));
    assert_eq!(k.status.code(), Some(1));
    let err = String::from_utf8_lossy(&k.stderr);
    assert!(
        err.contains("instruction 0") && err.contains("uninitialized scratch"),
        "{err}"
    );
    let l = filterd(&["validate", "--rules", "libpcap", "-"], Some(prog));
    assert_eq!(
        l.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&l.stderr)
    );
}

#[test]
fn compile_prints_ebpf_and_writes_objects() {
    let prog = tcpdump_ddd("udp dst port 53");
    let asm = filterd(
        &[
            "compile", "--cbpf", "-", "--target", "xdp", "--format", "asm",
        ],
        Some(&prog),
    );
    assert_eq!(
        asm.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&asm.stderr)
    );
    let text = String::from_utf8_lossy(&asm.stdout);
    assert!(text.starts_with("   0: (bf) r6 = r1\n"), "{text}");
    assert!(text.trim_end().ends_with("exit"), "{text}");
    let out = std::env::temp_dir().join(format!("filterd-cli-{}.o", std::process::id()));
    let o = out.to_str().unwrap();
    let elf = filterd(
        &["compile", "--cbpf", "-", "--target", "tc", "-o", o],
        Some(&prog),
    );
    assert_eq!(
        elf.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&elf.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    let _ = std::fs::remove_file(&out);
    let usage = filterd(&["compile", "--cbpf", "-", "--target", "tc"], Some(&prog));
    assert_eq!(usage.status.code(), Some(2));
    let bad = filterd(&["compile", "--cbpf", "-"], Some("not a program"));
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn compile_expressions_like_tcpdump() {
    // Unoptimized, our code generator's output is libpcap's, instruction
    // for instruction, in all three dump formats.
    for expr in [
        "tcp port 80 and not src net 10.0.0.0/8",
        "vlan 100 and udp",
        "ip6 and icmp6",
        "arp or rarp",
    ] {
        for fmt in ["-d", "-dd", "-ddd"] {
            // tcpdump's own spelling: a bare -O (as below), and -O0.
            let ours = filterd(&["compile", "-O", fmt, expr], None);
            let ours_o0 = filterd(&["compile", "-O0", fmt, expr], None);
            assert_eq!(ours.stdout, ours_o0.stdout, "{expr} {fmt}: -O is -O0");
            assert_eq!(
                ours.status.code(),
                Some(0),
                "{expr}: {}",
                String::from_utf8_lossy(&ours.stderr)
            );
            let theirs = Command::new("tcpdump")
                .args([fmt, "-O", "-y", "EN10MB", expr])
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout),
                "{expr} {fmt}"
            );
        }
    }
    // Words are joined as tcpdump joins them.
    let joined = filterd(&["compile", "-O0", "udp", "and", "port", "53"], None);
    let one = filterd(&["compile", "-O0", "udp and port 53"], None);
    assert_eq!(joined.stdout, one.stdout);
}

#[test]
fn expression_errors_point_at_the_column() {
    let out = filterd(&["compile", "tcp port 99999"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcp port 99999") && err.contains('^'), "{err}");
    let out = filterd(&["compile", "tcp and and udp"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("tcp and and udp"))
        .expect("the expression is shown");
    let caret = err.lines().find(|l| l.contains('^')).expect("a caret line");
    // The caret sits under the second `and` (column 9 of the expression).
    let col = |l: &str, pat: &str| l.find(pat).unwrap();
    assert_eq!(col(caret, "^") - col(line, "tcp"), 8, "{err}");
}

#[test]
fn compile_expression_for_a_hook() {
    let asm = filterd(
        &[
            "compile",
            "--target",
            "xdp",
            "--format",
            "asm",
            "tcp dst port 443",
        ],
        None,
    );
    assert_eq!(
        asm.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&asm.stderr)
    );
    assert!(String::from_utf8_lossy(&asm.stdout).contains("exit"));
}

/// `protochain`'s loop: a `may_goto` before each back edge by default, the
/// counter of older kernels with `--loops counted`.
#[test]
fn compile_bounds_loops_as_asked() {
    let asm = |extra: &[&str]| {
        let mut args = vec!["compile", "--target", "xdp", "--format", "asm"];
        args.extend_from_slice(extra);
        args.push("ip6 protochain 17");
        let o = filterd(&args, None);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let default = asm(&[]);
    assert!(default.contains("may_goto pc+"), "{default}");
    let counted = asm(&["--loops", "counted"]);
    assert!(!counted.contains("may_goto"), "{counted}");
    assert!(counted.contains("r1 = 32\n"), "{counted}");
    assert_eq!(asm(&["--loops", "may-goto"]), default);
}
