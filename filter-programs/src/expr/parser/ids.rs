//! Ids: the values qualifiers apply to (names, numbers, IPv4/IPv6
//! addresses and prefixes, MAC addresses), and their pairing with the
//! qualifiers in effect.

use super::super::ast::{Expr, ExprKind, Id, IdKind, Ipv4Lit, Num, Primitive};
use super::super::diag::{ErrorKind, ParseError};
use super::super::qualifiers::Kind;
use super::super::token::Tok;
use super::{Ctx, PResult, Parser};

impl Parser<'_> {
    /// A name or address id, with `/len` or `mask m` where allowed.
    pub(super) fn parse_nid_value(&mut self, ctx: Ctx) -> PResult<Expr> {
        let start = self.here();
        let Some(tok) = self.bump() else {
            return Err(self.expected("a host, network or port id"));
        };
        let kind = match tok.tok {
            Tok::Name { text, escaped } => IdKind::Name { text, escaped },
            Tok::Mac(m) => IdKind::Mac(m),
            Tok::Mac8(b) => IdKind::Mac8(b),
            Tok::Ipv4(text) => {
                let addr = Ipv4Lit::new(&text, tok.span);
                if self.at(&Tok::Slash) {
                    self.pos += 1;
                    let len = self.expect_num("a prefix length after '/'")?;
                    IdKind::Ipv4Prefix { addr, len }
                } else if self.at(&Tok::Mask) {
                    self.pos += 1;
                    match self.peek().cloned() {
                        Some(Tok::Ipv4(m)) => {
                            let mask = Ipv4Lit::new(&m, self.here());
                            self.pos += 1;
                            IdKind::Ipv4Mask { addr, mask }
                        }
                        _ => {
                            return Err(
                                self.expected("a dotted netmask such as 255.255.0.0 after 'mask'")
                            )
                        }
                    }
                } else {
                    IdKind::Ipv4(addr)
                }
            }
            Tok::Ipv6(addr) => {
                if self.at(&Tok::Slash) {
                    self.pos += 1;
                    let len = self.expect_num("a prefix length after '/'")?;
                    IdKind::Ipv6Prefix { addr, len }
                } else {
                    IdKind::Ipv6(addr)
                }
            }
            _ => {
                self.pos -= 1;
                return Err(self.expected("a host, network or port id"));
            }
        };
        let span = self.since(start);
        self.primitive(Id { kind, span }, ctx)
    }

    /// A bare number used as an id (`443` in `port 80 or 443`).
    pub(super) fn num_id(&self, n: Num, ctx: Ctx) -> PResult<Expr> {
        self.primitive(
            Id {
                kind: IdKind::Num(n.value),
                span: n.span,
            },
            ctx,
        )
    }

    /// Pairs an id with the qualifiers in effect, refusing the pairings
    /// libpcap refuses whatever the link type: an id with no qualifiers to
    /// inherit, and address forms under `port`/`portrange`/`proto`/
    /// `protochain`.
    fn primitive(&self, id: Id, ctx: Ctx) -> PResult<Expr> {
        let text = id.span.text(self.src);
        let Some(quals) = ctx.quals else {
            return Err(ParseError::new(
                ErrorKind::Qualifier,
                id.span,
                format!("syntax error in filter expression: '{text}' has no qualifier to inherit"),
            )
            .with_label("needs a qualifier such as 'host', 'net' or 'port'")
            .with_help(
                "after 'and'/'or' a bare id reuses the qualifiers of the term before it, but a \
                 protocol name, comparison, keyword primitive or parenthesized expression has \
                 none to give; write the qualifier, e.g. 'tcp and port 80'",
            ));
        };
        let form = match &id.kind {
            IdKind::Ipv4(_) => Some("IPv4 address"),
            IdKind::Ipv4Prefix { .. } => Some("IPv4 address and prefix length"),
            IdKind::Ipv4Mask { .. } => Some("IPv4 address and netmask"),
            IdKind::Ipv6(_) => Some("IPv6 address"),
            IdKind::Ipv6Prefix { .. } => Some("IPv6 address and prefix length"),
            _ => None,
        };
        if let Some(form) = form {
            if matches!(
                quals.kind,
                Kind::Port | Kind::Portrange | Kind::Proto | Kind::Protochain
            ) {
                let q = quals.kind.keyword();
                let mut e = ParseError::new(
                    ErrorKind::Qualifier,
                    id.span,
                    format!("'{q}' qualifier applied to {form}"),
                )
                .with_label(format!("an address, not a {q} value"));
                if ctx.inherited {
                    e = e.with_help(format!(
                        "this id inherits '{}' from '{}'; write 'host' or 'net' before it",
                        quals.describe(),
                        quals.span.text(self.src)
                    ));
                }
                return Err(e);
            }
        }
        let span = id.span;
        Ok(Expr {
            kind: ExprKind::Primitive(Primitive {
                quals,
                inherited: ctx.inherited,
                id,
            }),
            span,
        })
    }
}
