//! UDP tunnels whose payload is filtered as a new link layer: `geneve`
//! (libpcap 1.10) and `vxlan` (libpcap master: 1.10 has no `vxlan`).
//! The inner headers sit after a variable-length IP header (and, for
//! Geneve, variable options and an optional inner Ethernet header), so
//! their offsets are computed at run time into scratch cells that every
//! later load adds in (see [`super::layout`]).

use super::block::Cond;
use super::consts::*;
use super::{CompileError, Dlt, Gen, Off, OffRel};
use crate::cbpf::{AluOp, JmpOp, Op, Size, Src};
use crate::expr::qualifiers::Dir;

const GENEVE_PORT: u32 = 6081;
const VXLAN_PORT: u32 = 4789;
/// Transparent Ethernet Bridging: a Geneve payload with an inner
/// Ethernet header.
const ETHERTYPE_TEB: u32 = 0x6558;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tunnel {
    Geneve,
    Vxlan,
}

fn add(k: u32) -> Op {
    Op::Alu {
        op: AluOp::Add,
        src: Src::K(k),
    }
}

impl Gen<'_> {
    pub(super) fn geneve(&mut self, vni: Option<u32>) -> Result<Cond, CompileError> {
        self.tunnel(Tunnel::Geneve, vni)
    }

    pub(super) fn vxlan(&mut self, vni: Option<u32>) -> Result<Cond, CompileError> {
        self.tunnel(Tunnel::Vxlan, vni)
    }

    fn tunnel(&mut self, t: Tunnel, vni: Option<u32>) -> Result<Cond, CompileError> {
        let b0 = self.tunnel_v4(t, vni)?;
        let b1 = self.tunnel_v6(t, vni)?;
        let b1 = self.b.or(b0, b1);
        let mut s = match t {
            Tunnel::Geneve => self.geneve_offsets()?,
            Tunnel::Vxlan => self.vxlan_offsets()?,
        };
        // Always true; it carries the offset computation, run only when
        // the tunnel matched.
        s.push(Op::LdImm { k: 0 });
        let offsets = self.b.test(s, JmpOp::Jeq, Src::K(0));
        self.lay.encap = true;
        Ok(self.b.and(b1, offsets))
    }

    /// UDP to the tunnel port, the header's version/flags, the VNI.
    fn tunnel_check(
        &mut self,
        t: Tunnel,
        v6: bool,
        vni: Option<u32>,
    ) -> Result<Cond, CompileError> {
        let (port, name) = match t {
            Tunnel::Geneve => (GENEVE_PORT, "Geneve"),
            Tunnel::Vxlan => (VXLAN_PORT, "VXLAN"),
        };
        let rel = if v6 {
            OffRel::TranIpv6
        } else {
            OffRel::TranIpv4
        };
        let b0 = self.port_one(v6, port, IPPROTO_UDP, Dir::Dst)?;
        let b1 = match t {
            // Version 0: the top two bits of the first byte.
            Tunnel::Geneve => self.mcmp(rel, 8, Size::B, 0, 0xc0),
            // The I flag alone.
            Tunnel::Vxlan => self.cmp(rel, 8, Size::B, 0x08),
        };
        let mut b0 = self.b.and(b0, b1);
        if let Some(vni) = vni {
            if vni > 0xff_ffff {
                return Err(self.err(format!(
                    "{name} VNI {vni} greater than maximum {}",
                    0xff_ffff
                )));
            }
            let b1 = self.mcmp(rel, 12, Size::W, vni << 8, 0xffff_ff00);
            b0 = self.b.and(b0, b1);
        }
        Ok(b0)
    }

    /// IPv4: the check, then A = the IP header length (with the run-time
    /// part of the payload offset), in an always-true block.
    fn tunnel_v4(&mut self, t: Tunnel, vni: Option<u32>) -> Result<Cond, CompileError> {
        let b0 = self.tunnel_check(t, false, vni)?;
        let mut s = self.loadx_iphdrlen();
        s.push(Op::Txa);
        let b1 = self.b.test(s, JmpOp::Jeq, Src::X);
        Ok(self.b.and(b0, b1))
    }

    /// IPv6: A = X = 40 (plus the payload offset's run-time part).
    fn tunnel_v6(&mut self, t: Tunnel, vni: Option<u32>) -> Result<Cond, CompileError> {
        let b0 = self.tunnel_check(t, true, vni)?;
        let mut s = match self.linkpl_varpart() {
            Some(x) => vec![
                x,
                Op::LdImm { k: 40 },
                Op::Alu {
                    op: AluOp::Add,
                    src: Src::X,
                },
            ],
            None => vec![Op::LdImm { k: 40 }],
        };
        s.push(Op::Tax);
        let b1 = self.b.test(s, JmpOp::Jeq, Src::X);
        Ok(self.b.and(b0, b1))
    }

    /// From A = the IP header length: the offsets of the Geneve payload's
    /// link type, link header and link payload, into scratch cells.
    fn geneve_offsets(&mut self) -> Result<Vec<Op>, CompileError> {
        let udp_end = self.lay.linkpl.k.wrapping_add(self.lay.nl).wrapping_add(8);
        let ty = self.alloc_reg()?;
        let mut s = vec![add(udp_end), Op::Tax, add(2), Op::St { k: ty }];
        // Header length: 8 plus 4 * the option length (low 6 bits).
        s.extend([
            Op::LdInd {
                size: Size::B,
                k: 0,
            },
            Op::Alu {
                op: AluOp::And,
                src: Src::K(0x3f),
            },
            Op::Alu {
                op: AluOp::Mul,
                src: Src::K(4),
            },
            add(8),
            Op::Alu {
                op: AluOp::Add,
                src: Src::X,
            },
        ]);
        let hdr = self.alloc_reg()?;
        self.lay.push_linkhdr(
            Dlt::En10mb,
            Off {
                k: 0,
                reg: Some(hdr),
            },
        );
        self.lay.linktype = Some(Off {
            k: 0,
            reg: Some(ty),
        });
        s.push(Op::St { k: hdr });
        let pl = self.alloc_reg()?;
        // With an inner Ethernet header (protocol TEB) the link type is
        // its EtherType and the payload follows it; otherwise both are
        // where the Geneve header ends.
        s.extend([
            Op::LdInd {
                size: Size::H,
                k: 2,
            },
            Op::LdxMem { k: hdr },
            Op::Jmp {
                op: JmpOp::Jeq,
                src: Src::K(ETHERTYPE_TEB),
                jt: 0,
                jf: 5,
            },
            Op::Txa,
            add(12),
            Op::St { k: ty },
            add(2),
            Op::Tax,
            Op::Stx { k: pl },
        ]);
        self.lay.linkpl = Off {
            k: 0,
            reg: Some(pl),
        };
        self.lay.nl = 0;
        Ok(s)
    }

    /// The VXLAN payload is always an Ethernet frame.
    fn vxlan_offsets(&mut self) -> Result<Vec<Op>, CompileError> {
        let udp_end = self.lay.linkpl.k.wrapping_add(self.lay.nl).wrapping_add(8);
        let mut s = vec![add(udp_end), add(8)];
        let hdr = self.alloc_reg()?;
        self.lay.push_linkhdr(
            Dlt::En10mb,
            Off {
                k: 0,
                reg: Some(hdr),
            },
        );
        s.extend([Op::St { k: hdr }, add(12)]);
        let ty = self.alloc_reg()?;
        self.lay.linktype = Some(Off {
            k: 0,
            reg: Some(ty),
        });
        s.extend([Op::St { k: ty }, add(2), Op::Tax]);
        let pl = self.alloc_reg()?;
        self.lay.linkpl = Off {
            k: 0,
            reg: Some(pl),
        };
        s.push(Op::Stx { k: pl });
        self.lay.nl = 0;
        Ok(s)
    }

    /// Inside a tunnel, "there is an inner Ethernet header": the link
    /// header and payload offsets differ (libpcap's
    /// `gen_prevlinkhdr_check` for Geneve). `None` outside tunnels.
    pub(super) fn prevlinkhdr_check(&mut self) -> Option<Cond> {
        if !self.lay.encap {
            return None;
        }
        let s = vec![
            Op::LdMem {
                k: self.lay.linkhdr.reg.unwrap_or(0),
            },
            Op::LdxMem {
                k: self.lay.linkpl.reg.unwrap_or(0),
            },
        ];
        let c = self.b.test(s, JmpOp::Jeq, Src::X);
        Some(self.b.not(c))
    }
}
