//! Arithmetic expressions and relations: `ip[2:2] - 20 > len`, with
//! libpcap's precedence. `|` < `&` < `<<`,`>>` < `+`,`-` < `*`,`/` < unary
//! minus, all left-associative. `%` and `^` have no declared precedence in
//! libpcap's grammar and its parser generator resolves every such conflict
//! by shifting: a `%`/`^` binds tighter than whatever is on its left and
//! takes everything on its right (`1 + 2 % 3 + 4` is `1 + (2 % (3 + 4))`).

use super::super::ast::{Arith, ArithKind, ArithOp, Expr, ExprKind, Num, RelOp, Relation};
use super::super::qualifiers::Proto;
use super::super::span::Span;
use super::super::token::Tok;
use super::{depth, Item, Mode, PResult, Parser};

const UMINUS_BP: u8 = 12;
/// `%`/`^` on the right of anything are shifted, never reduced.
const SHIFT_ALWAYS_BP: u8 = 100;

fn binop(t: &Tok) -> Option<(ArithOp, u8, u8)> {
    Some(match t {
        Tok::Pipe => (ArithOp::Or, 2, 3),
        Tok::Amp => (ArithOp::And, 4, 5),
        Tok::Shl => (ArithOp::Shl, 6, 7),
        Tok::Shr => (ArithOp::Shr, 6, 7),
        Tok::Plus => (ArithOp::Add, 8, 9),
        Tok::Minus => (ArithOp::Sub, 8, 9),
        Tok::Star => (ArithOp::Mul, 10, 11),
        Tok::Slash => (ArithOp::Div, 10, 11),
        Tok::Percent => (ArithOp::Mod, SHIFT_ALWAYS_BP, 0),
        Tok::Caret => (ArithOp::Xor, SHIFT_ALWAYS_BP, 0),
        _ => return None,
    })
}

fn relop(t: &Tok) -> Option<RelOp> {
    Some(match t {
        Tok::Gt => RelOp::Gt,
        Tok::Ge => RelOp::Ge,
        Tok::Eq => RelOp::Eq,
        Tok::Le => RelOp::Le,
        Tok::Lt => RelOp::Lt,
        Tok::Ne => RelOp::Ne,
        _ => return None,
    })
}

/// An operator or bracket waiting for the operand after it.
enum Pending {
    Neg(Span),
    Paren(Span),
    Load(Span, Proto),
    Binary(Arith, ArithOp),
}

impl Pending {
    fn cost(&self) -> depth::Cost {
        match self {
            Pending::Neg(_) => depth::NEG,
            Pending::Paren(_) => depth::PAREN,
            Pending::Load(..) => depth::INDEX,
            Pending::Binary(..) => depth::CONNECTIVE,
        }
    }
}

impl Parser<'_> {
    pub(super) fn arith_expr(&mut self, min_bp: u8) -> PResult<Arith> {
        self.arith_from(None, min_bp)
    }

    /// Precedence climbing with the pending operators on an explicit
    /// stack (a `%`/`^` chain or nested brackets may be thousands deep),
    /// each with the binding power to resume at once it is complete.
    /// Starts after `lhs` when given.
    fn arith_from(&mut self, mut lhs: Option<Arith>, min_bp: u8) -> PResult<Arith> {
        let mut stack: Vec<(Pending, u8)> = Vec::new();
        let mut min = min_bp;
        loop {
            let mut a = match lhs.take() {
                Some(a) => a,
                None => match self.arith_opener()? {
                    Some(p) => {
                        let resume = min;
                        min = if matches!(p, Pending::Neg(_)) {
                            UMINUS_BP
                        } else {
                            0
                        };
                        stack.push((p, resume));
                        continue;
                    }
                    None => self.arith_leaf()?,
                },
            };
            loop {
                if let Some((op, l_bp, r_bp)) = self.peek().and_then(binop) {
                    if l_bp >= min {
                        self.enter(depth::CONNECTIVE)?;
                        self.pos += 1;
                        stack.push((Pending::Binary(a, op), min));
                        min = r_bp;
                        break;
                    }
                }
                let Some((p, resume)) = stack.pop() else {
                    return Ok(a);
                };
                a = self.complete(p, a)?;
                min = resume;
            }
        }
    }

    /// A unary minus, `(` or `proto[`, consumed, or `None`.
    fn arith_opener(&mut self) -> PResult<Option<Pending>> {
        let start = self.here();
        let (p, len) = match self.peek() {
            Some(Tok::Minus) => (Pending::Neg(start), 1),
            Some(Tok::LParen) => (Pending::Paren(start), 1),
            Some(Tok::Pname(proto)) if self.peek_at(1) == Some(&Tok::LBracket) => {
                (Pending::Load(start, *proto), 2)
            }
            _ => return Ok(None),
        };
        self.enter(p.cost())?;
        self.pos += len;
        Ok(Some(p))
    }

    fn arith_leaf(&mut self) -> PResult<Arith> {
        let span = self.here();
        let kind = match self.peek() {
            Some(Tok::Num(v)) => ArithKind::Num(*v),
            Some(Tok::Len) => ArithKind::Len,
            _ => {
                return Err(
                    self.expected("a number, 'len', a packet field such as 'ip[0]', '-' or '('")
                )
            }
        };
        self.pos += 1;
        Ok(Arith { kind, span })
    }

    /// `p` with its operand `a`, closing its bracket if it has one.
    fn complete(&mut self, p: Pending, a: Arith) -> PResult<Arith> {
        self.leave(p.cost());
        Ok(match p {
            Pending::Neg(start) => Arith {
                span: self.since(start),
                kind: ArithKind::Neg(Box::new(a)),
            },
            Pending::Paren(start) => {
                self.expect(
                    &Tok::RParen,
                    &format!("')' to close the '(' at column {}", start.start + 1),
                )?;
                let mut a = a;
                a.span = self.since(start);
                a
            }
            Pending::Load(start, proto) => {
                let size = if self.at(&Tok::Colon) {
                    self.pos += 1;
                    Some(self.expect_num("a field size (1, 2 or 4) after ':'")?)
                } else {
                    None
                };
                self.expect(&Tok::RBracket, "']' to close the packet field")?;
                Arith {
                    span: self.since(start),
                    kind: ArithKind::Load {
                        proto,
                        index: Box::new(a),
                        size,
                    },
                }
            }
            Pending::Binary(lhs, op) => Arith {
                span: lhs.span.to(a.span),
                kind: ArithKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(a),
                },
            },
        })
    }

    /// After a number or parenthesized arithmetic in a term position: an
    /// operator or comparison makes it arithmetic; otherwise a plain number
    /// stays a number (an id), anything else is unfinished arithmetic.
    pub(super) fn continue_arith(
        &mut self,
        lhs: Arith,
        num: Option<Num>,
        mode: Mode,
    ) -> PResult<Item> {
        if mode == Mode::Id {
            return match num {
                Some(n) => Ok(Item::Num(n)),
                None => Err(self.not_an_id(lhs.span)),
            };
        }
        let is_op = self.peek().is_some_and(|t| binop(t).is_some());
        let is_rel = self.peek().is_some_and(|t| relop(t).is_some());
        if is_op {
            let a = self.arith_from(Some(lhs), 0)?;
            return self.relation_or_arith(a);
        }
        if is_rel {
            return self.relation_or_arith(lhs);
        }
        Ok(match num {
            Some(n) => Item::Num(n),
            None => Item::Arith(lhs),
        })
    }

    pub(super) fn relation_or_arith(&mut self, lhs: Arith) -> PResult<Item> {
        let Some(op) = self.peek().and_then(relop) else {
            return Ok(Item::Arith(lhs));
        };
        self.enter(depth::CONNECTIVE)?;
        self.pos += 1;
        let rhs = self.arith_expr(0)?;
        self.leave(depth::CONNECTIVE);
        let span = lhs.span.to(rhs.span);
        Ok(Item::Term(
            Expr {
                kind: ExprKind::Relation(Relation { op, lhs, rhs }),
                span,
            },
            None,
        ))
    }

    /// `relop NUM` after `vpi`, `sio`, ... (no arithmetic there).
    pub(super) fn opt_relop(&mut self) -> Option<RelOp> {
        let op = self.peek().and_then(relop)?;
        self.pos += 1;
        Some(op)
    }
}
