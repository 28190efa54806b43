//! The socket (L3) context: a program compiled for link type RAW (the IP
//! header at offset 0) with its packet loads made relative to the network
//! header (`SKF_NET_OFF + k`), for sockets whose filter does not run at the
//! link layer. Link-layer primitives are refused by RAW's code generation
//! already ("no VLAN support for Raw IP").
//!
//! On a TCP or UDP socket the filter runs after IP has pulled its header:
//! `skb->data`, packet offset 0 of an ordinary load, is the transport
//! header. libpcap's programs for link type RAW expect the IP header at
//! offset 0. Rewriting every ordinary load to `SKF_NET_OFF + k` gives the
//! program the IP header wherever `skb->data` points, on every socket that
//! has a network header (TCP, UDP, raw IP, `SOCK_DGRAM` packet sockets).
//!
//! Limits, both outside what libpcap generates:
//! - An offset at or past `0x100000` stays as it is: it lies outside any
//!   packet, so the load fails in both forms.
//! - An indirect load's `X + k` is computed by the kernel in 32 bits; the
//!   sum stays in the network-relative range as long as the original sum
//!   was below `0x100000` (libpcap's X is a header length).

use crate::cbpf::skf::{LoadBase, SKF_NET_OFF};
use crate::cbpf::{Insn, Op};

/// Error for a program that cannot be rewritten.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instruction {index}: unknown opcode {code:#06x}")]
pub struct RewriteError {
    pub index: usize,
    pub code: u16,
}

/// Rewrites the ordinary packet loads of `prog` (`ld`/`ldh`/`ldb [k]`,
/// `[x + k]` and `ldx 4*([k]&0xf)`) to be relative to the network header.
/// Loads that already use a special offset (ancillary data, `SKF_NET_OFF`,
/// `SKF_LL_OFF`) are kept.
pub fn to_network_relative(prog: &[Insn]) -> Result<Vec<Insn>, RewriteError> {
    prog.iter()
        .enumerate()
        .map(|(index, insn)| {
            let op = insn.decode().map_err(|e| RewriteError {
                index,
                code: e.code,
            })?;
            let k = match op {
                Op::LdAbs { k, .. } | Op::LdInd { k, .. } | Op::LdxMsh { k } => k,
                _ => return Ok(*insn),
            };
            Ok(match LoadBase::of(k) {
                LoadBase::Packet(off) if off < 0x10_0000 => Insn {
                    k: (SKF_NET_OFF + off as i32) as u32,
                    ..*insn
                },
                _ => *insn,
            })
        })
        .collect()
}

/// True when `prog` reads the packet length (`len`, `greater`, `less`).
pub fn reads_length(prog: &[Insn]) -> bool {
    prog.iter()
        .any(|i| matches!(i.decode(), Ok(Op::LdLen) | Ok(Op::LdxLen)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbpf::interp::Program;
    use crate::cbpf::kernel_ctx::KernelCtx;
    use crate::codegen::{compile, Dlt, Options};

    /// An IPv4 packet from `src` carrying UDP or TCP from port 5000 to `dport`.
    fn ipv4(src: [u8; 4], proto: u8, dport: u16, payload: &[u8]) -> Vec<u8> {
        let l4len = if proto == 6 { 20 } else { 8 };
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&[127, 0, 0, 1]);
        let total = (20 + l4len + payload.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let mut l4 = vec![0u8; l4len];
        l4[0..2].copy_from_slice(&5000u16.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
        if proto == 6 {
            l4[12] = 0x50;
            l4[13] = 0x18;
        } else {
            l4[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        }
        p.extend(l4);
        p.extend_from_slice(payload);
        p
    }

    /// Where a UDP socket's filter sees the datagram: data at the
    /// transport header, the network header at 0, no MAC header.
    fn udp_socket_view() -> KernelCtx {
        KernelCtx {
            data_offset: 20,
            network_offset: 0,
            mac_offset: None,
            protocol: 0x0800,
            ..KernelCtx::default()
        }
    }

    #[test]
    fn rewritten_programs_read_the_ip_header_from_the_transport_view() {
        let exprs = [
            "udp",
            "tcp",
            "src host 127.0.0.1",
            "src host 127.0.0.2",
            "udp dst port 9999",
            "udp and udp[8] = 0x41",
            "tcp[tcpflags] & tcp-push != 0",
            "ip[8] = 64 and not src net 10.0.0.0/8",
            "ip6 or udp port 5000",
        ];
        let packets = [
            ipv4([127, 0, 0, 1], 17, 9999, b"A..."),
            ipv4([127, 0, 0, 2], 17, 9999, b"B"),
            ipv4([127, 0, 0, 1], 6, 80, b"A"),
            ipv4([10, 1, 2, 3], 17, 53, b""),
        ];
        let mut matched = 0;
        for e in exprs {
            let raw = compile(e, &Options::new(Dlt::Raw)).expect(e);
            let l3 = to_network_relative(&raw).expect("rewrite");
            assert_ne!(raw, l3, "{e}: nothing rewritten");
            let (a, b) = (
                Program::new(&raw).expect("valid"),
                Program::new_unvalidated(&l3),
            );
            for p in &packets {
                let want = a.run(p, p.len() as u32);
                let got = b.run_with(p, (p.len() - 20) as u32, &udp_socket_view());
                assert_eq!(got, want, "{e} on {p:02x?}");
                matched += usize::from(want != 0);
            }
        }
        // Both verdicts occur, so the comparison can fail.
        assert!(
            matched > 5 && matched < exprs.len() * packets.len(),
            "{matched}"
        );
    }

    #[test]
    fn special_and_far_offsets_are_kept() {
        let prog = [
            Insn::new(0x20, 0, 0, 0xffff_f000), // ld proto (ancillary)
            Insn::new(0x30, 0, 0, (SKF_NET_OFF + 9) as u32),
            Insn::new(0x28, 0, 0, 0x10_0000),
            Insn::new(0xb1, 0, 0, 14), // ldx 4*([14]&0xf)
            Insn::new(0x50, 0, 0, 2),  // ldb [x + 2]
            Insn::new(0x06, 0, 0, 0),
        ];
        let out = to_network_relative(&prog).expect("rewrite");
        assert_eq!(&out[..3], &prog[..3]);
        assert_eq!(out[3].k, (SKF_NET_OFF + 14) as u32);
        assert_eq!(out[4].k, (SKF_NET_OFF + 2) as u32);
        assert_eq!(out[5], prog[5]);
    }

    #[test]
    fn unknown_opcodes_and_length_reads_are_reported() {
        let bad = [Insn::new(0xff, 0, 0, 0)];
        assert_eq!(
            to_network_relative(&bad),
            Err(RewriteError {
                index: 0,
                code: 0xff
            })
        );
        let greater = compile("greater 100", &Options::new(Dlt::Raw)).expect("compiles");
        assert!(reads_length(&greater));
        assert!(!reads_length(
            &compile("udp", &Options::new(Dlt::Raw)).expect("compiles")
        ));
    }
}
