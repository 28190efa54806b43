//! Our socket translation against the kernel's own classic-to-eBPF
//! converter, on real packet sockets; and the socket attach API on UDP.
//!
//! On a veth pair in a namespace of its own, two AF_PACKET sockets on `v1`
//! get the same libpcap program: one as classic BPF (`SO_ATTACH_FILTER`,
//! so the kernel converts it), one as our eBPF (`SO_ATTACH_BPF`, through
//! `filterd::socket`). A third socket without filter records every frame as
//! the packet sockets' filters see it. Crafted frames go out of `v0`.
//!
//! VLAN finding (Linux 6.18, veth, AF_PACKET): the outer tag is NOT in the
//! bytes a packet socket's filter sees. `__netif_receive_skb_core` calls
//! `skb_vlan_untag` for any 802.1Q/802.1ad frame before the `ptype_all`
//! taps run, so the tag lives in `skb->vlan_tci`/`vlan_proto` (reported to
//! user space in `PACKET_AUXDATA`). The kernel's converted classic program
//! reads the bytes it is given: it judges the frame with the tag removed,
//! and so disagrees with libpcap run on the frame as sent (as a pcap file
//! would hold it): `vlan` matches only a frame that had two tags, `ip`
//! matches a singly tagged IPv4 frame, `len` is 4 smaller. Our translation
//! puts the tag back where it was (`translate`'s `vlan.rs`): its verdict is
//! libpcap's on the frame as sent, and it differs from the kernel's
//! converter only on tagged frames. A tagged frame too short for the tag
//! and the inner ethertype is dropped by `skb_vlan_untag` before any tap
//! sees it. The test asserts all of this, so a kernel that behaves
//! otherwise fails it rather than passing silently. Only the outer tag
//! moves: in 802.1ad-over-802.1Q frames the inner 802.1Q tag stays in the
//! bytes. A tag with TCI 0 (priority only) moves too, with both
//! `TP_STATUS_VLAN_VALID` and `TP_STATUS_VLAN_TPID_VALID` set. Programs that
//! read the tag from `SKF_AD_VLAN_TAG*` themselves, as libpcap's do on a
//! live Linux handle (the hand-written `metadata_vlan_programs`), mean what
//! the kernel makes of them: there our translation agrees with the kernel's
//! converter and with `PACKET_AUXDATA`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use bpf_kernel::socket::{self, attach_classic};
use e2e::{frames, net};
use filter_programs::cbpf::{self, skf::SKF_NET_OFF};
use filter_programs::translate::{translate, Target};
use filterd::socket::SocketProgram;
use frames::{seq_of, Frame};
use libpcap_oracle::{self as libpcap, CompileOptions};
use net::{ifindex, Netns, PacketSocket, TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_VALID};

const EXPRESSIONS: &[&str] = &[
    "tcp port 80",
    "udp",
    "tcp",
    "icmp",
    "ip",
    "ip6",
    "arp",
    "rarp",
    "vlan",
    "vlan 100",
    "vlan and ip",
    "vlan and tcp port 80",
    "not ip",
    "host 10.0.0.1",
    "src host 10.0.0.2",
    "dst host 192.168.200.1",
    "net 192.168.0.0/16",
    "dst net 10.0.0.0/8",
    "src net 172.16.0.0/12",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-rst|tcp-fin) != 0",
    "tcp[13] = 2",
    "ip[6:2] & 0x1fff != 0",
    "ip[6:2] & 0x2000 != 0",
    "ip[0] & 0xf > 5",
    "ip[8] = 1",
    "greater 100",
    "less 60",
    "len >= 64 and len <= 128",
    "ether broadcast",
    "ether multicast",
    "ether dst ff:ff:ff:ff:ff:ff",
    "ether src 02:5e:00:00:00:05",
    "ether proto 0x88cc",
    "portrange 1000-2000",
    "udp src portrange 1000-2000",
    "tcp dst port 443",
    "udp port 53",
    "port 22 or port 8080",
    "host 10.0.0.1 and port 80",
    "ip and not tcp",
    "icmp[icmptype] = icmp-echo",
    "icmp6",
    "ip6 and tcp",
    "ip6 and udp port 53",
    "ip6 host 2001:db8::1",
    "ip6 net fe80::/10",
    "ip6 protochain 6",
    "ip proto 47",
    "arp and host 10.0.0.1",
    "tcp[0:2] > 1023",
    "udp[4:2] > 100",
    "ip multicast",
    "ether[0] & 1 = 1",
    "llc",
];

/// How many programs share one round of traffic (two sockets each).
const ROUND: usize = 12;

struct Compiled {
    expr: &'static str,
    classic: Vec<cbpf::Insn>,
    /// For programs that read the tag from skb metadata (`SKF_AD_VLAN_*`),
    /// which libpcap's interpreter cannot run: the verdict predicted from
    /// the `PACKET_AUXDATA` of the frame.
    from_aux: Option<fn(&net::Aux) -> bool>,
}

/// Classic programs that read the tag where this hook keeps it. They are
/// what "VLAN means the same on every hook" needs on a packet socket.
fn metadata_vlan_programs() -> Vec<Compiled> {
    use cbpf::Insn as I;
    use filter_programs::cbpf::skf::{
        SKF_AD_OFF, SKF_AD_VLAN_TAG, SKF_AD_VLAN_TAG_PRESENT, SKF_AD_VLAN_TPID,
    };
    let ad = |field: u32| I::new(0x20, 0, 0, (SKF_AD_OFF as u32).wrapping_add(field));
    let (keep, drop) = (I::new(0x06, 0, 0, u32::MAX), I::new(0x06, 0, 0, 0));
    let present = |a: &net::Aux| a.status & TP_STATUS_VLAN_VALID != 0;
    vec![
        Compiled {
            expr: "ld vlan_avail; jeq #1",
            classic: vec![
                ad(SKF_AD_VLAN_TAG_PRESENT),
                I::new(0x15, 0, 1, 1),
                keep,
                drop,
            ],
            from_aux: Some(present),
        },
        Compiled {
            expr: "vlan_avail and vlan_tci & 0xfff = 100",
            classic: vec![
                ad(SKF_AD_VLAN_TAG_PRESENT),
                I::new(0x15, 0, 4, 0x1),
                ad(SKF_AD_VLAN_TAG),
                I::new(0x54, 0, 0, 0xfff),
                I::new(0x15, 0, 1, 100),
                keep,
                drop,
            ],
            from_aux: Some(|a| a.status & TP_STATUS_VLAN_VALID != 0 && a.vlan_tci & 0xfff == 100),
        },
        Compiled {
            expr: "vlan_avail and vlan_tpid = 0x88a8",
            classic: vec![
                ad(SKF_AD_VLAN_TAG_PRESENT),
                I::new(0x15, 0, 3, 1),
                ad(SKF_AD_VLAN_TPID),
                I::new(0x15, 0, 1, 0x88a8),
                keep,
                drop,
            ],
            from_aux: Some(|a| a.status & TP_STATUS_VLAN_VALID != 0 && a.vlan_tpid == 0x88a8),
        },
    ]
}

/// What one socket received: sequence number to bytes.
type Received = BTreeMap<u16, Vec<u8>>;

/// Per-round capture: the unfiltered view with its aux data, and per
/// program (classic, ours).
struct Round {
    seen: BTreeMap<u16, (Vec<u8>, Option<net::Aux>)>,
    per_prog: Vec<Option<(Received, Received)>>,
}

fn drain(s: &PacketSocket) -> Vec<(Vec<u8>, Option<net::Aux>)> {
    let mut out = Vec::new();
    while let Some(f) = s.recv().expect("recv") {
        out.push(f);
    }
    out
}

fn ours(rx: &PacketSocket) -> Received {
    let mut got = Received::new();
    for (bytes, _) in drain(rx) {
        if let Some(seq) = seq_of(&bytes) {
            assert!(
                got.insert(seq, bytes).is_none(),
                "frame {seq} delivered twice"
            );
        }
    }
    got
}

/// Runs one round inside the namespace: sockets for `progs`, every frame
/// sent once, everything read back.
fn round(progs: &[Compiled], frames: &[Frame]) -> Round {
    let (v0, v1) = (ifindex("v0"), ifindex("v1"));
    let tx = PacketSocket::new().expect("tx socket");
    let all = PacketSocket::new().expect("socket");
    all.enable_auxdata().expect("auxdata");
    all.bind_all(v1).expect("bind");
    let mut socks = Vec::new();
    for p in progs {
        let classic = PacketSocket::new().expect("socket");
        if let Err(e) = attach_classic(classic.as_fd(), &p.classic) {
            eprintln!(
                "{:?}: the kernel refuses the classic program ({e}); skipped",
                p.expr
            );
            socks.push(None);
            continue;
        }
        let insns = translate(&p.classic, Target::socket())
            .unwrap_or_else(|e| panic!("{:?}: translate: {e}", p.expr));
        let prog = SocketProgram::load(&insns, "conv")
            .unwrap_or_else(|e| panic!("{:?}: load: {e}", p.expr));
        let ebpf = PacketSocket::new().expect("socket");
        prog.attach(ebpf.as_fd()).expect("SO_ATTACH_BPF");
        classic.bind_all(v1).expect("bind");
        ebpf.bind_all(v1).expect("bind");
        socks.push(Some((classic, ebpf)));
    }
    // Anything queued so far is the kernel's own traffic; start clean.
    drain(&all);
    socks.iter().flatten().for_each(|(c, e)| {
        drain(c);
        drain(e);
    });
    for f in frames {
        tx.send(v0, &f.bytes)
            .unwrap_or_else(|e| panic!("send frame {} ({}): {e}", f.seq, f.kind));
    }
    // Delivery is asynchronous (veth hands frames to the receive softirq):
    // read until the unfiltered socket has been quiet for a while, then
    // give the other taps of the last frame time to finish.
    let mut seen = BTreeMap::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_millis(300) {
        match all.recv().expect("recv") {
            Some((bytes, aux)) => {
                if let Some(seq) = seq_of(&bytes) {
                    assert!(
                        seen.insert(seq, (bytes, aux)).is_none(),
                        "frame {seq} delivered twice"
                    );
                }
                last = Instant::now();
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let per_prog = socks
        .iter()
        .map(|s| s.as_ref().map(|(c, e)| (ours(c), ours(e))))
        .collect();
    for s in std::iter::once(&all).chain(socks.iter().flatten().flat_map(|(c, e)| [c, e])) {
        assert_eq!(
            s.drops().expect("stats"),
            0,
            "a packet socket dropped frames: verdicts would be wrong"
        );
    }
    Round { seen, per_prog }
}

/// The tagged frame as the packet socket sees it: outer tag removed.
fn untagged(sent: &[u8]) -> Vec<u8> {
    [&sent[..12], &sent[16..]].concat()
}

/// Checks where the tag is and returns the sequence numbers of the tagged
/// frames the kernel dropped before any tap.
fn check_vlan_placement(
    frames: &[Frame],
    seen: &BTreeMap<u16, (Vec<u8>, Option<net::Aux>)>,
) -> Vec<u16> {
    let mut lost = Vec::new();
    for f in frames {
        let Some((bytes, aux)) = seen.get(&f.seq) else {
            // Only a tagged frame without room for the tag and the inner
            // ethertype may vanish (skb_vlan_untag's pskb_may_pull).
            assert!(
                f.tag.is_some() && f.bytes.len() < 20,
                "frame {} ({}) never arrived",
                f.seq,
                f.kind
            );
            lost.push(f.seq);
            continue;
        };
        let aux = aux.unwrap_or_else(|| panic!("frame {}: no PACKET_AUXDATA", f.seq));
        match f.tag {
            None => {
                assert_eq!(
                    bytes, &f.bytes,
                    "untagged frame {} ({}) changed on the way",
                    f.seq, f.kind
                );
                assert_eq!(
                    aux.status & TP_STATUS_VLAN_VALID,
                    0,
                    "frame {}: {aux:?}",
                    f.seq
                );
            }
            Some((tpid, tci)) => {
                assert_eq!(
                    bytes,
                    &untagged(&f.bytes),
                    "tagged frame {} ({}): tag still in the bytes",
                    f.seq,
                    f.kind
                );
                let both = TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID;
                assert_eq!(
                    aux.status & both,
                    both,
                    "frame {} ({}): {aux:?}",
                    f.seq,
                    f.kind
                );
                assert_eq!(
                    (aux.vlan_tpid, aux.vlan_tci),
                    (tpid, tci),
                    "frame {} ({}) aux",
                    f.seq,
                    f.kind
                );
            }
        }
    }
    lost
}

#[test]
fn socket_programs_against_the_kernels_converter_on_veth() {
    if !e2e::kernel_available("socket_programs_against_the_kernels_converter_on_veth") {
        return;
    }
    let frames = frames::all();
    let tagged = frames.iter().filter(|f| f.tag.is_some()).count();
    let mut compiled: Vec<Compiled> = EXPRESSIONS
        .iter()
        .filter_map(
            |&expr| match libpcap::compile(expr, CompileOptions::new(1)) {
                Ok(classic) => Some(Compiled {
                    expr,
                    classic,
                    from_aux: None,
                }),
                Err(e) => {
                    eprintln!("{expr:?}: libpcap refuses it ({e}); skipped");
                    None
                }
            },
        )
        .collect();
    let libpcap_skipped = EXPRESSIONS.len() - compiled.len();
    compiled.extend(metadata_vlan_programs());
    let ns = Netns::with_veth("sockconv");
    let rounds: Vec<Round> =
        ns.enter(|| compiled.chunks(ROUND).map(|c| round(c, &frames)).collect());
    drop(ns);

    let mut lost = None;
    let (mut checked, mut skipped, mut accepted, mut metadata_checked, mut vlan_diffs) =
        (0, 0, 0, 0, Vec::new());
    for (chunk, r) in compiled.chunks(ROUND).zip(&rounds) {
        let l = check_vlan_placement(&frames, &r.seen);
        assert!(
            lost.is_none() || lost.as_ref() == Some(&l),
            "the kernel dropped different frames in two rounds"
        );
        lost = Some(l);
        for (p, got) in chunk.iter().zip(&r.per_prog) {
            let Some((classic, ebpf)) = got else {
                skipped += 1;
                continue;
            };
            let c: BTreeSet<u16> = classic.keys().copied().collect();
            let e: BTreeSet<u16> = ebpf.keys().copied().collect();
            for (seq, bytes) in classic.iter().chain(ebpf) {
                assert_eq!(
                    Some(bytes),
                    r.seen.get(seq).map(|x| &x.0),
                    "{:?}: frame {seq} bytes",
                    p.expr
                );
            }
            checked += 1;
            accepted += e.len();
            if let Some(oracle) = p.from_aux {
                let only_c: Vec<_> = c.difference(&e).collect();
                let only_e: Vec<_> = e.difference(&c).collect();
                assert!(
                    only_c.is_empty() && only_e.is_empty(),
                    "{:?}: kernel converter only {only_c:?}, ours only {only_e:?}",
                    p.expr
                );
                let predicted: BTreeSet<u16> = r
                    .seen
                    .iter()
                    .filter(|(_, (_, a))| a.as_ref().is_some_and(oracle))
                    .map(|(s, _)| *s)
                    .collect();
                assert_eq!(e, predicted, "{:?}: sockets vs PACKET_AUXDATA", p.expr);
                assert!(!e.is_empty(), "{:?}: matched no frame", p.expr);
                metadata_checked += 1;
                continue;
            }
            // The kernel's converter: libpcap's verdict on the bytes the
            // filter was given, the tag moved out.
            let delivered: BTreeSet<u16> = r
                .seen
                .iter()
                .filter(|(_, (b, _))| libpcap::filter(&p.classic, b, b.len() as u32) != 0)
                .map(|(s, _)| *s)
                .collect();
            assert_eq!(
                c, delivered,
                "{:?}: kernel converter vs libpcap on the delivered bytes",
                p.expr
            );
            // Ours: libpcap's verdict on the frame as sent.
            let as_sent: BTreeSet<u16> = frames
                .iter()
                .filter(|f| r.seen.contains_key(&f.seq))
                .filter(|f| libpcap::filter(&p.classic, &f.bytes, f.bytes.len() as u32) != 0)
                .map(|f| f.seq)
                .collect();
            assert_eq!(
                e, as_sent,
                "{:?}: our socket program vs libpcap on the frame as sent",
                p.expr
            );
            // The two differ only where the kernel moved a tag.
            for seq in c.symmetric_difference(&e) {
                let f = frames.iter().find(|f| f.seq == *seq).expect("sent");
                assert!(
                    f.tag.is_some(),
                    "{:?}: untagged frame {} ({}) judged differently",
                    p.expr,
                    f.seq,
                    f.kind
                );
                vlan_diffs.push((p.expr, *seq, e.contains(seq)));
            }
        }
    }
    let lost = lost.unwrap_or_default();
    let exprs_with_diffs: BTreeSet<&str> = vlan_diffs.iter().map(|d| d.0).collect();
    let lost_kinds: Vec<&str> = frames
        .iter()
        .filter(|f| lost.contains(&f.seq))
        .map(|f| f.kind.as_str())
        .collect();
    eprintln!(
        "{} frames ({tagged} tagged), {} programs: {checked} compared on both sockets ({metadata_checked} reading \
         the tag from skb metadata), {skipped} refused by the kernel, {libpcap_skipped} refused by libpcap; \
         {accepted} (program, frame) acceptances by ours, all as libpcap predicts; {} tagged frames never reached a \
         packet socket {lost_kinds:?}; {} (expression, tagged frame) verdicts of the kernel's converter (frame untagged) \
         differ from ours (frame as sent), in {exprs_with_diffs:?}",
        frames.len(),
        compiled.len() + libpcap_skipped,
        lost.len(),
        vlan_diffs.len(),
    );
    assert!(
        checked - metadata_checked >= 40,
        "only {checked} expressions compared"
    );
    assert_eq!(
        metadata_checked, 3,
        "the metadata VLAN programs were not all compared"
    );
    assert!(
        accepted > 0,
        "no frame accepted by any program: the comparison proved nothing"
    );
    // The finding, pinned: `vlan` matches singly tagged frames as sent
    // (ours), and not on the bytes the kernel leaves (its converter).
    assert!(
        vlan_diffs.iter().any(|d| d.0 == "vlan" && d.2),
        "expected `vlan` to differ on tagged frames"
    );
}

/// `ld [net+12]; jeq #addr, keep, drop`: the IPv4 source, seen from a UDP
/// socket (whose data starts at the UDP header) through `SKF_NET_OFF`.
fn only_from(addr: [u8; 4]) -> Vec<cbpf::Insn> {
    vec![
        cbpf::Insn::new(0x20, 0, 0, (SKF_NET_OFF + 12) as u32),
        cbpf::Insn::new(0x15, 0, 1, u32::from_be_bytes(addr)),
        cbpf::Insn::new(0x06, 0, 0, u32::MAX),
        cbpf::Insn::new(0x06, 0, 0, 0),
    ]
}

fn heard(rx: &UdpSocket) -> Vec<(String, std::net::SocketAddr)> {
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let mut out = Vec::new();
    while let Ok((n, from)) = rx.recv_from(&mut buf) {
        out.push((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
    }
    out
}

#[test]
fn udp_l3_filter_on_loopback() {
    if !e2e::kernel_available("udp_l3_filter_on_loopback") {
        return;
    }
    let classic = only_from([127, 0, 0, 1]);
    let prog = SocketProgram::load(
        &translate(&classic, Target::socket()).expect("translates"),
        "udp_from_lo",
    )
    .expect("loads");
    let a = UdpSocket::bind("127.0.0.1:0").expect("127.0.0.1");
    let b = UdpSocket::bind("127.0.0.2:0").expect("127.0.0.2");
    let send_both = |rx: &UdpSocket| {
        let to = rx.local_addr().expect("addr");
        b.send_to(b"b", to).expect("send");
        a.send_to(b"a", to).expect("send");
    };
    let only_a = vec![("a".to_string(), a.local_addr().expect("addr"))];

    // Unfiltered, both arrive: the filter below is what drops b.
    let rx = UdpSocket::bind("127.0.0.1:0").expect("rx");
    send_both(&rx);
    assert_eq!(heard(&rx).len(), 2);
    // Ours and the kernel's converter agree.
    prog.attach(rx.as_fd()).expect("attach ours");
    send_both(&rx);
    assert_eq!(heard(&rx), only_a, "our eBPF");
    attach_classic(rx.as_fd(), &classic).expect("attach classic");
    send_both(&rx);
    assert_eq!(heard(&rx), only_a, "kernel's converter");
    socket::detach(rx.as_fd()).expect("detach");
    send_both(&rx);
    assert_eq!(heard(&rx).len(), 2, "after detach");
}

#[test]
fn replace_never_lets_a_dropped_datagram_through() {
    if !e2e::kernel_available("replace_never_lets_a_dropped_datagram_through") {
        return;
    }
    // Two different programs that both drop 127.0.0.2: swapping between
    // them under traffic must never leave the socket unfiltered.
    let keep_lo = only_from([127, 0, 0, 1]);
    let mut drop_two = only_from([127, 0, 0, 2]);
    drop_two[2].k = 0;
    drop_two[3].k = u32::MAX;
    let progs = [
        SocketProgram::load(
            &translate(&keep_lo, Target::socket()).expect("translates"),
            "keep_lo",
        )
        .expect("loads"),
        SocketProgram::load(
            &translate(&drop_two, Target::socket()).expect("translates"),
            "drop_two",
        )
        .expect("loads"),
    ];
    let rx = UdpSocket::bind("127.0.0.1:0").expect("rx");
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    progs[0].attach(rx.as_fd()).expect("attach");
    let to = rx.local_addr().expect("addr");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (good, bad, swaps) = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let a = UdpSocket::bind("127.0.0.1:0").expect("a");
            let b = UdpSocket::bind("127.0.0.2:0").expect("b");
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = b.send_to(b"b", to);
                let _ = a.send_to(b"a", to);
                sent += 1;
            }
            sent
        });
        let receiver = s.spawn(|| {
            let (mut good, mut bad, mut buf) = (0u64, 0u64, [0u8; 8]);
            while let Ok((n, _)) = rx.recv_from(&mut buf) {
                match &buf[..n] {
                    b"a" => good += 1,
                    _ => bad += 1,
                }
            }
            (good, bad)
        });
        let mut swaps = 0;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1500) {
            progs[swaps % 2].replace(rx.as_fd()).expect("replace");
            swaps += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent = sender.join().expect("sender");
        let (good, bad) = receiver.join().expect("receiver");
        assert!(sent > 0);
        (good, bad, swaps)
    });
    eprintln!("{swaps} replacements under traffic: {good} datagrams from 127.0.0.1 received, {bad} from 127.0.0.2");
    assert!(
        swaps > 100 && good > 100,
        "too little happened to prove anything"
    );
    assert_eq!(
        bad, 0,
        "a datagram from 127.0.0.2 got through while filters were being replaced"
    );
}
