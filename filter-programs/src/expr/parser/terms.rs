//! Keyword terms: qualified ids (`tcp dst port 80`), protocol names alone,
//! and the other primitives (`broadcast`, `less`, `vlan`, `llc`, 802.11
//! `type`/`subtype`/`dir`, PF, ATM and MTP fields).

use super::super::ast::{ByteOp, Expr, ExprKind, FieldTest, Num, PfTest, WlanTest};
use super::super::diag::{ErrorKind, ParseError};
use super::super::names;
use super::super::qualifiers::{Dir, Kind, Proto, Qualifiers};
use super::super::span::Span;
use super::super::token::Tok;
use super::{depth, Ctx, PResult, Parser};

fn is_head_word(t: Option<&Tok>) -> bool {
    matches!(
        t,
        Some(
            Tok::DirQual(_)
                | Tok::Host
                | Tok::Net
                | Tok::Port
                | Tok::Portrange
                | Tok::Proto
                | Tok::Protochain
                | Tok::Gateway
        )
    )
}

impl Parser<'_> {
    pub(super) fn parse_rterm(&mut self) -> PResult<(Expr, Option<Qualifiers>)> {
        let start = self.here();
        let mut proto = None;
        if let Some(Tok::Pname(p)) = self.peek() {
            let p = *p;
            let next = self.peek_at(1);
            let qualifies_next = is_head_word(next)
                || matches!(
                    next,
                    Some(Tok::Broadcast | Tok::Multicast | Tok::Type | Tok::Subtype | Tok::WlanDir)
                );
            if qualifies_next {
                proto = Some(p);
                self.pos += 1;
            } else {
                self.pos += 1;
                return Ok((self.node(start, ExprKind::ProtoAbbrev(p)), None));
            }
        }
        if is_head_word(self.peek()) {
            return self.head_and_id(start, proto);
        }
        let Some(tok) = self.peek().cloned() else {
            return Err(self.expected("a filter primitive"));
        };
        let kind = match tok {
            Tok::Broadcast => {
                self.pos += 1;
                ExprKind::Broadcast(proto)
            }
            Tok::Multicast => {
                self.pos += 1;
                ExprKind::Multicast(proto)
            }
            Tok::Type | Tok::Subtype | Tok::WlanDir => ExprKind::Wlan {
                proto,
                test: self.wlan()?,
            },
            _ if proto.is_some() => return Err(self.expected("a qualifier after the protocol")),
            _ => self.unqualified(tok)?,
        };
        Ok((self.node(start, kind), None))
    }

    /// A primitive no protocol may qualify, starting at `tok`.
    fn unqualified(&mut self, tok: Tok) -> PResult<ExprKind> {
        Ok(match tok {
            Tok::Less => {
                self.pos += 1;
                ExprKind::Less(self.expect_num("a packet length after 'less'")?)
            }
            Tok::Greater => {
                self.pos += 1;
                ExprKind::Greater(self.expect_num("a packet length after 'greater'")?)
            }
            Tok::Byte => {
                self.pos += 1;
                self.byte()?
            }
            Tok::Inbound => self.word(ExprKind::Inbound),
            Tok::Outbound => self.word(ExprKind::Outbound),
            Tok::Ifindex => {
                self.pos += 1;
                ExprKind::Ifindex(self.expect_num("an interface index after 'ifindex'")?)
            }
            Tok::Vlan => {
                self.pos += 1;
                ExprKind::Vlan(self.opt_pnum()?)
            }
            Tok::Mpls => {
                self.pos += 1;
                ExprKind::Mpls(self.opt_pnum()?)
            }
            Tok::Pppoed => self.word(ExprKind::Pppoed),
            Tok::Pppoes => {
                self.pos += 1;
                ExprKind::Pppoes(self.opt_pnum()?)
            }
            Tok::Geneve => {
                self.pos += 1;
                ExprKind::Geneve(self.opt_pnum()?)
            }
            Tok::Vxlan => {
                self.pos += 1;
                ExprKind::Vxlan(self.opt_pnum()?)
            }
            Tok::PfIfname
            | Tok::PfRuleset
            | Tok::PfRulenum
            | Tok::PfSubrulenum
            | Tok::PfReason
            | Tok::PfAction => ExprKind::Pf(self.pf()?),
            Tok::Llc => {
                self.pos += 1;
                ExprKind::Llc(self.llc_arg()?)
            }
            Tok::Atm(a) => self.word(ExprKind::Atm(a)),
            Tok::AtmField(field) => {
                self.pos += 1;
                ExprKind::AtmField {
                    field,
                    test: self.field_test()?,
                }
            }
            Tok::Mtp2(t) => self.word(ExprKind::Mtp2(t)),
            Tok::Mtp3(field) => {
                self.pos += 1;
                ExprKind::Mtp3Field {
                    field,
                    test: self.field_test()?,
                }
            }
            _ => {
                return Err(self.expected(
                    "a filter primitive (e.g. 'host', 'port', 'tcp', 'ip[0] = 1') or '('",
                ))
            }
        })
    }

    /// `byte N OP V`, after `byte`.
    fn byte(&mut self) -> PResult<ExprKind> {
        let offset = self.expect_num("a byte offset after 'byte'")?;
        let op = match self.peek() {
            Some(Tok::Amp) => ByteOp::And,
            Some(Tok::Pipe) => ByteOp::Or,
            Some(Tok::Lt) => ByteOp::Lt,
            Some(Tok::Gt) => ByteOp::Gt,
            Some(Tok::Eq) => ByteOp::Eq,
            _ => return Err(self.expected("one of '&', '|', '<', '>', '=' after 'byte N'")),
        };
        self.pos += 1;
        let value = self.expect_num("a byte value")?;
        Ok(ExprKind::Byte { offset, op, value })
    }

    fn node(&self, start: Span, kind: ExprKind) -> Expr {
        Expr {
            kind,
            span: self.since(start),
        }
    }

    fn word(&mut self, kind: ExprKind) -> ExprKind {
        self.pos += 1;
        kind
    }

    /// `[proto] [dir] [kind] id`, the proto already consumed.
    fn head_and_id(
        &mut self,
        start: Span,
        proto: Option<Proto>,
    ) -> PResult<(Expr, Option<Qualifiers>)> {
        let mut dir = Dir::Default;
        if let Some(Tok::DirQual(d)) = self.peek().cloned() {
            self.pos += 1;
            dir = d;
            if matches!(d, Dir::Src | Dir::Dst) && matches!(self.peek(), Some(Tok::And | Tok::Or)) {
                let is_or = self.at(&Tok::Or);
                self.pos += 1;
                let other = if d == Dir::Src { Dir::Dst } else { Dir::Src };
                if self.peek() != Some(&Tok::DirQual(other)) {
                    return Err(self.expected(&format!(
                        "'{}' after '{} {}'",
                        other.keyword(),
                        d.keyword(),
                        if is_or { "or" } else { "and" }
                    )));
                }
                self.pos += 1;
                dir = if is_or { Dir::SrcOrDst } else { Dir::SrcAndDst };
            }
        }
        let kind = match self.peek() {
            Some(Tok::Host) => Kind::Host,
            Some(Tok::Net) => Kind::Net,
            Some(Tok::Port) => Kind::Port,
            Some(Tok::Portrange) => Kind::Portrange,
            Some(Tok::Proto) if dir == Dir::Default => Kind::Proto,
            Some(Tok::Protochain) if dir == Dir::Default => Kind::Protochain,
            Some(Tok::Gateway) if dir == Dir::Default => Kind::Gateway,
            Some(Tok::Proto | Tok::Protochain | Tok::Gateway) => {
                let word = self.here().text(self.src).to_string();
                return Err(ParseError::new(
                    ErrorKind::Syntax,
                    self.here(),
                    format!("syntax error: '{word}' cannot take a direction qualifier"),
                )
                .with_label(format!(
                    "'{}' is not allowed before '{word}'",
                    dir.keyword()
                )));
            }
            _ => Kind::Default,
        };
        if kind != Kind::Default {
            self.pos += 1;
        }
        let quals = Qualifiers {
            proto,
            dir,
            kind,
            span: self.since(start),
        };
        let what = match kind {
            Kind::Host => "a host name or address after 'host'".to_string(),
            Kind::Net => {
                "a network after 'net' (e.g. 10.0.0.0/8, 10.1, or 10.0.0.0 mask 255.0.0.0)"
                    .to_string()
            }
            Kind::Port => "a port number or name after 'port'".to_string(),
            Kind::Portrange => "a port range after 'portrange' (e.g. 1000-2000)".to_string(),
            Kind::Proto | Kind::Protochain => {
                format!("a protocol number or name after '{}'", kind.keyword())
            }
            Kind::Gateway => "a host name after 'gateway'".to_string(),
            Kind::Default => format!(
                "an address, a name or 'host'/'net'/'port' after '{}'",
                quals.span.text(self.src)
            ),
        };
        let ctx = Ctx {
            quals: Some(quals),
            inherited: false,
        };
        let mut id = self.parse_id(ctx, &what)?;
        id.span = start.to(id.span);
        Ok((id, Some(quals)))
    }

    /// An optional `pnum`: a number, possibly in parentheses.
    fn opt_pnum(&mut self) -> PResult<Option<Num>> {
        match self.peek() {
            Some(Tok::Num(_) | Tok::LParen) => {
                // The keyword stays on libpcap's stack under the number.
                self.enter(depth::KEYWORD)?;
                let n = self.pnum()?;
                self.leave(depth::KEYWORD);
                Ok(Some(n))
            }
            _ => Ok(None),
        }
    }

    /// `(((N)))`: the parentheses counted in a loop, not recursed into.
    fn pnum(&mut self) -> PResult<Num> {
        let outer = self.here();
        let mut opens = Vec::new();
        while self.at(&Tok::LParen) {
            self.enter(depth::PAREN)?;
            opens.push(self.here());
            self.pos += 1;
        }
        let mut n = self.expect_num("a number")?;
        while let Some(open) = opens.pop() {
            self.expect(
                &Tok::RParen,
                &format!("')' to close the '(' at column {}", open.start + 1),
            )?;
            self.leave(depth::PAREN);
        }
        n.span = self.since(outer);
        Ok(n)
    }

    /// `vpi`/`vci`/MTP3 field values.
    fn field_test(&mut self) -> PResult<FieldTest> {
        if let Some(op) = self.opt_relop() {
            return Ok(FieldTest::Compare(
                op,
                self.expect_num("a number after the comparison")?,
            ));
        }
        if self.at(&Tok::LParen) {
            let open = self.here();
            self.pos += 1;
            let mut values = vec![self.expect_num("a number")?];
            while self.at(&Tok::Or) {
                self.pos += 1;
                values.push(self.expect_num("a number after 'or'")?);
            }
            self.expect(
                &Tok::RParen,
                &format!("')' to close the '(' at column {}", open.start + 1),
            )?;
            return Ok(FieldTest::AnyOf(values));
        }
        Ok(FieldTest::AnyOf(vec![self.expect_num(
            "a number, a comparison or a parenthesized list of numbers",
        )?]))
    }

    fn value_error(&self, span: Span, msg: String) -> ParseError {
        ParseError::new(ErrorKind::Value, span, msg).with_label("here")
    }

    fn llc_arg(&mut self) -> PResult<Option<names::LlcFrame>> {
        match self.peek().cloned() {
            Some(Tok::Name { text, .. }) => {
                let span = self.here();
                self.pos += 1;
                names::llc_frame(&text).map(Some).ok_or_else(|| {
                    self.value_error(span, format!("unknown LLC type name \"{text}\""))
                })
            }
            // `rnr` scans as the PF keyword; the grammar accepts it here too.
            Some(Tok::PfRulenum) => {
                self.pos += 1;
                Ok(Some(names::LlcFrame::SSubtype(0x05)))
            }
            _ => Ok(None),
        }
    }

    fn pf(&mut self) -> PResult<PfTest> {
        let Some(kw) = self.bump() else {
            return Err(self.expected("a PF keyword"));
        };
        let name = |p: &mut Self, what: &str| -> PResult<(String, Span)> {
            match p.peek().cloned() {
                Some(Tok::Name { text, .. }) => {
                    let span = p.here();
                    p.pos += 1;
                    Ok((text, span))
                }
                _ => Err(p.expected(what)),
            }
        };
        Ok(match kw.tok {
            Tok::PfIfname => PfTest::Ifname(name(self, "an interface name")?.0),
            Tok::PfRuleset => PfTest::Ruleset(name(self, "a ruleset name")?.0),
            Tok::PfRulenum => PfTest::Rulenum(self.expect_num("a rule number")?),
            Tok::PfSubrulenum => PfTest::Subrulenum(self.expect_num("a subrule number")?),
            Tok::PfReason => {
                if let Some(Tok::Num(v)) = self.peek() {
                    let v = *v;
                    self.pos += 1;
                    PfTest::Reason(v)
                } else {
                    let (text, span) = name(self, "a PF reason name or number")?;
                    let v = names::pf_reason(&text).ok_or_else(|| {
                        self.value_error(span, format!("unknown PF reason \"{text}\""))
                    })?;
                    PfTest::Reason(u32::from(v))
                }
            }
            _ => {
                let (text, span) = name(self, "a PF action name")?;
                let v = names::pf_action(&text).ok_or_else(|| {
                    self.value_error(span, format!("unknown PF action \"{text}\""))
                })?;
                PfTest::Action(u32::from(v))
            }
        })
    }

    /// `type T [subtype S]`, `subtype S`, `dir D`.
    fn wlan(&mut self) -> PResult<WlanTest> {
        let Some(kw) = self.bump() else {
            return Err(self.expected("'type', 'subtype' or 'dir'"));
        };
        match kw.tok {
            Tok::Type => {
                let ty = self.wlan_value(0x0c, "invalid 802.11 type value", |t| {
                    names::wlan_type(t).ok_or_else(|| format!("unknown 802.11 type name \"{t}\""))
                })?;
                if !self.at(&Tok::Subtype) {
                    return Ok(WlanTest::FrameControl {
                        value: ty,
                        mask: 0x0c,
                    });
                }
                self.pos += 1;
                let st = self.wlan_value(0xf0, "invalid 802.11 subtype value", |s| {
                    match names::wlan_subtype(ty, s) {
                        Err(()) => Err("unknown 802.11 type".to_string()),
                        Ok(None) => Err(format!("unknown 802.11 subtype name \"{s}\"")),
                        Ok(Some(v)) => Ok(v),
                    }
                })?;
                Ok(WlanTest::FrameControl {
                    value: ty | st,
                    mask: 0xfc,
                })
            }
            Tok::Subtype => match self.peek().cloned() {
                Some(Tok::Name { text, .. }) => {
                    let span = self.here();
                    self.pos += 1;
                    let v = names::wlan_type_subtype(&text).ok_or_else(|| {
                        self.value_error(span, format!("unknown 802.11 type name \"{text}\""))
                    })?;
                    Ok(WlanTest::FrameControl {
                        value: v,
                        mask: 0xfc,
                    })
                }
                _ => Err(self.expected("an 802.11 subtype name after 'subtype' (e.g. beacon)")),
            },
            _ => {
                let v = self.wlan_value(0x03, "invalid 802.11 direction value", |d| {
                    names::wlan_dir(d).ok_or_else(|| "unknown 802.11 direction".to_string())
                })?;
                Ok(WlanTest::Dir(v))
            }
        }
    }

    /// A number within `mask` or a name for one.
    fn wlan_value(
        &mut self,
        mask: u8,
        bad_number: &str,
        by_name: impl Fn(&str) -> Result<u8, String>,
    ) -> PResult<u8> {
        let span = self.here();
        match self.peek().cloned() {
            Some(Tok::Num(v)) => {
                self.pos += 1;
                if v & !u32::from(mask) != 0 {
                    let msg = if mask == 0x03 {
                        format!("{bad_number} 0x{v:x}")
                    } else {
                        format!("{bad_number} 0x{v:02x}")
                    };
                    return Err(self.value_error(span, msg));
                }
                Ok(v as u8)
            }
            Some(Tok::Name { text, .. }) => {
                self.pos += 1;
                by_name(&text).map_err(|m| self.value_error(span, m))
            }
            _ => Err(self.expected("an 802.11 value (a number or a name)")),
        }
    }
}
