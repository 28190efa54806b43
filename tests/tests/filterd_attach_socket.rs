//! `filterd attach socket --pid PID --fd FD`: a filter put on a socket of
//! another, running process (a small Python server), taken with
//! `pidfd_getfd`; the server receives exactly what the filter passes.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use e2e::frames::{self, seq_of};
use e2e::net::{ifindex, Netns, PacketSocket};
use filter_programs::elf::{self, Object};
use filter_programs::Hook;
use filterd::attach_socket::{program_for, Filter, SocketKind};
use libpcap_oracle::{self as libpcap, CompileOptions};

/// A UDP server on 127.0.0.1 that prints its pid, socket fd and port, then
/// every datagram it receives. A Unix socket and a pipe give the error
/// cases something to point at (their fds are printed too).
const UDP_SERVER: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
r, w = os.pipe()
print(os.getpid(), s.fileno(), s.getsockname()[1], u.fileno(), r, flush=True)
while True:
    print("got", s.recv(2048).decode(errors="replace"), flush=True)
"#;

/// An AF_PACKET socket (protocol 0: nothing queued until bound) that binds
/// to v1 once told to on stdin, then prints the seq of each test frame.
const PACKET_SERVER: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
print(os.getpid(), s.fileno(), flush=True)
sys.stdin.readline()
s.bind(("v1", 3))
print("bound", flush=True)
while True:
    d = s.recv(4096)
    if d[6:10] == bytes([2, 0x5e, 0, 0]):
        print("seq", d[10] * 256 + d[11], flush=True)
"#;

struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    first: Vec<String>,
}

impl Server {
    fn spawn(netns: Option<&Netns>, script: &str) -> Server {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.path())).arg("python3");
                c
            }
            None => Command::new("python3"),
        };
        let mut child = cmd
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let out = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let head = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("server started");
        let first = head.split_whitespace().map(str::to_string).collect();
        let stdin = child.stdin.take();
        Server {
            child,
            stdin,
            lines,
            first,
        }
    }

    fn field(&self, i: usize) -> String {
        self.first[i].clone()
    }

    /// Lines printed within `wait` of the last one.
    fn drain(&self, wait: Duration) -> Vec<String> {
        std::iter::from_fn(|| self.lines.recv_timeout(wait).ok()).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn filterd(netns: Option<&Netns>, args: &[&str]) -> Output {
    let bin = e2e::bin("filterd");
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.path())).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("attach")
        .arg("socket")
        .args(args)
        .output()
        .expect("run filterd")
}

fn ok(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{s}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

fn fails(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
}

/// Sends each (source address, payload) to `port` and returns what the
/// server printed.
fn exchange(srv: &Server, port: u16, msgs: &[(&str, &str)]) -> Vec<String> {
    for (from, payload) in msgs {
        let s = UdpSocket::bind((*from, 0)).expect("bind sender");
        s.send_to(payload.as_bytes(), ("127.0.0.1", port))
            .expect("send");
    }
    srv.drain(Duration::from_millis(400))
}

#[test]
fn udp_server_gets_only_what_the_filter_passes() {
    if !e2e::kernel_available("filterd_attach_socket::udp_server") {
        return;
    }
    let srv = Server::spawn(None, UDP_SERVER);
    let (pid, fd, port) = (srv.field(0), srv.field(1), srv.field(2));
    let port_n: u16 = port.parse().expect("port");
    let msgs = [
        ("127.0.0.1", "A1"),
        ("127.0.0.1", "B1"),
        ("127.0.0.2", "A2"),
        ("127.0.0.1", "A3"),
    ];
    assert_eq!(
        exchange(&srv, port_n, &msgs).len(),
        4,
        "unfiltered, all arrive"
    );

    // The L3 form: the IP source and the UDP payload, read from a socket
    // whose data starts at the UDP header.
    let expr = format!("src host 127.0.0.1 and udp dst port {port} and udp[8] = 0x41");
    let out = ok(&filterd(None, &["--pid", &pid, "--fd", &fd, &expr]));
    assert!(
        out.contains("AF_INET UDP") && out.contains("network layer"),
        "{out}"
    );
    assert_eq!(exchange(&srv, port_n, &msgs), ["got A1", "got A3"]);

    // Replacing: a classic program in the RAW framing (IP at 0), as
    // `filterd compile -y RAW -ddd` or `tcpdump -y RAW -ddd` print it.
    let dir = std::env::temp_dir().join(format!("filterd-attach-socket-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ddd = dir.join("from2.ddd");
    let compiled = Command::new(e2e::bin("filterd"))
        .args(["compile", "-ddd", "-y", "RAW", "src host 127.0.0.2"])
        .output()
        .expect("compile");
    std::fs::write(&ddd, ok(&compiled)).expect("write");
    ok(&filterd(
        None,
        &[
            "--pid",
            &pid,
            "--fd",
            &fd,
            "--cbpf",
            ddd.to_str().expect("utf-8"),
        ],
    ));
    assert_eq!(exchange(&srv, port_n, &msgs), ["got A2"]);

    // An ELF object in the L3 form, built with the library call an
    // application would use, attached as it is.
    let obj = dir.join("b.o");
    let udp = SocketKind {
        domain: libc::AF_INET,
        ty: libc::SOCK_DGRAM,
        protocol: libc::IPPROTO_UDP,
    };
    let insns = program_for(udp, &Filter::Expression("udp[8] = 0x42".into())).expect("compiles");
    let object = Object {
        hook: Hook::Socket,
        name: "b_only".into(),
        insns,
        maps: vec![],
        map_refs: vec![],
        license: "GPL".into(),
    };
    std::fs::write(&obj, elf::write(&object).expect("elf")).expect("write");
    ok(&filterd(
        None,
        &[
            "--pid",
            &pid,
            "--fd",
            &fd,
            "--ebpf",
            obj.to_str().expect("utf-8"),
        ],
    ));
    assert_eq!(exchange(&srv, port_n, &msgs), ["got B1"]);

    let out = ok(&filterd(None, &["--pid", &pid, "--fd", &fd, "--detach"]));
    assert!(out.contains("detached"), "{out}");
    assert_eq!(
        exchange(&srv, port_n, &msgs).len(),
        4,
        "detached, all arrive"
    );
    let out = ok(&filterd(None, &["--pid", &pid, "--fd", &fd, "--detach"]));
    assert!(out.contains("had no filter"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_name_the_problem() {
    if !e2e::kernel_available("filterd_attach_socket::errors") {
        return;
    }
    let srv = Server::spawn(None, UDP_SERVER);
    let (pid, fd, unix, pipe) = (srv.field(0), srv.field(1), srv.field(3), srv.field(4));
    // pid_max is at most 2^22.
    fails(
        &filterd(None, &["--pid", "2000000000", "--fd", "3", "udp"]),
        2,
        "no process with pid 2000000000",
    );
    fails(
        &filterd(None, &["--pid", &pid, "--fd", &pipe, "udp"]),
        2,
        &format!("pid {pid} fd {pipe}: the file descriptor is not a socket"),
    );
    fails(
        &filterd(None, &["--pid", &pid, "--fd", "999", "udp"]),
        2,
        "has no open file descriptor 999",
    );
    fails(
        &filterd(None, &["--pid", &pid, "--fd", &unix, "udp"]),
        2,
        "unsupported socket kind: AF_UNIX",
    );
    fails(
        &filterd(None, &["--pid", &pid, "--fd", &fd, "greater 100"]),
        1,
        "len, greater and less are not available",
    );
    fails(
        &filterd(None, &["--pid", &pid, "--fd", &fd, "ether broadcast"]),
        1,
        "",
    );
    fails(
        &filterd(None, &["--pid", &pid, "--fd", &fd]),
        2,
        "give a filter",
    );
    // Another user may not take root's descriptors.
    let bin = e2e::bin("filterd");
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin)
        .args(["attach", "socket", "--pid", &pid, "--fd", &fd, "udp"])
        .output()
        .expect("setpriv");
    fails(&out, 2, "not allowed to take a file descriptor");
    // A kernel without the pidfd calls, played by a seccomp filter that
    // answers ENOSYS for one of them.
    for (nr, name, version) in [
        (libc::SYS_pidfd_open, "pidfd_open", "5.3"),
        (libc::SYS_pidfd_getfd, "pidfd_getfd", "5.6"),
    ] {
        let mut cmd = Command::new(e2e::bin("filterd"));
        cmd.args(["attach", "socket", "--pid", &pid, "--fd", &fd, "udp"]);
        without_syscall(&mut cmd, nr as u32);
        let out = cmd.output().expect("filterd under seccomp");
        fails(
            &out,
            2,
            &format!("this kernel has no {name} (needs Linux {version} or later)"),
        );
    }
}

/// Makes system call `nr` fail with ENOSYS in the child (seccomp, set
/// between fork and exec; x86_64 only, as this machine is).
fn without_syscall(cmd: &mut Command, nr: u32) {
    use std::os::unix::process::CommandExt;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let program = [
        ins(0x20, 0, 0, 4), // ld [4]: arch
        ins(0x15, 0, 3, AUDIT_ARCH_X86_64),
        ins(0x20, 0, 0, 0), // ld [0]: nr
        ins(0x15, 0, 1, nr),
        ins(0x06, 0, 0, RET_ERRNO | libc::ENOSYS as u32),
        ins(0x06, 0, 0, RET_ALLOW),
    ];
    // SAFETY: between fork and exec only prctl runs, on a program that
    // lives in this closure's captured array for the call's duration.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: program.len() as u16,
                filter: program.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn packet_socket_gets_the_link_layer_form() {
    if !e2e::kernel_available("filterd_attach_socket::packet_socket") {
        return;
    }
    let ns = Netns::with_veth("atts");
    let mut srv = Server::spawn(Some(&ns), PACKET_SERVER);
    let (pid, fd) = (srv.field(0), srv.field(1));
    let expr = "ip6 or arp or (vlan and udp)";
    let out = ok(&filterd(Some(&ns), &["--pid", &pid, "--fd", &fd, expr]));
    assert!(
        out.contains("AF_PACKET SOCK_RAW") && out.contains("link layer"),
        "{out}"
    );
    let mut stdin = srv.stdin.take().expect("stdin");
    writeln!(stdin, "bind").expect("tell server to bind");
    assert_eq!(
        srv.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("bound"),
        "bound"
    );
    let frames = frames::all();
    ns.enter(|| {
        let tx = PacketSocket::new().expect("tx");
        for f in &frames {
            tx.send(ifindex("v0"), &f.bytes).expect("send");
        }
    });
    let got: BTreeSet<u16> = srv
        .drain(Duration::from_millis(500))
        .iter()
        .filter_map(|l| l.strip_prefix("seq ")?.parse().ok())
        .collect();
    // libpcap on the frame as sent; tagged frames too short to untag never
    // reach a packet socket.
    let prog = libpcap::compile(expr, CompileOptions::new(1)).expect("libpcap");
    let want: BTreeSet<u16> = frames
        .iter()
        .filter(|f| f.tag.is_none() || f.bytes.len() >= 20)
        .filter(|f| libpcap::filter(&prog, &f.bytes, f.bytes.len() as u32) != 0)
        .filter_map(|f| seq_of(&f.bytes))
        .collect();
    assert!(
        want.len() > 20 && want.len() < frames.len() / 2,
        "{}",
        want.len()
    );
    assert_eq!(got, want);
}
