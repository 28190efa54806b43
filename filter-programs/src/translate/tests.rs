use super::*;
use crate::cbpf::Insn as C;
use crate::ebpf::vm::{Env, Input, Maps, Program, SkbMeta};

/// tcpdump -dd 'ip'
fn ip() -> Vec<C> {
    vec![
        C::new(0x28, 0, 0, 12),
        C::new(0x15, 0, 1, 0x800),
        C::new(0x06, 0, 0, 262144),
        C::new(0x06, 0, 0, 0),
    ]
}

fn frame(ethertype: u16, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len as u32).map(|i| (i * 7 + 3) as u8).collect();
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    f
}

fn run(prog: &[C], target: Target, f: &[u8]) -> u64 {
    let insns = translate(prog, target).unwrap();
    let p = Program::new(&insns).unwrap();
    let input = match target.hook {
        Hook::Xdp => Input::Xdp {
            frame: f,
            ingress_ifindex: 1,
            rx_queue_index: 0,
        },
        // A socket's test run has skb->data at the network header.
        Hook::Socket => Input::Skb {
            frame: f,
            data_off: 14.min(f.len()),
            net_off: 14,
            meta: SkbMeta::default(),
        },
        Hook::Tc => Input::Skb {
            frame: f,
            data_off: 0,
            net_off: 14,
            meta: SkbMeta::default(),
        },
        Hook::Trace => Input::Trace {
            frame: f,
            data_off: 14.min(f.len()),
            mac_set: true,
            vlan_all: 0,
            skb: Default::default(),
        },
    };
    p.run(&input, &mut Maps::default(), &Env::default())
        .unwrap()
}

#[test]
fn ip_on_every_target() {
    let v4 = frame(0x0800, 60);
    let v6 = frame(0x86dd, 60);
    for t in [
        Target::socket(),
        Target::xdp(),
        Target::tc(),
        Target::new(Hook::Trace),
    ] {
        assert_eq!(run(&ip(), t, &v4), t.verdict(262144) as u64, "{t:?}");
        assert_eq!(run(&ip(), t, &v6), t.verdict(0) as u64, "{t:?}");
        assert_eq!(
            run(&ip(), t, &v4[..13]),
            t.verdict(0) as u64,
            "{t:?} truncated"
        );
    }
}

#[test]
fn xdp_checks_bounds_once_per_block() {
    // ldh [12]; ldb [23]; ldh [20]; ret a  (one block)
    let prog = [
        C::new(0x28, 0, 0, 12),
        C::new(0x30, 0, 0, 23),
        C::new(0x28, 0, 0, 20),
        C::new(0x16, 0, 0, 0),
    ];
    let insns = translate(&prog, Target::xdp()).unwrap();
    let text = crate::ebpf::disasm::disassemble(&insns).unwrap();
    assert_eq!(text.matches("goto").count(), 2, "{text}"); // one bounds check, one ret-a test
    let f = frame(0x0800, 60);
    assert_eq!(run(&prog, Target::xdp(), &f), Actions::XDP_PASS as u64);
    assert_eq!(
        run(&prog, Target::xdp(), &f[..23]),
        Actions::XDP_DROP as u64
    );
}

#[test]
fn division_by_zero_x_rejects() {
    // ldx #0; ld #5; div x; ret #7
    let prog = [
        C::new(0x01, 0, 0, 0),
        C::new(0x00, 0, 0, 5),
        C::new(0x3c, 0, 0, 0),
        C::new(0x06, 0, 0, 7),
    ];
    let f = frame(0x0800, 60);
    assert_eq!(run(&prog, Target::socket(), &f), 0);
    assert_eq!(run(&prog, Target::xdp(), &f), Actions::XDP_DROP as u64);
}

#[test]
fn indirect_and_msh_loads() {
    // tcpdump -dd 'tcp dst port 80' core: ldxb 4*([14]&0xf); ldh [x + 16]; jeq #80
    let prog = [
        C::new(0xb1, 0, 0, 14),
        C::new(0x48, 0, 0, 16),
        C::new(0x15, 0, 1, 80),
        C::new(0x06, 0, 0, 1),
        C::new(0x06, 0, 0, 0),
    ];
    let mut f = frame(0x0800, 60);
    f[14] = 0x45;
    f[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&80u16.to_be_bytes());
    for t in [
        Target::socket(),
        Target::xdp(),
        Target::tc(),
        Target::new(Hook::Trace),
    ] {
        assert_eq!(run(&prog, t, &f), t.verdict(1) as u64, "{t:?}");
        assert_eq!(run(&prog, t, &f[..37]), t.verdict(0) as u64, "{t:?}");
    }
}

#[test]
fn unsupported_ancillary_fields_are_errors() {
    let mark = [
        C::new(0x20, 0, 0, crate::cbpf::skf::Ancillary::Mark.k()),
        C::new(0x16, 0, 0, 0),
    ];
    let err = translate(&mark, Target::xdp()).unwrap_err();
    assert!(err.to_string().contains("mark"), "{err}");
    assert!(translate(&mark, Target::socket()).is_ok());
}

/// The trace hook finds the packet through `struct sk_buff`: from the
/// link-layer header when set, else the network header; `len` counts the
/// paged part, loads reach only the linear part; an outer tag the kernel
/// holds in `vlan_all` reads as if in the bytes.
#[test]
fn trace_reads_the_packet_where_the_skb_says() {
    let trace = Target::new(Hook::Trace);
    let vm = |prog: &[C]| Program::new(&translate(prog, trace).unwrap()).unwrap();
    let run_on = |p: &Program, frame: &[u8], mac_set: bool, vlan_all: u32, wire: u32| {
        let input = Input::Trace {
            frame,
            data_off: 14,
            mac_set,
            vlan_all,
            skb: Default::default(),
        };
        let env = Env {
            wire_len: Some(wire),
            ..Env::default()
        };
        p.run(&input, &mut Maps::default(), &env).unwrap()
    };
    let v4 = frame(0x0800, 60);
    let ip = vm(&ip());
    assert_eq!(run_on(&ip, &v4, true, 0, 60), 1);
    // No link-layer header: byte 12 is the IPv4 header's source address.
    assert_eq!(run_on(&ip, &v4, false, 0, 60), 0);
    // `ld #len; ret a` sees the wire length from where the packet starts.
    let len = vm(&[C::new(0x80, 0, 0, 0), C::new(0x16, 0, 0, 0)]);
    assert_eq!(run_on(&len, &v4, true, 0, 1500), 1, "matches");
    let len_is = |want: u32, mac_set: bool, wire: u32| {
        let p = vm(&[
            C::new(0x80, 0, 0, 0),
            C::new(0x15, 0, 1, want),
            C::new(0x06, 0, 0, 1),
            C::new(0x06, 0, 0, 0),
        ]);
        run_on(&p, &v4, mac_set, 0, wire) == 1
    };
    assert!(len_is(1500, true, 1500));
    assert!(len_is(1486, false, 1500));
    // Bytes past the linear part (the capture) do not load.
    let last = vm(&[C::new(0x30, 0, 0, 59), C::new(0x06, 0, 0, 1)]);
    assert_eq!(run_on(&last, &v4, true, 0, 1500), 1);
    let past = vm(&[C::new(0x30, 0, 0, 60), C::new(0x06, 0, 0, 1)]);
    assert_eq!(run_on(&past, &v4, true, 0, 1500), 0);
    // `vlan 7` on an untagged frame whose tag the kernel holds: TPID
    // 0x8100 (stored big endian), TCI 7.
    let vlan7 = crate::codegen::compile(
        "vlan 7 and ip",
        &crate::codegen::Options::new(crate::codegen::Dlt::from_dlt(1).unwrap()),
    )
    .unwrap();
    let p = vm(&vlan7);
    let tag = u32::from(0x8100u16.to_be()) | 7 << 16;
    assert_eq!(run_on(&p, &v4, true, tag, 60), 1);
    assert_eq!(run_on(&p, &v4, true, 0, 60), 0);
    assert_eq!(
        run_on(&p, &v4, true, u32::from(0x8100u16.to_be()) | 8 << 16, 60),
        0
    );
}
