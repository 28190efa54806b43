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
    let out = Command::new("tcpdump").args(["-ddd", "-y", "EN10MB", expr]).output().expect("tcpdump (apt-get install tcpdump)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
    assert!(err.contains("instruction 0") && err.contains("uninitialized scratch"), "{err}");
    let l = filterd(&["validate", "--rules", "libpcap", "-"], Some(prog));
    assert_eq!(l.status.code(), Some(0), "{}", String::from_utf8_lossy(&l.stderr));
}

#[test]
fn compile_prints_ebpf_and_writes_objects() {
    let prog = tcpdump_ddd("udp dst port 53");
    let asm = filterd(&["compile", "--cbpf", "-", "--target", "xdp", "--format", "asm"], Some(&prog));
    assert_eq!(asm.status.code(), Some(0), "{}", String::from_utf8_lossy(&asm.stderr));
    let text = String::from_utf8_lossy(&asm.stdout);
    assert!(text.starts_with("   0: (bf) r6 = r1\n"), "{text}");
    assert!(text.trim_end().ends_with("exit"), "{text}");
    let out = std::env::temp_dir().join(format!("filterd-cli-{}.o", std::process::id()));
    let o = out.to_str().unwrap();
    let elf = filterd(&["compile", "--cbpf", "-", "--target", "tc", "-o", o], Some(&prog));
    assert_eq!(elf.status.code(), Some(0), "{}", String::from_utf8_lossy(&elf.stderr));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    let _ = std::fs::remove_file(&out);
    let usage = filterd(&["compile", "--cbpf", "-", "--target", "tc"], Some(&prog));
    assert_eq!(usage.status.code(), Some(2));
    let bad = filterd(&["compile", "--cbpf", "-"], Some("not a program"));
    assert_eq!(bad.status.code(), Some(1));
}
