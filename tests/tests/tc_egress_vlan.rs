//! tc egress on live traffic, VLAN included: the frames our `classifier`
//! program lets out of `v0` are exactly those libpcap accepts on the frame
//! as sent.
//!
//! Frames leave `v0` three ways, each with its own sequence numbers:
//! - written whole to `v0` by a packet socket: a tag stays in the bytes;
//! - written untagged to `w0` (802.1Q, VLAN 5) or `x0` (802.1ad, VLAN 7),
//!   whose tc egress program pushes the tag with `bpf_skb_vlan_push` and
//!   redirects the frame to `v0`'s egress. The tag is then in skb
//!   metadata, as a VLAN device's frames have it (this kernel has no
//!   8021q module), and that is how tc egress on `v0` sees it: the tag
//!   only reaches the bytes later, or never on a device with VLAN offload
//!   such as veth.
//!
//! What passed is what a tap on `v1` receives (no program there). The
//! oracle is libpcap's unoptimized program on the frame as it went on the
//! wire: the tag inserted after the MAC addresses for the last two ways.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::frames::{self, seq_of};
use e2e::net::{ifindex, Netns, PacketSocket};
use filter_programs::codegen::{self, Dlt};
use filter_programs::ebpf::asm::Asm;
use filter_programs::ebpf::insn::{CallTarget, Op, Operand, Reg};
use filter_programs::elf::Object;
use filter_programs::Hook;
use filterd::attach::{pin, Direction, Program, Source, TcHook};
use libpcap_oracle::{self as libpcap, CompileOptions};

const EXPRESSIONS: &[&str] = &[
    "",
    "vlan",
    "vlan 5",
    "vlan 7",
    "vlan 100",
    "not vlan",
    "vlan and ip",
    "vlan 5 and tcp port 80",
    "vlan and udp port 53",
    "ether proto 0x8100",
    "ether proto 0x88a8",
    "ether[12:2] = 0x88a8",
    "ip",
    "ip6 and tcp",
    "arp",
    "tcp[tcpflags] & tcp-syn != 0",
    "host 10.0.0.1",
    "net 192.168.0.0/16",
    "greater 100",
    "less 60",
    "len >= 64 and len <= 128",
    "ether multicast",
];

/// The devices whose egress pushes a tag, the sequence offset of the
/// frames sent through them, and the tag.
const VIA: [(&str, u16, [u8; 4]); 2] = [
    ("w0", 1000, [0x81, 0x00, 0x00, 0x05]),
    ("x0", 2000, [0x88, 0xa8, 0x00, 0x07]),
];

const HELPER_SKB_VLAN_PUSH: i32 = 18;
const HELPER_REDIRECT: i32 = 23;

/// A tc program: push `tag` (TPID, TCI) into skb metadata, then send the
/// frame out of `ifindex`.
fn pusher(tag: [u8; 4], ifindex: i32) -> Program {
    let tpid = u16::from_be_bytes([tag[0], tag[1]]);
    let tci = u16::from_be_bytes([tag[2], tag[3]]);
    let mut a = Asm::new();
    // vlan_proto is __be16: its value in a register is the byte-swapped TPID.
    a.mov64(Reg::R2, Operand::Imm(i32::from(tpid.swap_bytes())));
    a.mov64(Reg::R3, Operand::Imm(i32::from(tci)));
    a.push(Op::Call(CallTarget::Helper(HELPER_SKB_VLAN_PUSH)));
    a.mov64(Reg::R1, Operand::Imm(ifindex));
    a.mov64(Reg::R2, Operand::Imm(0));
    a.push(Op::Call(CallTarget::Helper(HELPER_REDIRECT)));
    a.exit();
    Program::from_object(&Object {
        hook: Hook::Tc,
        name: "push".into(),
        insns: a.assemble().expect("assembles"),
        maps: vec![],
        map_refs: vec![],
        license: "GPL".into(),
    })
    .expect("pusher object")
}

struct PinScope(PathBuf);

impl Drop for PinScope {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (device, bytes written, frame as sent)
type Send = (String, Vec<u8>, Vec<u8>);

fn with_seq(bytes: &[u8], seq: u16) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[10..12].copy_from_slice(&seq.to_be_bytes());
    b
}

fn sends() -> Vec<Send> {
    let mut out = Vec::new();
    for f in frames::all() {
        out.push(("v0".to_string(), f.bytes.clone(), f.bytes.clone()));
        if f.tag.is_some() || f.bytes.len() < 14 {
            continue;
        }
        for (dev, offset, tag) in VIA {
            let written = with_seq(&f.bytes, f.seq + offset);
            let mut as_sent = written[..12].to_vec();
            as_sent.extend_from_slice(&tag);
            as_sent.extend_from_slice(&written[12..]);
            out.push((dev.to_string(), written, as_sent));
        }
    }
    out
}

/// Sends everything, returns the sequence numbers the tap on v1 saw.
fn exchange(sends: &[Send], tap: &PacketSocket) -> BTreeSet<u16> {
    while tap.recv().expect("recv").is_some() {}
    let tx = PacketSocket::new().expect("tx");
    for (i, (dev, bytes, _)) in sends.iter().enumerate() {
        // A frame tc egress drops fails its send with ENOBUFS (what
        // `dev_queue_xmit` makes of TC_ACT_SHOT): that is a verdict, not
        // an error. Pacing keeps the receiving backlog from dropping any.
        if let Err(e) = tx.send(ifindex(dev), bytes) {
            assert!(e.to_string().contains("os error 105"), "send on {dev}: {e}");
        }
        if i % 32 == 31 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let mut got = BTreeSet::new();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_millis(200) {
        match tap.recv().expect("recv") {
            Some((b, _)) => {
                if let Some(seq) = seq_of(&b) {
                    assert!(got.insert(seq), "frame {seq} seen twice");
                }
                last = Instant::now();
            }
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    assert_eq!(tap.drops().expect("stats"), 0, "the tap dropped frames");
    got
}

#[test]
fn tc_egress_verdicts_match_libpcap_on_the_frame_as_sent_with_tags_in_metadata() {
    if !e2e::kernel_available("tc_egress_vlan") {
        return;
    }
    let sends = sends();
    let as_sent: BTreeMap<u16, Vec<u8>> = sends
        .iter()
        .filter_map(|(_, _, s)| Some((seq_of(s)?, s.clone())))
        .collect();
    assert_eq!(as_sent.len(), sends.len(), "sequence numbers collide");
    let ns = Netns::with_veth("tcegress");
    for (dev, _, _) in VIA {
        let peer = dev.replace('0', "1");
        ns.ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer]);
        ns.ip(&["link", "set", dev, "up"]);
        ns.ip(&["link", "set", &peer, "up"]);
    }
    let _pins = PinScope(ns.enter(|| pin::netns_scope().expect("scope")));
    let mut oracle_opts = CompileOptions::new(1);
    oracle_opts.optimize = false;
    let (checked, passed, dropped, via_metadata) = ns.enter(|| {
        let _pushers: Vec<TcHook> = VIA
            .iter()
            .map(|(dev, _, tag)| {
                let dir = pin::default_dir(dev, Direction::Egress.hook_name()).expect("pin dir");
                TcHook::attach(dev, Direction::Egress, &pusher(*tag, ifindex("v0")), &dir)
                    .expect("attach the pusher")
            })
            .collect();
        let tap = PacketSocket::new().expect("tap");
        tap.bind_all(ifindex("v1")).expect("bind");
        let arrived = exchange(&sends, &tap);
        let lost = sends.len() - arrived.len();
        assert!(lost <= 4, "{lost} frames never arrived with no program");
        assert!(arrived.iter().any(|s| *s >= 2000), "no 802.1ad frame arrived");
        let dir = pin::default_dir("v0", Direction::Egress.hook_name()).expect("pin dir");
        let mut hook: Option<TcHook> = None;
        let (mut passed, mut dropped, mut via_metadata) = (0, 0, 0);
        for &text in EXPRESSIONS {
            let oracle = libpcap::compile(text, oracle_opts)
                .unwrap_or_else(|e| panic!("libpcap {text:?}: {e}"));
            let ours = codegen::compile(text, &codegen::Options::new(Dlt::En10mb))
                .unwrap_or_else(|e| panic!("ours {text:?}: {}", e.render()));
            let prog = Program::build(&Source::Cbpf(ours), Hook::Tc).expect("builds");
            match hook.as_mut() {
                None => {
                    hook = Some(TcHook::attach("v0", Direction::Egress, &prog, &dir).expect("attach"))
                }
                Some(h) => h.replace(&prog).expect("replace"),
            }
            let got = exchange(&sends, &tap);
            let want: BTreeSet<u16> = arrived
                .iter()
                .filter(|s| {
                    let b = &as_sent[s];
                    libpcap::filter(&oracle, b, b.len() as u32) != 0
                })
                .copied()
                .collect();
            let extra: Vec<_> = got.difference(&want).collect();
            let missing: Vec<_> = want.difference(&got).collect();
            assert!(
                extra.is_empty() && missing.is_empty(),
                "tc egress {text:?}: passed but libpcap rejects {extra:?}; libpcap accepts but dropped {missing:?}"
            );
            passed += want.len();
            dropped += arrived.len() - want.len();
            via_metadata += want.iter().filter(|s| **s >= 1000).count();
        }
        hook.expect("attached").detach().expect("detach");
        (EXPRESSIONS.len(), passed, dropped, via_metadata)
    });
    eprintln!(
        "{} frames ({} tagged in skb metadata by the pushers); {checked} expressions on tc egress: \
         {passed} passes ({via_metadata} of metadata-tagged frames) and {dropped} drops, all as libpcap on the frame as sent",
        sends.len(),
        sends.iter().filter(|s| s.0 != "v0").count()
    );
    assert!(passed > 0 && dropped > 0 && via_metadata > 0);
}
