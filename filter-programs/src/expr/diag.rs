//! Parse errors as miette diagnostics: the expression, a label under the
//! offending column, and a message in tcpdump users' terms.

use std::fmt;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceCode};

use super::span::Span;

/// What stage refused the expression; all of them are decided from the text
/// alone, whatever the link type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The scanner refused a character or literal (libpcap: bad number,
    /// invalid IPv6/Ethernet address, illegal character).
    Lexical,
    /// The grammar does not allow this token here (libpcap: "can't parse
    /// filter expression: syntax error").
    Syntax,
    /// The tokens parse, but the qualifiers do not fit the id (libpcap:
    /// "'port' qualifier applied to IPv4 address", or an id with no
    /// qualifiers to inherit: "syntax error in filter expression").
    Qualifier,
    /// A keyword argument is not one of its known names or values (802.11
    /// types, LLC frame types, PF reasons and actions).
    Value,
}

impl ErrorKind {
    fn code(self) -> &'static str {
        match self {
            ErrorKind::Lexical => "pcap_filter::lexical",
            ErrorKind::Syntax => "pcap_filter::syntax",
            ErrorKind::Qualifier => "pcap_filter::qualifier",
            ErrorKind::Value => "pcap_filter::value",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ErrorKind,
    message: String,
    label: String,
    help: Option<String>,
    span: Span,
    source: String,
}

impl ParseError {
    pub fn new(kind: ErrorKind, span: Span, message: impl Into<String>) -> ParseError {
        ParseError {
            kind,
            message: message.into(),
            label: String::new(),
            help: None,
            span,
            source: String::new(),
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> ParseError {
        self.label = label.into();
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> ParseError {
        self.help = Some(help.into());
        self
    }

    /// Attaches the expression text; spans are clamped to it so a
    /// diagnostic can always be rendered.
    pub(crate) fn with_source(mut self, src: &str) -> ParseError {
        let clamp = |at: usize| {
            let mut at = at.min(src.len());
            while !src.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        let start = clamp(self.span.start);
        self.span = Span::new(start, clamp(self.span.end).max(start));
        self.source = src.to_string();
        if self.span.start == src.len() {
            // miette draws nothing for a label past the last character, so
            // "end of expression" errors get one blank column to point at.
            self.source.push(' ');
        }
        self
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where in the expression the problem is (byte offsets).
    pub fn span(&self) -> Span {
        self.span
    }

    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// The diagnostic as plain text (no colours): the message, the
    /// expression and a caret line under the offending span.
    pub fn render(&self) -> String {
        render(self)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

impl Diagnostic for ParseError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.kind.code()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'a>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let label = (!self.label.is_empty()).then(|| self.label.clone());
        let mut span = self.span;
        if span.is_empty() {
            // An empty label would not be drawn; underline the next character.
            let width = self.source[span.start.min(self.source.len())..]
                .chars()
                .next()
                .map_or(0, char::len_utf8);
            span = Span::new(span.start, span.start + width);
        }
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            label, span,
        ))))
    }
}

/// Renders any diagnostic as plain ASCII text, for CLIs and tests.
pub fn render(diag: &dyn Diagnostic) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::none()).with_width(200);
    let mut out = String::new();
    if handler.render_report(&mut out, diag).is_err() {
        // Rendering into a String cannot fail short of a fmt bug; keep the
        // message rather than nothing.
        out = diag.to_string();
    }
    out
}
