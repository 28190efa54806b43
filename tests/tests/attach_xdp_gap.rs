//! Replacing an XDP program under traffic leaves no gap.
//!
//! A flood of frames goes from `v0` to `v1` while the program on `v1` is
//! replaced again and again through `XdpHook::replace` (`BPF_LINK_UPDATE`).
//! Every program is a fresh load with its own per-CPU counter map; each
//! counts the test's frames and passes them. A packet socket on `v1`
//! counts the frames that got past XDP (`tp_packets`, which includes any it
//! had to drop). If a replacement opened a moment with no program, frames
//! in that moment would pass uncounted: the socket would count more than
//! all the maps together. So the proof is
//! `sum(maps) == socket == frames sent`.

use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aya::maps::{Map, PerCpuArray};
use bpf_kernel::socket::attach_classic;
use e2e::frames::SRC_OUI;
use e2e::net::{ifindex, Netns, PacketSocket};
use filter_programs::cbpf;
use filter_programs::ebpf::asm::Asm;
use filter_programs::ebpf::insn::{
    code, AtomicOp, CallTarget, JmpOp, Op, Operand, Pseudo, Reg, Size,
};
use filter_programs::elf::{MapBtf, Object, ValueLayout};
use filter_programs::Hook;
use filterd::attach::{pin, Program, XdpHook, XdpMode};

struct PinScope(PathBuf);

impl Drop for PinScope {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test's frames as a little-endian word at offset 6 (source MAC).
fn oui_word() -> i32 {
    i32::from_le_bytes(SRC_OUI)
}

/// Counts frames whose source MAC starts with [`SRC_OUI`] in `count[0]`
/// (per CPU) and passes every frame.
fn counting_program() -> Program {
    let mut a = Asm::new();
    let pass = a.label();
    a.ldx(Size::W, Reg::R2, Reg::R1, 0); // ctx->data
    a.ldx(Size::W, Reg::R3, Reg::R1, 4); // ctx->data_end
    a.mov64(Reg::R4, Operand::Reg(Reg::R2));
    a.alu64(
        filter_programs::ebpf::insn::AluOp::Add,
        Reg::R4,
        Operand::Imm(12),
    );
    a.jmp(true, JmpOp::Jgt, Reg::R4, Operand::Reg(Reg::R3), pass);
    a.ldx(Size::W, Reg::R5, Reg::R2, 6);
    a.jmp(false, JmpOp::Jne, Reg::R5, Operand::Imm(oui_word()), pass);
    a.push(Op::St {
        size: Size::W,
        dst: Reg::R10,
        off: -4,
        imm: 0,
    });
    a.mov64(Reg::R2, Operand::Reg(Reg::R10));
    a.alu64(
        filter_programs::ebpf::insn::AluOp::Add,
        Reg::R2,
        Operand::Imm(-4),
    );
    a.push(Op::LdImm64 {
        dst: Reg::R1,
        pseudo: Pseudo::None,
        src_reg: 0,
        imm: 0,
    });
    a.push(Op::Call(CallTarget::Helper(1))); // bpf_map_lookup_elem
    a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), pass);
    a.mov64(Reg::R1, Operand::Imm(1));
    // Per-CPU values are not shared, but an atomic add keeps the program
    // right on any map type.
    a.push(Op::Atomic {
        size: Size::DW,
        op: AtomicOp::Add,
        fetch: false,
        dst: Reg::R0,
        src: Reg::R1,
        off: 0,
    });
    a.bind(pass);
    a.mov64(Reg::R0, Operand::Imm(2)); // XDP_PASS
    a.exit();
    let insns = a.assemble().expect("assembles");
    let slot = insns
        .iter()
        .position(|i| i.code == code::LD_IMM64)
        .expect("map load");
    Program::from_object(&Object {
        hook: Hook::Xdp,
        name: "count".into(),
        insns,
        maps: vec![MapBtf {
            name: "count".into(),
            map_type: 6, // BPF_MAP_TYPE_PERCPU_ARRAY
            max_entries: 1,
            value: ValueLayout::U64Struct {
                name: "counter".into(),
                fields: vec!["packets".into()],
            },
            map_flags: 0,
        }],
        map_refs: vec![(slot, 0)],
        license: "GPL".into(),
    })
    .expect("object")
}

fn total(map: &Map) -> u64 {
    let arr = PerCpuArray::<_, u64>::try_from(map).expect("per-CPU array");
    arr.get(&0, 0).expect("read counter").iter().sum()
}

/// `tp_packets` of PACKET_STATISTICS: frames that passed the socket's
/// filter, dropped ones included.
fn tp_packets(s: &PacketSocket) -> u32 {
    let mut stats = [0u32; 2];
    let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
    // SAFETY: stats is writable for len bytes.
    let rc = unsafe {
        libc::getsockopt(
            s.as_fd().as_raw_fd(),
            libc::SOL_PACKET,
            6,
            stats.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(
        rc,
        0,
        "PACKET_STATISTICS: {}",
        std::io::Error::last_os_error()
    );
    stats[0]
}

struct Flood {
    sent: u64,
    received: u64,
    counts: Vec<u64>,
    replacements: usize,
}

/// Floods `v1` while swapping counting programs; `atomic` swaps through
/// the link update, otherwise by detaching and attaching again.
fn flood(tag: &str, atomic: bool) -> Flood {
    const FRAMES: u64 = 200_000;
    let ns = Netns::with_veth(tag);
    let _pins = PinScope(ns.enter(|| pin::netns_scope().expect("scope")));
    ns.enter(|| {
        let (v0, v1) = (ifindex("v0"), ifindex("v1"));
        let dir = pin::default_dir("v1", "xdp").expect("pin dir");
        let mut hook =
            Some(XdpHook::attach("v1", XdpMode::Drv, &counting_program(), &dir).expect("attach"));
        let take = |h: &mut Option<XdpHook>| {
            h.as_mut()
                .and_then(|h| h.maps_mut().take("count"))
                .expect("count map")
        };
        // Only the test's frames count: `ld [6]; jeq OUI`.
        let rx = PacketSocket::new().expect("socket");
        let only_ours = [
            cbpf::Insn::new(0x20, 0, 0, 6),
            cbpf::Insn::new(0x15, 0, 1, u32::from_be_bytes(SRC_OUI)),
            cbpf::Insn::new(0x06, 0, 0, u32::MAX),
            cbpf::Insn::new(0x06, 0, 0, 0),
        ];
        attach_classic(rx.as_fd(), &only_ours).expect("filter");
        rx.bind_all(v1).expect("bind");
        let mut frame = vec![0xffu8; 6];
        frame.extend_from_slice(&SRC_OUI);
        frame.extend_from_slice(&[0, 1, 0x88, 0xb5]); // seq 1, local experimental ethertype
        frame.resize(60, 0);
        let done = AtomicBool::new(false);
        let mut maps = Vec::new();
        let sent = std::thread::scope(|s| {
            let sender = s.spawn(|| {
                let tx = PacketSocket::new().expect("tx");
                let mut sent = 0u64;
                while sent < FRAMES {
                    match tx.send(v0, &frame) {
                        Ok(()) => sent += 1,
                        // A full transmit queue is back-pressure, not loss.
                        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                            std::thread::yield_now()
                        }
                        Err(e) => panic!("send: {e}"),
                    }
                    // Keep veth's receive ring from overflowing, which
                    // would lose frames before XDP and muddle the count.
                    if sent.is_multiple_of(64) {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
                done.store(true, Ordering::Relaxed);
                sent
            });
            while !done.load(Ordering::Relaxed) {
                maps.push(take(&mut hook));
                if atomic {
                    hook.as_mut()
                        .expect("hook")
                        .replace(&counting_program())
                        .expect("replace under traffic");
                } else {
                    hook.take().expect("hook").detach().expect("detach");
                    hook = Some(
                        XdpHook::attach("v1", XdpMode::Drv, &counting_program(), &dir)
                            .expect("attach"),
                    );
                }
            }
            sender.join().expect("sender")
        });
        maps.push(take(&mut hook));
        // Let the last frames through the receive path before counting.
        let start = Instant::now();
        let mut received = tp_packets(&rx) as u64;
        while received < sent && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
            received += tp_packets(&rx) as u64;
        }
        let counts: Vec<u64> = maps.iter().map(total).collect();
        hook.expect("hook").detach().expect("detach");
        Flood {
            sent,
            received,
            counts,
            replacements: maps.len() - 1,
        }
    })
}

#[test]
fn xdp_replace_under_flood_has_no_gap() {
    if !e2e::kernel_available("xdp_replace_under_flood_has_no_gap") {
        return;
    }
    let Flood {
        sent,
        received,
        counts,
        replacements,
    } = flood("attgap", true);
    let counted: u64 = counts.iter().sum();
    let busy = counts.iter().filter(|c| **c > 0).count();
    eprintln!(
        "{sent} frames sent, {received} received past XDP, {counted} counted by {} programs \
         ({replacements} link updates under traffic; {busy} programs saw frames)",
        counts.len()
    );
    assert!(
        replacements >= 10 && busy >= 5,
        "too few replacements under traffic to prove anything: {counts:?}"
    );
    assert_eq!(
        counted, received,
        "frames got past XDP without any program counting them: a gap"
    );
    assert_eq!(
        received, sent,
        "frames were lost (not a gap: lost before XDP or in the socket)"
    );
}

/// The control: the same count does see the gap that detaching and
/// attaching again opens, so the test above can fail.
#[test]
fn detach_then_attach_shows_a_gap() {
    if !e2e::kernel_available("detach_then_attach_shows_a_gap") {
        return;
    }
    let Flood {
        sent,
        received,
        counts,
        replacements,
    } = flood("attgapc", false);
    let counted: u64 = counts.iter().sum();
    eprintln!(
        "control: {sent} frames sent, {received} received, {counted} counted across {replacements} \
         detach+attach swaps: {} frames passed with no program",
        received.saturating_sub(counted)
    );
    assert!(replacements >= 5, "too few swaps: {counts:?}");
    assert!(
        counted < received,
        "detach+attach left no uncounted frame: the counting cannot see gaps"
    );
}

/// What the daemon does after a restart: adopt the pinned link, read the
/// running program's counters by map name, replace it through the adopted
/// link, detach.
#[test]
fn from_pin_adopts_the_link_and_its_maps() {
    if !e2e::kernel_available("from_pin_adopts_the_link_and_its_maps") {
        return;
    }
    let ns = Netns::with_veth("attadopt");
    let _pins = PinScope(ns.enter(|| pin::netns_scope().expect("scope")));
    ns.enter(|| {
        let v0 = ifindex("v0");
        let dir = pin::default_dir("v1", "xdp").expect("pin dir");
        let first = XdpHook::attach("v1", XdpMode::Skb, &counting_program(), &dir).expect("attach");
        let id = first.prog_id();
        drop(first);
        let mut frame = vec![0xffu8; 6];
        frame.extend_from_slice(&SRC_OUI);
        frame.extend_from_slice(&[0, 2, 0x88, 0xb5]);
        frame.resize(60, 0);
        let tx = PacketSocket::new().expect("tx");
        for _ in 0..100 {
            tx.send(v0, &frame).expect("send");
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut adopted = XdpHook::from_pin(&dir).expect("adopt");
        assert_eq!(
            (adopted.prog_id(), adopted.ifname(), adopted.mode()),
            (id, "v1", Some("skb"))
        );
        assert_eq!(adopted.maps().names().collect::<Vec<_>>(), ["count"]);
        assert_eq!(
            total(adopted.maps().get("count").expect("count")),
            100,
            "the still-running program's counter"
        );
        adopted
            .replace(&counting_program())
            .expect("replace through the adopted link");
        assert_ne!(adopted.prog_id(), id);
        assert_eq!(
            total(adopted.maps().get("count").expect("count")),
            0,
            "the new program's own map"
        );
        adopted.detach().expect("detach");
        assert!(XdpHook::from_pin(&dir).is_err(), "nothing left to adopt");
        assert!(!dir.exists(), "pin directory removed");
    });
}
