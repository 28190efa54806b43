//! The syntax tree handed to code generation. Every node has a span. The
//! tree is already "desugared" the way libpcap's grammar actions combine
//! blocks: qualifier inheritance is resolved (`port 80 or 443` holds two
//! port primitives), `host (a or b)` is an `Or` of two host primitives, and
//! `and`/`or` are binary, left-associative, in source order.
//!
//! A chain `a and b and c ...` is a left-deep tree as deep as the chain is
//! long (100,000 terms are a valid filter), and `not`s, parentheses and
//! packet-field indexes nest as deep as libpcap's parser allows (about
//! 10,000 levels), so nothing walks the tree by recursing: walkers use
//! [`Expr::fold`]/[`Arith::fold`] (`walk.rs`) or an explicit work stack.
//! Dropping a tree is iterative too (the `Drop` impls below).

use std::net::Ipv6Addr;

use super::names::LlcFrame;
use super::qualifiers::{Proto, Qualifiers};
use super::span::Span;

/// A parsed filter. `root` is `None` for the empty filter (accept all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ast {
    pub root: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

impl Drop for Expr {
    /// Frees the tree with an explicit stack: the derived drop would
    /// recurse once per node of an `and`/`or` chain.
    fn drop(&mut self) {
        let mut stack = Vec::new();
        take_children(&mut self.kind, &mut stack);
        while let Some(mut e) = stack.pop() {
            take_children(&mut e.kind, &mut stack);
            // `e` is now a leaf (or holds only `Arith`, which drops the
            // same way) and is dropped here.
        }
    }
}

fn take_children(kind: &mut ExprKind, stack: &mut Vec<Expr>) {
    if matches!(
        kind,
        ExprKind::And(..) | ExprKind::Or(..) | ExprKind::Not(..)
    ) {
        match std::mem::replace(kind, ExprKind::Inbound) {
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                stack.push(*a);
                stack.push(*b);
            }
            ExprKind::Not(a) => stack.push(*a),
            _ => {}
        }
    }
}

/// A number as written (after named constants are replaced by values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Num {
    pub value: u32,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// An id with its qualifiers: `tcp dst port 80`, `host 10.0.0.1`, or an
    /// id inheriting the previous qualifiers (`443` in `port 80 or 443`).
    Primitive(Primitive),
    /// A protocol name alone: `tcp`, `ip6`, `stp`, `l1`, ... (libpcap's
    /// `gen_proto_abbrev`). `Proto::Link` here is libpcap's "link"
    /// abbreviation error case, left to code generation.
    ProtoAbbrev(Proto),
    /// `arith relop arith`.
    Relation(Relation),
    /// `[proto] broadcast`.
    Broadcast(Option<Proto>),
    /// `[proto] multicast`.
    Multicast(Option<Proto>),
    /// `less N`: packet length <= N.
    Less(Num),
    /// `greater N`: packet length >= N.
    Greater(Num),
    /// `byte N op M`.
    Byte {
        offset: Num,
        op: ByteOp,
        value: Num,
    },
    Inbound,
    Outbound,
    Ifindex(Num),
    Vlan(Option<Num>),
    Mpls(Option<Num>),
    Pppoed,
    Pppoes(Option<Num>),
    Geneve(Option<Num>),
    Vxlan(Option<Num>),
    Pf(PfTest),
    /// 802.11 frame control tests (`type`, `subtype`, `dir`), with the
    /// protocol written before them, if any (libpcap ignores it).
    Wlan {
        proto: Option<Proto>,
        test: WlanTest,
    },
    /// `llc` alone (`None`) or `llc NAME`.
    Llc(Option<LlcFrame>),
    /// ATM abbreviations (`lane`, `oam`, `metac`, ...).
    Atm(AtmAbbrev),
    /// `vpi`/`vci` tests.
    AtmField {
        field: AtmField,
        test: FieldTest,
    },
    /// MTP2 signal-unit types (`fisu`, `lssu`, `msu`, `hfisu`, ...).
    Mtp2(Mtp2Type),
    /// MTP3 field tests (`sio`, `opc`, `dpc`, `sls` and the `h` variants).
    Mtp3Field {
        field: Mtp3Field,
        test: FieldTest,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Primitive {
    /// The qualifiers in effect (written or inherited).
    pub quals: Qualifiers,
    /// True when the qualifiers come from an earlier term (`443` in
    /// `port 80 or 443`), false when written for this id.
    pub inherited: bool,
    pub id: Id,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id {
    pub kind: IdKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// A number: host/net number, port, protocol number, ... by qualifier.
    Num(u32),
    /// A name: host, network, port, port range (`1000-2000`), protocol,
    /// EtherType name, ... `escaped` when written `\name`.
    Name {
        text: String,
        escaped: bool,
    },
    Ipv4(Ipv4Lit),
    /// `a.b.c.d/len`.
    Ipv4Prefix {
        addr: Ipv4Lit,
        len: Num,
    },
    /// `a.b.c.d mask m.m.m.m`.
    Ipv4Mask {
        addr: Ipv4Lit,
        mask: Ipv4Lit,
    },
    Ipv6(Ipv6Addr),
    /// `x::y/len`.
    Ipv6Prefix {
        addr: Ipv6Addr,
        len: Num,
    },
    Mac([u8; 6]),
    /// `$XX`: one-byte link address (ARCnet, MS/TP).
    Mac8(u8),
}

/// A dotted IPv4 literal, possibly partial (`10.1` has 2 octets). libpcap
/// reads each part as decimal; a part over 255 (or written in hex) makes
/// the literal invalid, which code generation reports as "invalid IPv4
/// address".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Lit {
    pub text: String,
    /// Number of dotted parts, 2..=4 (a lone number is an `IdKind::Num`).
    pub octets: u8,
    /// The parts packed big-endian into the low `8 * octets` bits, e.g.
    /// `10.1` is 0x0a01; `None` when a part is not a decimal 0..=255.
    pub value: Option<u32>,
    pub span: Span,
}

impl Ipv4Lit {
    pub fn new(text: &str, span: Span) -> Ipv4Lit {
        let parts: Vec<&str> = text.split('.').collect();
        let value = parts.iter().try_fold(0u32, |acc, p| {
            let ok = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            let v = if ok {
                p.parse::<u32>().ok().filter(|v| *v <= 255)
            } else {
                None
            };
            v.map(|v| (acc << 8) | v)
        });
        Ipv4Lit {
            text: text.to_string(),
            octets: parts.len().min(4) as u8,
            value,
            span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub op: RelOp,
    pub lhs: Arith,
    pub rhs: Arith,
}

/// `>`, `>=`, `=`/`==` and their negations `<=`, `<`, `!=` (libpcap
/// compiles the latter as the negated former).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RelOp {
    Gt,
    Ge,
    Eq,
    Le,
    Lt,
    Ne,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arith {
    pub kind: ArithKind,
    pub span: Span,
}

impl Drop for Arith {
    /// Iterative, as [`Expr`]'s: `1 + 1 + ...` is a left-deep tree.
    fn drop(&mut self) {
        let mut stack = Vec::new();
        take_arith_children(&mut self.kind, &mut stack);
        while let Some(mut a) = stack.pop() {
            take_arith_children(&mut a.kind, &mut stack);
        }
    }
}

fn take_arith_children(kind: &mut ArithKind, stack: &mut Vec<Arith>) {
    if matches!(
        kind,
        ArithKind::Binary { .. } | ArithKind::Neg(..) | ArithKind::Load { .. }
    ) {
        match std::mem::replace(kind, ArithKind::Len) {
            ArithKind::Binary { lhs, rhs, .. } => {
                stack.push(*lhs);
                stack.push(*rhs);
            }
            ArithKind::Neg(x) | ArithKind::Load { index: x, .. } => stack.push(*x),
            _ => {}
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArithKind {
    Num(u32),
    /// `len` / `length`: the packet length.
    Len,
    /// `proto[index]` or `proto[index : size]`; `size` is `None` when not
    /// written (1 byte). Validity of size and protocol is code generation's.
    Load {
        proto: Proto,
        index: Box<Arith>,
        size: Option<Num>,
    },
    Neg(Box<Arith>),
    Binary {
        op: ArithOp,
        lhs: Box<Arith>,
        rhs: Box<Arith>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
    Shl,
    Shr,
}

/// Operators of `byte N op M`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOp {
    And,
    Or,
    Lt,
    Gt,
    Eq,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PfTest {
    Ifname(String),
    Ruleset(String),
    Rulenum(Num),
    Subrulenum(Num),
    Reason(u32),
    Action(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WlanTest {
    /// Frame-control byte 0 under `mask` equals `value` (`type`, `type ..
    /// subtype ..`, `subtype NAME`).
    FrameControl { value: u8, mask: u8 },
    /// `dir N|NAME`: the DS bits of frame-control byte 1.
    Dir(u8),
}

/// The values a `vpi`/`vci`/MTP3 field test accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldTest {
    /// `field relop N`.
    Compare(RelOp, Num),
    /// `field N` or `field (N or M or ...)`.
    AnyOf(Vec<Num>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtmAbbrev {
    Lane,
    Metac,
    Bcc,
    Oamf4ec,
    Oamf4sc,
    Sc,
    Ilmic,
    Oam,
    Oamf4,
    Connectmsg,
    Metaconnect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtmField {
    Vpi,
    Vci,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mtp2Type {
    Fisu,
    Lssu,
    Msu,
    Hfisu,
    Hlssu,
    Hmsu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mtp3Field {
    Sio,
    Opc,
    Dpc,
    Sls,
    Hsio,
    Hopc,
    Hdpc,
    Hsls,
}
