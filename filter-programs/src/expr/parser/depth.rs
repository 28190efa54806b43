//! The nesting limit, counted as libpcap counts it.
//!
//! libpcap's generated parser keeps a stack of states and gives up with
//! "memory exhausted" when an expression would need more than 9,999 of
//! them (bison's `YYMAXDEPTH` of 10,000). Counting the same entries lets
//! us refuse exactly the nestings libpcap refuses and accept all it
//! accepts. Each construct below costs the entries it leaves on that stack
//! while its inside is parsed, and reserves the fewest entries its inside
//! and closing token take, which are on the stack together before the
//! reduction; this reproduces the thresholds measured with tcpdump 4.99.3
//! / libpcap 1.10.3 (docs/LIBPCAP_DIFFERENCES.md). Multi-word primitives
//! inside the deepest level can take one or two entries more in libpcap
//! than reserved here.
//!
//! The parser and every walk of the tree keep their own stacks on the
//! heap at these nestings, so the limit is libpcap's, not ours.

use super::super::diag::{ErrorKind, ParseError};
use super::{PResult, Parser, MAX_DEPTH};

/// Entries on a stack's cost: (left on the stack while the inside is
/// parsed, further entries the inside needs at least).
pub(super) type Cost = (usize, usize);

/// The start state and the empty rule reduced before the first token.
pub(super) const START: usize = 2;
/// `(` ... `)`: the paren; the inside and `)`.
pub(super) const PAREN: Cost = (1, 2);
/// `not` ...: the `not`; its operand.
pub(super) const NOT: Cost = (1, 1);
/// Unary `-` ...: the minus; its operand.
pub(super) const NEG: Cost = (1, 1);
/// `proto [` ... `]`: the protocol and `[`; the index and `]`.
pub(super) const INDEX: Cost = (2, 2);
/// A keyword before a (parenthesized) number: `vlan`, `mpls`, ...
pub(super) const KEYWORD: Cost = (1, 0);
/// The right operand of `and`/`or`, of a comparison or of an arithmetic
/// operator: the left operand and the operator; the right operand.
pub(super) const CONNECTIVE: Cost = (2, 1);

impl Parser<'_> {
    /// Enters a construct costing `cost`, refusing it at the next token if
    /// libpcap's stack would overflow inside it.
    pub(super) fn enter(&mut self, (cost, reserve): Cost) -> PResult<()> {
        if self.depth + cost + reserve > MAX_DEPTH {
            return Err(self.too_deep());
        }
        self.depth += cost;
        Ok(())
    }

    pub(super) fn leave(&mut self, (cost, _): Cost) {
        self.depth -= cost;
    }

    fn too_deep(&self) -> ParseError {
        ParseError::new(
            ErrorKind::Syntax,
            self.here(),
            format!(
                "expression too deeply nested: more than {MAX_DEPTH} levels; the limit is {MAX_DEPTH}"
            ),
        )
        .with_label("one level too deep here")
        .with_help(
            "levels are counted as libpcap's parser stack counts them, which fails at the same \
             depth: each '(', 'not' and unary '-' takes one, a packet-field index and each \
             '%'/'^' operand two, plus a few for what surrounds them; 'and'/'or' chains and \
             other arithmetic chains of any length take none",
        )
    }
}
