//! Verdicts on live traffic: for each expression, the frames that our XDP
//! program (drv and skb mode), our socket filter and our tc ingress program
//! let through on a veth pair are exactly those libpcap accepts.
//!
//! # Observing each hook on `v1` (frames are sent from `v0`)
//! - **XDP** runs before everything else on receive: a packet socket bound
//!   to `ETH_P_ALL` on `v1` (a `ptype_all` tap) sees exactly the frames XDP
//!   passed.
//! - **socket**: a packet socket on `v1` with our socket eBPF attached
//!   through `filterd::socket`, i.e. what an application's socket gets.
//! - **tc ingress** runs *after* the `ptype_all` taps, so an `ETH_P_ALL`
//!   socket cannot see its verdict. Packet sockets bound to one protocol
//!   are different: they sit on the device's `ptype_specific` list, which
//!   `__netif_receive_skb_core` delivers to after `sch_handle_ingress` (and
//!   after the VLAN tag handling, which only marks a frame for an unknown
//!   VLAN `PACKET_OTHERHOST`, a packet socket still receives it). One such
//!   socket per protocol the frames carry receives exactly what tc let
//!   through. The control: with no tc program, these sockets together see
//!   every frame the `ETH_P_ALL` tap sees, each once.
//!
//! # VLAN per hook (what the test establishes and then relies on)
//! - XDP (native veth XDP and generic XDP alike) sees the frame as sent,
//!   tag included, in its bytes.
//! - Packet sockets and tc ingress see the frame after the kernel moved the
//!   outer tag into skb metadata (see `socket_kernel_converter.rs`): the
//!   unfiltered tap delivers tagged frames without their outer tag, which
//!   the test asserts. Our socket and tc programs read the tag from that
//!   metadata (`translate`'s `vlan.rs`).
//! - So on every hook the verdict is libpcap's on the frame as sent. The
//!   test also counts the (expression, tagged frame) pairs where libpcap
//!   on the bytes the later hooks hold would have judged otherwise: what
//!   reading the bytes alone would get wrong.
//! - A tagged frame too short for its tag never gets past the untagging;
//!   XDP may pass it, but it is then dropped before any tap, so every
//!   prediction is limited to the frames that arrive with no program.
//!
//! Oracle: libpcap's unoptimized program (which defines the verdict where
//! its optimizer disagrees), run on the frame as sent.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::frames::{self, seq_of, Frame};
use e2e::net::{ifindex, Netns, PacketSocket};
use filter_programs::codegen::{self, Dlt};
use filter_programs::translate::{translate, Target};
use filter_programs::Hook;
use filterd::attach::{pin, Direction, Program, Source, TcHook, XdpHook, XdpMode};
use filterd::socket::SocketProgram;
use libpcap_oracle::{self as libpcap, CompileOptions};

const EXPRESSIONS: &[&str] = &[
    "",
    "vlan",
    "vlan 100",
    "vlan and ip",
    "vlan and tcp port 80",
    "not vlan",
    "ip6 and tcp",
    "ip6 and udp port 53",
    "ip6 host 2001:db8::1",
    "ip6 net fe80::/10",
    "icmp6",
    "ip6[6] = 0",
    "ip[6:2] & 0x1fff != 0",
    "ip[6:2] & 0x2000 != 0",
    "ip[6:2] & 0x4000 != 0",
    "arp",
    "rarp",
    "arp and host 10.0.0.1",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-rst|tcp-fin) != 0",
    "tcp[13] = 0x12",
    "tcp port 80",
    "udp port 53",
    "portrange 1000-2000",
    "tcp dst port 443 or udp src port 53",
    "host 10.0.0.1",
    "src host 10.0.0.2 and not dst host 8.8.8.8",
    "net 192.168.0.0/16",
    "dst net 10.0.0.0/8",
    "src net 172.16.0.0/12",
    "icmp",
    "icmp[icmptype] = icmp-echo",
    "ip[8] = 1",
    "greater 100",
    "less 60",
    "ether broadcast",
    "ether multicast",
    "ether proto 0x88cc",
    "llc",
    "ip and not tcp",
];

/// The protocols the frames carry once the kernel has taken the outer tag
/// off (`ETH_P_802_2` = 4 for the LLC frame); the control asserts that no
/// frame is missed.
const PROTOCOLS: &[u16] = &[
    0x0800, 0x86dd, 0x0806, 0x8035, 0x88cc, 0x8137, 0x8100, 0x88a8, 0x0004, 0x0001,
];

type Seen = BTreeMap<u16, Vec<u8>>;

/// Removes this namespace's filterd pins on drop, also when a test fails.
struct PinScope(PathBuf);

impl Drop for PinScope {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bind_proto(s: &PacketSocket, ifindex: i32, proto: u16) {
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = proto.to_be();
    a.sll_ifindex = ifindex;
    // SAFETY: a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            s.as_fd().as_raw_fd(),
            (&a as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(
        rc,
        0,
        "bind protocol {proto:#x}: {}",
        std::io::Error::last_os_error()
    );
}

fn drain_into(s: &PacketSocket, into: &mut Seen, which: usize) -> bool {
    let mut any = false;
    while let Some((bytes, _)) = s.recv().expect("recv") {
        if let Some(seq) = seq_of(&bytes) {
            if let Some(first) = into.insert(seq, bytes.clone()) {
                panic!(
                    "frame {seq} delivered twice to socket {which}:\n{first:02x?}\n{bytes:02x?}"
                );
            }
            any = true;
        }
    }
    any
}

/// Sends every frame from v0, then reads all `socks` until they have been
/// quiet for a while; one map per socket.
fn exchange(frames: &[Frame], socks: &[&PacketSocket]) -> Vec<Seen> {
    let tx = PacketSocket::new().expect("tx socket");
    let v0 = ifindex("v0");
    // Whatever is queued is from before this round.
    for s in socks {
        while s.recv().expect("recv").is_some() {}
    }
    let mut seen = vec![Seen::new(); socks.len()];
    for f in frames {
        tx.send(v0, &f.bytes)
            .unwrap_or_else(|e| panic!("send frame {} ({}): {e}", f.seq, f.kind));
    }
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_millis(200) {
        let mut any = false;
        for (i, (s, m)) in socks.iter().zip(seen.iter_mut()).enumerate() {
            any |= drain_into(s, m, i);
        }
        if any {
            last = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for s in socks {
        assert_eq!(
            s.drops().expect("stats"),
            0,
            "a packet socket dropped frames: verdicts would be wrong"
        );
    }
    seen
}

fn tap(v1: i32) -> PacketSocket {
    let s = PacketSocket::new().expect("socket");
    s.bind_all(v1).expect("bind");
    s
}

/// One socket per protocol, bound to `v1`: together they see what passed
/// tc ingress.
fn after_tc(v1: i32) -> Vec<PacketSocket> {
    PROTOCOLS
        .iter()
        .map(|&p| {
            let s = PacketSocket::new().expect("socket");
            bind_proto(&s, v1, p);
            s
        })
        .collect()
}

fn merged(maps: &[Seen]) -> Seen {
    let mut all = Seen::new();
    for m in maps {
        for (seq, b) in m {
            assert!(
                all.insert(*seq, b.clone()).is_none(),
                "frame {seq} reached two protocol sockets"
            );
        }
    }
    all
}

struct Expr {
    text: &'static str,
    oracle: Vec<filter_programs::cbpf::Insn>,
    ours: Vec<filter_programs::cbpf::Insn>,
}

fn predicted(e: &Expr, view: &Seen) -> BTreeSet<u16> {
    view.iter()
        .filter(|(_, b)| libpcap::filter(&e.oracle, b, b.len() as u32) != 0)
        .map(|(s, _)| *s)
        .collect()
}

fn keys(m: &Seen) -> BTreeSet<u16> {
    m.keys().copied().collect()
}

fn assert_same(
    what: &str,
    expr: &str,
    got: &BTreeSet<u16>,
    want: &BTreeSet<u16>,
    frames: &[Frame],
) {
    if got != want {
        let kind = |s: &u16| {
            frames
                .get(*s as usize)
                .map_or("?".to_string(), |f| f.kind.clone())
        };
        let extra: Vec<String> = got
            .difference(want)
            .map(|s| format!("{s} {}", kind(s)))
            .collect();
        let missing: Vec<String> = want
            .difference(got)
            .map(|s| format!("{s} {}", kind(s)))
            .collect();
        panic!("{what} {expr:?}: passed but libpcap rejects: {extra:?}; libpcap accepts but dropped: {missing:?}");
    }
}

#[test]
fn xdp_socket_and_tc_verdicts_match_libpcap_on_veth() {
    if !e2e::kernel_available("xdp_socket_and_tc_verdicts_match_libpcap_on_veth") {
        return;
    }
    let frames = frames::all();
    let mut oracle_opts = CompileOptions::new(1);
    oracle_opts.optimize = false;
    let exprs: Vec<Expr> = EXPRESSIONS
        .iter()
        .map(|&text| Expr {
            text,
            oracle: libpcap::compile(text, oracle_opts)
                .unwrap_or_else(|e| panic!("libpcap {text:?}: {e}")),
            ours: codegen::compile(text, &codegen::Options::new(Dlt::En10mb))
                .unwrap_or_else(|e| panic!("ours {text:?}: {}", e.render())),
        })
        .collect();
    let ns = Netns::with_veth("attverd");
    let _pins = PinScope(ns.enter(|| pin::netns_scope().expect("scope")));
    let summary = ns.enter(|| {
        let v1 = ifindex("v1");
        // Control: no program anywhere. The tap's view is what arrives.
        let all = tap(v1);
        let protos = after_tc(v1);
        let mut socks: Vec<&PacketSocket> = vec![&all];
        socks.extend(protos.iter());
        let seen = exchange(&frames, &socks);
        let arrived = seen[0].clone();
        assert_eq!(
            merged(&seen[1..]),
            arrived,
            "the per-protocol sockets do not see every frame the tap sees"
        );
        drop(protos);
        let lost = frames.len() - arrived.len();
        assert!(lost <= 4, "{lost} frames never arrived");
        let as_sent: Seen = frames
            .iter()
            .filter(|f| arrived.contains_key(&f.seq))
            .map(|f| (f.seq, f.bytes.clone()))
            .collect();
        let tagged: BTreeSet<u16> = frames
            .iter()
            .filter(|f| f.tag.is_some())
            .map(|f| f.seq)
            .collect();
        for (seq, b) in &arrived {
            if tagged.contains(seq) {
                let sent = &as_sent[seq];
                let untagged = [&sent[..12], &sent[16..]].concat();
                assert_eq!(
                    b, &untagged,
                    "tagged frame {seq}: the outer tag is still in the bytes"
                );
            } else {
                assert_eq!(b, &as_sent[seq], "untagged frame {seq} changed on the way");
            }
        }

        // XDP, native then generic: the tap sees what XDP passed.
        let dir = pin::default_dir("v1", "xdp").expect("pin dir");
        let mut xdp_checked = 0;
        for mode in [XdpMode::Drv, XdpMode::Skb] {
            let mut hook: Option<XdpHook> = None;
            for e in &exprs {
                let prog =
                    Program::build(&Source::Cbpf(e.ours.clone()), Hook::Xdp).expect("builds");
                match hook.as_mut() {
                    None => {
                        hook = Some(XdpHook::attach("v1", mode, &prog, &dir).expect("attach xdp"))
                    }
                    Some(h) => h.replace(&prog).expect("replace xdp"),
                }
                assert_eq!(hook.as_ref().and_then(|h| h.mode()), Some(mode.name()));
                let got = exchange(&frames, &[&all]).remove(0);
                for (seq, b) in &got {
                    assert_eq!(
                        Some(b),
                        arrived.get(seq),
                        "{:?}: frame {seq} bytes after XDP",
                        e.text
                    );
                }
                assert_same(
                    &format!("xdp {}", mode.name()),
                    e.text,
                    &keys(&got),
                    &predicted(e, &as_sent),
                    &frames,
                );
                xdp_checked += 1;
            }
            hook.expect("attached").detach().expect("detach xdp");
        }

        // Socket filter and tc ingress in the same rounds: the socket's
        // tap runs before tc, the protocol sockets after it.
        drop(all);
        let protos = after_tc(v1);
        let tc_dir = pin::default_dir("v1", Direction::Ingress.hook_name()).expect("pin dir");
        let mut tc: Option<TcHook> = None;
        let mut vlan_diffs = BTreeSet::new();
        let (mut tc_checked, mut accepted, mut dropped) = (0, 0, 0);
        for e in &exprs {
            let prog = Program::build(&Source::Cbpf(e.ours.clone()), Hook::Tc).expect("builds");
            match tc.as_mut() {
                None => {
                    tc = Some(
                        TcHook::attach("v1", Direction::Ingress, &prog, &tc_dir)
                            .expect("attach tc"),
                    )
                }
                Some(h) => h.replace(&prog).expect("replace tc"),
            }
            let sock_prog = SocketProgram::load(
                &translate(&e.ours, Target::socket()).expect("translates"),
                "verdict",
            )
            .expect("socket program loads");
            let filtered = PacketSocket::new().expect("socket");
            sock_prog.attach(filtered.as_fd()).expect("SO_ATTACH_BPF");
            filtered.bind_all(v1).expect("bind");
            let mut socks: Vec<&PacketSocket> = vec![&filtered];
            socks.extend(protos.iter());
            let seen = exchange(&frames, &socks);
            let want = predicted(e, &as_sent);
            assert_same("socket", e.text, &keys(&seen[0]), &want, &frames);
            for (seq, b) in &seen[0] {
                assert_eq!(
                    Some(b),
                    arrived.get(seq),
                    "{:?}: socket frame {seq} bytes",
                    e.text
                );
            }
            let through_tc = merged(&seen[1..]);
            assert_same("tc ingress", e.text, &keys(&through_tc), &want, &frames);
            // What the bytes alone would give: differs only on tagged frames.
            let bytes_verdict = predicted(e, &arrived);
            for seq in want.symmetric_difference(&bytes_verdict) {
                assert!(
                    tagged.contains(seq),
                    "{:?}: untagged frame {seq} judged differently",
                    e.text
                );
                vlan_diffs.insert((e.text, *seq));
            }
            accepted += want.len();
            dropped += arrived.len() - want.len();
            tc_checked += 1;
        }
        tc.expect("attached").detach().expect("detach tc");
        (
            arrived.len(),
            lost,
            xdp_checked,
            tc_checked,
            accepted,
            dropped,
            vlan_diffs,
        )
    });
    let (arrived, lost, xdp_checked, tc_checked, accepted, dropped, vlan_diffs) = summary;
    let exprs_with_diffs: BTreeSet<&str> = vlan_diffs.iter().map(|d| d.0).collect();
    eprintln!(
        "{} frames sent, {arrived} arrived ({lost} tagged runts dropped by the kernel); {} expressions: \
         {xdp_checked} XDP rounds (drv + skb), {tc_checked} socket + tc rounds; in those, {accepted} frames passed and \
         {dropped} dropped on each hook, all as libpcap predicts on the frame as sent; on {} (expression, tagged frame) \
         pairs, libpcap on the bytes socket and tc hold (outer tag in metadata) would differ, in {exprs_with_diffs:?}",
        frames.len(),
        EXPRESSIONS.len(),
        vlan_diffs.len()
    );
    assert!(EXPRESSIONS.len() >= 30);
    assert!(
        accepted > 0 && dropped > 0,
        "every hook must both pass and drop frames to prove anything"
    );
    assert!(
        exprs_with_diffs.contains("vlan"),
        "`vlan` must differ between the frame as sent and the bytes the later hooks hold"
    );
}
