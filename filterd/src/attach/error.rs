//! One error type for loading and attaching, with the kinds a caller acts
//! on told apart: the input's fault, the verifier's refusal, a missing
//! interface, missing privileges, a mode the driver lacks.

use std::error::Error as StdError;
use std::io;

use filter_programs::ebpf::insn::Insn;

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The expression, classic program or ELF object is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The kernel verifier refused the program; `Display` shows its log
    /// beside our disassembly.
    #[error("{}", super::verifier::render(.errno, .log, .insns))]
    Verifier {
        errno: io::Error,
        log: String,
        insns: Vec<Insn>,
    },
    #[error("no network interface named {0:?} in this network namespace")]
    NoInterface(String),
    #[error(
        "{what}: {source}; loading and attaching BPF programs needs root, or \
         CAP_BPF with CAP_NET_ADMIN (and CAP_SYS_ADMIN to mount bpffs)"
    )]
    Permission { what: String, source: io::Error },
    #[error("{iface}: the driver does not support XDP in {mode} mode ({source})")]
    ModeUnsupported {
        iface: String,
        mode: &'static str,
        source: io::Error,
    },
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    NotAttached(String),
    #[error("{what}: {source}")]
    System { what: String, source: io::Error },
}

impl AttachError {
    /// True when the program itself is at fault (exit code 1 in the CLI).
    pub fn is_invalid_program(&self) -> bool {
        matches!(self, AttachError::Invalid(_) | AttachError::Verifier { .. })
    }

    /// Wraps any error, keeping EPERM/EACCES recognisable: a permission
    /// failure can surface from any syscall (map creation, load, attach,
    /// pin), always nested inside aya's errors.
    pub fn system(what: impl Into<String>, e: impl StdError + 'static) -> AttachError {
        let what = what.into();
        let errno = errno_of(&e);
        let source = match errno {
            Some(n) => io::Error::from_raw_os_error(n),
            None => io::Error::other(e.to_string()),
        };
        if matches!(errno, Some(libc::EPERM) | Some(libc::EACCES)) {
            return AttachError::Permission { what, source };
        }
        let detail = e.to_string();
        // Keep aya's wording when it says more than the bare errno.
        if errno.is_some() && detail != source.to_string() {
            return AttachError::System {
                what: format!("{what}: {detail}"),
                source,
            };
        }
        AttachError::System { what, source }
    }

    pub fn io(what: impl Into<String>, e: io::Error) -> AttachError {
        let what = what.into();
        match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => AttachError::Permission { what, source: e },
            _ => AttachError::System { what, source: e },
        }
    }
}

/// The innermost OS error number in an error chain.
pub fn errno_of(e: &(dyn StdError + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    let mut found = None;
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(n) = io.raw_os_error() {
                found = Some(n);
            }
        }
        if let Some(nl) = err.downcast_ref::<aya::sys::NetlinkError>() {
            if let Some(n) = nl.raw_os_error() {
                found = Some(n);
            }
        }
        cur = err.source();
    }
    found
}

/// Classifies a failed `BPF_PROG_LOAD`: a refusal with a log is the
/// verifier's; EPERM with no log is missing privileges.
pub(crate) fn load_error(e: aya::programs::ProgramError, program: &super::Program) -> AttachError {
    if let aya::programs::ProgramError::LoadError {
        io_error,
        verifier_log,
    } = &e
    {
        let log = verifier_log.to_string();
        let errno = io_error.raw_os_error();
        if log.trim().is_empty() && matches!(errno, Some(libc::EPERM) | Some(libc::EACCES)) {
            return AttachError::Permission {
                what: format!("loading program {}", program.name),
                source: io::Error::from_raw_os_error(errno.unwrap_or(libc::EPERM)),
            };
        }
        return AttachError::Verifier {
            errno: io::Error::from_raw_os_error(errno.unwrap_or(libc::EINVAL)),
            log,
            insns: program.insns.clone(),
        };
    }
    AttachError::system(format!("loading program {}", program.name), e)
}

/// Parses the object (creating its maps): a malformed object is the
/// input's fault, a refused map creation the system's.
pub(crate) fn parse_object(program: &super::Program) -> Result<aya::Ebpf, AttachError> {
    aya::Ebpf::load(&program.elf).map_err(|e| match e {
        aya::EbpfError::ParseError(p) => AttachError::Invalid(format!("the ELF object: {p}")),
        other => AttachError::system("creating the program's maps", other),
    })
}
