//! Recursive-descent parser with libpcap's grammar (grammar.y) semantics.
//!
//! libpcap's LALR grammar postpones some decisions that a hand-written
//! parser has to make up front; the trickiest is `(`, which can open a
//! boolean expression, an arithmetic expression, a number, or (after
//! `and`/`or`, a qualifier or `not`) a list of ids that inherit qualifiers,
//! as in `host a or (b or c)`. We parse the group first and classify it by
//! what it turned out to be and what follows the `)`.
//!
//! Qualifier inheritance follows the grammar's value stack exactly: after
//! `and`/`or` a bare id takes the qualifiers of the term just before; a
//! term written with qualifiers passes them on; a protocol name, relation,
//! or other keyword primitive passes none; a parenthesized expression
//! passes on whatever was in effect before its `(`.

mod arith;
mod depth;
mod ids;
mod items;
mod terms;

use super::ast::{Arith, Ast, Expr, ExprKind, Num};
use super::diag::{ErrorKind, ParseError};
use super::qualifiers::Qualifiers;
use super::span::Span;
use super::token::{Tok, Token};

/// Qualifiers an id would get here, and whether they are inherited from an
/// earlier term (as opposed to written just before the id).
#[derive(Clone, Copy, Debug)]
struct Ctx {
    quals: Option<Qualifiers>,
    inherited: bool,
}

impl Ctx {
    fn inherit(quals: Option<Qualifiers>) -> Ctx {
        Ctx {
            quals,
            inherited: true,
        }
    }
}

/// What may appear at a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A term only: the start of an expression.
    Term,
    /// A term or a bare id: after `and`/`or`.
    TermOrId,
    /// An id only: after qualifiers, inside an id list.
    Id,
}

/// A parsed unit whose role depends on context.
enum Item {
    /// A term, with the qualifiers it passes on.
    Term(Expr, Option<Qualifiers>),
    /// An id (or `not id`, or a parenthesized id list).
    Id(Expr),
    /// A bare number, possibly parenthesized: an id or an arithmetic operand.
    Num(Num),
    /// An arithmetic expression not (yet) part of a relation.
    Arith(Arith),
}

/// What a parenthesized group contained.
enum Group {
    Expr(Expr),
    IdList(Expr),
    Num(Num),
    Arith(Arith),
}

type PResult<T> = Result<T, ParseError>;

/// How deep `a and b` may nest, in the units libpcap's parser counts:
/// entries on its (bison) state stack, which holds 10,000 and then fails
/// with "memory exhausted". See [`depth`] for what each construct costs.
const MAX_DEPTH: usize = 9_999;

pub(super) fn parse_tokens(src: &str, toks: Vec<Token>) -> PResult<Ast> {
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: depth::START,
    };
    if p.toks.is_empty() {
        return Ok(Ast { root: None });
    }
    let first = p.parse_item(Ctx::inherit(None), Mode::Term, false)?;
    let (e, q) = p.term_only(first)?;
    let (e, _) = p.expr_tail(e, q)?;
    if p.peek().is_some() {
        return Err(p.trailing());
    }
    Ok(Ast { root: Some(e) })
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.pos + n).map(|t| &t.tok)
    }

    fn at(&self, t: &Tok) -> bool {
        self.peek() == Some(t)
    }

    /// Span of the next token, or an empty span at the end of the text.
    fn here(&self) -> Span {
        self.toks
            .get(self.pos)
            .map(|t| t.span)
            .unwrap_or(Span::point(self.src.len()))
    }

    /// End of the last consumed token.
    fn prev_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map(|t| t.span.end)
            .unwrap_or(0)
    }

    fn since(&self, start: Span) -> Span {
        Span::new(start.start, self.prev_end().max(start.start))
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn describe_next(&self) -> String {
        match self.toks.get(self.pos) {
            Some(t) => t.tok.describe(t.span.text(self.src)),
            None => "the end of the expression".to_string(),
        }
    }

    /// "syntax error: expected X", pointing at the next token.
    fn expected(&self, what: &str) -> ParseError {
        ParseError::new(
            ErrorKind::Syntax,
            self.here(),
            format!("syntax error: expected {what}"),
        )
        .with_label(format!("found {}", self.describe_next()))
    }

    fn expect(&mut self, t: &Tok, what: &str) -> PResult<Span> {
        if self.at(t) {
            Ok(self.here()).inspect(|_| {
                self.pos += 1;
            })
        } else {
            Err(self.expected(what))
        }
    }

    fn expect_num(&mut self, what: &str) -> PResult<Num> {
        match self.peek() {
            Some(Tok::Num(v)) => {
                let value = *v;
                let span = self.here();
                self.pos += 1;
                Ok(Num { value, span })
            }
            _ => Err(self.expected(what)),
        }
    }

    fn trailing(&self) -> ParseError {
        let mut e = ParseError::new(
            ErrorKind::Syntax,
            self.here(),
            format!("syntax error: unexpected {}", self.describe_next()),
        );
        if self.at(&Tok::RParen) {
            e = e.with_label("no '(' to close");
        } else {
            e = e
                .with_label("expected 'and', 'or' or the end of the expression here")
                .with_help("join primitives with 'and' or 'or'");
        }
        e
    }

    /// A term where only a term may stand (start of an expression).
    fn term_only(&self, item: Item) -> PResult<(Expr, Option<Qualifiers>)> {
        match item {
            Item::Term(e, q) => Ok((e, q)),
            Item::Num(n) => Err(self.lone_num(n)),
            Item::Arith(a) => Err(self.no_relop(&a)),
            Item::Id(e) => Err(self.lone_id(e.span)),
        }
    }

    fn lone_num(&self, n: Num) -> ParseError {
        ParseError::new(
            ErrorKind::Syntax,
            n.span,
            format!(
                "syntax error: a number alone is not a filter: '{}'",
                n.span.text(self.src)
            ),
        )
        .with_label("needs a qualifier or a comparison")
        .with_help("write e.g. 'port 80', 'host 10.0.0.1' or 'ip[9] = 6'")
    }

    fn lone_id(&self, span: Span) -> ParseError {
        ParseError::new(
            ErrorKind::Syntax,
            span,
            format!("syntax error: '{}' needs a qualifier", span.text(self.src)),
        )
        .with_label("a name or address alone is not a filter")
        .with_help("write e.g. 'host NAME', 'net 10.0.0.0/8' or 'ether host MAC'")
    }

    fn no_relop(&self, a: &Arith) -> ParseError {
        ParseError::new(
            ErrorKind::Syntax,
            self.here(),
            "syntax error: expected a comparison (=, !=, <, <=, >, >=) after the arithmetic expression",
        )
        .with_label(format!("found {}", self.describe_next()))
        .with_help(format!(
            "'{}' is a value, not a test; compare it, e.g. '... != 0'",
            a.span.text(self.src)
        ))
    }

    /// `(and|or) (term|id)` repeated, left-associative, after a first term.
    fn expr_tail(
        &mut self,
        mut acc: Expr,
        mut q: Option<Qualifiers>,
    ) -> PResult<(Expr, Option<Qualifiers>)> {
        while let Some(op @ (Tok::And | Tok::Or)) = self.peek().cloned() {
            self.pos += 1;
            let ctx = Ctx::inherit(q);
            self.enter(depth::CONNECTIVE)?;
            let item = self.parse_item(ctx, Mode::TermOrId, false)?;
            self.leave(depth::CONNECTIVE);
            let rhs = match item {
                Item::Term(e, q2) => {
                    q = q2;
                    e
                }
                Item::Id(e) => e,
                Item::Num(n) => self.num_id(n, ctx)?,
                Item::Arith(a) => return Err(self.no_relop(&a)),
            };
            acc = join(op, acc, rhs);
        }
        Ok((acc, q))
    }

    /// An id where only an id may stand.
    fn parse_id(&mut self, ctx: Ctx, what: &str) -> PResult<Expr> {
        if !self.peek().is_some_and(starts_id) {
            return Err(self.expected(what));
        }
        let item = self.parse_item(ctx, Mode::Id, false)?;
        self.list_id(ctx, item)
    }

    fn not_an_id(&self, span: Span) -> ParseError {
        ParseError::new(
            ErrorKind::Syntax,
            span,
            "syntax error: expected a host, network or port id",
        )
        .with_label("not an id")
    }

    /// The `)` of the group opened at `open`; returns the group's span.
    fn close(&mut self, open: Span) -> PResult<Span> {
        if self.at(&Tok::RParen) {
            self.pos += 1;
            Ok(self.since(open))
        } else {
            Err(self.expected(&format!(
                "')' to close the '(' at column {}",
                open.start + 1
            )))
        }
    }
}

fn arith_num(n: Num) -> Arith {
    Arith {
        kind: super::ast::ArithKind::Num(n.value),
        span: n.span,
    }
}

fn join(op: Tok, lhs: Expr, rhs: Expr) -> Expr {
    let span = lhs.span.to(rhs.span);
    let kind = if op == Tok::And {
        ExprKind::And(Box::new(lhs), Box::new(rhs))
    } else {
        ExprKind::Or(Box::new(lhs), Box::new(rhs))
    };
    Expr { kind, span }
}

fn starts_nid_value(t: &Tok) -> bool {
    matches!(
        t,
        Tok::Name { .. } | Tok::Ipv4(_) | Tok::Ipv6(_) | Tok::Mac(_) | Tok::Mac8(_)
    )
}

fn starts_id(t: &Tok) -> bool {
    starts_nid_value(t) || matches!(t, Tok::Num(_) | Tok::LParen | Tok::Not)
}
