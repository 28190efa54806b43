//! The pcap-filter (tcpdump filter language) front end: scanner, parser,
//! syntax tree, diagnostics and name tables, with libpcap 1.10 semantics
//! (plus master's `vxlan` and 802.11 `ba`/`bar` names, which the shared
//! corpus uses).
//!
//! The parser refuses what libpcap refuses before looking at the link type:
//! scanner errors, grammar errors, the checks libpcap's grammar actions
//! make (`'port' qualifier applied to IPv4 address`, 802.11/LLC/PF names),
//! and ids left without qualifiers (`tcp and 80`). Everything that depends
//! on the link type, on name resolution or on value ranges is code
//! generation's job.
//!
//! ```
//! use filter_programs::expr::{parse, ast::ExprKind};
//! let ast = parse("tcp port 80 or 443").unwrap();
//! assert!(matches!(ast.root.unwrap().kind, ExprKind::Or(..)));
//! let err = parse("port").unwrap_err();
//! assert!(err.render().contains("expected a port number or name after 'port'"));
//! ```

pub mod ast;
mod diag;
mod lexer;
pub mod names;
mod number;
mod parser;
mod pattern;
pub mod qualifiers;
mod sexp;
mod span;
mod token;
pub mod walk;

pub use ast::Ast;
pub use diag::{render, ErrorKind, ParseError};
pub use span::Span;

/// Parses a filter expression. An empty (or blank) expression is valid and
/// has no root: it accepts every packet.
pub fn parse(text: &str) -> Result<Ast, ParseError> {
    let toks = lexer::tokenize(text).map_err(|e| e.with_source(text))?;
    parser::parse_tokens(text, toks).map_err(|e| e.with_source(text))
}

/// Renders a parse error as plain text with a caret line under the
/// offending column (no colours), for CLIs and tests.
pub fn render_error(err: &ParseError) -> String {
    render(err)
}

#[cfg(test)]
mod tests;
