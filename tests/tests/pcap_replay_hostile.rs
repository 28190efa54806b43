//! pcap-replay on hostile input: programs libpcap's `bpf_validate` passes
//! but its `bpf_filter` aborts or loops on, expressions that do not
//! compile over an empty capture, `-w` outputs that must never be lost or
//! torn, and a capture cut shorter while it is read. Every run ends with
//! exit code 0, 1 or 2 (or 130/143 on a signal we send) within seconds:
//! never a signal of its own, a panic or a hang.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("pcap-replay-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn data(name: &str) -> PathBuf {
    e2e::repo_root().join("tests/data").join(name)
}

/// Waits for `child` at most `limit`; kills it and fails if it takes longer.
fn wait_within(mut child: Child, limit: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs pcap-replay with `args`, at most 30 s; asserts it exited 0, 1 or 2
/// by itself (no signal).
fn replay(args: &[&str]) -> Output {
    let child = Command::new(e2e::bin("pcap-replay"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Drain the pipes on threads so that a large report cannot block it.
    let out = std::thread::spawn(move || child.wait_with_output().unwrap());
    let start = Instant::now();
    while !out.is_finished() {
        if start.elapsed() > Duration::from_secs(30) {
            // SAFETY: kill takes any pid and signal; the child is ours.
            unsafe { kill(pid as i32, 9) };
            panic!("pcap-replay {args:?}: still running after 30 s (a hang)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = out.join().unwrap();
    assert!(
        o.status.signal().is_none(),
        "pcap-replay {args:?} died of signal {:?}: {}",
        o.status.signal(),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        matches!(o.status.code(), Some(0..=2)),
        "pcap-replay {args:?}: exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Hand-written `-ddd` programs that `bpf_validate` passes and `bpf_filter`
/// cannot run: it aborts on the first two and never returns from the
/// third. Each is preceded by a load so that a packet reaches it.
const HOSTILE: [(&str, &str, &str); 4] = [
    // ldh [12]; ret x
    ("ret-x", "2\n40 0 0 12\n14 0 0 0\n", "ret x"),
    // ldh [12] with a stray high bit (0x128); ret #1
    ("stray-bits", "2\n296 0 0 12\n6 0 0 1\n", "opcode 0x0128"),
    // ret with a stray mode bit (0x46)
    ("stray-ret", "2\n40 0 0 12\n70 0 0 1\n", "opcode 0x0046"),
    // ldh [12]; ja -1 (to itself); ret #1
    (
        "self-jump",
        "3\n40 0 0 12\n5 0 0 4294967295\n6 0 0 1\n",
        "no way out",
    ),
];

#[test]
fn libpcap_is_left_out_of_programs_bpf_filter_cannot_run() {
    let dir = Scratch::new("hostile-cbpf");
    let capture = data("print-flags.pcap");
    let capture = capture.to_str().unwrap();
    for (name, text, why) in HOSTILE {
        let f = dir.path(&format!("{name}.ddd"));
        std::fs::write(&f, text).unwrap();
        let f = f.to_str().unwrap();
        // Named with --engines, it is an error (exit 2) with the reason.
        for engines in ["libpcap", "cbpf,libpcap"] {
            let o = replay(&["--cbpf", f, "--engines", engines, capture]);
            assert_eq!(o.status.code(), Some(2), "{name}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("libpcap") && err.contains(why),
                "{name}: {err}"
            );
        }
        // By default: the engine is left out, with the reason, and the
        // others run to the end. (The eBPF translations refuse codes with
        // stray bits themselves, which is an error as before.)
        let o = replay(&["--cbpf", f, "--json", capture]);
        if name.starts_with("stray") {
            assert_eq!(o.status.code(), Some(2), "{name}");
            let o = replay(&["--cbpf", f, "--engines", "cbpf", capture]);
            assert_eq!(o.status.code(), Some(0), "{name}");
            continue;
        }
        let json: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&o.stderr)));
        let r = &json["results"][0];
        assert_eq!(r["packets"], 10, "{name}: {r}");
        assert!(r["engines"].get("libpcap").is_none(), "{name}: {r}");
        assert!(r["engines"].get("cbpf").is_some(), "{name}: {r}");
        let left: Vec<&serde_json::Value> = r["left_out"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["engine"] == "libpcap")
            .collect();
        assert_eq!(left.len(), 1, "{name}: {r}");
        let reason = left[0]["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{name}: {reason}");
        assert!(reason.contains("bpf_filter"), "{name}: {reason}");
        // The table names it too.
        let o = replay(&["--cbpf", f, capture]);
        let table = String::from_utf8_lossy(&o.stdout);
        assert!(
            table.contains("libpcap") && table.contains(why),
            "{name}: {table}"
        );
    }
}

/// A loop with a way out that a packet never takes: `bpf_validate` and
/// our checks pass it, and `bpf_filter` would spin on that packet for
/// ever. The libpcap engine leaves exactly those packets out, with the
/// reason, and the run ends.
#[test]
fn libpcap_leaves_out_packets_its_loop_would_never_leave() {
    let dir = Scratch::new("endless-cbpf");
    // ldh [12]; jeq #0x800 jt 2 jf 3; ja -2 (back to the jeq); ret #65535
    let f = dir.path("spin-on-ipv4.ddd");
    std::fs::write(
        &f,
        "4\n40 0 0 12\n21 0 1 2048\n5 0 0 4294967294\n6 0 0 65535\n",
    )
    .unwrap();
    let capture = data("print-flags.pcap");
    let args = [
        "--cbpf",
        f.to_str().unwrap(),
        "--engines",
        "cbpf,libpcap",
        "--json",
        capture.to_str().unwrap(),
    ];
    let o = replay(&args);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(o.status.code(), Some(0), "{json}");
    let libpcap = &json["results"][0]["engines"]["libpcap"];
    assert_eq!(libpcap["skipped"], 10, "{json}");
    assert_eq!(libpcap["skipped_reasons"]["endless_loop"], 10, "{json}");
    // The table says why.
    let o = replay(
        &args[..4]
            .iter()
            .chain(&args[5..])
            .copied()
            .collect::<Vec<_>>(),
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("would never leave"), "{table}");
}

/// libpcap's own loop (`ip6 protochain`) still runs in the libpcap engine.
#[test]
fn libpcaps_own_loop_still_runs() {
    let capture = data("icmpv6.pcap");
    let o = replay(&[
        "-e",
        "ip6 protochain 58",
        "--engines",
        "cbpf,libpcap",
        "--json",
        capture.to_str().unwrap(),
    ]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{json}");
    assert!(json["results"][0]["engines"]["libpcap"]["matched"].as_u64() > Some(0));
}

/// A TCP/IPv4 Ethernet frame (all match `tcp`).
fn tcp_frame(i: u64) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[12] = 0x08;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[34..36].copy_from_slice(&40_000u16.to_be_bytes());
    // The IP id tells the packets apart.
    f[18..20].copy_from_slice(&(i as u16).to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    f[46] = 0x50;
    f
}

/// A pcap (Ethernet) of `n` TCP frames, as bytes.
fn capture_bytes(n: u64) -> Vec<u8> {
    use capfile::{Format, LinkType, Record, Writer};
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out, Format::Pcap, LinkType::ETHERNET, 65_535, "").unwrap();
    for i in 0..n {
        let f = tcp_frame(i);
        w.write(&Record {
            ts_ns: 1_700_000_000_000_000_000 + i * 1000,
            wire_len: 60,
            data: &f,
        })
        .unwrap();
    }
    w.finish().unwrap();
    out
}

/// Every packet of a capture file, read by capfile; panics if it is not a
/// whole, valid capture.
fn read_all(path: &Path) -> Vec<capfile::Packet> {
    let f = std::fs::File::open(path).unwrap();
    capfile::open(path.display().to_string(), f)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|p| p.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

#[test]
fn an_expression_that_does_not_compile_is_reported_on_an_empty_capture() {
    let dir = Scratch::new("hostile-empty");
    let empty = dir.path("empty.pcap");
    std::fs::write(&empty, capture_bytes(0)).unwrap();
    let empty = empty.to_str().unwrap();
    // Parses, but 802.11 fields do not exist on Ethernet: it does not compile.
    let expr = "wlan addr1 00:11:22:33:44:55";
    for engines in ["cbpf", "libpcap", "cbpf,libpcap"] {
        let o = replay(&["-e", expr, "--engines", engines, "--json", empty]);
        assert_eq!(o.status.code(), Some(2), "{engines}");
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let err = json["results"][0]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{json}"));
        assert!(
            err.contains("empty.pcap") && err.contains(engines.split(',').next().unwrap()),
            "{err}"
        );
    }
    // With -y the link type is known before any file: the error comes once,
    // up front, whatever the number of captures.
    let o = replay(&["-e", expr, "-y", "EN10MB", empty, empty, empty]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("pcap-replay: error:").count(), 1, "{err}");
    assert!(err.contains("802.11") || err.contains("wlan"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A good expression on the empty capture still succeeds.
    let o = replay(&["-e", "tcp", empty]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn w_refuses_to_overwrite_an_input() {
    let dir = Scratch::new("hostile-same");
    let a = dir.path("a.pcap");
    let bytes = std::fs::read(data("print-flags.pcap")).unwrap();
    std::fs::write(&a, &bytes).unwrap();
    let link = dir.path("link.pcap");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let other = dir.path("sub/../a.pcap");
    std::fs::create_dir_all(dir.path("sub")).unwrap();
    let a_s = a.to_str().unwrap();
    for out in [a_s, link.to_str().unwrap(), other.to_str().unwrap()] {
        let o = replay(&["-e", "tcp", "-w", out, a_s]);
        assert_eq!(o.status.code(), Some(2), "-w {out}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("is the input"), "-w {out}: {err}");
        assert_eq!(
            std::fs::read(&a).unwrap(),
            bytes,
            "-w {out} changed the input"
        );
    }
    // The input as standard input.
    let o = Command::new(e2e::bin("pcap-replay"))
        .args(["-e", "tcp", "-w", a_s, "-"])
        .stdin(std::fs::File::open(&a).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is the input"));
    assert_eq!(std::fs::read(&a).unwrap(), bytes);
    // Through the link as the input too.
    let o = replay(&["-e", "tcp", "-w", a_s, link.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&a).unwrap(), bytes);
}

/// SIGINT while pcap-replay reads a pipe: until then the old output is
/// untouched (the new one grows under a temporary name); after it, the
/// output is a whole capture of the packets so far, and the exit code 130.
#[test]
fn sigint_ends_with_a_whole_output_and_exit_130() {
    use std::io::Write;
    let dir = Scratch::new("hostile-sigint");
    let out = dir.path("out.pcap");
    std::fs::write(&out, b"old").unwrap();
    let mut child = Command::new(e2e::bin("pcap-replay"))
        .args(["-e", "tcp", "--engines", "cbpf,libpcap", "-w"])
        .arg(&out)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = capture_bytes(1000);
    let mut stdin = child.stdin.take().unwrap();
    // The header and 500 packets (76 bytes each), then it waits for more.
    stdin.write_all(&bytes[..24 + 500 * 76]).unwrap();
    stdin.flush().unwrap();
    let tmp = dir.path(&format!(".out.pcap.tmp-{}", child.id()));
    let start = Instant::now();
    while std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no temporary output"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"old",
        "the output changed mid-run"
    );
    // SAFETY: kill takes any pid and signal; the child is ours.
    assert_eq!(unsafe { kill(child.id() as i32, 2) }, 0);
    // One more packet wakes the read; the replay then stops.
    stdin
        .write_all(&bytes[24 + 500 * 76..24 + 501 * 76])
        .unwrap();
    stdin.flush().unwrap();
    let status = wait_within(child, Duration::from_secs(20), "pcap-replay after SIGINT");
    drop(stdin);
    assert_eq!(status.code(), Some(130), "{status:?}");
    let got = read_all(&out);
    assert!((500..=501).contains(&got.len()), "{} packets", got.len());
    assert!(!tmp.exists(), "the temporary file is left");
}

/// SIGTERM on a regular file being replayed: exit 143 and a whole output
/// (or, if the run beat the signal, exit 0 and every packet).
#[test]
fn sigterm_ends_with_a_whole_output_and_exit_143() {
    let dir = Scratch::new("hostile-sigterm");
    let input = dir.path("in.pcap");
    const N: u64 = 2_000_000;
    std::fs::write(&input, capture_bytes(N)).unwrap();
    let out = dir.path("out.pcap");
    let child = Command::new(e2e::bin("pcap-replay"))
        .args(["-e", "tcp", "--engines", "cbpf", "--quiet", "-w"])
        .arg(&out)
        .arg(&input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill takes any pid and signal; the child is ours.
    unsafe { kill(child.id() as i32, 15) };
    let status = wait_within(child, Duration::from_secs(60), "pcap-replay after SIGTERM");
    assert!(status.signal().is_none(), "{status:?}");
    let got = match status.code() {
        Some(143) => read_all(&out).len() as u64,
        Some(0) => {
            eprintln!("the run ended before SIGTERM arrived");
            assert_eq!(read_all(&out).len() as u64, N);
            return;
        }
        other => panic!("exit {other:?}"),
    };
    // The signal may come after the last packet was written.
    assert!(got <= N, "{got} packets");
    // tcpdump reads it whole too.
    let t = Command::new("tcpdump")
        .arg("-r")
        .arg(&out)
        .args(["-n", "-q"])
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    assert_eq!(
        String::from_utf8_lossy(&t.stdout).lines().count() as u64,
        got
    );
}

#[test]
fn w_dash_writes_the_capture_to_stdout() {
    let mut child = Command::new(e2e::bin("pcap-replay"))
        .args([
            "-e",
            "tcp",
            "-w",
            "-",
            &data("print-flags.pcap").display().to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tcpdump = Command::new("tcpdump")
        .args(["-n", "-r", "-"])
        .stdin(child.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(
        tcpdump.status.success(),
        "{}",
        String::from_utf8_lossy(&tcpdump.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&tcpdump.stdout).lines().count(), 10);
    // The report went to stderr.
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(
        err.contains("print-flags.pcap") && err.contains("agree"),
        "{err}"
    );
}

/// Bytes waiting in the pipe whose read end is `fd`.
fn queued(fd: std::os::fd::RawFd) -> libc::c_int {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if rc == 0 {
        n
    } else {
        0
    }
}

/// A capture cut to half its length while pcap-replay reads it (a file
/// mapping died of SIGBUS there): an error naming the file and the byte
/// where its data stops, exit 2, and every packet before the cut replayed
/// and written out.
///
/// Deterministic: pcap-replay writes the matching packets to a pipe that is
/// not read yet, so it cannot get past its first thousand packets or so,
/// far from the middle of the file; once it has written some, it is
/// stopped (SIGSTOP), the file is cut, and it goes on (SIGCONT) as the pipe
/// is drained.
#[test]
fn a_capture_cut_while_it_is_read_is_an_error_not_a_signal() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let dir = Scratch::new("hostile-cut");
    let input = dir.path("big.pcap");
    const N: u64 = 200_000;
    let bytes = capture_bytes(N);
    std::fs::write(&input, &bytes).unwrap();
    let half = bytes.len() as u64 / 2;
    let mut child = Command::new(e2e::bin("pcap-replay"))
        .args(["-e", "tcp", "--engines", "cbpf", "--count", "-w", "-"])
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    // Once it has written packets it is reading the file; the pipe, 64 KiB
    // and not read, keeps it from getting much further.
    let start = Instant::now();
    while queued(stdout.as_raw_fd()) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "pcap-replay wrote nothing"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill takes any pid and signal; the child is ours.
    assert_eq!(unsafe { kill(pid as i32, libc::SIGSTOP) }, 0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&input)
        .unwrap()
        .set_len(half)
        .unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { kill(pid as i32, libc::SIGCONT) }, 0);
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        stdout.read_to_end(&mut b).unwrap();
        b
    });
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let status = wait_within(child, Duration::from_secs(60), "pcap-replay on a cut file");
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.signal().is_none(),
        "died of signal {:?}: {err}",
        status.signal()
    );
    assert_eq!(status.code(), Some(2), "{err}");
    let name = input.display().to_string();
    assert!(
        err.contains(&format!("{name}: byte {half}: ")) && err.contains("shrank"),
        "{err}"
    );
    // Every whole record before the cut: a 24-byte header, then 76 bytes
    // a packet.
    let whole = (half - 24) / 76;
    let written: Vec<capfile::Packet> = capfile::open("stdout", &out[..])
        .unwrap()
        .map(|p| p.unwrap())
        .collect();
    assert_eq!(written.len() as u64, whole, "{err}");
    assert!(err.lines().any(|l| l == whole.to_string()), "{err}");
}
