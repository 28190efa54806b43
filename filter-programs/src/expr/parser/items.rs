//! The boolean level of the grammar without recursion. A `not`, a `(` and
//! an `and`/`or` inside parentheses wait on an explicit stack for what
//! follows them, so nesting as deep as libpcap accepts (about 10,000
//! levels) costs heap, not thread stack. Arithmetic has its own machine
//! (`arith.rs`); a `host` term's ids run a second, independent machine,
//! which cannot nest further.

use super::super::ast::{Expr, ExprKind, Num};
use super::super::diag::{ErrorKind, ParseError};
use super::super::qualifiers::Qualifiers;
use super::super::span::Span;
use super::super::token::Tok;
use super::{arith_num, depth, join, starts_id, starts_nid_value};
use super::{Ctx, Group, Item, Mode, PResult, Parser};

/// A `(` and the position it stands in.
#[derive(Clone, Copy)]
struct Open {
    span: Span,
    ctx: Ctx,
    mode: Mode,
    /// The group is itself the first item of a group.
    first: bool,
}

enum Frame {
    /// A `not` waiting for its operand.
    Not { start: Span, ctx: Ctx, mode: Mode },
    /// A `(` waiting for its first item.
    Open(Open),
    /// An `and`/`or` inside the group `open` waiting for its right
    /// operand; `ids` when the group is an id list (`host (a or b)`).
    Tail {
        open: Open,
        acc: Box<Expr>,
        q: Option<Qualifiers>,
        op: Tok,
        ids: bool,
    },
}

/// Where an item is wanted: its context, mode and whether it comes first
/// in a group.
type Want = (Ctx, Mode, bool);

/// What finishing a frame led to.
enum Step {
    /// A finished item for the frame below.
    Item(Item),
    /// A new frame waiting for an item wanted as described.
    Wait(Frame, Want),
}

impl Parser<'_> {
    pub(super) fn parse_item(&mut self, ctx: Ctx, mode: Mode, first: bool) -> PResult<Item> {
        let mut stack = Vec::new();
        let mut want = (ctx, mode, first);
        'descend: loop {
            let mut item = self.descend(&mut stack, want)?;
            while let Some(frame) = stack.pop() {
                match self.finish(frame, item)? {
                    Step::Item(i) => item = i,
                    Step::Wait(frame, w) => {
                        stack.push(frame);
                        want = w;
                        continue 'descend;
                    }
                }
            }
            return Ok(item);
        }
    }

    /// Pushes the `not`s and `(`s in front of an item, then parses it.
    fn descend(&mut self, stack: &mut Vec<Frame>, (ctx, mode, mut first): Want) -> PResult<Item> {
        loop {
            match self.peek() {
                Some(Tok::Not) => {
                    self.enter(depth::NOT)?;
                    stack.push(Frame::Not {
                        start: self.here(),
                        ctx,
                        mode,
                    });
                    first = false;
                }
                Some(Tok::LParen) => {
                    self.enter(depth::PAREN)?;
                    stack.push(Frame::Open(Open {
                        span: self.here(),
                        ctx,
                        mode,
                        first,
                    }));
                    first = true;
                }
                None => {
                    return Err(self.expected(match mode {
                        Mode::Id => "a host, network or port id",
                        _ => "a filter primitive (e.g. 'host', 'port', 'tcp') or '('",
                    }))
                }
                _ => return self.item_simple(ctx, mode),
            }
            self.pos += 1;
        }
    }

    fn finish(&mut self, frame: Frame, item: Item) -> PResult<Step> {
        match frame {
            Frame::Not { start, ctx, mode } => {
                self.leave(depth::NOT);
                self.not_item(start, ctx, mode, item).map(Step::Item)
            }
            Frame::Open(open) => self.group_first(open, item),
            Frame::Tail {
                open,
                acc,
                q,
                op,
                ids,
            } => {
                self.leave(depth::CONNECTIVE);
                let (rhs, q) = if ids {
                    (self.list_id(open.ctx, item)?, q)
                } else {
                    self.tail_operand(q, item)?
                };
                self.group_next(open, join(op, *acc, rhs), q, ids)
            }
        }
    }

    fn not_item(&mut self, start: Span, ctx: Ctx, mode: Mode, inner: Item) -> PResult<Item> {
        let e = match inner {
            Item::Term(e, q) => return Ok(Item::Term(self.not_node(start, e), q)),
            Item::Id(e) => e,
            Item::Num(n) if mode != Mode::Term => self.num_id(n, ctx)?,
            Item::Num(n) => return Err(self.lone_num(n)),
            Item::Arith(a) => return Err(self.no_relop(&a)),
        };
        Ok(Item::Id(self.not_node(start, e)))
    }

    fn not_node(&self, start: Span, e: Expr) -> Expr {
        Expr {
            span: self.since(start),
            kind: ExprKind::Not(Box::new(e)),
        }
    }

    /// The first item of a group decides what the group is.
    fn group_first(&mut self, open: Open, first: Item) -> PResult<Step> {
        match first {
            Item::Term(e, q) => self.group_next(open, e, q, false),
            Item::Id(e) => self.group_next(open, e, None, true),
            Item::Num(n) => {
                if open.mode != Mode::Term && matches!(self.peek(), Some(Tok::And | Tok::Or)) {
                    let first = self.num_id(n, open.ctx)?;
                    return self.group_next(open, first, None, true);
                }
                let span = self.close(open.span)?;
                let n = Num {
                    value: n.value,
                    span,
                };
                self.group_done(open, Group::Num(n)).map(Step::Item)
            }
            Item::Arith(mut a) => {
                a.span = self.close(open.span)?;
                self.group_done(open, Group::Arith(a)).map(Step::Item)
            }
        }
    }

    /// After an operand inside a group: another `and`/`or` or the `)`.
    fn group_next(
        &mut self,
        open: Open,
        mut acc: Expr,
        q: Option<Qualifiers>,
        ids: bool,
    ) -> PResult<Step> {
        if let Some(op @ (Tok::And | Tok::Or)) = self.peek().cloned() {
            self.pos += 1;
            let want = if ids {
                if !self.peek().is_some_and(starts_id) {
                    return Err(self.expected("a host, network or port id"));
                }
                (open.ctx, Mode::Id, false)
            } else {
                (Ctx::inherit(q), Mode::TermOrId, false)
            };
            self.enter(depth::CONNECTIVE)?;
            let frame = Frame::Tail {
                open,
                acc: Box::new(acc),
                q,
                op,
                ids,
            };
            return Ok(Step::Wait(frame, want));
        }
        acc.span = self.close(open.span)?;
        let group = if ids {
            Group::IdList(acc)
        } else {
            Group::Expr(acc)
        };
        self.group_done(open, group).map(Step::Item)
    }

    /// A closed group as an item of the position its `(` stood in.
    fn group_done(&mut self, open: Open, group: Group) -> PResult<Item> {
        self.leave(depth::PAREN);
        match group {
            Group::Expr(e) => Ok(Item::Term(e, open.ctx.quals)),
            Group::IdList(e) if open.first => Err(self.nested_id_list(e.span)),
            Group::IdList(e) => Ok(Item::Id(e)),
            Group::Num(n) => self.continue_arith(arith_num(n), Some(n), open.mode),
            Group::Arith(a) => self.continue_arith(a, None, open.mode),
        }
    }

    /// The right operand of `and`/`or` in an expression, which inherits
    /// the qualifiers `q` of the term before.
    fn tail_operand(
        &mut self,
        q: Option<Qualifiers>,
        item: Item,
    ) -> PResult<(Expr, Option<Qualifiers>)> {
        match item {
            Item::Term(e, q2) => Ok((e, q2)),
            Item::Id(e) => Ok((e, q)),
            Item::Num(n) => Ok((self.num_id(n, Ctx::inherit(q))?, q)),
            Item::Arith(a) => Err(self.no_relop(&a)),
        }
    }

    /// An item in an id list must be an id.
    pub(super) fn list_id(&mut self, ctx: Ctx, item: Item) -> PResult<Expr> {
        match item {
            Item::Id(e) => Ok(e),
            Item::Num(n) => self.num_id(n, ctx),
            Item::Term(e, _) => Err(self.not_an_id(e.span)),
            Item::Arith(a) => Err(self.not_an_id(a.span)),
        }
    }

    fn nested_id_list(&self, span: Span) -> ParseError {
        ParseError::new(
            ErrorKind::Syntax,
            span,
            "syntax error: a parenthesized id list cannot start another one",
        )
        .with_label("remove these parentheses")
    }

    fn item_simple(&mut self, ctx: Ctx, mode: Mode) -> PResult<Item> {
        let start = self.here();
        match self.peek() {
            Some(Tok::Num(v)) => {
                let n = Num {
                    value: *v,
                    span: start,
                };
                self.pos += 1;
                self.continue_arith(arith_num(n), Some(n), mode)
            }
            Some(Tok::Minus | Tok::Len) if mode != Mode::Id => {
                let a = self.arith_expr(0)?;
                self.relation_or_arith(a)
            }
            Some(Tok::Pname(_)) if mode != Mode::Id && self.peek_at(1) == Some(&Tok::LBracket) => {
                let a = self.arith_expr(0)?;
                self.relation_or_arith(a)
            }
            Some(t) if starts_nid_value(t) => {
                if mode == Mode::Term {
                    return Err(self.lone_id(start));
                }
                Ok(Item::Id(self.parse_nid_value(ctx)?))
            }
            Some(_) if mode == Mode::Id => Err(self.expected("a host, network or port id")),
            _ => {
                let (e, q) = self.parse_rterm()?;
                Ok(Item::Term(e, q))
            }
        }
    }
}
