use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use super::*;
use filter_programs::elf::{self, Object};
use filter_programs::Hook;

#[test]
fn kinds_choose_their_context() {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let k = SocketKind::of(udp.as_fd()).expect("kind");
    assert_eq!(
        (k.domain, k.ty, k.protocol),
        (libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP)
    );
    assert_eq!(k.to_string(), "AF_INET UDP");
    assert_eq!(
        k.context().expect("ctx"),
        Context::Network {
            length_is_l3: false
        }
    );

    let tcp = TcpListener::bind("[::1]:0")
        .or_else(|_| TcpListener::bind("127.0.0.1:0"))
        .expect("tcp");
    let k = SocketKind::of(tcp.as_fd()).expect("kind");
    assert_eq!(k.protocol, libc::IPPROTO_TCP);
    assert!(matches!(k.context(), Ok(Context::Network { .. })));

    let (unix, _) = UnixDatagram::pair().expect("pair");
    let k = SocketKind::of(unix.as_fd()).expect("kind");
    let e = k.context().expect_err("unix");
    assert!(e.to_string().contains("AF_UNIX"), "{e}");

    let packet = SocketKind {
        domain: libc::AF_PACKET,
        ty: libc::SOCK_RAW,
        protocol: 0,
    };
    assert_eq!(packet.context().expect("ctx"), Context::LinkLayer);
}

#[test]
fn a_file_is_not_a_socket() {
    let f = std::fs::File::open("/proc/self/stat").expect("file");
    assert!(matches!(
        SocketKind::of(f.as_fd()),
        Err(AttachError::NotASocket)
    ));
}

#[test]
fn length_is_refused_where_it_would_mean_something_else() {
    let udp = SocketKind {
        domain: libc::AF_INET,
        ty: libc::SOCK_DGRAM,
        protocol: libc::IPPROTO_UDP,
    };
    let e = program_for(udp, &Filter::Expression("greater 100".into())).expect_err("len on udp");
    assert!(matches!(e, AttachError::LengthOnTransport(_)), "{e}");
    let raw = SocketKind {
        domain: libc::AF_INET,
        ty: libc::SOCK_RAW,
        protocol: libc::IPPROTO_UDP,
    };
    program_for(raw, &Filter::Expression("greater 100".into()))
        .expect("len on raw IPv4 is the IP length");
    let e = program_for(udp, &Filter::Expression("tcp port".into())).expect_err("syntax");
    assert!(matches!(e, AttachError::Compile(_)), "{e}");
    // Ethernet primitives have no meaning in the network-layer form.
    let e =
        program_for(udp, &Filter::Expression("ether broadcast".into())).expect_err("no link layer");
    assert!(matches!(e, AttachError::Compile(_)), "{e}");
}

#[test]
fn objects_give_their_socket_section() {
    let insns = program_for(
        SocketKind {
            domain: libc::AF_INET,
            ty: libc::SOCK_DGRAM,
            protocol: libc::IPPROTO_UDP,
        },
        &Filter::Expression("udp".into()),
    )
    .expect("compiles");
    let obj = |hook| Object {
        hook,
        name: "filter".into(),
        insns: insns.clone(),
        maps: vec![],
        map_refs: vec![],
        license: "GPL".into(),
    };
    let bytes = elf::write(&obj(Hook::Socket)).expect("elf");
    assert_eq!(ebpf_from_object(&bytes).expect("socket section"), insns);
    // A single section of another name is still taken.
    let bytes = elf::write(&obj(Hook::Xdp)).expect("elf");
    assert_eq!(ebpf_from_object(&bytes).expect("only section"), insns);
    assert!(matches!(
        ebpf_from_object(b"not an elf"),
        Err(AttachError::Object(_))
    ));
}

fn receives(rx: &UdpSocket, tx: &UdpSocket, msg: &[u8]) -> bool {
    tx.send_to(msg, rx.local_addr().expect("addr"))
        .expect("send");
    let mut buf = [0u8; 64];
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    matches!(rx.recv(&mut buf), Ok(n) if &buf[..n] == msg)
}

#[test]
fn expression_filters_a_udp_socket_in_the_l3_form() {
    if !e2e::kernel_available("attach_socket::tests::expression_filters_a_udp_socket") {
        return;
    }
    let rx = UdpSocket::bind("127.0.0.1:0").expect("rx");
    let from1 = UdpSocket::bind("127.0.0.1:0").expect("tx 127.0.0.1");
    let from2 = UdpSocket::bind("127.0.0.2:0").expect("tx 127.0.0.2");
    let port = rx.local_addr().expect("addr").port();
    let expr = format!("src host 127.0.0.1 and udp dst port {port} and udp[8] = 0x41");
    let a = attach(rx.as_fd(), &Filter::Expression(expr)).expect("attach");
    assert_eq!(
        a.context,
        Context::Network {
            length_is_l3: false
        }
    );
    assert!(receives(&rx, &from1, b"A from .1"));
    assert!(
        !receives(&rx, &from1, b"B from .1"),
        "payload byte filtered"
    );
    assert!(!receives(&rx, &from2, b"A from .2"), "source filtered");
    assert!(detach(rx.as_fd()).expect("detach"));
    assert!(
        receives(&rx, &from2, b"A from .2"),
        "no filter after detach"
    );
    assert!(!detach(rx.as_fd()).expect("nothing to detach"));
}
