//! `filterd trace` end to end (issue 20): two network namespaces joined
//! by a veth pair (and a VLAN on it), bounded traffic between them (UDP to
//! a listener and to a closed port, TCP, ICMP, IPv6, 802.1Q-tagged UDP),
//! `tcpdump -i` on one end and one `filterd trace --json` per expression,
//! all at once. For every expression: every packet of tcpdump's capture
//! that libpcap's filter selects appears in the trace at a receive point,
//! and the trace holds no packet libpcap does not select; the datagrams to
//! the closed port end in `kfree_skb` with the reason NO_SOCKET.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use filter_programs::tracer::Buffer;

const EXPRESSIONS: [&str; 25] = [
    "udp",
    "tcp",
    "icmp",
    "ip",
    "ip6",
    "arp",
    "icmp6",
    "udp port 7001",
    "udp port 7999",
    "udp dst port 7003",
    "tcp port 7002",
    "host 10.77.0.1",
    "src host 10.77.0.2",
    "vlan and net 10.77.100.0/24",
    "vlan 100",
    "vlan and udp",
    "udp and not port 7001",
    "icmp or arp",
    "tcp[tcpflags] & tcp-syn != 0",
    "ip6 and udp",
    "greater 100",
    "less 80",
    "udp portrange 7000-7010",
    "ether broadcast",
    // A loop (`may_goto`) in the tracing program.
    "ip6 protochain 17",
];

/// The tests that send traffic run one at a time: a trace sees every
/// namespace's packets, so another test's burst would fill its buffers.
static TRAFFIC_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    TRAFFIC_TESTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deletes the namespaces and kills the helpers, also when a check fails.
struct Lab {
    ns: Vec<String>,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "delete", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits for `child`'s standard error to print a line containing `ready`
/// and keeps reading the rest on a thread (so the child never blocks).
fn wait_ready(child: &mut Child, ready: &str) {
    let err = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let want = ready.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if !sent && line.contains(&want) {
                let _ = tx.send(Ok(()));
                sent = true;
            } else if !sent {
                eprintln!("  {line}");
            }
        }
        if !sent {
            let _ = tx.send(Err(()));
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => {}
        other => panic!("not ready ({ready:?}): {other:?}"),
    }
}

/// What identifies a packet on both sides: protocol, addresses, ports and
/// length.
type Key = (String, String, String, Option<u16>, Option<u16>, u32);

fn key_of_packet(lt: capfile::LinkType, frame: &[u8], wire_len: u32) -> Key {
    match packet_summary::five_tuple(lt, frame) {
        Some(t) => (
            t.l4proto.to_string(),
            t.saddr.to_string(),
            t.daddr.to_string(),
            t.sport,
            t.dport,
            wire_len,
        ),
        None => (
            "-".into(),
            String::new(),
            String::new(),
            None,
            None,
            wire_len,
        ),
    }
}

fn key_of_event(e: &serde_json::Value) -> Key {
    let len = e["len"].as_u64().expect("len") as u32;
    match e["tuple"].as_object() {
        Some(t) => {
            let l4 = match t["l4proto"].as_str().unwrap() {
                "icmp" => "1".to_string(),
                "tcp" => "6".to_string(),
                "udp" => "17".to_string(),
                "icmp6" => "58".to_string(),
                "sctp" => "132".to_string(),
                other => other.to_string(),
            };
            let port = |p: &serde_json::Value| p.as_u64().map(|p| p as u16);
            (
                l4,
                t["saddr"].as_str().unwrap().into(),
                t["daddr"].as_str().unwrap().into(),
                port(&t["sport"]),
                port(&t["dport"]),
                len,
            )
        }
        None => ("-".into(), String::new(), String::new(), None, None, len),
    }
}

/// One expression's trace against libpcap's verdicts on tcpdump's
/// capture (`lt`): every packet libpcap selects between `window.0` and
/// `window.1` is among `traced` (events at points each packet passes
/// once), and `traced` holds no packet libpcap selects at no time.
/// Returns how many packets it selected in the window, or `None` when
/// libpcap refuses the expression for this capture.
fn agrees_with_capture(
    expr: &str,
    capture: &std::path::Path,
    lt: capfile::LinkType,
    traced: &[&serde_json::Value],
    window: (std::time::SystemTime, std::time::SystemTime),
) -> Option<usize> {
    let mut cap = pcap::Capture::from_file(capture).expect("the capture");
    cap.filter(expr, true).ok()?;
    let mut any: HashMap<Key, usize> = HashMap::new();
    let mut want: HashMap<Key, usize> = HashMap::new();
    while let Ok(p) = cap.next_packet() {
        let k = key_of_packet(lt, p.data, p.header.len);
        *any.entry(k.clone()).or_default() += 1;
        let t = std::time::UNIX_EPOCH
            + Duration::from_secs(p.header.ts.tv_sec as u64)
            + Duration::from_micros(p.header.ts.tv_usec as u64);
        if t >= window.0 && t <= window.1 {
            *want.entry(k).or_default() += 1;
        }
    }
    let mut seen: HashMap<Key, usize> = HashMap::new();
    for e in traced {
        let k = key_of_event(e);
        assert!(
            any.contains_key(&k),
            "{expr}: the trace has a packet libpcap does not select: {e}\nselected: {any:?}"
        );
        *seen.entry(k).or_default() += 1;
    }
    for (k, n) in &want {
        assert!(
            seen.get(k).is_some_and(|r| r >= n),
            "{expr}: {n} packet(s) {k:?} selected by libpcap, {} in the trace",
            seen.get(k).copied().unwrap_or(0)
        );
    }
    Some(want.values().sum())
}

/// Runs `script` with python3 in namespace `ns` and waits 300 ms for
/// its last packets; the moments before and after, which bound the
/// packets every trace saw.
fn send_traffic(ns: &str, script: &str) -> (std::time::SystemTime, std::time::SystemTime) {
    let from = std::time::SystemTime::now();
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "/usr/bin/python3", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "traffic: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(300));
    (from, std::time::SystemTime::now())
}

/// Stops each `filterd trace` with SIGINT (exit code 130) and returns
/// what each printed.
fn stop_traces(traces: Vec<Child>) -> Vec<String> {
    traces
        .into_iter()
        .map(|c| {
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            let out = c.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(130),
                "filterd trace: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
        .collect()
}

const TRAFFIC: &str = r#"
import socket, time, struct
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def udp(dst, port, sport, fam=socket.AF_INET, n=2):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind(('' if fam == socket.AF_INET else '::', sport))
    for i in range(n):
        s.sendto(b'filterd trace %d' % i, (dst, port))
        time.sleep(0.02)
    s.close()
udp('10.77.0.2', 7001, 40001)
udp('10.77.0.2', 7999, 40002)
udp('fd77::2', 7003, 40003, socket.AF_INET6)
p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
p.bind(('va', 0))
mac = lambda m: bytes(int(x, 16) for x in m.split(':'))
for i in range(2):
    payload = b'tagged %d' % i
    udp_h = struct.pack('!HHHH', 40004, 7004, 8 + len(payload), 0)
    ip_h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp_h) + len(payload), i, 0, 64, 17, 0, bytes([10, 77, 100, 1]), bytes([10, 77, 100, 2]))
    ip_h = ip_h[:10] + struct.pack('!H', csum(ip_h)) + ip_h[12:]
    eth = mac('VB_MAC') + mac(open('/sys/class/net/va/address').read().strip())
    p.send(eth + struct.pack('!HHH', 0x8100, 100, 0x0800) + ip_h + udp_h + payload)
    time.sleep(0.02)
c = socket.create_connection(('10.77.0.2', 7002))
c.sendall(b'x' * 200)
time.sleep(0.1)
c.close()
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for seq in range(2):
    h = struct.pack('!BBHHH', 8, 0, 0, 77, seq) + b'ping' * 4
    r.sendto(struct.pack('!BBHHH', 8, 0, csum(h), 77, seq) + b'ping' * 4, ('10.77.0.2', 0))
    time.sleep(0.05)
time.sleep(0.5)
"#;

const LISTENERS: &str = r#"
import socket, threading, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('10.77.0.2', 7001))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(('10.77.0.2', 7002)); t.listen(4)
def serve():
    while True:
        c, _ = t.accept()
        while c.recv(4096): pass
        c.close()
threading.Thread(target=serve, daemon=True).start()
print('listening', flush=True)
import sys; sys.stderr.write('listening\n'); sys.stderr.flush()
while True:
    u.recv(4096)
"#;

#[test]
fn traced_packets_are_the_ones_libpcap_selects() {
    if !e2e::kernel_available("traced_packets_are_the_ones_libpcap_selects") {
        return;
    }
    let _serial = one_at_a_time();
    let pid = std::process::id();
    let (a, b) = (format!("ft-a-{pid}"), format!("ft-b-{pid}"));
    let dir = std::env::temp_dir().join(format!("filterd-trace-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut lab = Lab {
        ns: vec![a.clone(), b.clone()],
        children: Vec::new(),
        dir: dir.clone(),
    };
    for ns in [&a, &b] {
        let _ = Command::new("ip").args(["netns", "delete", ns]).output();
        sh(&format!("ip netns add {ns}"));
        sh(&format!(
            "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0"
        ));
    }
    sh(&format!(
        "ip link add va netns {a} type veth peer name vb netns {b}"
    ));
    for (ns, dev, four, six) in [
        (&a, "va", "10.77.0.1", "fd77::1"),
        (&b, "vb", "10.77.0.2", "fd77::2"),
    ] {
        let x = |c: &str| sh(&format!("ip netns exec {ns} {c}"));
        x(&format!("ip addr add {four}/24 dev {dev}"));
        x(&format!("ip -6 addr add {six}/64 dev {dev} nodad"));
        x(&format!("ip link set {dev} up"));
        x("ip link set lo up");
    }
    // This kernel has no 8021q module: the tagged frames are written whole
    // to va through a packet socket, to vb's address.
    let vb_mac = String::from_utf8(
        Command::new("ip")
            .args(["netns", "exec", &b, "cat", "/sys/class/net/vb/address"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let spawn = |args: &[&str]| -> Child {
        Command::new("ip")
            .args(["netns", "exec"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns")
    };
    let mut listeners = spawn(&[&b, "/usr/bin/python3", "-c", LISTENERS]);
    wait_ready(&mut listeners, "listening");
    lab.children.push(listeners);
    let pcap = dir.join("vb.pcap");
    let mut tcpdump = spawn(&[
        &b,
        "tcpdump",
        "-i",
        "vb",
        "-U",
        "-w",
        pcap.to_str().unwrap(),
    ]);
    wait_ready(&mut tcpdump, "listening on");
    // One trace per expression, all at once; every other one writes its
    // events to perf buffers (the older kernels' way) instead of ring
    // buffers.
    let filterd = e2e::bin("filterd");
    let mut traces = Vec::new();
    for (i, e) in EXPRESSIONS.iter().enumerate() {
        let buffer = if i % 2 == 0 { "ring" } else { "perf" };
        let mut c = Command::new(&filterd)
            .args([
                "trace",
                "--json",
                "--buffer",
                buffer,
                "--points",
                "netif_receive_skb,kfree_skb",
                e,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("filterd trace");
        wait_ready(&mut c, &format!("({buffer} buffers)"));
        traces.push(c);
    }
    // And one that prints only the packets dropped with a reason.
    let mut drops = Command::new(&filterd)
        .args(["trace", "--json", "--drops-only", "udp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("filterd trace --drops-only");
    wait_ready(&mut drops, "tracing at");
    let started = Instant::now();
    // Packets before the last trace attached, or after the first stops,
    // are in the capture only: the check that every selected packet is in
    // the traces takes the capture between these two moments.
    let traffic = TRAFFIC.replace("VB_MAC", vb_mac.trim());
    let (from, to) = send_traffic(&a, &traffic);
    // The traces stop first, so that the capture covers their window.
    let outputs = stop_traces(traces);
    unsafe { libc::kill(drops.id() as i32, libc::SIGINT) };
    let drops = String::from_utf8(drops.wait_with_output().unwrap().stdout).unwrap();
    unsafe { libc::kill(tcpdump.id() as i32, libc::SIGINT) };
    let _ = tcpdump.wait();
    let inodes: Vec<u64> = [&a, &b]
        .iter()
        .map(|ns| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(format!("/run/netns/{ns}")).unwrap().ino()
        })
        .collect();
    let mut checked = 0;
    for (expr, out) in EXPRESSIONS.iter().zip(&outputs) {
        let events: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{expr}: {e}: {l}")))
            .filter(|e: &serde_json::Value| inodes.contains(&e["netns"].as_u64().unwrap()))
            .collect();
        // At the receive point the filter judges the frame as received,
        // as tcpdump's capture holds it. Later points judge the skb as the
        // kernel has changed it: a VLAN tag it stripped (no VLAN device
        // here) is gone by kfree_skb, so `udp` matches such a frame there.
        let received: Vec<&serde_json::Value> = (events.iter())
            .filter(|e| e["point"] == "netif_receive_skb")
            .collect();
        for e in &received {
            // Named in its own namespace, not filterd's.
            let dev = if e["netns"].as_u64() == Some(inodes[0]) {
                "va"
            } else {
                "vb"
            };
            assert_eq!(e["ifname"], dev, "{expr}: {e}");
        }
        let selected = agrees_with_capture(
            expr,
            &pcap,
            capfile::LinkType::ETHERNET,
            &received,
            (from, to),
        )
        .expect("libpcap compiles it");
        // Closed ports: one traced through a ring buffer, one through perf
        // buffers.
        if let Some(port) = [("udp port 7999", 7999), ("udp dst port 7003", 7003)]
            .iter()
            .find_map(|(e, p)| (e == expr).then_some(*p))
        {
            let drops: Vec<&serde_json::Value> = events
                .iter()
                .filter(|e| e["point"] == "kfree_skb" && e["tuple"]["dport"] == port)
                .collect();
            assert_eq!(drops.len(), 2, "{drops:?}");
            assert!(
                drops.iter().all(|e| e["drop_reason"] == "NO_SOCKET"),
                "{drops:?}"
            );
        }
        assert!(
            selected > 0 || *expr == "less 80" || *expr == "greater 100",
            "{expr}: no packet selected"
        );
        checked += selected;
    }
    // --drops-only: each packet printed ends in kfree_skb with a reason,
    // and the closed ports' datagrams (IPv4 and IPv6) are there.
    let events: Vec<serde_json::Value> = drops
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| inodes.contains(&e["netns"].as_u64().unwrap()))
        .collect();
    let mut ends: HashMap<String, String> = HashMap::new();
    for e in &events {
        if e["point"] == "kfree_skb" {
            ends.insert(
                e["skb"].to_string(),
                e["drop_reason"].as_str().unwrap().into(),
            );
        }
    }
    for e in &events {
        let why = ends.get(&e["skb"].to_string());
        assert!(
            why.is_some_and(|w| w != "NOT_SPECIFIED"),
            "--drops-only printed {e}"
        );
    }
    for port in [7999, 7003] {
        let n = (events.iter())
            .filter(|e| {
                e["point"] == "kfree_skb"
                    && e["tuple"]["dport"] == port
                    && e["drop_reason"] == "NO_SOCKET"
            })
            .count();
        assert_eq!(n, 2, "--drops-only: datagrams to closed port {port}");
    }
    eprintln!(
        "{} expressions, {checked} selected packets all in the traces, in {:?}",
        EXPRESSIONS.len(),
        started.elapsed()
    );
    drop(lab);
}

/// The kernel's verifier accepts the tracing program of every common
/// expression of the corpus (each at `netif_receive_skb` and, with the
/// drop reason, `kfree_skb`): loaded, not attached.
#[test]
fn the_verifier_accepts_every_common_expression() {
    if !e2e::kernel_available("the_verifier_accepts_every_common_expression") {
        return;
    }
    let exprs = std::fs::read_to_string(e2e::corpus_dir().join("expressions/common.txt")).unwrap();
    let points = filterd::trace::points(Some("netif_receive_skb,kfree_skb")).unwrap();
    let (mut loaded, mut refused) = (0, Vec::new());
    for (i, e) in exprs.lines().enumerate() {
        let Ok(filters) = filterd::trace::filters(e) else {
            continue;
        };
        // Every fourth also with perf buffers (the program differs only
        // in its last call).
        let buffers: &[Buffer] = if i % 4 == 0 {
            &[Buffer::Ring, Buffer::Perf]
        } else {
            &[Buffer::Ring]
        };
        for (p, buffer) in points
            .iter()
            .flat_map(|p| buffers.iter().map(move |b| (p, *b)))
        {
            match filterd::trace::verify(&filters, p, buffer) {
                Ok(_) => loaded += 1,
                Err(err) => refused.push(format!("{e:?} at {} ({buffer:?}): {err}", p.name)),
            }
        }
    }
    eprintln!("{loaded} tracing programs loaded");
    assert!(refused.is_empty(), "{}", refused.join("\n"));
    assert!(loaded >= 2 * 150, "{loaded}");
}

/// What was attached and what not is said: every tracepoint, and the
/// fentry functions either among them or on a "not attached" line with
/// the kernel's reason. A bad expression or point is an error (exit 1)
/// before anything is attached.
#[test]
fn trace_says_what_it_attached() {
    if !e2e::kernel_available("trace_says_what_it_attached") {
        return;
    }
    let filterd = e2e::bin("filterd");
    let out = Command::new(&filterd)
        .args(["trace", "--duration", "0.2", "udp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    let tracing = err
        .lines()
        .find(|l| l.contains("tracing at"))
        .expect("a tracing line");
    for p in filter_programs::tracer::POINTS {
        assert!(tracing.contains(p.name), "{p:?}: {err}");
    }
    for f in filter_programs::tracer::FUNCTIONS {
        let said = tracing.contains(f.name)
            || err
                .lines()
                .any(|l| l.starts_with("filterd: not attached (fentry: ") && l.contains(f.name));
        assert!(said, "{f:?}: {err}");
    }
    let bad = Command::new(&filterd)
        .args(["trace", "udp", "port", "x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains('^'));
    let bad = Command::new(&filterd)
        .args(["trace", "--points", "nope", "udp"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("netif_receive_skb"));
}

/// Events a buffer has no room for are counted, not silently gone: with
/// nothing read while 3,000 datagrams cross loopback (one event each at
/// `netif_receive_skb`), the events read and the events counted lost add
/// up to exactly the datagrams sent, through a ring buffer (256 KiB) and
/// through perf buffers (64 KiB per CPU).
#[test]
fn events_the_buffers_have_no_room_for_are_counted() {
    if !e2e::kernel_available("events_the_buffers_have_no_room_for_are_counted") {
        return;
    }
    let _serial = one_at_a_time();
    const SENT: u64 = 3000;
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let filters = filterd::trace::filters(&format!("udp dst port {port}")).unwrap();
    let points = filterd::trace::points(Some("netif_receive_skb")).unwrap();
    for buffer in [Buffer::Ring, Buffer::Perf] {
        let mut tracer = filterd::trace::Tracer::attach(&filters, &points, buffer).unwrap();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..SENT {
            sock.send_to(b"x", ("127.0.0.1", port)).unwrap();
        }
        let mut read = 0u64;
        loop {
            let events = tracer.poll(Duration::from_millis(300));
            if events.is_empty() {
                break;
            }
            read += events.len() as u64;
        }
        let lost = tracer.lost();
        eprintln!("{buffer:?}: {read} events read, {lost} lost");
        assert!(read > 0 && lost > 0, "{buffer:?}: {read} read, {lost} lost");
        assert_eq!(read + lost, SENT, "{buffer:?}: {read} read, {lost} lost");
    }
    // The command line says so: its events and the count on its last
    // "lost" line add up to the datagrams sent.
    let mut c = Command::new(e2e::bin("filterd"))
        .args(["trace", "--json", "--buffer", "perf", "--duration", "3"])
        .args(["--points", "netif_receive_skb"])
        .arg(format!("udp dst port {port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(c.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("tracing at") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no tracing line");
    }
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    const BURST: u64 = 20_000;
    for _ in 0..BURST {
        sock.send_to(b"x", ("127.0.0.1", port)).unwrap();
    }
    let out = c.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let events = String::from_utf8(out.stdout).unwrap().lines().count() as u64;
    let lost = (rest.lines())
        .rfind(|l| l.contains("event(s) lost"))
        .map_or(0, |l| {
            let n = l.trim_start_matches("filterd: ").split(' ').next().unwrap();
            n.parse::<u64>().unwrap()
        });
    eprintln!("filterd trace: {events} events, {lost} lost");
    assert_eq!(events + lost, BURST, "{rest}");
}

/// What a tun device's packets go through: raw IP both ways (UDP to a
/// closed port, IPv4 and IPv6, and pings, written to the device; the
/// kernel's replies read back).
const TUN_TRAFFIC: &str = r#"
import os, fcntl, struct, socket, time
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
fd = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', b'tun0', 0x0001 | 0x1000))
time.sleep(0.3)
def ip4(src, dst, proto, payload, ident):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack('!H', csum(h)) + h[12:] + payload
for i in range(2):
    pl = b'tun udp %d' % i
    os.write(fd, ip4('10.78.0.2', '10.78.0.1', 17, struct.pack('!HHHH', 40010, 7999, 8 + len(pl), 0) + pl, i))
    time.sleep(0.02)
for seq in range(2):
    body = struct.pack('!BBHHH', 8, 0, 0, 78, seq) + b'ping' * 4
    body = body[:2] + struct.pack('!H', csum(body)) + body[4:]
    os.write(fd, ip4('10.78.0.2', '10.78.0.1', 1, body, 10 + seq))
    time.sleep(0.05)
src6, dst6 = (socket.inet_pton(socket.AF_INET6, a) for a in ('fd78::2', 'fd78::1'))
for i in range(2):
    pl = b'tun udp6 %d' % i
    n = 8 + len(pl)
    u = struct.pack('!HHHH', 40011, 7998, n, 0) + pl
    c = csum(src6 + dst6 + struct.pack('!I3xB', n, 17) + u) or 0xffff
    u = u[:6] + struct.pack('!H', c) + u[8:]
    os.write(fd, struct.pack('!IHBB', 0x60000000, n, 17, 64) + src6 + dst6 + u)
    time.sleep(0.02)
time.sleep(0.5)
"#;

/// A device without a link-layer header (a tun device, `link/none`):
/// its packets are raw IP at every point, though the kernel sets their
/// "MAC header" (to the network header). Each expression's trace holds at
/// the device's receive and transmit points exactly the packets libpcap
/// selects from `tcpdump -i tun0`'s raw-IP capture; one that needs
/// link-layer fields selects none (as ARCHITECTURE.md decides for L3
/// hooks, and as libpcap refuses it for raw IP); the datagrams to the
/// closed port end in `kfree_skb` with NO_SOCKET.
#[test]
fn packets_without_a_link_layer_header_are_judged_as_raw_ip() {
    if !e2e::kernel_available("packets_without_a_link_layer_header_are_judged_as_raw_ip") {
        return;
    }
    let _serial = one_at_a_time();
    const TUN_EXPRESSIONS: [&str; 17] = [
        "udp",
        "icmp",
        "ip",
        "ip6",
        "udp port 7999",
        "host 10.78.0.2",
        "src host 10.78.0.1",
        "icmp[icmptype] == icmp-echoreply",
        "ip6 and udp",
        "icmp6",
        "greater 60",
        "less 50",
        "not icmp",
        "ip[8] == 64",
        "ether host 02:00:00:00:00:01",
        "vlan",
        "ip6 protochain 17",
    ];
    let pid = std::process::id();
    let ns = format!("ft-tun-{pid}");
    let dir = std::env::temp_dir().join(format!("filterd-trace-tun-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut lab = Lab {
        ns: vec![ns.clone()],
        children: Vec::new(),
        dir: dir.clone(),
    };
    let _ = Command::new("ip").args(["netns", "delete", &ns]).output();
    sh(&format!("ip netns add {ns}"));
    for c in [
        "sysctl -qw net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0",
        "ip tuntap add mode tun name tun0",
        "ip addr add 10.78.0.1/24 dev tun0",
        "ip -6 addr add fd78::1/64 dev tun0 nodad",
        "ip link set tun0 up",
        "ip link set lo up",
    ] {
        sh(&format!("ip netns exec {ns} {c}"));
    }
    let pcap = dir.join("tun0.pcap");
    let mut tcpdump = Command::new("ip")
        .args(["netns", "exec", &ns, "tcpdump", "-i", "tun0", "-U", "-w"])
        .arg(&pcap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&mut tcpdump, "listening on");
    let tcpdump_pid = tcpdump.id() as i32;
    lab.children.push(tcpdump);
    let filterd = e2e::bin("filterd");
    let mut traces = Vec::new();
    for e in TUN_EXPRESSIONS {
        let mut c = Command::new(&filterd)
            .args(["trace", "--json", "--points"])
            .arg("netif_receive_skb,net_dev_queue,kfree_skb")
            .arg(e)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_ready(&mut c, "tracing at");
        traces.push(c);
    }
    let (from, to) = send_traffic(&ns, TUN_TRAFFIC);
    let outputs = stop_traces(traces);
    unsafe { libc::kill(tcpdump_pid, libc::SIGINT) };
    let _ = lab.children.last_mut().expect("tcpdump").wait();
    let inode = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/run/netns/{ns}")).unwrap().ino()
    };
    let datalink = pcap::Capture::from_file(&pcap)
        .expect("the capture")
        .get_datalink();
    assert_eq!(datalink, pcap::Linktype(12), "tcpdump -i tun0 is raw IP");
    let mut checked = 0;
    for (expr, out) in TUN_EXPRESSIONS.iter().zip(&outputs) {
        let events: Vec<serde_json::Value> = (out.lines())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{expr}: {e}: {l}")))
            .filter(|e: &serde_json::Value| e["netns"].as_u64() == Some(inode))
            .collect();
        // Where a packet enters the device's path: received, or queued
        // for transmission on it.
        let on_tun: Vec<&serde_json::Value> = (events.iter())
            .filter(|e| e["point"] == "netif_receive_skb" || e["point"] == "net_dev_queue")
            .filter(|e| e["ifname"] == "tun0")
            .collect();
        let Some(selected) =
            agrees_with_capture(expr, &pcap, capfile::LinkType::RAW, &on_tun, (from, to))
        else {
            // Link-layer fields on raw IP: libpcap refuses them, and they
            // match no packet without a link-layer header.
            assert!(on_tun.is_empty(), "{expr}: {on_tun:?}");
            continue;
        };
        if *expr == "udp port 7999" {
            let drops = (events.iter())
                .filter(|e| e["point"] == "kfree_skb" && e["tuple"]["dport"] == 7999)
                .filter(|e| e["drop_reason"] == "NO_SOCKET")
                .count();
            assert_eq!(drops, 2, "{events:?}");
        }
        assert!(
            selected > 0 || *expr == "less 50",
            "{expr}: nothing selected"
        );
        checked += selected;
    }
    eprintln!("tun0: {checked} selected packets all in the traces");
    assert!(checked > 40, "{checked}");
    drop(lab);
}
