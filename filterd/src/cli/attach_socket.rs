//! `filterd attach socket --pid PID --fd FD (EXPR | --cbpf FILE | --ebpf FILE.o | --detach)`:
//! a thin layer over [`crate::attach_socket`].

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;

use clap::Args;

use super::{fail, load_cbpf, Failure, EXIT_ERROR, EXIT_INVALID};
use crate::attach_socket::{self, AttachError, Context, Filter};
use bpf_kernel::pidfd;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    filterd attach socket --pid 1234 --fd 3 'udp and src net 10.0.0.0/8'\n  \
    filterd attach socket --pid 1234 --fd 3 --cbpf raw.ddd     # tcpdump -y RAW -ddd ...\n  \
    filterd attach socket --pid 1234 --fd 3 --detach\n\n\
    The socket is taken with pidfd_getfd (Linux 5.6+), which needs ptrace permission over\n\
    the process. AF_PACKET raw sockets get the filter at the link layer (Ethernet); TCP,\n\
    UDP and other IP sockets get it from the IP header. An existing filter is replaced\n\
    atomically. The filter stays on the socket after filterd exits.")]
pub struct SocketArgs {
    /// The process that owns the socket.
    #[arg(long)]
    pub pid: i32,
    /// The socket's file descriptor number in that process (see /proc/PID/fd).
    #[arg(long)]
    pub fd: i32,
    /// A classic program (tcpdump -d, -dd or -ddd output; "-" for stdin).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["expression", "ebpf", "detach"])]
    pub cbpf: Option<PathBuf>,
    /// An ELF object with one socket filter section (no maps).
    #[arg(long, value_name = "FILE.o", conflicts_with_all = ["expression", "detach"])]
    pub ebpf: Option<PathBuf>,
    /// Remove the socket's filter instead of attaching one.
    #[arg(long, conflicts_with = "expression")]
    pub detach: bool,
    /// The filter expression; its words are joined with spaces.
    #[arg(value_name = "EXPR", trailing_var_arg = true)]
    pub expression: Vec<String>,
}

fn failure(e: AttachError) -> Failure {
    let code = match e {
        AttachError::Compile(_)
        | AttachError::Rewrite(_)
        | AttachError::LengthOnTransport(_)
        | AttachError::Translate(_)
        | AttachError::Object(_)
        | AttachError::Load(_) => EXIT_INVALID,
        _ => EXIT_ERROR,
    };
    fail(code, e.to_string())
}

pub fn run(a: SocketArgs, out: &mut dyn Write) -> Result<(), Failure> {
    // Read and check the filter before touching the other process.
    let filter = if a.detach {
        None
    } else if let Some(path) = &a.cbpf {
        Some(Filter::Classic(load_cbpf(path)?))
    } else if let Some(path) = &a.ebpf {
        let bytes = std::fs::read(path)
            .map_err(|e| fail(EXIT_ERROR, format!("{}: {e}", path.display())))?;
        let insns = attach_socket::ebpf_from_object(&bytes)
            .map_err(|e| fail(EXIT_INVALID, format!("{}: {e}", path.display())))?;
        Some(Filter::Ebpf(insns))
    } else if a.expression.is_empty() {
        return Err(fail(
            EXIT_ERROR,
            "give a filter: EXPR, --cbpf FILE or --ebpf FILE.o (or --detach)",
        ));
    } else {
        Some(Filter::Expression(a.expression.join(" ")))
    };
    let sock = pidfd::take(a.pid, a.fd).map_err(|e| fail(EXIT_ERROR, e.to_string()))?;
    let target = format!("pid {} fd {}", a.pid, a.fd);
    let Some(filter) = filter else {
        let had = attach_socket::detach(sock.as_fd())
            .map_err(|e| fail(EXIT_ERROR, format!("{target}: {e}")))?;
        let _ = writeln!(
            out,
            "{}",
            if had {
                format!("detached the filter of {target}")
            } else {
                format!("{target} had no filter")
            }
        );
        return Ok(());
    };
    let attached = attach_socket::attach(sock.as_fd(), &filter).map_err(|e| {
        let mut f = failure(e);
        f.message = format!("{target}: {}", f.message);
        f
    })?;
    let form = match attached.context {
        Context::LinkLayer => "link layer (Ethernet)",
        Context::Network { .. } => "network layer (from the IP header)",
    };
    let _ = writeln!(
        out,
        "attached to {target} ({}): filter sees the packet from the {form}",
        attached.kind
    );
    Ok(())
}
