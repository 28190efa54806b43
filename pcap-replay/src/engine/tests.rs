use super::*;
use crate::program::Code;
use filter_programs::cbpf::Insn;

/// `tcpdump -d ip`: ldh [12]; jeq #0x800 jt 2 jf 3; ret #262144; ret #0
fn ip_program() -> Program {
    let insns = vec![
        Insn::new(0x28, 0, 0, 12),
        Insn::new(0x15, 0, 1, 0x800),
        Insn::new(0x06, 0, 0, 262_144),
        Insn::new(0x06, 0, 0, 0),
    ];
    Program {
        label: "ip.d".into(),
        expression: None,
        code: Code::Cbpf(insns),
    }
}

fn frame(ethertype: u16) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    f
}

fn run(kind: EngineKind, program: &Program, data: &[u8], wire_len: u32) -> Option<Verdict> {
    let mut engine = kind.build(program).unwrap();
    assert_eq!(engine.name(), kind.name());
    let packet = PacketRef {
        data,
        wire_len,
        linktype: LinkType::ETHERNET,
    };
    engine.run(&packet).unwrap()
}

fn is_kernel(kind: EngineKind) -> bool {
    kind.is_kernel()
}

/// The engines this test may build: kernel ones need root.
fn kinds() -> Vec<EngineKind> {
    let kernel = e2e::kernel_available("engine::tests");
    EngineKind::ALL
        .into_iter()
        .filter(|k| kernel || !is_kernel(*k))
        .collect()
}

/// Engines whose raw return value is classic BPF's (not an XDP/tc action).
fn classic_ret(kind: EngineKind) -> bool {
    matches!(
        kind,
        EngineKind::Cbpf
            | EngineKind::Libpcap
            | EngineKind::Ebpf(Hook::Socket)
            | EngineKind::Kernel(Hook::Socket)
    )
}

#[test]
fn every_engine_runs_ip() {
    let p = ip_program();
    for kind in kinds() {
        let v4 = run(kind, &p, &frame(0x0800), 60)
            .unwrap_or_else(|| panic!("{kind:?} runs a whole frame"));
        let v6 = run(kind, &p, &frame(0x86dd), 60)
            .unwrap_or_else(|| panic!("{kind:?} runs a whole frame"));
        assert!(v4.matched && !v6.matched, "{kind:?}: {v4:?} {v6:?}");
        if classic_ret(kind) {
            assert_eq!((v4.ret, v6.ret), (262_144, 0), "{kind:?}");
        }
        // Cut before the ethertype: the load fails and rejects (the kernel
        // takes no frame shorter than an Ethernet header: skipped).
        match run(kind, &p, &frame(0x0800)[..13], 60) {
            Some(v) => assert!(!v.matched, "{kind:?}"),
            None => assert!(is_kernel(kind), "{kind:?} skipped a packet"),
        }
    }
}

#[test]
fn every_engine_refuses_an_invalid_program() {
    // A jump past the end: both rule sets refuse it.
    let bad = Program {
        label: "bad.d".into(),
        expression: None,
        code: Code::Cbpf(vec![Insn::new(0x05, 0, 0, 7), Insn::new(0x06, 0, 0, 0)]),
    };
    for kind in kinds() {
        let err = kind.build(&bad).err().expect("refused");
        assert!(
            matches!(err, EngineError::Invalid { .. }),
            "{kind:?}: {err}"
        );
        assert!(err.to_string().contains("bad.d"), "{err}");
    }
}

#[test]
fn len_sees_the_wire_length() {
    // ld len; ret a
    let p = Program {
        label: "len".into(),
        expression: None,
        code: Code::Cbpf(vec![Insn::new(0x80, 0, 0, 0), Insn::new(0x16, 0, 0, 0)]),
    };
    for kind in kinds() {
        match run(kind, &p, &[0; 10], 1514) {
            Some(v) if classic_ret(kind) => assert_eq!(v.ret, 1514, "{kind:?}"),
            Some(v) => assert!(v.matched, "{kind:?}"),
            // The kernel cannot know a truncated packet's wire length.
            None => assert!(is_kernel(kind), "{kind:?} skipped a packet"),
        }
    }
}

/// Programs libpcap's `bpf_validate` passes but its `bpf_filter` aborts or
/// loops on: the libpcap engine refuses them as unsupported (left out by
/// default), while our interpreter still runs them.
#[test]
fn libpcap_refuses_what_bpf_filter_cannot_run() {
    let cases: [(&str, Vec<Insn>, &str); 3] = [
        ("ret-x", vec![Insn::new(0x0e, 0, 0, 0)], "ret x"),
        (
            "stray",
            vec![Insn::new(0x28 | 0x100, 0, 0, 12), Insn::new(0x06, 0, 0, 1)],
            "opcode 0x0128",
        ),
        (
            "self-jump",
            vec![Insn::new(0x05, 0, 0, u32::MAX), Insn::new(0x06, 0, 0, 1)],
            "no way out",
        ),
    ];
    for (label, insns, why) in cases {
        let p = Program {
            label: label.into(),
            expression: None,
            code: Code::Cbpf(insns),
        };
        let err = EngineKind::Libpcap.build(&p).err().expect("refused");
        assert!(
            matches!(err, EngineError::Unsupported { .. }),
            "{label}: {err}"
        );
        assert!(err.to_string().contains(why), "{label}: {err}");
        assert!(EngineKind::Cbpf.build(&p).is_ok(), "{label}");
    }
}
