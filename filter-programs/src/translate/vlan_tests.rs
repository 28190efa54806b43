//! The socket and tc translations judge the frame as sent, wherever the
//! hook keeps its outer VLAN tag: a tagged frame with the tag in the bytes
//! (a test run, `vlan_present` 0) and the same frame with the tag moved
//! into metadata (a packet socket or tc on a live interface) get the same
//! verdict, the one the classic program gives the frame as sent.

use super::*;
use crate::cbpf::interp;
use crate::cbpf::Insn as C;
use crate::codegen::{self, Dlt};
use crate::ebpf::vm::{Env, Input, Maps, Program, SkbMeta};
use proptest::prelude::*;

const TARGETS: [Target; 2] = [Target::socket(), Target::tc()];

/// A frame with its outer tag in the bytes (offset 12).
struct Tagged {
    sent: Vec<u8>,
    tpid: u16,
    tci: u16,
}

impl Tagged {
    /// The bytes the kernel leaves after moving the outer tag out.
    fn stripped(&self) -> Vec<u8> {
        [&self.sent[..12], &self.sent[16..]].concat()
    }

    fn meta(&self) -> SkbMeta {
        SkbMeta {
            vlan_present: true,
            vlan_tci: self.tci,
            // Network byte order, as the kernel keeps it.
            vlan_proto: self.tpid.swap_bytes(),
            ..SkbMeta::default()
        }
    }
}

/// Puts a tag in front of the ethertype of an untagged frame.
fn tag(frame: &[u8], tpid: u16, tci: u16) -> Tagged {
    let mut sent = frame[..12].to_vec();
    sent.extend_from_slice(&tpid.to_be_bytes());
    sent.extend_from_slice(&tci.to_be_bytes());
    sent.extend_from_slice(&frame[12..]);
    Tagged { sent, tpid, tci }
}

/// Runs the translation in the VM as a packet socket (data at the MAC
/// header) or tc sees the frame.
fn vm(insns: &[crate::ebpf::insn::Insn], frame: &[u8], meta: SkbMeta) -> u64 {
    run_vm(&Program::new(insns).expect("decodes"), frame, meta)
}

fn run_vm(p: &Program, frame: &[u8], meta: SkbMeta) -> u64 {
    let input = Input::Skb {
        frame,
        data_off: 0,
        net_off: 14,
        meta,
    };
    p.run(&input, &mut Maps::default(), &Env::default())
        .expect("runs")
}

/// A classic program with its translation for each of [`TARGETS`].
struct Compiled {
    classic: interp::Program,
    ebpf: Vec<Program>,
}

fn compiled(classic: &[C]) -> Compiled {
    Compiled {
        classic: interp::Program::new(classic).expect("valid"),
        ebpf: TARGETS
            .iter()
            .map(|t| Program::new(&translate(classic, *t).expect("translates")).expect("decodes"))
            .collect(),
    }
}

/// Both views of `t` against the classic program on the frame as sent;
/// returns the classic verdict.
fn check(c: &Compiled, what: &str, t: &Tagged) -> u32 {
    let want = c.classic.run(&t.sent, t.sent.len() as u32);
    let stripped = t.stripped();
    for (target, p) in TARGETS.iter().zip(&c.ebpf) {
        let expect = target.verdict(want) as u64;
        assert_eq!(
            run_vm(p, &t.sent, SkbMeta::default()),
            expect,
            "{what} {target:?}, tag in the bytes: {:02x?}",
            t.sent
        );
        assert_eq!(
            run_vm(p, &stripped, t.meta()),
            expect,
            "{what} {target:?}, tag in metadata: {:02x?}",
            t.sent
        );
    }
    want
}

/// Tagged frames: those of the veth suite, every untagged one of it with a
/// tag of each kind in turn (802.1Q, priority only, 802.1ad over 802.1Q),
/// and the tagged frames of the corpus's Ethernet captures.
fn tagged_frames() -> Vec<Tagged> {
    // The kernel moves a tag only with a full Ethernet header behind it.
    let long_enough = |f: &[u8]| f.len() >= 18;
    let mut out = Vec::new();
    for (i, f) in e2e::frames::all().into_iter().enumerate() {
        match f.tag {
            Some((tpid, tci)) => out.push(Tagged {
                sent: f.bytes,
                tpid,
                tci,
            }),
            None if f.bytes.len() >= 14 => out.push(match i % 3 {
                0 => tag(&f.bytes, 0x8100, 0x2000 | 100),
                1 => tag(&f.bytes, 0x8100, 0),
                _ => tag(&tag(&f.bytes, 0x8100, 7).sent, 0x88a8, 10),
            }),
            None => {}
        }
    }
    for cap in e2e::corpus::captures().into_iter().filter(|c| c.dlt == 1) {
        for p in cap.packets {
            let d = &p.data;
            if long_enough(d)
                && matches!(u16::from_be_bytes([d[12], d[13]]), 0x8100 | 0x88a8 | 0x9100)
            {
                let tci = u16::from_be_bytes([d[14], d[15]]);
                out.push(Tagged {
                    tpid: u16::from_be_bytes([d[12], d[13]]),
                    tci,
                    sent: p.data,
                });
            }
        }
    }
    out.retain(|t| long_enough(&t.sent));
    out
}

#[test]
fn corpus_expressions_judge_the_frame_as_sent() {
    let frames = tagged_frames();
    let exprs: Vec<String> = e2e::corpus::expressions()
        .into_iter()
        .filter(|e| e.dlt == "EN10MB")
        .map(|e| e.expr)
        .chain(
            [
                "vlan",
                "vlan 100",
                "vlan and ip",
                "vlan and vlan",
                "not vlan",
                "ether[12:2] = 0x8100",
                "ether[11:2] = 0x81",
                "ether[13:4] != 0",
                "ether[14:2] & 0xfff = 100",
                "len > 60",
            ]
            .map(String::from),
        )
        .collect();
    let opts = codegen::Options::new(Dlt::En10mb);
    let (mut programs, mut pairs, mut accepted) = (0, 0, 0);
    for expr in &exprs {
        let Ok(classic) = codegen::compile(expr, &opts) else {
            continue;
        };
        // Programs that read metadata mean what the kernel makes of them.
        let special = |i: &C| matches!(i.decode(), Ok(Op::LdAbs { k, .. } | Op::LdInd { k, .. } | Op::LdxMsh { k }) if (k as i32) < 0);
        if classic.iter().any(special) {
            continue;
        }
        programs += 1;
        let c = compiled(&classic);
        for t in &frames {
            pairs += 1;
            accepted += (check(&c, expr, t) != 0) as usize;
        }
    }
    eprintln!(
        "{programs} programs x {} tagged frames, each with the tag in the bytes and in metadata, socket and tc: \
         {pairs} pairs, {accepted} accepted, all as the classic program judges the frame as sent",
        frames.len()
    );
    assert!(frames.len() > 250, "{} tagged frames", frames.len());
    assert!(programs > 400, "{programs} programs");
    assert!(
        accepted > 1000 && accepted < pairs - 1000,
        "{accepted} of {pairs} accepted"
    );
}

#[test]
fn vlan_code_only_where_it_matters() {
    // A program that reads neither the packet nor its length, and XDP,
    // which sees the tag in the bytes, never look at the VLAN metadata.
    let ret = [C::new(0x06, 0, 0, 1)];
    for target in TARGETS {
        let text = crate::ebpf::disasm::disassemble(&translate(&ret, target).unwrap()).unwrap();
        assert!(
            !text.contains("(r6 +20)"),
            "{target:?} reads vlan_present:\n{text}"
        );
    }
    let ip = [
        C::new(0x28, 0, 0, 12),
        C::new(0x15, 0, 1, 0x800),
        C::new(0x06, 0, 0, 1),
        C::new(0x06, 0, 0, 0),
    ];
    let xdp = translate(&ip, Target::xdp()).unwrap();
    let text = crate::ebpf::disasm::disassemble(&xdp).unwrap();
    assert!(
        !text.contains("(r6 +20)"),
        "XDP reads the tag from its bytes:\n{text}"
    );
}

#[test]
fn kernel_mode_programs_keep_one_copy() {
    use crate::cbpf::skf::{Ancillary, SKF_NET_OFF};
    // ld vlan_avail; ret a  and  ld [net+9]; ret a
    let avail = [
        C::new(0x20, 0, 0, Ancillary::VlanTagPresent.k()),
        C::new(0x16, 0, 0, 0),
    ];
    let net = [
        C::new(0x30, 0, 0, (SKF_NET_OFF + 9) as u32),
        C::new(0x16, 0, 0, 0),
    ];
    for prog in [&avail[..], &net[..]] {
        let insns = translate(prog, Target::socket()).unwrap();
        let text = crate::ebpf::disasm::disassemble(&insns).unwrap();
        assert!(!text.contains("(r6 +28)"), "reads vlan_proto:\n{text}");
    }
    let t = tag(&[0xaa; 60], 0x8100, 5);
    let insns = translate(&avail, Target::socket()).unwrap();
    assert_eq!(vm(&insns, &t.stripped(), t.meta()), 1);
    assert_eq!(vm(&insns, &t.sent, SkbMeta::default()), 0);
}

#[test]
fn the_kernel_view_reads_the_frame_as_handed_over() {
    // ldh [12]; jeq #0x800, accept, reject: `ip`.
    let ip = [
        C::new(0x28, 0, 0, 12),
        C::new(0x15, 0, 1, 0x0800),
        C::new(0x06, 0, 0, 1),
        C::new(0x06, 0, 0, 0),
    ];
    let mut untagged = vec![0xaa; 60];
    untagged[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let t = tag(&untagged, 0x8100, 5);
    let kernel = Options {
        kernel_view: true,
        ..Options::default()
    };
    for target in TARGETS {
        let sent = translate(&ip, target).unwrap();
        let live = translate_with(&ip, target, &kernel).unwrap();
        let yes = target.verdict(1) as u64;
        let no = target.verdict(0) as u64;
        // The frame as sent has 0x8100 at 12; the kernel's view 0x0800.
        assert_eq!(vm(&sent, &t.stripped(), t.meta()), no, "{target:?}");
        assert_eq!(vm(&live, &t.stripped(), t.meta()), yes, "{target:?}");
        // Untagged frames: one meaning.
        assert_eq!(vm(&live, &untagged, SkbMeta::default()), yes, "{target:?}");
        assert_eq!(vm(&sent, &untagged, SkbMeta::default()), yes, "{target:?}");
    }
}

/// One packet load of every shape: `ld`/`ldh`/`ldb [k]`, `ld*[x + k]`,
/// `ldxb 4*([k]&0xf)` and `len`.
#[derive(Clone, Debug)]
enum Load {
    Abs(u16, u32),
    Ind(u16, u32, u32),
    Msh(u32),
    Len,
}

fn sizes() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0x00u16), Just(0x08), Just(0x10)]
}

fn load() -> impl Strategy<Value = Load> {
    prop_oneof![
        (sizes(), 0u32..40).prop_map(|(s, k)| Load::Abs(s, k)),
        (sizes(), 0u32..30, 0u32..30).prop_map(|(s, x, k)| Load::Ind(s, x, k)),
        (0u32..30).prop_map(Load::Msh),
        Just(Load::Len),
    ]
}

/// The load, then `A` (or `X`) compared with `v`: the classic program
/// returns 1 exactly when the load gave `v`.
fn probe(l: &Load, v: u32) -> Vec<C> {
    let (jeq, ret1, ret0) = (
        C::new(0x15, 0, 1, v),
        C::new(0x06, 0, 0, 1),
        C::new(0x06, 0, 0, 0),
    );
    let mut p = match *l {
        Load::Abs(s, k) => vec![C::new(0x20 | s, 0, 0, k)],
        Load::Ind(s, x, k) => vec![C::new(0x01, 0, 0, x), C::new(0x40 | s, 0, 0, k)],
        Load::Msh(k) => vec![C::new(0xb1, 0, 0, k), C::new(0x87, 0, 0, 0)],
        Load::Len => vec![C::new(0x80, 0, 0, 0)],
    };
    p.extend([jeq, ret1, ret0]);
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every load shape, at offsets around the tag, on frames long and
    /// short: the loaded value (or the rejection) is that of the frame as
    /// sent, whichever way the tag is held.
    #[test]
    fn every_load_reads_the_frame_as_sent(
        l in load(),
        body in proptest::collection::vec(any::<u8>(), 14..48),
        tpid in prop_oneof![Just(0x8100u16), Just(0x88a8)],
        tci in any::<u16>(),
    ) {
        let t = tag(&body, tpid, tci);
        // The value the load gives on the frame as sent, as `ret a`.
        let mut value = probe(&l, 0);
        value.truncate(value.len() - 3);
        value.push(C::new(0x16, 0, 0, 0));
        let v = interp::Program::new(&value).unwrap().run(&t.sent, t.sent.len() as u32);
        // Socket: `ret a` returns the value itself.
        let insns = translate(&value, Target::socket()).unwrap();
        prop_assert_eq!(vm(&insns, &t.stripped(), t.meta()), v as u64, "{:?} on {:02x?}", l, t.sent);
        prop_assert_eq!(vm(&insns, &t.sent, SkbMeta::default()), v as u64);
        // Both targets: the comparison with the right value, and a wrong one.
        for w in [v, v ^ 1] {
            check(&compiled(&probe(&l, w)), &format!("{l:?} = {w:#x}"), &t);
        }
    }
}
