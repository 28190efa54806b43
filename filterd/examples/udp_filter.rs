//! A UDP server that only hears 127.0.0.1: a classic filter in the L3
//! form, translated to eBPF and attached with `filterd::socket`.
//!
//! Run as root (loading eBPF needs CAP_BPF):
//! `cargo run -p filterd --example udp_filter`
//!
//! On a UDP socket the filter sees the datagram from its UDP header, so
//! the IPv4 source is reached with a load relative to the network header
//! (`SKF_NET_OFF`), which the socket translation keeps as it is.

use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::{bail, Context};
use filter_programs::cbpf::skf::SKF_NET_OFF;
use filter_programs::cbpf::Insn;
use filter_programs::translate::{translate, Target};
use filterd::socket::SocketProgram;

/// `ld [net+12]; jeq #127.0.0.1, keep, drop`: accept only IPv4 source 127.0.0.1.
fn only_from_localhost() -> Vec<Insn> {
    vec![
        Insn::new(0x20, 0, 0, (SKF_NET_OFF + 12) as u32), // ld  [SKF_NET_OFF + 12]
        Insn::new(0x15, 0, 1, 0x7f00_0001),               // jeq #0x7f000001
        Insn::new(0x06, 0, 0, u32::MAX),                  // ret #-1 (keep all)
        Insn::new(0x06, 0, 0, 0),                         // ret #0  (drop)
    ]
}

fn main() -> anyhow::Result<()> {
    let server = UdpSocket::bind("127.0.0.1:0").context("bind server")?;
    let insns = translate(&only_from_localhost(), Target::socket())?;
    let prog = SocketProgram::load(&insns, "udp_from_lo").context("load (are you root?)")?;
    prog.attach(server.as_fd()).context("attach")?;

    // All of 127/8 is loopback on Linux: a second source address is free.
    let allowed = UdpSocket::bind("127.0.0.1:0").context("bind 127.0.0.1")?;
    let denied = UdpSocket::bind("127.0.0.2:0").context("bind 127.0.0.2")?;
    let to = server.local_addr()?;
    denied.send_to(b"from 127.0.0.2", to)?;
    allowed.send_to(b"from 127.0.0.1", to)?;

    server.set_read_timeout(Some(Duration::from_millis(300)))?;
    let mut buf = [0u8; 64];
    let mut heard = Vec::new();
    while let Ok((n, from)) = server.recv_from(&mut buf) {
        println!(
            "received {:?} from {from}",
            String::from_utf8_lossy(&buf[..n])
        );
        heard.push(from);
    }
    if heard != [allowed.local_addr()?] {
        bail!(
            "expected exactly one datagram, from {}; heard {heard:?}",
            allowed.local_addr()?
        );
    }
    println!("the datagram from 127.0.0.2 was dropped by the filter");
    Ok(())
}
