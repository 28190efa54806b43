//! The programs a run replays, loaded from files once, before any capture
//! is read.

use std::path::Path;

use filter_programs::cbpf::{text, Insn};
use filter_programs::ebpf::insn::Insn as EbpfInsn;
use filter_programs::elf::read as elf;
use filter_programs::Hook;

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
    /// eBPF instructions from an ELF object, for the hook its section
    /// names.
    Ebpf { insns: Vec<EbpfInsn>, hook: Hook },
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
    #[error("{file}: not a BPF object: {source}")]
    Elf {
        file: String,
        source: elf::ReadError,
    },
    #[error("{file}: {reason}")]
    Section { file: String, reason: String },
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
    Program {
        label: label.to_string(),
        expression: Some(expr.to_string()),
        code: Code::Expr(expr.to_string()),
    }
}

/// The expressions of an `--expr-file`: one per line; blank lines and
/// lines starting with `#` are skipped. Each is labelled `FILE:LINE`.
pub fn load_expr_file(path: &Path) -> Result<Vec<Program>, ProgramError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ProgramError::Read {
        file: file.clone(),
        source,
    })?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(n, l)| from_expression(l.trim(), &format!("{file}:{}", n + 1)))
        .collect())
}

/// Loads the program of one section of an ELF object. Without `section`
/// the object must hold exactly one program.
pub fn load_ebpf(path: &Path, section: Option<&str>) -> Result<Program, ProgramError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ProgramError::Read {
        file: file.clone(),
        source,
    })?;
    let progs = elf::programs(&bytes).map_err(|source| ProgramError::Elf {
        file: file.clone(),
        source,
    })?;
    let names = || {
        progs
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fail = |reason: String| ProgramError::Section {
        file: file.clone(),
        reason,
    };
    let prog = match section {
        Some(s) => progs
            .iter()
            .find(|p| p.name == s)
            .ok_or_else(|| fail(format!("no program section {s:?} (it has: {})", names())))?,
        None => match progs.as_slice() {
            [one] => one,
            [] => return Err(fail("no program section (no executable code)".into())),
            _ => {
                return Err(fail(format!(
                    "several program sections ({}): pick one with --section",
                    names()
                )))
            }
        },
    };
    let hook = Hook::of_section(&prog.name).ok_or_else(|| {
        fail(format!(
            "section {:?}: unknown hook (expected socket*, xdp*, classifier* or tc*)",
            prog.name
        ))
    })?;
    if prog.relocations > 0 {
        return Err(fail(format!(
            "section {:?} has {} relocations (maps or calls into other sections), which replay cannot resolve",
            prog.name, prog.relocations
        )));
    }
    if prog.functions.len() > 1 {
        return Err(fail(format!(
            "section {:?} holds {} programs ({}); replay takes one per section",
            prog.name,
            prog.functions.len(),
            prog.functions.join(", ")
        )));
    }
    tracing::debug!(
        file,
        section = prog.name,
        instructions = prog.insns.len(),
        "loaded eBPF program"
    );
    Ok(Program {
        label: format!("{file}:{}", prog.name),
        expression: None,
        code: Code::Ebpf {
            insns: prog.insns.clone(),
            hook,
        },
    })
}
