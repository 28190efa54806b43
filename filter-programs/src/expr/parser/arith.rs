//! Arithmetic expressions and relations: `ip[2:2] - 20 > len`, with
//! libpcap's precedence. `|` < `&` < `<<`,`>>` < `+`,`-` < `*`,`/` < unary
//! minus, all left-associative. `%` and `^` have no declared precedence in
//! libpcap's grammar and its parser generator resolves every such conflict
//! by shifting: a `%`/`^` binds tighter than whatever is on its left and
//! takes everything on its right (`1 + 2 % 3 + 4` is `1 + (2 % (3 + 4))`).

use super::super::ast::{Arith, ArithKind, ArithOp, Expr, ExprKind, Num, RelOp, Relation};
use super::super::token::Tok;
use super::{Item, Mode, PResult, Parser};

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

impl Parser<'_> {
    pub(super) fn arith_expr(&mut self, min_bp: u8) -> PResult<Arith> {
        self.nested(|p| {
            let lhs = p.arith_prefix()?;
            p.arith_loop(lhs, min_bp)
        })
    }

    fn arith_loop(&mut self, mut lhs: Arith, min_bp: u8) -> PResult<Arith> {
        while let Some((op, l_bp, r_bp)) = self.peek().and_then(binop) {
            if l_bp < min_bp {
                break;
            }
            self.pos += 1;
            let rhs = self.arith_expr(r_bp)?;
            lhs = Arith {
                span: lhs.span.to(rhs.span),
                kind: ArithKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
            };
        }
        Ok(lhs)
    }

    fn arith_prefix(&mut self) -> PResult<Arith> {
        let start = self.here();
        match self.peek().cloned() {
            Some(Tok::Num(v)) => {
                self.pos += 1;
                Ok(Arith {
                    kind: ArithKind::Num(v),
                    span: start,
                })
            }
            Some(Tok::Len) => {
                self.pos += 1;
                Ok(Arith {
                    kind: ArithKind::Len,
                    span: start,
                })
            }
            Some(Tok::Minus) => {
                self.pos += 1;
                let operand = self.arith_expr(UMINUS_BP)?;
                Ok(Arith {
                    span: self.since(start),
                    kind: ArithKind::Neg(Box::new(operand)),
                })
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let mut inner = self.arith_expr(0)?;
                self.expect(
                    &Tok::RParen,
                    &format!("')' to close the '(' at column {}", start.start + 1),
                )?;
                inner.span = self.since(start);
                Ok(inner)
            }
            Some(Tok::Pname(proto)) if self.peek_at(1) == Some(&Tok::LBracket) => {
                self.pos += 2;
                let index = self.arith_expr(0)?;
                let size = if self.at(&Tok::Colon) {
                    self.pos += 1;
                    Some(self.expect_num("a field size (1, 2 or 4) after ':'")?)
                } else {
                    None
                };
                self.expect(&Tok::RBracket, "']' to close the packet field")?;
                Ok(Arith {
                    span: self.since(start),
                    kind: ArithKind::Load {
                        proto,
                        index: Box::new(index),
                        size,
                    },
                })
            }
            _ => Err(self.expected("a number, 'len', a packet field such as 'ip[0]', '-' or '('")),
        }
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
            let a = self.arith_loop(lhs, 0)?;
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
        self.pos += 1;
        let rhs = self.arith_expr(0)?;
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
