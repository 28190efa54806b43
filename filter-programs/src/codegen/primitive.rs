//! Dispatch of one primitive (anything but `and`/`or`/`not`) to the
//! generator for its concept, and the id forms of `[qualifiers] id`.

use super::block::Cond;
use super::{CompileError, Gen};
use crate::expr::ast::{ByteOp, ExprKind, IdKind, Ipv4Lit, Primitive};
use crate::expr::qualifiers::{Kind, Proto};

impl Gen<'_> {
    pub(super) fn primitive(&mut self, kind: &ExprKind) -> Result<Cond, CompileError> {
        match kind {
            ExprKind::Primitive(p) => self.id_primitive(p),
            ExprKind::ProtoAbbrev(p) => self.proto_abbrev(*p),
            ExprKind::Relation(r) => self.relation(r),
            ExprKind::Broadcast(p) => self.broadcast(*p),
            ExprKind::Multicast(p) => self.multicast(*p),
            ExprKind::Less(n) => {
                let c = self.len_test(crate::cbpf::JmpOp::Jgt, n.value);
                Ok(self.b.not(c))
            }
            ExprKind::Greater(n) => Ok(self.len_test(crate::cbpf::JmpOp::Jge, n.value)),
            ExprKind::Byte { offset, op, value } => self.byte(offset.value, *op, value.value),
            ExprKind::Vlan(n) => self.vlan(n.map(|n| n.value)),
            ExprKind::Mpls(n) => self.mpls(n.map(|n| n.value)),
            ExprKind::Pppoed => self.linktype(super::consts::ETHERTYPE_PPPOED),
            ExprKind::Pppoes(n) => self.pppoes(n.map(|n| n.value)),
            ExprKind::Inbound => self.direction(false),
            ExprKind::Outbound => self.direction(true),
            ExprKind::Ifindex(n) => self.ifindex(n.value),
            ExprKind::Geneve(n) => self.geneve(n.map(|n| n.value)),
            ExprKind::Vxlan(n) => self.vxlan(n.map(|n| n.value)),
            ExprKind::Pf(_) => Err(self.unsupported("pflog filtering")),
            ExprKind::Wlan { .. } => Err(self.unsupported("802.11 frame-control filtering")),
            ExprKind::Llc(f) => self.llc(*f),
            ExprKind::Atm(_) | ExprKind::AtmField { .. } => Err(self.unsupported("ATM filtering")),
            ExprKind::Mtp2(_) | ExprKind::Mtp3Field { .. } => {
                Err(self.unsupported("MTP2/MTP3 filtering"))
            }
            ExprKind::And(..) | ExprKind::Or(..) | ExprKind::Not(..) => {
                // Gen::expr handles the connectives before calling here.
                Err(self.unsupported("a nested connective"))
            }
        }
    }

    fn len_test(&mut self, op: crate::cbpf::JmpOp, n: u32) -> Cond {
        use crate::cbpf::{Op, Src};
        self.b.test(vec![Op::LdLen], op, Src::K(n))
    }

    /// `byte N op M`. libpcap compiles `&` and `|` without loading the
    /// byte: they test whatever the accumulator holds. Kept, because that
    /// is what such a filter means to libpcap.
    fn byte(&mut self, idx: u32, op: ByteOp, val: u32) -> Result<Cond, CompileError> {
        if val > 255 {
            return Err(self.err(format!("byte argument {val} greater than maximum 255")));
        }
        Ok(self.byte_test(idx, op, val))
    }

    fn byte_test(&mut self, idx: u32, op: ByteOp, val: u32) -> Cond {
        use super::OffRel;
        use crate::cbpf::{AluOp, JmpOp, Op, Size, Src};
        match op {
            ByteOp::Eq => self.cmp(OffRel::LinkHdr, idx, Size::B, val),
            ByteOp::Lt => self.cmp_lt(OffRel::LinkHdr, idx, Size::B, val),
            ByteOp::Gt => self.cmp_op(OffRel::LinkHdr, idx, Size::B, JmpOp::Jgt, val),
            ByteOp::And | ByteOp::Or => {
                let alu = if op == ByteOp::And {
                    AluOp::And
                } else {
                    AluOp::Or
                };
                let c = self.b.test(
                    vec![Op::Alu {
                        op: alu,
                        src: Src::K(val),
                    }],
                    JmpOp::Jeq,
                    Src::K(0),
                );
                self.b.not(c)
            }
        }
    }

    fn id_primitive(&mut self, p: &Primitive) -> Result<Cond, CompileError> {
        let q = &p.quals;
        if q.proto == Some(Proto::Decnet)
            && matches!(q.kind, Kind::Default | Kind::Host | Kind::Net)
        {
            return self.decnet_id(p);
        }
        match &p.id.kind {
            IdKind::Num(v) => self.ncode(None, *v, q),
            IdKind::Ipv4(lit) => self.ncode(Some(lit), 0, q),
            IdKind::Ipv4Prefix { addr, len } => self.mcode(addr, None, len.value, q),
            IdKind::Ipv4Mask { addr, mask } => self.mcode(addr, Some(mask), 0, q),
            IdKind::Ipv6(a) => self.mcode6(*a, 128, q),
            IdKind::Ipv6Prefix { addr, len } => self.mcode6(*addr, len.value, q),
            IdKind::Mac(m) => self.ecode(m, q),
            // ARCnet and MS/TP addresses: no link type here has them.
            IdKind::Mac8(_) => Err(self.err(format!(
                "'link host $XX' not supported on DLT_{}",
                self.lay.link.dlt_name()
            ))),
            IdKind::Name { text, .. } => self.scode(text, q),
        }
    }

    /// A name id (libpcap's `gen_scode`).
    fn scode(
        &mut self,
        name: &str,
        q: &crate::expr::qualifiers::Qualifiers,
    ) -> Result<Cond, CompileError> {
        match q.kind {
            Kind::Net => self.net_name(name, q),
            Kind::Default | Kind::Host => self.host_name(name, q),
            Kind::Port => {
                let (port, proto) = self.name_port(name, q.proto)?;
                self.port_both(port, proto, q.dir)
            }
            Kind::Portrange => {
                let (p1, p2, proto) = self.name_portrange(name, q.proto)?;
                self.portrange_both(p1, p2, proto, q.dir)
            }
            Kind::Gateway => Err(self.err("'gateway' not supported in this configuration")),
            Kind::Proto => {
                let v = self.lookup_proto(name, q.proto)?;
                self.proto(v, q.proto, q.dir)
            }
            Kind::Protochain => {
                let v = self.lookup_proto(name, q.proto)?;
                self.protochain(v, q.proto)
            }
        }
    }

    /// A number or dotted IPv4 id (libpcap's `gen_ncode`).
    fn ncode(
        &mut self,
        lit: Option<&Ipv4Lit>,
        v: u32,
        q: &crate::expr::qualifiers::Qualifiers,
    ) -> Result<Cond, CompileError> {
        let (mut v, vlen) = match lit {
            None => (v, 32),
            Some(l) => match l.value {
                Some(x) => (x, 8 * u32::from(l.octets)),
                None => return Err(self.err(format!("invalid IPv4 address '{}'", l.text))),
            },
        };
        match q.kind {
            Kind::Default | Kind::Host | Kind::Net => {
                if q.proto == Some(Proto::Link) {
                    return Err(self.err("illegal link layer address"));
                }
                let mut mask = u32::MAX;
                if lit.is_none() && q.kind == Kind::Net {
                    // A bare number is a network number: left-justify it.
                    while v != 0 && v & 0xff00_0000 == 0 {
                        v <<= 8;
                        mask <<= 8;
                    }
                } else {
                    v = v.checked_shl(32 - vlen).unwrap_or(0);
                    mask = mask.checked_shl(32 - vlen).unwrap_or(0);
                }
                self.host(v, mask, q.proto, q.dir, q.kind == Kind::Net)
            }
            Kind::Port | Kind::Portrange => {
                let proto = self.port_proto(q.proto, q.kind == Kind::Portrange)?;
                if v > 65535 {
                    return Err(self.err(format!("illegal port number {v} > 65535")));
                }
                if q.kind == Kind::Port {
                    self.port_both(v, proto, q.dir)
                } else {
                    self.portrange_both(v, v, proto, q.dir)
                }
            }
            Kind::Gateway => Err(self.err("'gateway' requires a name")),
            Kind::Proto => self.proto(v, q.proto, q.dir),
            Kind::Protochain => self.protochain(v, q.proto),
        }
    }
}
