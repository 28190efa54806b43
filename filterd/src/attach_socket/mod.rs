//! Filters on sockets an application owns (or takes from another process
//! with [`bpf_kernel::pidfd::take`]), compiled for what that kind of socket sees.
//!
//! | socket                                   | the filter sees        | compiled as            |
//! |------------------------------------------|------------------------|------------------------|
//! | `AF_PACKET` `SOCK_RAW` (Ethernet, lo)    | the frame from the MAC | link type EN10MB       |
//! | `AF_PACKET` `SOCK_DGRAM`                 | from the network header| RAW, then [`l3`] form  |
//! | `AF_INET`/`AF_INET6` TCP, UDP, raw       | the IP header via `SKF_NET_OFF` | RAW, then [`l3`] form |
//!
//! A classic program given by the user (`--cbpf`) follows the same rule: on
//! a link-layer socket it reads from the MAC header, elsewhere it is taken
//! to be written for link type RAW (IP at offset 0, as `tcpdump -y RAW -d`
//! prints) and rewritten likewise. An eBPF object is attached as it is.
//!
//! An accepting program keeps the whole packet: on a TCP or UDP socket the
//! return value trims the datagram or segment, so the snap length is the
//! maximum rather than tcpdump's 262144.
//!
//! Attaching replaces any filter already there in one step (see
//! [`crate::socket`]); [`detach`] removes it.

use std::io;
use std::os::fd::BorrowedFd;

use filter_programs::cbpf;
use filter_programs::codegen::{self, Dlt};
use filter_programs::ebpf::insn::Insn as EbpfInsn;
use filter_programs::translate::{self, Target};

use crate::socket::{SocketError, SocketProgram};

/// What an accepting program returns: keep everything.
const KEEP_ALL: u32 = u32::MAX;

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("the file descriptor is not a socket")]
    NotASocket,
    #[error("unsupported socket kind: {0}; filters go on AF_PACKET, AF_INET and AF_INET6 sockets")]
    Unsupported(SocketKind),
    #[error("{0}")]
    Compile(String),
    #[error("{0}")]
    Rewrite(#[from] filter_programs::codegen::socket::RewriteError),
    #[error(
        "len, greater and less are not available on a {0} socket: its filter runs after the IP \
         header is removed, so the kernel's length is the transport length"
    )]
    LengthOnTransport(SocketKind),
    #[error("translating to eBPF: {0}")]
    Translate(#[from] translate::TranslateError),
    #[error("{0}")]
    Object(String),
    #[error("{0}")]
    Load(#[from] SocketError),
    #[error("{what}: {err}")]
    Io { what: &'static str, err: io::Error },
}

/// The socket's `SO_DOMAIN`, `SO_TYPE` and `SO_PROTOCOL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketKind {
    pub domain: i32,
    pub ty: i32,
    pub protocol: i32,
}

impl std::fmt::Display for SocketKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let domain = match self.domain {
            libc::AF_INET => "AF_INET".to_string(),
            libc::AF_INET6 => "AF_INET6".to_string(),
            libc::AF_PACKET => "AF_PACKET".to_string(),
            libc::AF_UNIX => "AF_UNIX".to_string(),
            libc::AF_NETLINK => "AF_NETLINK".to_string(),
            d => format!("family {d}"),
        };
        let ty = match self.ty {
            libc::SOCK_STREAM if self.protocol == libc::IPPROTO_TCP => "TCP".to_string(),
            libc::SOCK_DGRAM if self.protocol == libc::IPPROTO_UDP => "UDP".to_string(),
            libc::SOCK_STREAM => "SOCK_STREAM".to_string(),
            libc::SOCK_DGRAM => "SOCK_DGRAM".to_string(),
            libc::SOCK_RAW => "SOCK_RAW".to_string(),
            libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".to_string(),
            t => format!("type {t}"),
        };
        write!(f, "{domain} {ty}")
    }
}

/// Where a socket's filter finds the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// From the Ethernet header.
    LinkLayer,
    /// From the network header, through `SKF_NET_OFF`. `length_is_l3` says
    /// whether the kernel's `len` is still the IP length there.
    Network { length_is_l3: bool },
}

impl SocketKind {
    pub fn of(sock: BorrowedFd<'_>) -> Result<SocketKind, AttachError> {
        let get = |opt, what| {
            bpf_kernel::socket::int_option(sock, opt).map_err(|err| match err.raw_os_error() {
                Some(libc::ENOTSOCK) => AttachError::NotASocket,
                _ => AttachError::Io { what, err },
            })
        };
        Ok(SocketKind {
            domain: get(libc::SO_DOMAIN, "getsockopt(SO_DOMAIN)")?,
            ty: get(libc::SO_TYPE, "getsockopt(SO_TYPE)")?,
            protocol: get(libc::SO_PROTOCOL, "getsockopt(SO_PROTOCOL)")?,
        })
    }

    /// The compile context for this kind, or why there is none.
    pub fn context(&self) -> Result<Context, AttachError> {
        match (self.domain, self.ty) {
            (libc::AF_PACKET, libc::SOCK_RAW) => Ok(Context::LinkLayer),
            (libc::AF_PACKET, libc::SOCK_DGRAM) => Ok(Context::Network { length_is_l3: true }),
            // Raw IPv4 sockets get the packet with its IP header in place.
            (libc::AF_INET, libc::SOCK_RAW) => Ok(Context::Network { length_is_l3: true }),
            (
                libc::AF_INET | libc::AF_INET6,
                libc::SOCK_STREAM | libc::SOCK_DGRAM | libc::SOCK_RAW,
            ) => Ok(Context::Network {
                length_is_l3: false,
            }),
            _ => Err(AttachError::Unsupported(*self)),
        }
    }
}

/// A filter in any of the forms the CLI accepts.
#[derive(Clone, Debug)]
pub enum Filter {
    /// A pcap-filter expression.
    Expression(String),
    /// A classic program (see the module documentation for its framing).
    Classic(Vec<cbpf::Insn>),
    /// A socket filter already in eBPF, attached as it is.
    Ebpf(Vec<EbpfInsn>),
}

/// The classic program of `filter` in `ctx`'s form.
fn classic_for(
    kind: SocketKind,
    ctx: Context,
    filter: &Filter,
) -> Result<Vec<cbpf::Insn>, AttachError> {
    let prog = match filter {
        Filter::Expression(e) => {
            let link = if ctx == Context::LinkLayer {
                Dlt::En10mb
            } else {
                Dlt::Raw
            };
            let opts = codegen::Options {
                snaplen: KEEP_ALL,
                linux_ext: true,
                ..codegen::Options::new(link)
            };
            codegen::compile(e, &opts).map_err(|e| AttachError::Compile(e.render()))?
        }
        Filter::Classic(p) => p.clone(),
        Filter::Ebpf(_) => {
            return Err(AttachError::Object(
                "an eBPF program has no classic form".into(),
            ))
        }
    };
    match ctx {
        Context::LinkLayer => Ok(prog),
        Context::Network { length_is_l3 } => {
            if !length_is_l3 && filter_programs::codegen::socket::reads_length(&prog) {
                return Err(AttachError::LengthOnTransport(kind));
            }
            Ok(filter_programs::codegen::socket::to_network_relative(
                &prog,
            )?)
        }
    }
}

/// The eBPF socket program for `filter` on a socket of `kind`.
pub fn program_for(kind: SocketKind, filter: &Filter) -> Result<Vec<EbpfInsn>, AttachError> {
    let ctx = kind.context()?;
    if let Filter::Ebpf(insns) = filter {
        return Ok(insns.clone());
    }
    let classic = classic_for(kind, ctx, filter)?;
    Ok(translate::translate(
        &classic,
        Target::socket().with_loops(bpf_kernel::loops()),
    )?)
}

/// The socket filter of an ELF object: the one section named `socket*`, or
/// the only section. Objects with relocations (maps) are refused: nothing
/// here would create the maps.
pub fn ebpf_from_object(bytes: &[u8]) -> Result<Vec<EbpfInsn>, AttachError> {
    let progs = filter_programs::elf::read::programs(bytes)
        .map_err(|e| AttachError::Object(e.to_string()))?;
    let mut sockets: Vec<_> = progs
        .iter()
        .filter(|p| p.name.starts_with("socket"))
        .collect();
    if sockets.is_empty() && progs.len() == 1 {
        sockets = progs.iter().collect();
    }
    let [p] = sockets.as_slice() else {
        let names: Vec<_> = progs.iter().map(|p| p.name.as_str()).collect();
        return Err(AttachError::Object(format!(
            "expected one socket filter section (`socket`), found sections {names:?}"
        )));
    };
    if p.relocations > 0 {
        return Err(AttachError::Object(format!(
            "section {} uses maps (relocations), which are not supported here",
            p.name
        )));
    }
    Ok(p.insns.clone())
}

/// What [`attach`] did.
#[derive(Debug)]
pub struct Attached {
    pub kind: SocketKind,
    pub context: Context,
    /// The loaded program; dropping it leaves the filter on the socket.
    pub program: SocketProgram,
}

/// Compiles `filter` for `sock`'s kind and attaches it, replacing any
/// filter already there with no unfiltered moment.
pub fn attach(sock: BorrowedFd<'_>, filter: &Filter) -> Result<Attached, AttachError> {
    let kind = SocketKind::of(sock)?;
    let context = kind.context()?;
    let insns = program_for(kind, filter)?;
    let program = SocketProgram::load(&insns, "filterd_sock")?;
    program.replace(sock).map_err(|err| AttachError::Io {
        what: "setsockopt(SO_ATTACH_BPF)",
        err,
    })?;
    Ok(Attached {
        kind,
        context,
        program,
    })
}

/// Removes the filter of `sock`; `Ok(false)` when it had none.
pub fn detach(sock: BorrowedFd<'_>) -> Result<bool, AttachError> {
    SocketKind::of(sock)?;
    match bpf_kernel::socket::detach(sock) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(err) => Err(AttachError::Io {
            what: "setsockopt(SO_DETACH_BPF)",
            err,
        }),
    }
}

#[cfg(test)]
mod tests;
