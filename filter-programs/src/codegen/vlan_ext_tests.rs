//! Exact programs against `tcpdump -i lo -O -d` (libpcap 1.10.3 on a live
//! Linux handle, so with BPF_SPECIAL_VLAN_HANDLING), and what they mean to
//! the kernel with the tag in metadata or in the bytes.

use super::super::{compile, Dlt, Options};
use crate::cbpf::interp::{KernelCtx, Program};
use crate::cbpf::text::{self, Format};

fn live(optimize: bool) -> Options {
    Options {
        linux_ext: true,
        vlan_ext: true,
        optimize,
        ..Options::new(Dlt::En10mb)
    }
}

/// `tcpdump -i lo -O -d EXPR`, tcpdump 4.99.3 / libpcap 1.10.3.
const LIVE_UNOPTIMIZED: &[(&str, &str)] = &[
    (
        "vlan 100 and ip",
        "(000) ld #0x0\n(001) st M[0]\n(002) st M[1]\n(003) ldb [vlanp]\n\
         (004) jeq #0x1 jt 17 jf 5\n(005) ld M[0]\n(006) add #4\n(007) st M[0]\n\
         (008) ld M[1]\n(009) add #4\n(010) st M[1]\n(011) ldh [12]\n\
         (012) jeq #0x8100 jt 17 jf 13\n(013) ldh [12]\n(014) jeq #0x88a8 jt 17 jf 15\n\
         (015) ldh [12]\n(016) jeq #0x9100 jt 17 jf 28\n(017) ldb [vlanp]\n\
         (018) jeq #0x1 jt 19 jf 21\n(019) ldb [vlan_tci]\n(020) ja 22\n(021) ldh [14]\n\
         (022) and #0xfff\n(023) jeq #0x64 jt 24 jf 28\n(024) ldx M[1]\n\
         (025) ldh [x + 12]\n(026) jeq #0x800 jt 27 jf 28\n(027) ret #262144\n(028) ret #0\n",
    ),
    (
        "ip and vlan",
        "(000) ld #0x0\n(001) st M[0]\n(002) st M[1]\n(003) ldh [12]\n\
         (004) jeq #0x800 jt 5 jf 20\n(005) ldb [vlanp]\n(006) jeq #0x1 jt 19 jf 7\n\
         (007) ld M[0]\n(008) add #4\n(009) st M[0]\n(010) ld M[1]\n(011) add #4\n\
         (012) st M[1]\n(013) ldh [12]\n(014) jeq #0x8100 jt 19 jf 15\n(015) ldh [12]\n\
         (016) jeq #0x88a8 jt 19 jf 17\n(017) ldh [12]\n(018) jeq #0x9100 jt 19 jf 20\n\
         (019) ret #262144\n(020) ret #0\n",
    ),
    (
        "vlan and vlan 5",
        "(000) ld #0x0\n(001) st M[0]\n(002) st M[1]\n(003) ldb [vlanp]\n\
         (004) jeq #0x1 jt 17 jf 5\n(005) ld M[0]\n(006) add #4\n(007) st M[0]\n\
         (008) ld M[1]\n(009) add #4\n(010) st M[1]\n(011) ldh [12]\n\
         (012) jeq #0x8100 jt 17 jf 13\n(013) ldh [12]\n(014) jeq #0x88a8 jt 17 jf 15\n\
         (015) ldh [12]\n(016) jeq #0x9100 jt 17 jf 31\n(017) ldx M[1]\n\
         (018) ldh [x + 12]\n(019) jeq #0x8100 jt 26 jf 20\n(020) ldx M[1]\n\
         (021) ldh [x + 12]\n(022) jeq #0x88a8 jt 26 jf 23\n(023) ldx M[1]\n\
         (024) ldh [x + 12]\n(025) jeq #0x9100 jt 26 jf 31\n(026) ldx M[0]\n\
         (027) ldh [x + 14]\n(028) and #0xfff\n(029) jeq #0x5 jt 30 jf 31\n\
         (030) ret #262144\n(031) ret #0\n",
    ),
];

#[test]
fn unoptimized_is_libpcaps_live_program() {
    for (expr, want) in LIVE_UNOPTIMIZED {
        let want = text::parse(want).unwrap_or_else(|e| panic!("{expr}: {e:?}"));
        let got = compile(expr, &live(false)).unwrap_or_else(|e| panic!("{expr}: {}", e.render()));
        assert_eq!(
            text::print(&got, Format::Asm),
            text::print(&want, Format::Asm),
            "{expr}"
        );
    }
}

#[test]
fn off_by_default_and_unchanged_without_vlan() {
    let dead = Options {
        optimize: false,
        linux_ext: true,
        ..Options::new(Dlt::En10mb)
    };
    assert!(!Options::new(Dlt::En10mb).vlan_ext);
    for expr in [
        "ip",
        "tcp port 80",
        "ether host 1:2:3:4:5:6 or arp",
        "geneve and ip",
    ] {
        assert_eq!(compile(expr, &dead), compile(expr, &live(false)), "{expr}");
    }
    // Inside a tunnel the link header moves at run time: libpcap keeps the
    // in-bytes test there, and so does the first `vlan` after it.
    assert_eq!(
        compile("geneve and vlan", &dead),
        compile("geneve and vlan", &live(false))
    );
    assert_ne!(compile("vlan", &dead), compile("vlan", &live(false)));
    assert_ne!(Options::new(Dlt::En10mb), live(true));
}

#[test]
fn errors_are_libpcaps() {
    let e = compile("vlan 4096", &live(true)).unwrap_err();
    assert_eq!(e.message(), "VLAN tag 4096 greater than maximum 4095");
    let e = compile("mpls and vlan", &live(true)).unwrap_err();
    assert_eq!(e.message(), "no VLAN match after MPLS");
}

/// An Ethernet frame tagged with VID 100 carrying IPv4/TCP, as sent.
fn tagged_tcp() -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend([0x81, 0x00, 0x00, 100, 0x08, 0x00]);
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[9] = 6;
    f.extend(ip);
    f.extend([0u8; 20]);
    f
}

/// What a packet socket hands its filter: tag out of the bytes, into the
/// metadata.
fn stripped(f: &[u8]) -> (Vec<u8>, KernelCtx) {
    let bytes = [&f[..12], &f[16..]].concat();
    let ctx = KernelCtx {
        vlan_tpid: u16::from_be_bytes([f[12], f[13]]),
        vlan_tci: u16::from_be_bytes([f[14], f[15]]),
        ..KernelCtx::ethernet(&bytes)
    };
    (bytes, ctx)
}

#[test]
fn tag_in_metadata_or_in_bytes_means_the_same() {
    let sent = tagged_tcp();
    let (bytes, ctx) = stripped(&sent);
    let in_bytes = KernelCtx::ethernet(&sent);
    let cases = [
        ("vlan", true),
        ("vlan 100", true),
        ("vlan 101", false),
        ("vlan 100 and ip", true),
        ("vlan and tcp", true),
        ("vlan and udp", false),
        ("not vlan", false),
        ("vlan and vlan", false),
    ];
    for optimize in [false, true] {
        for (expr, want) in cases {
            let prog = compile(expr, &live(optimize)).unwrap_or_else(|e| panic!("{}", e.render()));
            let p = Program::new(&prog).expect("valid");
            let n = |b: &[u8], c: &KernelCtx| p.run_with(b, b.len() as u32, c) != 0;
            assert_eq!(
                n(&bytes, &ctx),
                want,
                "{expr} -O{optimize}: tag in metadata"
            );
            assert_eq!(
                n(&sent, &in_bytes),
                want,
                "{expr} -O{optimize}: tag in the bytes"
            );
        }
        // What live tcpdump sees: without `vlan`, the tag is not there.
        let ip = compile("ip", &live(optimize)).expect("ip");
        let p = Program::new(&ip).expect("valid");
        assert_ne!(p.run_with(&bytes, bytes.len() as u32, &ctx), 0);
    }
}
