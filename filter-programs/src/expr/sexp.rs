//! A compact, stable text form of the tree, for tests and debugging:
//! `(or [tcp port 80] [tcp port ^443])` — `^` marks an inherited id.

use std::fmt::Write;

use super::ast::{Arith, ArithKind, ArithOp, Ast, Conn, Expr, ExprKind, IdKind, RelOp};

impl Ast {
    pub fn to_sexp(&self) -> String {
        match &self.root {
            None => "(all)".to_string(),
            Some(e) => e.to_sexp(),
        }
    }
}

impl Expr {
    pub fn to_sexp(&self) -> String {
        let mut s = String::new();
        write_expr(&mut s, self);
        s
    }
}

/// Writes `e`; an `and`/`or` chain in a loop (see [`Expr::left_spine`]):
/// all its openings top down, the first operand, then each right operand
/// and closing bottom up.
fn write_expr(s: &mut String, e: &Expr) {
    let (first, rest) = e.left_spine();
    for (conn, _) in rest.iter().rev() {
        s.push_str(match conn {
            Conn::And => "(and ",
            Conn::Or => "(or ",
        });
    }
    write_operand(s, first);
    for (_, rhs) in rest {
        s.push(' ');
        write_expr(s, rhs);
        s.push(')');
    }
}

fn write_operand(s: &mut String, e: &Expr) {
    match &e.kind {
        ExprKind::Not(a) => {
            s.push_str("(not ");
            write_expr(s, a);
            s.push(')');
        }
        ExprKind::Primitive(p) => {
            let q = p.quals.describe();
            s.push('[');
            if !q.is_empty() {
                s.push_str(&q);
                s.push(' ');
            }
            if p.inherited {
                s.push('^');
            }
            write_id(s, &p.id.kind);
            s.push(']');
        }
        ExprKind::ProtoAbbrev(p) => s.push_str(p.keyword()),
        ExprKind::Relation(r) => {
            let op = match r.op {
                RelOp::Gt => ">",
                RelOp::Ge => ">=",
                RelOp::Eq => "=",
                RelOp::Le => "<=",
                RelOp::Lt => "<",
                RelOp::Ne => "!=",
            };
            let _ = write!(s, "({op} ");
            write_arith(s, &r.lhs);
            s.push(' ');
            write_arith(s, &r.rhs);
            s.push(')');
        }
        other => {
            let _ = write!(s, "{other:?}");
        }
    }
}

fn write_id(s: &mut String, id: &IdKind) {
    let _ = match id {
        IdKind::Num(n) => write!(s, "{n}"),
        IdKind::Name { text, escaped } => write!(s, "{}{text}", if *escaped { "\\" } else { "" }),
        IdKind::Ipv4(a) => write!(s, "{}", a.text),
        IdKind::Ipv4Prefix { addr, len } => write!(s, "{}/{}", addr.text, len.value),
        IdKind::Ipv4Mask { addr, mask } => write!(s, "{} mask {}", addr.text, mask.text),
        IdKind::Ipv6(a) => write!(s, "{a}"),
        IdKind::Ipv6Prefix { addr, len } => write!(s, "{addr}/{}", len.value),
        IdKind::Mac(m) => write!(
            s,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        ),
        IdKind::Mac8(b) => write!(s, "${b:02x}"),
    };
}

/// Writes `a`, a chain of binary operations in a loop as [`write_expr`].
fn write_arith(s: &mut String, a: &Arith) {
    let (first, rest) = a.left_spine();
    for (op, _, _) in rest.iter().rev() {
        let _ = write!(s, "({} ", op_text(*op));
    }
    write_arith_operand(s, first);
    for (_, rhs, _) in rest {
        s.push(' ');
        write_arith(s, rhs);
        s.push(')');
    }
}

fn op_text(op: ArithOp) -> &'static str {
    match op {
        ArithOp::Add => "+",
        ArithOp::Sub => "-",
        ArithOp::Mul => "*",
        ArithOp::Div => "/",
        ArithOp::Mod => "%",
        ArithOp::And => "&",
        ArithOp::Or => "|",
        ArithOp::Xor => "^",
        ArithOp::Shl => "<<",
        ArithOp::Shr => ">>",
    }
}

fn write_arith_operand(s: &mut String, a: &Arith) {
    match &a.kind {
        ArithKind::Num(n) => {
            let _ = write!(s, "{n}");
        }
        ArithKind::Len => s.push_str("len"),
        ArithKind::Load { proto, index, size } => {
            let _ = write!(s, "{}[", proto.keyword());
            write_arith(s, index);
            if let Some(n) = size {
                let _ = write!(s, ":{}", n.value);
            }
            s.push(']');
        }
        ArithKind::Neg(x) => {
            s.push_str("(neg ");
            write_arith(s, x);
            s.push(')');
        }
        ArithKind::Binary { .. } => write_arith(s, a),
    }
}
