//! A compact, stable text form of the tree, for tests and debugging:
//! `(or [tcp port 80] [tcp port ^443])` — `^` marks an inherited id.

use std::fmt::Write;

use super::ast::{Arith, ArithKind, ArithOp, Ast, Expr, ExprKind, IdKind, RelOp};

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

/// What is left to write, in reverse order.
enum Piece<'a> {
    Expr(&'a Expr),
    Arith(&'a Arith),
    Text(&'static str),
    Size(u32),
}

/// Writes `e` with the rest of the output on an explicit stack: the tree
/// may be as deep as a 100,000-term chain or 10,000 nested `not`s.
fn write_expr(s: &mut String, e: &Expr) {
    let mut todo = vec![Piece::Expr(e)];
    while let Some(piece) = todo.pop() {
        match piece {
            Piece::Expr(e) => write_node(s, e, &mut todo),
            Piece::Arith(a) => write_arith_node(s, a, &mut todo),
            Piece::Text(t) => s.push_str(t),
            Piece::Size(n) => {
                let _ = write!(s, ":{n}");
            }
        }
    }
}

/// Writes what `e` starts with and schedules the rest.
fn write_node<'a>(s: &mut String, e: &'a Expr, todo: &mut Vec<Piece<'a>>) {
    let (open, children): (&str, [Option<Piece<'a>>; 2]) = match &e.kind {
        ExprKind::And(a, b) => ("(and ", [Some(Piece::Expr(a)), Some(Piece::Expr(b))]),
        ExprKind::Or(a, b) => ("(or ", [Some(Piece::Expr(a)), Some(Piece::Expr(b))]),
        ExprKind::Not(a) => ("(not ", [Some(Piece::Expr(a)), None]),
        ExprKind::Relation(r) => (
            rel_open(r.op),
            [Some(Piece::Arith(&r.lhs)), Some(Piece::Arith(&r.rhs))],
        ),
        _ => return write_leaf(s, e),
    };
    s.push_str(open);
    schedule(todo, children);
}

/// `(` child [` ` child] `)`, pushed in reverse.
fn schedule<'a>(todo: &mut Vec<Piece<'a>>, [first, second]: [Option<Piece<'a>>; 2]) {
    todo.push(Piece::Text(")"));
    if let Some(p) = second {
        todo.push(p);
        todo.push(Piece::Text(" "));
    }
    todo.extend(first);
}

fn rel_open(op: RelOp) -> &'static str {
    match op {
        RelOp::Gt => "(> ",
        RelOp::Ge => "(>= ",
        RelOp::Eq => "(= ",
        RelOp::Le => "(<= ",
        RelOp::Lt => "(< ",
        RelOp::Ne => "(!= ",
    }
}

fn write_leaf(s: &mut String, e: &Expr) {
    match &e.kind {
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

fn write_arith_node<'a>(s: &mut String, a: &'a Arith, todo: &mut Vec<Piece<'a>>) {
    match &a.kind {
        ArithKind::Num(n) => {
            let _ = write!(s, "{n}");
        }
        ArithKind::Len => s.push_str("len"),
        ArithKind::Load { proto, index, size } => {
            let _ = write!(s, "{}[", proto.keyword());
            todo.push(Piece::Text("]"));
            if let Some(n) = size {
                todo.push(Piece::Size(n.value));
            }
            todo.push(Piece::Arith(index));
        }
        ArithKind::Neg(x) => {
            s.push_str("(neg ");
            schedule(todo, [Some(Piece::Arith(x)), None]);
        }
        ArithKind::Binary { op, lhs, rhs } => {
            let _ = write!(s, "({} ", op_text(*op));
            schedule(todo, [Some(Piece::Arith(lhs)), Some(Piece::Arith(rhs))]);
        }
    }
}
