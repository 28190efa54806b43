//! Arithmetic relations: `expr relop expr` over numbers, `len` and packet
//! loads `proto[index : size]`, evaluated as libpcap does through scratch
//! memory cells, with the protocol checks the loads imply run first.

use super::block::Cond;
use super::{CompileError, Gen, OffRel};
use crate::cbpf::{AluOp, JmpOp, Op, Size, Src};
use crate::expr::ast::{Arith, ArithKind, ArithOp, RelOp, Relation};
use crate::expr::qualifiers::Proto;
use crate::expr::walk::ArithFold;

/// A value being computed: statements leaving it in `M[reg]`, and the
/// protocol checks that must hold for the loads to mean anything.
struct Value {
    stmts: Vec<Op>,
    reg: u32,
    check: Option<Cond>,
}

impl Gen<'_> {
    pub(super) fn relation(&mut self, r: &Relation) -> Result<Cond, CompileError> {
        let (op, reversed) = match r.op {
            RelOp::Gt => (JmpOp::Jgt, false),
            RelOp::Ge => (JmpOp::Jge, false),
            RelOp::Eq => (JmpOp::Jeq, false),
            RelOp::Le => (JmpOp::Jgt, true),
            RelOp::Lt => (JmpOp::Jge, true),
            RelOp::Ne => (JmpOp::Jeq, true),
        };
        let a0 = self.value(&r.lhs)?;
        let a1 = self.value(&r.rhs)?;
        let mut stmts = a0.stmts;
        stmts.extend(a1.stmts);
        stmts.push(Op::LdxMem { k: a1.reg });
        stmts.push(Op::LdMem { k: a0.reg });
        let mut b = if op == JmpOp::Jeq {
            stmts.push(Op::Alu {
                op: AluOp::Sub,
                src: Src::X,
            });
            self.b.test(stmts, op, Src::K(0))
        } else {
            self.b.test(stmts, op, Src::X)
        };
        if reversed {
            b = self.b.not(b);
        }
        self.free_reg(a0.reg);
        self.free_reg(a1.reg);
        let check = match (a0.check, a1.check) {
            (Some(c0), Some(c1)) => Some(self.b.and(c0, c1)),
            (c0, c1) => c0.or(c1),
        };
        Ok(match check {
            Some(c) => self.b.and(c, b),
            None => b,
        })
    }

    /// Evaluates `a` in libpcap's order (left operand, right operand,
    /// operation), bottom up without recursion (see [`Arith::fold`]).
    fn value(&mut self, a: &Arith) -> Result<Value, CompileError> {
        a.fold(|a, node| match node {
            ArithFold::Leaf => {
                let load = match a.kind {
                    ArithKind::Num(v) => Op::LdImm { k: v },
                    _ => Op::LdLen,
                };
                let reg = self.alloc_reg()?;
                Ok(Value {
                    stmts: vec![load, Op::St { k: reg }],
                    reg,
                    check: None,
                })
            }
            ArithFold::Neg(mut v) => {
                v.stmts
                    .extend([Op::LdMem { k: v.reg }, Op::Neg, Op::St { k: v.reg }]);
                Ok(v)
            }
            ArithFold::Load(inst) => {
                let ArithKind::Load { proto, size, .. } = &a.kind else {
                    unreachable!("ArithFold::Load is only for loads")
                };
                self.span = a.span;
                self.load_value(*proto, inst, size.map_or(1, |n| n.value))
            }
            ArithFold::Binary(op, a0, a1) => self.binary(op, a0, a1, a.span),
        })
    }

    fn binary(
        &mut self,
        op: ArithOp,
        mut a0: Value,
        a1: Value,
        span: crate::expr::Span,
    ) -> Result<Value, CompileError> {
        let alu = match op {
            ArithOp::Add => AluOp::Add,
            ArithOp::Sub => AluOp::Sub,
            ArithOp::Mul => AluOp::Mul,
            ArithOp::Div => AluOp::Div,
            ArithOp::Mod => AluOp::Mod,
            ArithOp::And => AluOp::And,
            ArithOp::Or => AluOp::Or,
            ArithOp::Xor => AluOp::Xor,
            ArithOp::Shl => AluOp::Lsh,
            ArithOp::Shr => AluOp::Rsh,
        };
        // libpcap looks only at the right operand's first statement: a
        // constant written there, or the first constant of a sum there.
        if let Some(Op::LdImm { k }) = a1.stmts.first() {
            self.span = span;
            match alu {
                AluOp::Div if *k == 0 => return Err(self.err("division by zero")),
                AluOp::Mod if *k == 0 => return Err(self.err("modulus by zero")),
                AluOp::Lsh | AluOp::Rsh if *k > 31 => {
                    return Err(self.err("shift by more than 31 bits"))
                }
                _ => {}
            }
        }
        a0.stmts.extend(a1.stmts);
        a0.stmts.extend([
            Op::LdxMem { k: a1.reg },
            Op::LdMem { k: a0.reg },
            Op::Alu {
                op: alu,
                src: Src::X,
            },
        ]);
        self.free_reg(a0.reg);
        self.free_reg(a1.reg);
        a0.reg = self.alloc_reg()?;
        a0.stmts.push(Op::St { k: a0.reg });
        // The right operand's protocol checks are dropped, as libpcap
        // 1.10 drops them: `ip[0] + tcp[0]` checks only for IP.
        Ok(a0)
    }

    /// `proto[index : size]` (libpcap's `gen_load`).
    fn load_value(
        &mut self,
        proto: Proto,
        mut inst: Value,
        size: u32,
    ) -> Result<Value, CompileError> {
        let reg = self.alloc_reg()?;
        self.free_reg(inst.reg);
        let size = match size {
            1 => Size::B,
            2 => Size::H,
            4 => Size::W,
            _ => return Err(self.err("data size must be 1, 2, or 4")),
        };
        let nl = self.lay.linkpl.k.wrapping_add(self.lay.nl);
        match proto {
            Proto::Radio => return Err(self.err("radio information not present in capture")),
            Proto::Link => {
                let mut s = indexed(self.linkhdr_varpart(), inst.reg);
                s.push(Op::LdInd {
                    size,
                    k: self.lay.linkhdr.k,
                });
                inst.stmts.extend(s);
            }
            Proto::Ip
            | Proto::Arp
            | Proto::Rarp
            | Proto::Atalk
            | Proto::Decnet
            | Proto::Sca
            | Proto::Lat
            | Proto::Moprc
            | Proto::Mopdl
            | Proto::Ip6 => {
                let mut s = indexed(self.linkpl_varpart(), inst.reg);
                s.push(Op::LdInd { size, k: nl });
                inst.stmts.extend(s);
                let b = self.proto_abbrev(proto)?;
                inst.check = Some(match inst.check.take() {
                    Some(c) => self.b.and(c, b),
                    None => b,
                });
            }
            Proto::Sctp
            | Proto::Tcp
            | Proto::Udp
            | Proto::Icmp
            | Proto::Igmp
            | Proto::Igrp
            | Proto::Pim
            | Proto::Vrrp
            | Proto::Carp => self.load_after_ipv4(proto, &mut inst, size, nl)?,
            Proto::Icmp6 => self.load_icmp6(&mut inst, size, nl)?,
            _ => return Err(self.err("unsupported index operation")),
        }
        inst.reg = reg;
        inst.stmts.push(Op::St { k: reg });
        Ok(inst)
    }

    /// A transport protocol's field: after an IPv4 header of any length
    /// (`X` = its length), in an unfragmented (first) IPv4 packet.
    fn load_after_ipv4(
        &mut self,
        proto: Proto,
        inst: &mut Value,
        size: Size,
        nl: u32,
    ) -> Result<(), CompileError> {
        inst.stmts.extend(self.loadx_iphdrlen());
        inst.stmts.extend([
            Op::LdMem { k: inst.reg },
            Op::Alu {
                op: AluOp::Add,
                src: Src::X,
            },
            Op::Tax,
            Op::LdInd { size, k: nl },
        ]);
        let p = self.proto_abbrev(proto)?;
        let frag = self.ipfrag();
        let mut b = self.b.and(p, frag);
        if let Some(c) = inst.check.take() {
            b = self.b.and(c, b);
        }
        let ip = self.proto_abbrev(Proto::Ip)?;
        inst.check = Some(self.b.and(ip, b));
        Ok(())
    }

    /// An ICMPv6 field: after the fixed IPv6 header, whose next header
    /// must be ICMPv6.
    fn load_icmp6(&mut self, inst: &mut Value, size: Size, nl: u32) -> Result<(), CompileError> {
        let mut b = self.proto_abbrev(Proto::Ip6)?;
        if let Some(c) = inst.check.take() {
            b = self.b.and(c, b);
        }
        let nh = self.cmp(OffRel::LinkPl, 6, Size::B, super::consts::IPPROTO_ICMPV6);
        inst.check = Some(self.b.and(b, nh));
        let mut s = indexed(self.linkpl_varpart(), inst.reg);
        s.push(Op::LdInd {
            size,
            k: nl.wrapping_add(40),
        });
        inst.stmts.extend(s);
        Ok(())
    }
}

/// Index plus the run-time part of the header offset (`var`), in X; the
/// index is in scratch cell `reg`.
fn indexed(var: Option<Op>, reg: u32) -> Vec<Op> {
    match var {
        Some(x) => vec![
            x,
            Op::LdMem { k: reg },
            Op::Alu {
                op: AluOp::Add,
                src: Src::X,
            },
            Op::Tax,
        ],
        None => vec![Op::LdxMem { k: reg }],
    }
}
