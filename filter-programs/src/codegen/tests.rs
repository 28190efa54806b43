//! Exact programs for simple expressions, against `tcpdump -d -O -y
//! EN10MB` output (libpcap 1.10.3 without its optimizer), and the errors.

use super::{compile, Dlt, ErrorKind, Options};
use crate::cbpf::text;

/// `tcpdump -d -O -y EN10MB EXPR` output, captured with tcpdump 4.99.3 /
/// libpcap 1.10.3.
const LIBPCAP_UNOPTIMIZED: &[(&str, &str)] = &[
    (
        "ip",
        "(000) ldh      [12]\n(001) jeq      #0x800           jt 2 jf 3\n(002) ret      #262144\n(003) ret      #0\n",
    ),
    (
        "tcp",
        "(000) ldh      [12]\n(001) jeq      #0x800           jt 2 jf 4\n(002) ldb      [23]\n(003) jeq      #0x6             jt 12 jf 4\n(004) ldh      [12]\n(005) jeq      #0x86dd          jt 6 jf 13\n(006) ldb      [20]\n(007) jeq      #0x6             jt 12 jf 8\n(008) ldb      [20]\n(009) jeq      #0x2c            jt 10 jf 13\n(010) ldb      [54]\n(011) jeq      #0x6             jt 12 jf 13\n(012) ret      #262144\n(013) ret      #0\n",
    ),
    (
        "host 10.0.0.1",
        "(000) ldh      [12]\n(001) jeq      #0x800           jt 2 jf 4\n(002) ld       [26]\n(003) jeq      #0xa000001       jt 24 jf 4\n(004) ldh      [12]\n(005) jeq      #0x800           jt 6 jf 8\n(006) ld       [30]\n(007) jeq      #0xa000001       jt 24 jf 8\n(008) ldh      [12]\n(009) jeq      #0x806           jt 10 jf 12\n(010) ld       [28]\n(011) jeq      #0xa000001       jt 24 jf 12\n(012) ldh      [12]\n(013) jeq      #0x806           jt 14 jf 16\n(014) ld       [38]\n(015) jeq      #0xa000001       jt 24 jf 16\n(016) ldh      [12]\n(017) jeq      #0x8035          jt 18 jf 20\n(018) ld       [28]\n(019) jeq      #0xa000001       jt 24 jf 20\n(020) ldh      [12]\n(021) jeq      #0x8035          jt 22 jf 25\n(022) ld       [38]\n(023) jeq      #0xa000001       jt 24 jf 25\n(024) ret      #262144\n(025) ret      #0\n",
    ),
    (
        "port 80",
        "(000) ldh      [12]\n(001) jeq      #0x86dd          jt 2 jf 20\n(002) ldb      [20]\n(003) jeq      #0x84            jt 4 jf 8\n(004) ldh      [54]\n(005) jeq      #0x50            jt 52 jf 6\n(006) ldh      [56]\n(007) jeq      #0x50            jt 52 jf 8\n(008) ldb      [20]\n(009) jeq      #0x6             jt 10 jf 14\n(010) ldh      [54]\n(011) jeq      #0x50            jt 52 jf 12\n(012) ldh      [56]\n(013) jeq      #0x50            jt 52 jf 14\n(014) ldb      [20]\n(015) jeq      #0x11            jt 16 jf 20\n(016) ldh      [54]\n(017) jeq      #0x50            jt 52 jf 18\n(018) ldh      [56]\n(019) jeq      #0x50            jt 52 jf 20\n(020) ldh      [12]\n(021) jeq      #0x800           jt 22 jf 53\n(022) ldb      [23]\n(023) jeq      #0x84            jt 24 jf 32\n(024) ldh      [20]\n(025) jset     #0x1fff          jt 32 jf 26\n(026) ldxb     4*([14]&0xf)\n(027) ldh      [x + 14]\n(028) jeq      #0x50            jt 52 jf 29\n(029) ldxb     4*([14]&0xf)\n(030) ldh      [x + 16]\n(031) jeq      #0x50            jt 52 jf 32\n(032) ldb      [23]\n(033) jeq      #0x6             jt 34 jf 42\n(034) ldh      [20]\n(035) jset     #0x1fff          jt 42 jf 36\n(036) ldxb     4*([14]&0xf)\n(037) ldh      [x + 14]\n(038) jeq      #0x50            jt 52 jf 39\n(039) ldxb     4*([14]&0xf)\n(040) ldh      [x + 16]\n(041) jeq      #0x50            jt 52 jf 42\n(042) ldb      [23]\n(043) jeq      #0x11            jt 44 jf 53\n(044) ldh      [20]\n(045) jset     #0x1fff          jt 53 jf 46\n(046) ldxb     4*([14]&0xf)\n(047) ldh      [x + 14]\n(048) jeq      #0x50            jt 52 jf 49\n(049) ldxb     4*([14]&0xf)\n(050) ldh      [x + 16]\n(051) jeq      #0x50            jt 52 jf 53\n(052) ret      #262144\n(053) ret      #0\n",
    ),
    (
        "ether host 00:04:23:57:a5:7a",
        "(000) ld       [8]\n(001) jeq      #0x2357a57a      jt 2 jf 4\n(002) ldh      [6]\n(003) jeq      #0x4             jt 8 jf 4\n(004) ld       [2]\n(005) jeq      #0x2357a57a      jt 6 jf 9\n(006) ldh      [0]\n(007) jeq      #0x4             jt 8 jf 9\n(008) ret      #262144\n(009) ret      #0\n",
    ),
    (
        "vlan 10 and ip",
        "(000) ldh      [12]\n(001) jeq      #0x8100          jt 6 jf 2\n(002) ldh      [12]\n(003) jeq      #0x88a8          jt 6 jf 4\n(004) ldh      [12]\n(005) jeq      #0x9100          jt 6 jf 12\n(006) ldh      [14]\n(007) and      #0xfff\n(008) jeq      #0xa             jt 9 jf 12\n(009) ldh      [16]\n(010) jeq      #0x800           jt 11 jf 12\n(011) ret      #262144\n(012) ret      #0\n",
    ),
    (
        "ip[2:2] > 1400",
        "(000) ldh      [12]\n(001) jeq      #0x800           jt 2 jf 13\n(002) ld       #0x2\n(003) st       M[0]\n(004) ldx      M[0]\n(005) ldh      [x + 14]\n(006) st       M[1]\n(007) ld       #0x578\n(008) st       M[2]\n(009) ldx      M[2]\n(010) ld       M[1]\n(011) jgt      x                jt 12 jf 13\n(012) ret      #262144\n(013) ret      #0\n",
    ),
    (
        "not tcp and udp",
        "(000) ldh      [12]\n(001) jeq      #0x800           jt 2 jf 4\n(002) ldb      [23]\n(003) jeq      #0x6             jt 25 jf 4\n(004) ldh      [12]\n(005) jeq      #0x86dd          jt 6 jf 12\n(006) ldb      [20]\n(007) jeq      #0x6             jt 25 jf 8\n(008) ldb      [20]\n(009) jeq      #0x2c            jt 10 jf 12\n(010) ldb      [54]\n(011) jeq      #0x6             jt 25 jf 12\n(012) ldh      [12]\n(013) jeq      #0x800           jt 14 jf 16\n(014) ldb      [23]\n(015) jeq      #0x11            jt 24 jf 16\n(016) ldh      [12]\n(017) jeq      #0x86dd          jt 18 jf 25\n(018) ldb      [20]\n(019) jeq      #0x11            jt 24 jf 20\n(020) ldb      [20]\n(021) jeq      #0x2c            jt 22 jf 25\n(022) ldb      [54]\n(023) jeq      #0x11            jt 24 jf 25\n(024) ret      #262144\n(025) ret      #0\n",
    ),
    (
        "portrange 1-1023",
        "(000) ldh      [12]\n(001) jeq      #0x86dd          jt 2 jf 32\n(002) ldb      [20]\n(003) jeq      #0x84            jt 4 jf 12\n(004) ldh      [54]\n(005) jge      #0x1             jt 6 jf 8\n(006) ldh      [54]\n(007) jgt      #0x3ff           jt 8 jf 82\n(008) ldh      [56]\n(009) jge      #0x1             jt 10 jf 12\n(010) ldh      [56]\n(011) jgt      #0x3ff           jt 12 jf 82\n(012) ldb      [20]\n(013) jeq      #0x6             jt 14 jf 22\n(014) ldh      [54]\n(015) jge      #0x1             jt 16 jf 18\n(016) ldh      [54]\n(017) jgt      #0x3ff           jt 18 jf 82\n(018) ldh      [56]\n(019) jge      #0x1             jt 20 jf 22\n(020) ldh      [56]\n(021) jgt      #0x3ff           jt 22 jf 82\n(022) ldb      [20]\n(023) jeq      #0x11            jt 24 jf 32\n(024) ldh      [54]\n(025) jge      #0x1             jt 26 jf 28\n(026) ldh      [54]\n(027) jgt      #0x3ff           jt 28 jf 82\n(028) ldh      [56]\n(029) jge      #0x1             jt 30 jf 32\n(030) ldh      [56]\n(031) jgt      #0x3ff           jt 32 jf 82\n(032) ldh      [12]\n(033) jeq      #0x800           jt 34 jf 83\n(034) ldb      [23]\n(035) jeq      #0x84            jt 36 jf 50\n(036) ldh      [20]\n(037) jset     #0x1fff          jt 50 jf 38\n(038) ldxb     4*([14]&0xf)\n(039) ldh      [x + 14]\n(040) jge      #0x1             jt 41 jf 44\n(041) ldxb     4*([14]&0xf)\n(042) ldh      [x + 14]\n(043) jgt      #0x3ff           jt 44 jf 82\n(044) ldxb     4*([14]&0xf)\n(045) ldh      [x + 16]\n(046) jge      #0x1             jt 47 jf 50\n(047) ldxb     4*([14]&0xf)\n(048) ldh      [x + 16]\n(049) jgt      #0x3ff           jt 50 jf 82\n(050) ldb      [23]\n(051) jeq      #0x6             jt 52 jf 66\n(052) ldh      [20]\n(053) jset     #0x1fff          jt 66 jf 54\n(054) ldxb     4*([14]&0xf)\n(055) ldh      [x + 14]\n(056) jge      #0x1             jt 57 jf 60\n(057) ldxb     4*([14]&0xf)\n(058) ldh      [x + 14]\n(059) jgt      #0x3ff           jt 60 jf 82\n(060) ldxb     4*([14]&0xf)\n(061) ldh      [x + 16]\n(062) jge      #0x1             jt 63 jf 66\n(063) ldxb     4*([14]&0xf)\n(064) ldh      [x + 16]\n(065) jgt      #0x3ff           jt 66 jf 82\n(066) ldb      [23]\n(067) jeq      #0x11            jt 68 jf 83\n(068) ldh      [20]\n(069) jset     #0x1fff          jt 83 jf 70\n(070) ldxb     4*([14]&0xf)\n(071) ldh      [x + 14]\n(072) jge      #0x1             jt 73 jf 76\n(073) ldxb     4*([14]&0xf)\n(074) ldh      [x + 14]\n(075) jgt      #0x3ff           jt 76 jf 82\n(076) ldxb     4*([14]&0xf)\n(077) ldh      [x + 16]\n(078) jge      #0x1             jt 79 jf 83\n(079) ldxb     4*([14]&0xf)\n(080) ldh      [x + 16]\n(081) jgt      #0x3ff           jt 83 jf 82\n(082) ret      #262144\n(083) ret      #0\n",
    ),
    (
        "ip6 host fe80::1",
        "(000) ldh      [12]\n(001) jeq      #0x86dd          jt 2 jf 10\n(002) ld       [22]\n(003) jeq      #0xfe800000      jt 4 jf 10\n(004) ld       [26]\n(005) jeq      #0x0             jt 6 jf 10\n(006) ld       [30]\n(007) jeq      #0x0             jt 8 jf 10\n(008) ld       [34]\n(009) jeq      #0x1             jt 20 jf 10\n(010) ldh      [12]\n(011) jeq      #0x86dd          jt 12 jf 21\n(012) ld       [38]\n(013) jeq      #0xfe800000      jt 14 jf 21\n(014) ld       [42]\n(015) jeq      #0x0             jt 16 jf 21\n(016) ld       [46]\n(017) jeq      #0x0             jt 18 jf 21\n(018) ld       [50]\n(019) jeq      #0x1             jt 20 jf 21\n(020) ret      #262144\n(021) ret      #0\n",
    ),
    (
        "mpls 16006",
        "(000) ldh      [12]\n(001) jeq      #0x8847          jt 2 jf 6\n(002) ld       [14]\n(003) and      #0xfffff000\n(004) jeq      #0x3e86000       jt 5 jf 6\n(005) ret      #262144\n(006) ret      #0\n",
    ),
    (
        "pppoes 0x17 and ip",
        "(000) ldh      [12]\n(001) jeq      #0x8864          jt 2 jf 8\n(002) ld       [14]\n(003) and      #0xffff\n(004) jeq      #0x17            jt 5 jf 8\n(005) ldh      [20]\n(006) jeq      #0x21            jt 7 jf 8\n(007) ret      #262144\n(008) ret      #0\n",
    ),
    (
        "less 100",
        "(000) ld       #pktlen\n(001) jgt      #0x64            jt 2 jf 3\n(002) ret      #0\n(003) ret      #262144\n",
    ),
    (
        "tcp[tcpflags] & tcp-syn != 0",
        "(000) ldh      [12]\n(001) jeq      #0x800           jt 2 jf 37\n(002) ldh      [12]\n(003) jeq      #0x800           jt 4 jf 6\n(004) ldb      [23]\n(005) jeq      #0x6             jt 14 jf 6\n(006) ldh      [12]\n(007) jeq      #0x86dd          jt 8 jf 37\n(008) ldb      [20]\n(009) jeq      #0x6             jt 14 jf 10\n(010) ldb      [20]\n(011) jeq      #0x2c            jt 12 jf 37\n(012) ldb      [54]\n(013) jeq      #0x6             jt 14 jf 37\n(014) ldh      [20]\n(015) jset     #0x1fff          jt 37 jf 16\n(016) ld       #0xd\n(017) st       M[0]\n(018) ldxb     4*([14]&0xf)\n(019) ld       M[0]\n(020) add      x\n(021) tax\n(022) ldb      [x + 14]\n(023) st       M[1]\n(024) ld       #0x2\n(025) st       M[2]\n(026) ldx      M[2]\n(027) ld       M[1]\n(028) and      x\n(029) st       M[2]\n(030) ld       #0x0\n(031) st       M[3]\n(032) ldx      M[3]\n(033) ld       M[2]\n(034) sub      x\n(035) jeq      #0x0             jt 37 jf 36\n(036) ret      #262144\n(037) ret      #0\n",
    ),
    (
        "multicast",
        "(000) ldb      [0]\n(001) jset     #0x1             jt 2 jf 3\n(002) ret      #262144\n(003) ret      #0\n",
    ),
    (
        "stp",
        "(000) ldh      [12]\n(001) jgt      #0x5dc           jt 5 jf 2\n(002) ldb      [14]\n(003) jeq      #0x42            jt 4 jf 5\n(004) ret      #262144\n(005) ret      #0\n",
    ),
    (
        "ether broadcast",
        "(000) ld       [2]\n(001) jeq      #0xffffffff      jt 2 jf 5\n(002) ldh      [0]\n(003) jeq      #0xffff          jt 4 jf 5\n(004) ret      #262144\n(005) ret      #0\n",
    ),
    (
        "net 10.40.2.0 mask 255.255.255.0",
        "(000) ldh      [12]\n(001) jeq      #0x800           jt 2 jf 5\n(002) ld       [26]\n(003) and      #0xffffff00\n(004) jeq      #0xa280200       jt 30 jf 5\n(005) ldh      [12]\n(006) jeq      #0x800           jt 7 jf 10\n(007) ld       [30]\n(008) and      #0xffffff00\n(009) jeq      #0xa280200       jt 30 jf 10\n(010) ldh      [12]\n(011) jeq      #0x806           jt 12 jf 15\n(012) ld       [28]\n(013) and      #0xffffff00\n(014) jeq      #0xa280200       jt 30 jf 15\n(015) ldh      [12]\n(016) jeq      #0x806           jt 17 jf 20\n(017) ld       [38]\n(018) and      #0xffffff00\n(019) jeq      #0xa280200       jt 30 jf 20\n(020) ldh      [12]\n(021) jeq      #0x8035          jt 22 jf 25\n(022) ld       [28]\n(023) and      #0xffffff00\n(024) jeq      #0xa280200       jt 30 jf 25\n(025) ldh      [12]\n(026) jeq      #0x8035          jt 27 jf 31\n(027) ld       [38]\n(028) and      #0xffffff00\n(029) jeq      #0xa280200       jt 30 jf 31\n(030) ret      #262144\n(031) ret      #0\n",
    ),
    (
        "ip6 net fe80::/10",
        "(000) ldh      [12]\n(001) jeq      #0x86dd          jt 2 jf 14\n(002) ld       [22]\n(003) and      #0xffc00000\n(004) jeq      #0xfe800000      jt 5 jf 14\n(005) ld       [26]\n(006) and      #0x0\n(007) jeq      #0x0             jt 8 jf 14\n(008) ld       [30]\n(009) and      #0x0\n(010) jeq      #0x0             jt 11 jf 14\n(011) ld       [34]\n(012) and      #0x0\n(013) jeq      #0x0             jt 28 jf 14\n(014) ldh      [12]\n(015) jeq      #0x86dd          jt 16 jf 29\n(016) ld       [38]\n(017) and      #0xffc00000\n(018) jeq      #0xfe800000      jt 19 jf 29\n(019) ld       [42]\n(020) and      #0x0\n(021) jeq      #0x0             jt 22 jf 29\n(022) ld       [46]\n(023) and      #0x0\n(024) jeq      #0x0             jt 25 jf 29\n(025) ld       [50]\n(026) and      #0x0\n(027) jeq      #0x0             jt 28 jf 29\n(028) ret      #262144\n(029) ret      #0\n",
    ),
    (
        "icmp6[icmp6type] == icmp6-echo",
        "(000) ldh      [12]\n(001) jeq      #0x86dd          jt 2 jf 16\n(002) ldb      [20]\n(003) jeq      #0x3a            jt 4 jf 16\n(004) ld       #0x0\n(005) st       M[0]\n(006) ldx      M[0]\n(007) ldb      [x + 54]\n(008) st       M[1]\n(009) ld       #0x80\n(010) st       M[2]\n(011) ldx      M[2]\n(012) ld       M[1]\n(013) sub      x\n(014) jeq      #0x0             jt 15 jf 16\n(015) ret      #262144\n(016) ret      #0\n",
    ),
    (
        "len - 14 > 1000",
        "(000) ld       #pktlen\n(001) st       M[0]\n(002) ld       #0xe\n(003) st       M[1]\n(004) ldx      M[1]\n(005) ld       M[0]\n(006) sub      x\n(007) st       M[1]\n(008) ld       #0x3e8\n(009) st       M[2]\n(010) ldx      M[2]\n(011) ld       M[1]\n(012) jgt      x                jt 13 jf 14\n(013) ret      #262144\n(014) ret      #0\n",
    ),
    (
        "mpls 17 and mpls and ip",
        "(000) ldh      [12]\n(001) jeq      #0x8847          jt 2 jf 15\n(002) ld       [14]\n(003) and      #0xfffff000\n(004) jeq      #0x11000         jt 5 jf 15\n(005) ldb      [16]\n(006) and      #0x1\n(007) jeq      #0x0             jt 8 jf 15\n(008) ldb      [20]\n(009) and      #0x1\n(010) jeq      #0x1             jt 11 jf 15\n(011) ldb      [22]\n(012) and      #0xf0\n(013) jeq      #0x40            jt 14 jf 15\n(014) ret      #262144\n(015) ret      #0\n",
    ),
    (
        "ipx",
        "(000) ldh      [12]\n(001) jeq      #0x8137          jt 12 jf 2\n(002) ldh      [12]\n(003) jgt      #0x5dc           jt 13 jf 4\n(004) ld       [18]\n(005) jeq      #0x8137          jt 6 jf 8\n(006) ld       [14]\n(007) jeq      #0xaaaa0300      jt 12 jf 8\n(008) ldb      [14]\n(009) jeq      #0xe0            jt 12 jf 10\n(010) ldh      [14]\n(011) jeq      #0xffff          jt 12 jf 13\n(012) ret      #262144\n(013) ret      #0\n",
    ),
];

#[test]
fn unoptimized_programs_are_libpcaps_instruction_for_instruction() {
    for (expr, want) in LIBPCAP_UNOPTIMIZED {
        let want = text::parse(want).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let got = compile(
            expr,
            &Options {
                optimize: false,
                ..Options::new(Dlt::En10mb)
            },
        )
        .unwrap_or_else(|e| panic!("{expr}: {}", e.render()));
        assert_eq!(got, want, "{expr}");
    }
}

#[test]
fn empty_filter_accepts_everything() {
    let p = compile("", &Options::new(Dlt::Raw)).unwrap();
    assert_eq!(p, text::parse("(000) ret #262144").unwrap());
}

#[test]
fn long_branches_get_trampolines() {
    // 40 hosts make the first test's false branch jump over far more than
    // 255 instructions.
    let e = (1..=40)
        .map(|i| format!("host 10.0.0.{i}"))
        .collect::<Vec<_>>()
        .join(" and ");
    let p = compile(
        &e,
        &Options {
            optimize: false,
            ..Options::new(Dlt::En10mb)
        },
    )
    .unwrap();
    assert!(p.len() > 600);
    assert!(crate::cbpf::interp::Program::new(&p).is_ok());
    assert!(p
        .iter()
        .any(|i| i.decode() == Ok(crate::cbpf::Op::Ja { k: i.k })));
}

#[test]
fn errors_are_libpcaps_with_a_caret() {
    let cases: &[(&str, Dlt, &str)] = &[
        ("vlan", Dlt::Raw, "no VLAN support for Raw IP"),
        ("mpls and vlan", Dlt::En10mb, "no VLAN match after MPLS"),
        (
            "ether host 1:2:3:4:5:6",
            Dlt::LinuxSll,
            "ethernet addresses supported only on",
        ),
        ("broadcast", Dlt::Raw, "not a broadcast link"),
        ("ip broadcast", Dlt::En10mb, "netmask not known"),
        ("tcp proto 6", Dlt::En10mb, "'tcp proto' is bogus"),
        (
            "ip6 host 10.0.0.1",
            Dlt::En10mb,
            "'ip6' modifier applied to ip host",
        ),
        (
            "net 10.0.0.1/8",
            Dlt::En10mb,
            "non-network bits set in \"10.0.0.1/8\"",
        ),
        (
            "host 10.0.0.0/8",
            Dlt::En10mb,
            "Mask syntax for networks only",
        ),
        ("ip[1:3] == 0", Dlt::En10mb, "data size must be 1, 2, or 4"),
        ("ip[0] / 0 == 1", Dlt::En10mb, "division by zero"),
        (
            "vlan 4096",
            Dlt::En10mb,
            "VLAN tag 4096 greater than maximum 4095",
        ),
        ("udp port ssh", Dlt::En10mb, "port 'ssh' is tcp"),
        (
            "port 70000",
            Dlt::En10mb,
            "illegal port number 70000 > 65535",
        ),
        (
            "mpls and arp host 1.2.3.4",
            Dlt::En10mb,
            "unsupported protocol over mpls",
        ),
    ];
    for (expr, lt, msg) in cases {
        let err = compile(expr, &Options::new(*lt)).expect_err(expr);
        assert_eq!(err.kind, ErrorKind::Semantic, "{expr}");
        let r = err.render();
        assert!(r.contains(msg), "{expr}: {r}");
        assert!(r.contains(expr) && r.contains('^'), "{expr}: {r}");
    }
}

#[test]
fn unsupported_primitives_say_so() {
    for expr in ["ifname eth0", "type data", "lane", "fisu"] {
        let err = compile(expr, &Options::new(Dlt::En10mb)).expect_err(expr);
        assert_eq!(err.kind, ErrorKind::Unsupported, "{expr}");
        assert!(err.render().contains("not yet supported"), "{expr}");
    }
    let err = compile("tcp and (", &Options::new(Dlt::En10mb)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Parse);
}

/// A resolver with fixed answers, for name handling without I/O.
#[derive(Debug)]
struct FixedNames;

impl super::Resolver for FixedNames {
    fn host(&self, name: &str) -> Result<Vec<std::net::IpAddr>, String> {
        Ok(match name {
            "dual" => vec!["10.0.0.1".parse().unwrap(), "fe80::1".parse().unwrap()],
            _ => vec![],
        })
    }
    fn net(&self, name: &str) -> Option<u32> {
        (name == "ten").then_some(10)
    }
    fn ether(&self, name: &str) -> Option<[u8; 6]> {
        (name == "gw").then_some([0, 4, 0x23, 0x57, 0xa5, 0x7a])
    }
    fn service(&self, name: &str, _t: super::Transport) -> Option<u16> {
        (name == "web").then_some(80)
    }
    fn protocol(&self, name: &str) -> Option<u8> {
        (name == "tee").then_some(6)
    }
}

#[test]
fn names_go_through_the_resolver() {
    let fixed = Options {
        optimize: false,
        resolver: std::sync::Arc::new(FixedNames),
        ..Options::new(Dlt::En10mb)
    };
    let same = |a: &str, b: &str| {
        let pa = compile(a, &fixed).unwrap_or_else(|e| panic!("{a}: {}", e.render()));
        let pb = compile(b, &fixed).unwrap_or_else(|e| panic!("{b}: {}", e.render()));
        assert_eq!(pa, pb, "{a} vs {b}");
    };
    // Every address of a name, IPv4 and IPv6, in resolver order.
    same("host dual", "host 10.0.0.1 or host fe80::1");
    same("ip host dual", "ip host 10.0.0.1");
    same("ip6 host dual", "ip6 host fe80::1");
    same("net ten", "net 10.0.0.0/8");
    same("ether host gw", "ether host 00:04:23:57:a5:7a");
    same("port web", "port 80");
    same("proto tee", "proto 6");
    let err = compile("host nowhere", &fixed).unwrap_err();
    assert_eq!(err.message(), "unknown host 'nowhere'");
    let err = compile("net nowhere", &fixed).unwrap_err();
    assert_eq!(err.message(), "unknown network 'nowhere'");
    // The default resolver knows no hosts and says so.
    let err = compile("host localhost", &Options::new(Dlt::En10mb)).unwrap_err();
    assert_eq!(
        err.message(),
        "cannot resolve host name localhost: no resolver"
    );
    assert_eq!(err.kind, ErrorKind::Semantic);
}

#[test]
fn linux_extensions_gate_metadata_primitives() {
    let dead = Options::new(Dlt::En10mb);
    let err = compile("inbound", &dead).unwrap_err();
    assert_eq!(
        err.message(),
        "not a live capture, 'inbound' not supported on DLT_EN10MB"
    );
    let live = Options {
        linux_ext: true,
        optimize: false,
        ..dead
    };
    let want = text::parse(
        "(000) ldh [4294963204]\n(001) jeq #0x4 jt 2 jf 3\n(002) ret #0\n(003) ret #262144\n",
    )
    .unwrap();
    assert_eq!(compile("inbound", &live).unwrap(), want);
    // The cooked v2 header carries the interface index itself.
    let sll2 = Options {
        optimize: false,
        ..Options::new(Dlt::LinuxSll2)
    };
    let want =
        text::parse("(000) ld [4]\n(001) jeq #0x7 jt 2 jf 3\n(002) ret #262144\n(003) ret #0\n")
            .unwrap();
    assert_eq!(compile("ifindex 7", &sll2).unwrap(), want);
}
