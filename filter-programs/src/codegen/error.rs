//! Compile errors as miette diagnostics, drawn like the parser's: the
//! message, the expression, and a caret under the primitive at fault.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, SourceCode};

use crate::expr::{ParseError, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The text does not parse (the parser's own diagnostic).
    Parse,
    /// libpcap refuses this expression too (for this link type, value or
    /// qualifier combination); the message is libpcap's.
    Semantic,
    /// Valid for libpcap, but this compiler does not implement it yet.
    Unsupported,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    pub kind: ErrorKind,
    message: String,
    span: Span,
    source: String,
    /// Boxed: a parse error is large and rare, compile results are many.
    parse: Option<Box<ParseError>>,
}

impl CompileError {
    pub(crate) fn new(kind: ErrorKind, span: Span, message: impl Into<String>, src: &str) -> Self {
        let mut source = src.to_string();
        let start = span.start.min(src.len());
        let end = span.end.clamp(start, src.len());
        let mut span = Span::new(start, end);
        if span.is_empty() {
            // Point at something visible, even at the end of the text.
            source.push(' ');
            span = Span::new(start, start + 1);
        }
        CompileError {
            kind,
            message: message.into(),
            span,
            source,
            parse: None,
        }
    }

    /// The error [`super::compile`] returns for an expression that does
    /// not parse.
    pub fn from_parse(e: ParseError) -> Self {
        CompileError {
            kind: ErrorKind::Parse,
            message: e.message().to_string(),
            span: e.span(),
            source: String::new(),
            parse: Some(Box::new(e)),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn span(&self) -> Span {
        self.span
    }

    /// The parse error, when the text did not parse.
    pub fn parse_error(&self) -> Option<&ParseError> {
        self.parse.as_deref()
    }

    /// Plain-text rendering with a caret line under the offending span.
    pub fn render(&self) -> String {
        match &self.parse {
            Some(p) => p.render(),
            None => crate::expr::render(self),
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CompileError {}

impl Diagnostic for CompileError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let code = match self.kind {
            ErrorKind::Parse => return self.parse.as_ref().and_then(|p| p.code()),
            ErrorKind::Semantic => "pcap_filter::codegen",
            ErrorKind::Unsupported => "pcap_filter::unsupported",
        };
        Some(Box::new(code))
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        match &self.parse {
            Some(p) => p.source_code(),
            None => Some(&self.source),
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if let Some(p) = &self.parse {
            return p.labels();
        }
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            None, self.span,
        ))))
    }
}
