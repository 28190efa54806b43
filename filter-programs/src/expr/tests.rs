//! Parser unit tests: precedence, qualifier inheritance, literals, spans
//! and rendered diagnostics. Expected trees follow libpcap 1.10 (checked
//! against its compiled programs where behaviour is subtle).

use super::ast::{ExprKind, IdKind};
use super::*;

fn sx(text: &str) -> String {
    match parse(text) {
        Ok(ast) => ast.to_sexp(),
        Err(e) => panic!("{text:?} failed:\n{}", e.render()),
    }
}

fn err(text: &str) -> ParseError {
    match parse(text) {
        Ok(ast) => panic!("{text:?} parsed as {}", ast.to_sexp()),
        Err(e) => e,
    }
}

#[test]
fn empty_filter_accepts_all() {
    assert_eq!(sx(""), "(all)");
    assert_eq!(sx("  \t\n"), "(all)");
}

#[test]
fn and_or_same_precedence_left_assoc() {
    assert_eq!(sx("tcp or udp and icmp"), "(and (or tcp udp) icmp)");
    assert_eq!(sx("tcp and udp or icmp"), "(or (and tcp udp) icmp)");
    assert_eq!(sx("tcp || udp && icmp"), "(and (or tcp udp) icmp)");
    assert_eq!(sx("tcp or (udp and icmp)"), "(or tcp (and udp icmp))");
}

#[test]
fn not_binds_tighter() {
    assert_eq!(sx("not tcp and udp"), "(and (not tcp) udp)");
    assert_eq!(sx("! tcp or not not udp"), "(or (not tcp) (not (not udp)))");
    assert_eq!(sx("not (tcp and udp)"), "(not (and tcp udp))");
}

#[test]
fn port_list_inherits() {
    assert_eq!(sx("port 80 or 443"), "(or [port 80] [port ^443])");
    assert_eq!(
        sx("tcp dst port 80 or 443 and 8080"),
        "(and (or [tcp dst port 80] [tcp dst port ^443]) [tcp dst port ^8080])"
    );
    // A parenthesized list inherits too, and so does `not`.
    assert_eq!(
        sx("port 80 or (443 or 8080)"),
        "(or [port 80] (or [port ^443] [port ^8080]))"
    );
    assert_eq!(
        sx("port 80 and not 443"),
        "(and [port 80] (not [port ^443]))"
    );
    assert_eq!(
        sx("port 80 and ! (443)"),
        "(and [port 80] (not [port ^443]))"
    );
}

#[test]
fn host_and_not_inherits() {
    assert_eq!(sx("host a and not b"), "(and [host a] (not [host ^b]))");
    assert_eq!(sx("host (a or b)"), "(or [host a] [host b])");
}

#[test]
fn new_qualifiers_reset_everything() {
    // `dst 2` is a complete primitive of its own: default protocol, dst,
    // default kind (a host), not a tcp port.
    assert_eq!(
        sx("tcp src port 1 or dst 2"),
        "(or [tcp src port 1] [dst 2])"
    );
    assert_eq!(sx("src or dst host x"), "[src or dst host x]");
    assert_eq!(sx("dst and src net 10"), "[src and dst net 10]");
}

#[test]
fn inheritance_through_terms() {
    // A parenthesized expression passes on what was in effect before it.
    assert_eq!(
        sx("tcp port 80 and (udp) or 443"),
        "(or (and [tcp port 80] udp) [tcp port ^443])"
    );
    // Protocol names, relations and keyword primitives pass nothing on.
    for text in [
        "tcp and 80",
        "ip[0] = 1 or 2",
        "vlan 1 or 2",
        "(port 80) or 443",
        "tcp or (a)",
    ] {
        let e = err(text);
        assert_eq!(e.kind, ErrorKind::Qualifier, "{text}");
        assert!(
            e.message().contains("has no qualifier to inherit"),
            "{text}: {}",
            e.message()
        );
    }
}

#[test]
fn id_groups_follow_the_grammar() {
    assert_eq!(sx("host ((1) or 2)"), "(or [host 1] [host 2])");
    assert_eq!(sx("port ((80))"), "[port 80]");
    assert_eq!(err("host ((a) or b)").kind, ErrorKind::Syntax);
    assert_eq!(err("port 80 or (443 and host x)").kind, ErrorKind::Syntax);
    assert_eq!(err("host x or ((y or z))").kind, ErrorKind::Syntax);
    assert_eq!(err("not 80").kind, ErrorKind::Syntax);
    assert_eq!(err("lldp").kind, ErrorKind::Syntax);
}

#[test]
fn arithmetic_precedence() {
    assert_eq!(sx("1 + 2 * 3 = 7"), "(= (+ 1 (* 2 3)) 7)");
    assert_eq!(sx("1 - 2 - 3 = 0"), "(= (- (- 1 2) 3) 0)");
    assert_eq!(
        sx("1 | 2 & 3 << 4 + 5 = 0"),
        "(= (| 1 (& 2 (<< 3 (+ 4 5)))) 0)"
    );
    assert_eq!(sx("-1 + 2 = 1"), "(= (+ (neg 1) 2) 1)");
    // `%` and `^` take everything to their right (libpcap's shift choice).
    assert_eq!(sx("1 + 2 % 3 + 4 = 1"), "(= (+ 1 (% 2 (+ 3 4))) 1)");
    assert_eq!(sx("-1 ^ 2 = 1"), "(= (neg (^ 1 2)) 1)");
    assert_eq!(
        sx("tcp[tcpflags] & (tcp-syn|tcp-ack) != 0"),
        "(!= (& tcp[13] (| 2 16)) 0)"
    );
    assert_eq!(
        sx("ip[2:2] - ((ip[0]&0xf)<<2) > 0"),
        "(> (- ip[2:2] (<< (& ip[0] 15) 2)) 0)"
    );
    assert_eq!(sx("(ip[0]) = 1"), "(= ip[0] 1)");
    assert_eq!(sx("((1) + 2 = 3)"), "(= (+ 1 2) 3)");
    assert_eq!(
        sx("len >= 100 and len <= 200"),
        "(and (>= len 100) (<= len 200))"
    );
}

#[test]
fn numbers() {
    assert_eq!(sx("port 0x50"), "[port 80]");
    assert_eq!(sx("port 0120"), "[port 80]");
    assert_eq!(sx("ip[0] = 4294967295"), "(= ip[0] 4294967295)");
    assert_eq!(
        err("port 4294967296").message(),
        "decimal number 4294967296 overflows 32 bits"
    );
    assert_eq!(
        err("port 09").message(),
        "number 09 contains non-octal digit"
    );
    assert_eq!(sx("icmp[icmptype] = icmp-echo"), "(= icmp[0] 8)");
    assert_eq!(
        sx("icmp6[icmp6type] = icmp6-neighborsolicit"),
        "(= icmp6[0] 135)"
    );
}

#[test]
fn ipv4_forms() {
    assert_eq!(sx("net 10.1"), "[net 10.1]");
    assert_eq!(sx("net 10.0.0.0/8"), "[net 10.0.0.0/8]");
    assert_eq!(
        sx("net 10.0.0.0 mask 255.0.0.0"),
        "[net 10.0.0.0 mask 255.0.0.0]"
    );
    let ast = parse("host 10.1.2").expect("parses");
    let Some(ExprKind::Primitive(p)) = ast.root.as_ref().map(|r| &r.kind) else {
        panic!("not a primitive")
    };
    let IdKind::Ipv4(lit) = &p.id.kind else {
        panic!("not IPv4")
    };
    assert_eq!((lit.octets, lit.value), (3, Some(0x0a0102)));
    // Range errors are code generation's (libpcap: "invalid IPv4 address").
    assert_eq!(sx("host 12.500"), "[host 12.500]");
    assert_eq!(err("net 10 mask 255.0.0.0").kind, ErrorKind::Syntax);
    assert_eq!(
        err("port 1.2.3.4").message(),
        "'port' qualifier applied to IPv4 address"
    );
    assert_eq!(
        err("port 80 or 10.0.0.0/8").message(),
        "'port' qualifier applied to IPv4 address and prefix length"
    );
}

#[test]
fn macs_and_link_addresses() {
    for m in [
        "aa:bb:cc:dd:ee:ff",
        "aa-bb-cc-dd-ee-ff",
        "aa.bb.cc.dd.ee.ff",
        "aabb.ccdd.eeff",
        "aabbccddeeff",
    ] {
        assert_eq!(
            sx(&format!("ether host {m}")),
            "[link host aa:bb:cc:dd:ee:ff]",
            "{m}"
        );
    }
    assert_eq!(sx("ether src a:b:c:d:e:f"), "[link src 0a:0b:0c:0d:0e:0f]");
    assert_eq!(sx("link host $c0"), "[link host $c0]");
    assert_eq!(
        err("ether ab:cd:ef:0g:00:00").message(),
        "invalid Ethernet address ab:cd:ef:"
    );
}

#[test]
fn ipv6_forms() {
    assert_eq!(sx("ip6 host fe80::1"), "[ip6 host fe80::1]");
    assert_eq!(sx("net fe80::/10"), "[net fe80::/10]");
    assert_eq!(sx("host ::ffff:10.0.0.1"), "[host ::ffff:10.0.0.1]");
    assert_eq!(err("ip6 host fe80:0:0:0:0:0:0:0:0").kind, ErrorKind::Syntax);
    assert_eq!(err("host fe80::10.256.30.40").kind, ErrorKind::Lexical);
    assert_eq!(
        err("proto fe80::1").message(),
        "'proto' qualifier applied to IPv6 address"
    );
}

#[test]
fn names_and_escapes() {
    assert_eq!(sx("ether proto \\arp"), "[link proto \\arp]");
    assert_eq!(sx("ip proto \\tcp"), "[ip proto \\tcp]");
    assert_eq!(sx("portrange 1000-2000"), "[portrange 1000-2000]");
    assert_eq!(
        sx("host some-host.example.com"),
        "[host some-host.example.com]"
    );
    // Keywords are case-sensitive: `Host` is a name.
    assert_eq!(err("Host x").kind, ErrorKind::Syntax);
}

#[test]
fn other_primitives() {
    assert_eq!(sx("vlan"), "Vlan(None)");
    assert!(sx("vlan (100) and mpls 3").starts_with("(and Vlan(Some"));
    assert!(sx("ether broadcast").contains("Broadcast(Some(Link))"));
    assert!(sx("wlan type mgt subtype beacon").contains("FrameControl { value: 128, mask: 252 }"));
    assert!(sx("subtype qos-data").contains("FrameControl { value: 136, mask: 252 }"));
    assert!(sx("dir tods").contains("Dir(1)"));
    assert!(sx("llc rnr").contains("Llc(Some(SSubtype(5)))"));
    assert!(sx("vpi (1 or 2)").contains("AnyOf"));
    assert!(sx("sio > 3").contains("Compare(Gt"));
    assert!(sx("byte 2 & 3").contains("Byte"));
    assert!(sx("geneve 5 and vxlan").contains("Vxlan(None)"));
    assert_eq!(err("type 2").message(), "invalid 802.11 type value 0x02");
    assert_eq!(err("llc foo").message(), "unknown LLC type name \"foo\"");
    assert_eq!(err("byte 1 != 2").kind, ErrorKind::Syntax);
    assert_eq!(err("pppoed 1234").kind, ErrorKind::Syntax);
    assert_eq!(err("src proto 1").kind, ErrorKind::Syntax);
}

#[test]
fn spans_cover_their_text() {
    let src = "tcp src port 80 or 443";
    let ast = parse(src).expect("parses");
    let root = ast.root.expect("has a root");
    assert_eq!(root.span.text(src), src);
    let ExprKind::Or(a, b) = &root.kind else {
        panic!("not an or")
    };
    assert_eq!(a.span.text(src), "tcp src port 80");
    assert_eq!(b.span.text(src), "443");
    let ExprKind::Primitive(p) = &b.kind else {
        panic!("not a primitive")
    };
    assert!(p.inherited);
    assert_eq!(p.quals.span.text(src), "tcp src port");
    let src = "not (ip[2:2] > 576)";
    let root = parse(src).expect("parses").root.expect("root");
    assert_eq!(root.span.text(src), src);
}

/// The column of the first caret under the source line of a rendering.
fn caret_column(rendered: &str) -> Option<usize> {
    let mut lines = rendered.lines();
    let src_line = lines.by_ref().find(|l| l.contains(" | "))?;
    let offset = src_line.find(" | ")? + 3;
    let marks = lines.next()?;
    // Multi-column spans are underlined `^^^|^^`, single columns with `|`.
    marks.get(offset..)?.find(['^', '|'])
}

#[test]
fn rendered_caret_points_at_the_error() {
    let e = err("tcp port");
    let r = e.render();
    assert!(
        r.contains("syntax error: expected a port number or name after 'port'"),
        "{r}"
    );
    assert!(r.contains("found the end of the expression"), "{r}");
    assert_eq!(caret_column(&r), Some(8), "{r}");

    let e = err("host 10.0.0.1 and prot 80");
    let r = render_error(&e);
    assert_eq!(caret_column(&r), Some(23), "{r}");
    assert_eq!(e.span(), Span::new(23, 25));

    let e = err("ether host ab:cd:ef:0g:00:00");
    assert_eq!(caret_column(&e.render()), Some(11));

    let e = err("tcp and 80");
    let r = e.render();
    assert_eq!(caret_column(&r), Some(8), "{r}");
    assert!(r.contains("help:"), "{r}");

    let e = err("(tcp or udp");
    assert_eq!(caret_column(&e.render()), Some(11));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for unit in ["(", "not ", "-", "host (", "vlan (", "ip[", "1 + ("] {
        let text = unit.repeat(20_000);
        let e = err(&text);
        assert!(e.span().end <= text.len());
    }
    let ok = format!("{}tcp{}", "(".repeat(100), ")".repeat(100));
    assert_eq!(sx(&ok), "tcp");
    // libpcap's parser stack holds 9,995 parentheses around `tcp`.
    let ok = format!("{}tcp{}", "(".repeat(9995), ")".repeat(9995));
    assert_eq!(sx(&ok), "tcp");
    let deep = format!("{}tcp{}", "(".repeat(9996), ")".repeat(9996));
    let e = err(&deep);
    assert!(
        e.message()
            .contains("expression too deeply nested: more than 9999 levels; the limit is 9999"),
        "{}",
        e.message()
    );
    // The caret is on the `(` that does not fit.
    assert_eq!(e.span().start, 9995);
}
