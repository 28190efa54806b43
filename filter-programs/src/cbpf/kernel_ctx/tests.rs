//! The kernel's meaning of loads and ancillary data, value by value.

use super::*;
use crate::cbpf::interp::Program;
use crate::cbpf::{Insn, Op, RetVal};

fn run(ops: &[Op], pkt: &[u8], wirelen: u32, ctx: &KernelCtx) -> u32 {
    let mut v: Vec<Insn> = ops.iter().map(|&op| Insn::from(op)).collect();
    v.push(Insn::from(Op::Ret { val: RetVal::A }));
    let p = Program::new(&v).expect("valid under libpcap's rules");
    let verdict = p.run_with(pkt, wirelen, ctx);
    assert_eq!(p.trace_with(pkt, wirelen, ctx).0, verdict);
    verdict
}

fn anc(which: Ancillary, size: Size) -> Op {
    Op::LdAbs { size, k: which.k() }
}

fn full_ctx() -> KernelCtx {
    KernelCtx {
        protocol: 0x86dd,
        pkt_type: 0xfb, // only the low 3 bits reach the program
        dev: Some(NetDevice {
            ifindex: 7,
            hatype: 772,
        }),
        mark: 0xdead_beef,
        queue_mapping: 3,
        rxhash: 0x1234_5678,
        cpu: 1,
        vlan_tci: 0xe00a,
        vlan_tpid: 0x88a8,
        random: 42,
        pay_offset: 54,
        ..KernelCtx::ethernet(&[0; 14])
    }
}

#[test]
fn every_ancillary_field_at_every_width() {
    let c = full_ctx();
    let pre = [Op::LdxImm { k: 0x0f0f }, Op::LdImm { k: 0xff00 }];
    let cases = [
        (Ancillary::Protocol, 0x86dd),
        (Ancillary::PktType, 3),
        (Ancillary::IfIndex, 7),
        (Ancillary::HaType, 772),
        (Ancillary::Mark, 0xdead_beef),
        (Ancillary::Queue, 3),
        (Ancillary::RxHash, 0x1234_5678),
        (Ancillary::Cpu, 1),
        (Ancillary::AluXorX, 0xf00f),
        (Ancillary::VlanTag, 0xe00a),
        (Ancillary::VlanTagPresent, 1),
        (Ancillary::PayOffset, 54),
        (Ancillary::Random, 42),
        (Ancillary::VlanTpid, 0x88a8),
    ];
    for (which, want) in cases {
        for size in [Size::W, Size::H, Size::B] {
            let got = run(&[pre[0], pre[1], anc(which, size)], &[0; 20], 20, &c);
            assert_eq!(got, want, "{which:?} {size:?}");
        }
    }
}

#[test]
fn vlan_present_follows_vlan_all() {
    let mut c = KernelCtx::default();
    let present = |c: &KernelCtx| run(&[anc(Ancillary::VlanTagPresent, Size::W)], &[], 0, c);
    assert_eq!(present(&c), 0);
    c.vlan_tpid = 0x8100; // VLAN 0, priority 0: still a tag
    assert_eq!(present(&c), 1);
    c = KernelCtx {
        vlan_tci: 5,
        ..KernelCtx::default()
    };
    assert_eq!(present(&c), 1);
}

#[test]
fn no_device_ends_the_program_with_a() {
    let c = KernelCtx {
        dev: None,
        ..full_ctx()
    };
    for which in [Ancillary::IfIndex, Ancillary::HaType] {
        let ops = [Op::LdImm { k: 77 }, anc(which, Size::W), Op::LdImm { k: 5 }];
        assert_eq!(run(&ops, &[], 0, &c), 77);
    }
}

#[test]
fn unknown_ancillary_offsets_fail() {
    let c = full_ctx();
    for k in [
        Ancillary::VlanTpid.k() + 4,
        Ancillary::Protocol.k() + 2,
        0xffff_ffff,
    ] {
        assert_eq!(
            run(
                &[Op::LdImm { k: 1 }, Op::LdAbs { size: Size::B, k }],
                &[0; 64],
                64,
                &c
            ),
            0
        );
    }
}

#[test]
fn net_and_link_layer_relative_loads() {
    let frame: Vec<u8> = (0u8..40).collect();
    // A socket filter under the test run: data at the IP header (14).
    let c = KernelCtx {
        data_offset: 14,
        network_offset: 14,
        mac_offset: Some(0),
        ..KernelCtx::default()
    };
    assert_eq!(
        run(
            &[Op::LdAbs {
                size: Size::B,
                k: 0
            }],
            &frame,
            40,
            &c
        ),
        14
    );
    assert_eq!(run(&[Op::LdLen], &frame, 40, &c), 26);
    let net = |n: u32| (SKF_NET_OFF as u32).wrapping_add(n);
    let ll = |n: u32| (SKF_LL_OFF as u32).wrapping_add(n);
    assert_eq!(
        run(
            &[Op::LdAbs {
                size: Size::H,
                k: net(2)
            }],
            &frame,
            40,
            &c
        ),
        0x1011
    );
    assert_eq!(
        run(
            &[Op::LdAbs {
                size: Size::W,
                k: ll(0)
            }],
            &frame,
            40,
            &c
        ),
        0x0001_0203
    );
    assert_eq!(
        run(
            &[Op::LdAbs {
                size: Size::B,
                k: ll(39)
            }],
            &frame,
            40,
            &c
        ),
        39
    );
    assert_eq!(
        run(
            &[
                Op::LdImm { k: 1 },
                Op::LdAbs {
                    size: Size::H,
                    k: ll(39)
                }
            ],
            &frame,
            40,
            &c
        ),
        0
    );
    assert_eq!(
        run(
            &[
                Op::LdImm { k: 1 },
                Op::LdAbs {
                    size: Size::B,
                    k: net(26)
                }
            ],
            &frame,
            40,
            &c
        ),
        0
    );
    // The DHCP idiom: ldxb 4*(net[0]&0xf); ldh [x + net + 2].
    let mut ip = frame.clone();
    ip[14] = 0x45;
    let ops = [
        Op::LdxMsh { k: net(0) },
        Op::LdInd {
            size: Size::H,
            k: net(2),
        },
    ];
    assert_eq!(run(&ops, &ip, 40, &c), u32::from_be_bytes([0, 0, 36, 37]));
    // Without a MAC header, link-layer loads fail.
    let no_mac = KernelCtx {
        mac_offset: None,
        ..c
    };
    assert_eq!(
        run(
            &[
                Op::LdImm { k: 1 },
                Op::LdAbs {
                    size: Size::B,
                    k: ll(0)
                }
            ],
            &frame,
            40,
            &no_mac
        ),
        0
    );
    // Below SKF_LL_OFF nothing is addressable.
    assert_eq!(
        run(
            &[
                Op::LdImm { k: 1 },
                Op::LdAbs {
                    size: Size::B,
                    k: ll(0) - 1
                }
            ],
            &frame,
            40,
            &c
        ),
        0
    );
}

#[test]
fn indirect_offsets_wrap_in_32_bits() {
    let frame: Vec<u8> = (0u8..16).collect();
    let c = KernelCtx::ethernet(&frame);
    // X + k = 2^32 + 3 wraps to 3 (libpcap: out of range).
    let ops = [
        Op::LdxImm { k: u32::MAX },
        Op::LdInd {
            size: Size::B,
            k: 4,
        },
    ];
    assert_eq!(run(&ops, &frame, 16, &c), 3);
    let p = Program::new(&[
        Insn::from(ops[0]),
        Insn::from(ops[1]),
        Insn::from(Op::Ret { val: RetVal::A }),
    ])
    .unwrap();
    assert_eq!(p.run(&frame, 16), 0);
    // X + k lands in SKF_NET_OFF: network header at 14.
    let ops = [
        Op::LdxImm { k: 1 },
        Op::LdInd {
            size: Size::B,
            k: SKF_NET_OFF as u32,
        },
    ];
    assert_eq!(run(&ops, &frame, 16, &c), 15);
}

/// Netlink attributes in host byte order: (len, type, payload).
fn nla(out: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len() as u16;
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(payload);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[test]
fn nlattr_finds_attributes_as_nla_find_does() {
    // 16 bytes of netlink header, then attributes at 16.
    let mut msg = vec![0u8; 16];
    nla(&mut msg, 1, &[1, 2, 3]); // at 16, 8 bytes after padding
    let mut nested = Vec::new();
    nla(&mut nested, 7, &[9; 4]);
    nla(&mut nested, 8, &[]);
    nla(&mut msg, 2 | 0x8000, &nested); // NLA_F_NESTED is masked off; at 24
    nla(&mut msg, 3, &[0; 2]); // at 24 + 4 + 12 = 40
    let len = msg.len() as u32;
    let c = KernelCtx::default();
    let find = |a: u32, x: u32, which| {
        run(
            &[Op::LdxImm { k: x }, Op::LdImm { k: a }, anc(which, Size::W)],
            &msg,
            len,
            &c,
        )
    };
    assert_eq!(find(16, 1, Ancillary::NlAttr), 16);
    assert_eq!(find(16, 2, Ancillary::NlAttr), 24);
    assert_eq!(find(16, 3, Ancillary::NlAttr), 40);
    assert_eq!(find(16, 4, Ancillary::NlAttr), 0);
    assert_eq!(find(16, 2 | 0x8000, Ancillary::NlAttr), 0);
    assert_eq!(find(len - 3, 1, Ancillary::NlAttr), 0);
    assert_eq!(find(24, 7, Ancillary::NlAttrNest), 28);
    assert_eq!(find(24, 8, Ancillary::NlAttrNest), 36);
    assert_eq!(find(24, 3, Ancillary::NlAttrNest), 0);
    // Non-linear (a capture shorter than the packet): always 0.
    let p = Program::new(&[
        Insn::from(Op::LdxImm { k: 1 }),
        Insn::from(Op::LdImm { k: 16 }),
        Insn::from(anc(Ancillary::NlAttr, Size::W)),
        Insn::from(Op::Ret { val: RetVal::A }),
    ])
    .unwrap();
    assert_eq!(p.run_with(&msg, len, &c), 16);
    assert_eq!(p.run_with(&msg, len + 1, &c), 0);
    // An attribute claiming more than remains ends the walk.
    let mut bad = vec![0u8; 16];
    nla(&mut bad, 5, &[0; 4]);
    bad[16..18].copy_from_slice(&200u16.to_ne_bytes());
    assert_eq!(
        run(
            &[
                Op::LdxImm { k: 5 },
                Op::LdImm { k: 16 },
                anc(Ancillary::NlAttr, Size::W)
            ],
            &bad,
            24,
            &c
        ),
        0
    );
}

#[test]
fn ethernet_ctx_reads_the_ethertype() {
    let mut f = [0u8; 14];
    f[12] = 0x81;
    assert_eq!(KernelCtx::ethernet(&f).protocol, 0x8100);
    assert_eq!(KernelCtx::ethernet(&f[..5]).protocol, 0);
}
