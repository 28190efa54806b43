//! `protochain N`: walk the IPv6 extension headers and IPv4/IPv6 AH
//! headers until protocol N (or no next header) is found. It is the one
//! primitive with a loop: a backward `ja`, as in libpcap, inside the
//! statements of a single block.

use super::block::Cond;
use super::consts::*;
use super::{CompileError, Gen};
use crate::cbpf::{AluOp, JmpOp, Op, Size, Src};
use crate::expr::qualifiers::Proto;

const IPPROTO_HOPOPTS: u32 = 0;
const IPPROTO_ROUTING: u32 = 43;
const IPPROTO_NONE: u32 = 59;
const IPPROTO_DSTOPTS: u32 = 60;

/// A statement list with jumps between its own statements, built by
/// index and resolved to relative offsets at the end.
#[derive(Default)]
struct Chain {
    ops: Vec<Op>,
    /// (jump index, jt target index, jf target index)
    jumps: Vec<(usize, usize, usize)>,
}

impl Chain {
    fn push(&mut self, op: Op) -> usize {
        self.ops.push(op);
        self.ops.len() - 1
    }

    fn alu(&mut self, op: AluOp, k: u32) -> usize {
        self.push(Op::Alu { op, src: Src::K(k) })
    }

    /// `jeq #k` with both targets filled in later by `target`.
    fn jeq(&mut self, k: u32) -> usize {
        let at = self.push(Op::Jmp {
            op: JmpOp::Jeq,
            src: Src::K(k),
            jt: 0,
            jf: 0,
        });
        self.jumps.push((at, usize::MAX, usize::MAX));
        at
    }

    fn target(&mut self, jump: usize, jt: Option<usize>, jf: Option<usize>) {
        if let Some(j) = self.jumps.iter_mut().find(|j| j.0 == jump) {
            if let Some(t) = jt {
                j.1 = t;
            }
            if let Some(f) = jf {
                j.2 = f;
            }
        }
    }

    /// The statements with every jump's offsets filled in. All targets
    /// are forward and near, so each fits in a byte.
    fn finish(mut self) -> Vec<Op> {
        for (at, t, f) in self.jumps {
            if let Op::Jmp { jt, jf, .. } = &mut self.ops[at] {
                *jt = t.saturating_sub(at + 1).min(255) as u8;
                *jf = f.saturating_sub(at + 1).min(255) as u8;
            }
        }
        self.ops
    }
    /// IPv6 options, routing and fragment headers: skip 8 * (len + 1) and
    /// go `again`. Returns the last of their tests, whose "no" goes on to
    /// the AH check.
    fn ipv6_extensions(&mut self, nl: u32, reg: u32, again: usize, none: usize) -> usize {
        let firsts = [
            IPPROTO_HOPOPTS,
            IPPROTO_DSTOPTS,
            IPPROTO_ROUTING,
            IPPROTO_FRAGMENT,
        ]
        .map(|p| self.jeq(p));
        for w in firsts.windows(2) {
            self.target(w[0], None, Some(w[1]));
        }
        self.target(none, None, Some(firsts[0]));
        let advance = self.push(Op::LdInd {
            size: Size::B,
            k: nl,
        });
        for j in firsts {
            self.target(j, Some(advance), None);
        }
        self.push(Op::St { k: reg });
        self.push(Op::LdInd {
            size: Size::B,
            k: nl.wrapping_add(1),
        });
        self.alu(AluOp::Add, 1);
        self.alu(AluOp::Mul, 8);
        self.push(Op::Alu {
            op: AluOp::Add,
            src: Src::X,
        });
        self.push(Op::Tax);
        self.push(Op::LdMem { k: reg });
        self.back_to(again);
        firsts[3]
    }

    /// ahcheck: an AH header is skipped by 4 * (len + 2), and the walk
    /// goes `again`. Returns the AH test, whose "no" ends the walk.
    fn ah(&mut self, nl: u32, reg: u32, again: usize, v6_last: Option<usize>) -> usize {
        let ah = self.jeq(IPPROTO_AH);
        if let Some(last) = v6_last {
            self.target(last, None, Some(ah));
        }
        let txa = self.push(Op::Txa);
        self.target(ah, Some(txa), None);
        self.push(Op::LdInd {
            size: Size::B,
            k: nl,
        });
        self.push(Op::St { k: reg });
        self.push(Op::Txa);
        self.alu(AluOp::Add, 1);
        self.push(Op::Tax);
        self.push(Op::LdInd {
            size: Size::B,
            k: nl,
        });
        self.alu(AluOp::Add, 2);
        self.alu(AluOp::Mul, 4);
        self.push(Op::Tax);
        self.push(Op::LdMem { k: reg });
        self.back_to(again);
        ah
    }

    /// The loop's back edge: `ja` to statement `again`.
    fn back_to(&mut self, again: usize) {
        let back = self.ops.len();
        self.push(Op::Ja {
            k: (again as u32).wrapping_sub(back as u32 + 1),
        });
    }
}

impl Gen<'_> {
    pub(super) fn protochain(
        &mut self,
        v: u32,
        proto: Option<Proto>,
    ) -> Result<Cond, CompileError> {
        // libpcap allocates this cell before looking at the qualifier, so
        // the default case leaks one (later numbering depends on it).
        if matches!(proto, None | Some(Proto::Ip) | Some(Proto::Ip6)) {
            self.check_proto_value(v, proto)?;
        }
        let reg = self.alloc_reg()?;
        let v6 = match proto {
            Some(Proto::Ip) => false,
            Some(Proto::Ip6) => true,
            None => {
                let b0 = self.protochain(v, Some(Proto::Ip))?;
                let b = self.protochain(v, Some(Proto::Ip6))?;
                return Ok(self.b.or(b0, b));
            }
            Some(_) => return Err(self.err("bad protocol applied for 'protochain'")),
        };
        if self.lay.linkpl.reg.is_some() {
            return Err(self.err("'protochain' not supported with variable length headers"));
        }
        let nl = self.lay.linkpl.k.wrapping_add(self.lay.nl);
        let b0 = self.linktype(if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IP })?;
        let mut c = Chain::default();
        if v6 {
            c.push(Op::LdAbs {
                size: Size::B,
                k: nl.wrapping_add(6),
            });
            c.push(Op::LdxImm { k: 40 });
        } else {
            c.push(Op::LdAbs {
                size: Size::B,
                k: nl.wrapping_add(9),
            });
            c.push(Op::LdxMsh { k: nl });
        }
        // again: the protocol in A is the one sought, or there is none.
        let again = c.jeq(v);
        let none = c.jeq(IPPROTO_NONE);
        c.target(again, None, Some(none));
        let v6_last = if v6 {
            Some(c.ipv6_extensions(nl, reg, again, none))
        } else {
            let nop = c.alu(AluOp::Add, 0);
            c.target(none, None, Some(nop));
            None
        };
        let ah = c.ah(nl, reg, again, v6_last);
        let end = c.alu(AluOp::Add, 0);
        c.target(none, Some(end), None);
        c.target(ah, None, Some(end));
        c.target(again, Some(end), None);
        let b = self.b.test(c.finish(), JmpOp::Jeq, Src::K(v));
        self.free_reg(reg);
        Ok(self.b.and(b0, b))
    }
}
