//! The programs a run replays, loaded from files once, before any capture
//! is read.

use std::path::Path;

use filter_programs::cbpf::{text, Insn};

/// A program, with how the reports name it.
#[derive(Clone, Debug)]
pub struct Program {
    /// The file it came from, as given on the command line.
    pub label: String,
    /// The pcap-filter expression it was compiled from, when there is one.
    pub expression: Option<String>,
    pub code: Code,
}

/// What the program is, in the form the engines take.
#[derive(Clone, Debug)]
pub enum Code {
    /// Classic BPF instructions.
    Cbpf(Vec<Insn>),
    /// A pcap-filter expression, compiled for each link type met: by our
    /// compiler for our engines, by libpcap for the libpcap engine.
    Expr(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a tcpdump -d/-dd/-ddd program: {source}")]
    Parse {
        file: String,
        source: text::TextError,
    },
    #[error("{file}: the program is empty")]
    Empty { file: String },
}

/// Loads a classic BPF program in any of tcpdump's dump formats.
pub fn load_cbpf(path: &Path) -> Result<Program, ProgramError> {
    let file = path.display().to_string();
    let source = std::fs::read(path).map_err(|source| ProgramError::Read {
        file: file.clone(),
        source,
    })?;
    // Non-UTF-8 bytes cannot be part of a valid dump; lossy decoding lets
    // the parser point at them.
    let text = String::from_utf8_lossy(&source);
    let insns = text::parse(&text).map_err(|source| ProgramError::Parse {
        file: file.clone(),
        source,
    })?;
    if insns.is_empty() {
        return Err(ProgramError::Empty { file });
    }
    tracing::debug!(file, instructions = insns.len(), "loaded cBPF program");
    Ok(Program {
        label: file,
        expression: None,
        code: Code::Cbpf(insns),
    })
}

/// An expression given with `-e`.
pub fn from_expression(expr: &str, label: &str) -> Program {
    Program { label: label.to_string(), expression: Some(expr.to_string()), code: Code::Expr(expr.to_string()) }
}

/// The expressions of an `--expr-file`: one per line; blank lines and
/// lines starting with `#` are skipped. Each is labelled `FILE:LINE`.
pub fn load_expr_file(path: &Path) -> Result<Vec<Program>, ProgramError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ProgramError::Read { file: file.clone(), source })?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(n, l)| from_expression(l.trim(), &format!("{file}:{}", n + 1)))
        .collect())
}
