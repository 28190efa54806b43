//! eBPF socket filters on sockets the caller owns: `SO_ATTACH_BPF`, and
//! replacing one filter with another.
//!
//! [`SocketProgram`] goes through aya: the instructions are written as an
//! ELF object in memory (`filter_programs::elf`), aya parses and loads it as
//! a `SocketFilter`, and aya's `attach` does the `setsockopt`. aya has no
//! way to adopt a program fd it did not load itself (only `from_pin`), so
//! programs loaded raw with [`bpf_kernel::load`] (what the corpus tests use,
//! for the verifier log on thousands of programs) are attached by
//! [`bpf_kernel::socket::attach_ebpf`].
//!
//! # Replacing a filter has no unfiltered moment
//!
//! Attaching to a socket that already has a filter replaces it in one step:
//! the kernel's `sk_attach_bpf` (and `sk_attach_filter` for classic
//! programs) builds the new `struct sk_filter`, then publishes it with
//! `rcu_assign_pointer(sk->sk_filter, new)` and only afterwards drops its
//! reference on the old one (`sk_filter_uncharge`, freed after an RCU grace
//! period). Every reader (`sk_filter_trim_cap`, `af_packet`'s `run_filter`)
//! dereferences `sk->sk_filter` once under `rcu_read_lock`, so each packet
//! runs either the old program or the new one, never none. Detaching and
//! then attaching does open a window, which is why [`SocketProgram::replace`]
//! exists and never detaches. The test `replace_never_lets_a_dropped_datagram_through`
//! in `tests/socket_kernel_converter.rs` checks this under traffic.
//!
//! A socket has one filter slot: classic (`SO_ATTACH_FILTER`) and eBPF
//! (`SO_ATTACH_BPF`) programs replace each other, and
//! [`bpf_kernel::socket::detach`] removes whichever is there. Dropping a
//! [`SocketProgram`] closes our program fd but does not detach it: the
//! socket holds its own reference.
//!
//! The return value of a socket program is the number of bytes to keep:
//! 0 drops the packet, anything at least its length keeps all of it.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use aya::programs::{ProgramError, SocketFilter, SocketFilterError};
use filter_programs::ebpf::insn::Insn;
use filter_programs::elf::{self, ElfError, Object};
use filter_programs::Hook;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("program name {0:?}: use 1 to 15 ASCII letters, digits or '_'")]
    BadName(String),
    #[error("writing the ELF object: {0}")]
    Elf(#[from] ElfError),
    #[error("aya could not read the object: {0}")]
    Parse(#[from] aya::EbpfError),
    #[error("loading the socket program: {0}")]
    Load(ProgramError),
}

/// A socket filter program loaded through aya, ready to attach to any
/// number of sockets.
#[derive(Debug)]
pub struct SocketProgram {
    ebpf: aya::Ebpf,
    name: String,
}

impl SocketProgram {
    /// Loads `insns` (the output of `translate(.., Target::socket())` or any
    /// socket filter) through the verifier. The verifier's log is in the
    /// error when it refuses.
    ///
    /// `name` is the ELF symbol and the kernel's program name, so it is
    /// held to what the kernel accepts in `prog_name` rather than silently
    /// rewritten.
    pub fn load(insns: &[Insn], name: &str) -> Result<SocketProgram, SocketError> {
        let valid = !name.is_empty()
            && name.len() <= 15
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(SocketError::BadName(name.to_string()));
        }
        let bytes = elf::write(&Object {
            hook: Hook::Socket,
            name: name.to_string(),
            insns: insns.to_vec(),
            maps: Vec::new(),
            map_refs: Vec::new(),
            license: "GPL".to_string(),
        })?;
        let mut ebpf = crate::object::load_own(&bytes)?;
        let filter: &mut SocketFilter = ebpf
            .program_mut(name)
            .ok_or(SocketError::Load(ProgramError::UnexpectedProgramType))?
            .try_into()
            .map_err(SocketError::Load)?;
        filter.load().map_err(SocketError::Load)?;
        Ok(SocketProgram {
            ebpf,
            name: name.to_string(),
        })
    }

    fn filter(&self) -> io::Result<&SocketFilter> {
        // Both lookups succeeded in `load` on this same object, so a
        // failure here is a broken invariant, reported rather than panicked.
        let prog = self.ebpf.program(&self.name).ok_or_else(|| {
            io::Error::other(format!("program {} vanished from its object", self.name))
        })?;
        prog.try_into()
            .map_err(|e: ProgramError| io::Error::other(e.to_string()))
    }

    /// Attaches the program as the filter of `sock`, replacing any filter
    /// (classic or eBPF) already there. See the module documentation.
    pub fn attach(&self, sock: BorrowedFd<'_>) -> io::Result<()> {
        self.filter()?.attach(sock).map_err(into_io)
    }

    /// Swaps the filter of `sock` for this program with no moment in which
    /// the socket is unfiltered. It is [`attach`](Self::attach): the kernel
    /// already replaces atomically; the name is here so callers do not
    /// reach for detach-then-attach, which is not atomic.
    pub fn replace(&self, sock: BorrowedFd<'_>) -> io::Result<()> {
        self.attach(sock)
    }

    /// The kernel's program fd, e.g. for `bpftool prog show fd`-style
    /// introspection.
    pub fn prog_fd(&self) -> io::Result<BorrowedFd<'_>> {
        Ok(self.filter()?.fd().map_err(into_io)?.as_fd())
    }
}

/// Keeps the errno of a failed `setsockopt` visible to callers (ENOENT,
/// EPERM for a locked filter, ...).
fn into_io(e: ProgramError) -> io::Error {
    match e {
        ProgramError::SocketFilterError(SocketFilterError::SetsockoptError {
            io_error, ..
        }) => io_error,
        other => io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpf_kernel::socket::{attach_ebpf, detach};
    use filter_programs::ebpf::asm::Asm;
    use filter_programs::ebpf::insn::{Operand, Reg};
    use filter_programs::Hook;
    use std::net::UdpSocket;

    fn ret(v: i32) -> Vec<Insn> {
        let mut a = Asm::new();
        a.mov64(Reg::R0, Operand::Imm(v));
        a.exit();
        a.assemble().expect("assembles")
    }

    fn receives(rx: &UdpSocket, tx: &UdpSocket, msg: &[u8]) -> bool {
        tx.send_to(msg, rx.local_addr().expect("addr"))
            .expect("send");
        let mut buf = [0u8; 64];
        rx.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("timeout");
        matches!(rx.recv(&mut buf), Ok(n) if &buf[..n] == msg)
    }

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        for name in ["", "has-dash", "sixteen_chars_xx", "nul\0"] {
            assert!(
                matches!(
                    SocketProgram::load(&ret(0), name),
                    Err(SocketError::BadName(_))
                ),
                "{name:?}"
            );
        }
    }

    #[test]
    fn aya_and_raw_paths_attach_replace_and_detach() {
        if !e2e::kernel_available("socket::tests::aya_and_raw_paths") {
            return;
        }
        let rx = UdpSocket::bind("127.0.0.1:0").expect("rx");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("tx");
        let drop_all = SocketProgram::load(&ret(0), "drop_all").expect("aya loads");
        assert!(drop_all.prog_fd().is_ok());
        drop_all.attach(rx.as_fd()).expect("attach");
        assert!(!receives(&rx, &tx, b"one"), "drop_all drops");

        let keep_all = bpf_kernel::load(Hook::Socket, &ret(-1), "keep_all").expect("raw load");
        attach_ebpf(rx.as_fd(), keep_all.as_fd()).expect("raw attach replaces");
        assert!(receives(&rx, &tx, b"two"), "keep_all keeps");

        drop_all.replace(rx.as_fd()).expect("replace");
        assert!(!receives(&rx, &tx, b"three"), "replaced back to drop_all");

        detach(rx.as_fd()).expect("detach");
        assert!(receives(&rx, &tx, b"four"), "no filter after detach");
        let err = detach(rx.as_fd()).expect_err("nothing to detach");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn verifier_refusal_is_a_load_error() {
        if !e2e::kernel_available("socket::tests::verifier_refusal") {
            return;
        }
        let mut a = Asm::new();
        a.mov64(Reg::R0, Operand::Reg(Reg::R2));
        a.exit();
        let err =
            SocketProgram::load(&a.assemble().expect("assembles"), "bad").expect_err("refused");
        assert!(matches!(err, SocketError::Load(_)), "{err}");
        assert!(err.to_string().contains("R2 !read_ok"), "{err}");
    }
}
