//! Taking a file descriptor from another process: `pidfd_open(2)` (Linux
//! 5.3) and `pidfd_getfd(2)` (Linux 5.6), raw syscalls.
//!
//! The copy refers to the same open file, so a filter attached through it
//! is the other process's socket's filter. `pidfd_getfd` is allowed when
//! the caller may ptrace the target (`PTRACE_MODE_ATTACH_REALCREDS`): same
//! user and no Yama restriction, or CAP_SYS_PTRACE.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error("no process with pid {0}")]
    NoSuchProcess(i32),
    #[error(
        "not allowed to take a file descriptor from pid {0}: pidfd_getfd needs ptrace \
         permission over it (same user and ptrace_scope permitting, or CAP_SYS_PTRACE)"
    )]
    NotAllowed(i32),
    #[error("pid {pid} has no open file descriptor {fd}")]
    NoSuchFd { pid: i32, fd: i32 },
    #[error("this kernel has no {0} (needs Linux {1} or later)")]
    Unsupported(&'static str, &'static str),
    #[error("{0}: {1}")]
    Other(&'static str, io::Error),
}

/// The result of a syscall that returns a new descriptor, or its errno.
///
/// # Safety
///
/// `rc` is what such a syscall just returned, and nothing took it yet.
unsafe fn syscall_fd(rc: libc::c_long) -> Result<OwnedFd, io::Error> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: by the contract, a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) })
}

/// A pidfd for `pid`.
pub fn open(pid: i32) -> Result<OwnedFd, TakeError> {
    if pid <= 0 {
        return Err(TakeError::NoSuchProcess(pid));
    }
    // SAFETY: pidfd_open takes a pid and flags; no memory is passed.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: rc is pidfd_open's fresh result.
    unsafe { syscall_fd(rc) }.map_err(|e| match e.raw_os_error() {
        Some(libc::ESRCH) => TakeError::NoSuchProcess(pid),
        Some(libc::ENOSYS) => TakeError::Unsupported("pidfd_open", "5.3"),
        _ => TakeError::Other("pidfd_open", e),
    })
}

/// A duplicate of file descriptor `fd` of process `pid`.
pub fn take(pid: i32, fd: i32) -> Result<OwnedFd, TakeError> {
    let pidfd = open(pid)?;
    if fd < 0 {
        return Err(TakeError::NoSuchFd { pid, fd });
    }
    // SAFETY: pidfd_getfd takes two descriptors and flags; no memory.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    // SAFETY: rc is pidfd_getfd's fresh result.
    unsafe { syscall_fd(rc) }.map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => TakeError::NotAllowed(pid),
        Some(libc::EBADF) => TakeError::NoSuchFd { pid, fd },
        Some(libc::ESRCH) => TakeError::NoSuchProcess(pid),
        Some(libc::ENOSYS) => TakeError::Unsupported("pidfd_getfd", "5.6"),
        _ => TakeError::Other("pidfd_getfd", e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn own_descriptor_is_the_same_open_file() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let copy = match take(std::process::id() as i32, sock.as_raw_fd()) {
            Err(TakeError::Unsupported(..)) => return, // an old kernel: nothing to test
            other => other.expect("own process"),
        };
        // Same device and inode: the same open file (kcmp is not needed).
        // SAFETY: libc::stat is plain data, valid when zeroed.
        let (mut a, mut b): (libc::stat, libc::stat) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        // SAFETY: two open descriptors and writable stat buffers.
        unsafe {
            assert_eq!(libc::fstat(sock.as_raw_fd(), &mut a), 0);
            assert_eq!(libc::fstat(copy.as_raw_fd(), &mut b), 0);
        }
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
    }

    #[test]
    fn missing_process_and_fd_are_named() {
        assert!(matches!(take(0, 0), Err(TakeError::NoSuchProcess(0))));
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(matches!(
            take(i32::MAX, 0),
            Err(TakeError::NoSuchProcess(_))
        ));
        let me = std::process::id() as i32;
        match take(me, 1_000_000) {
            Err(TakeError::NoSuchFd { fd: 1_000_000, .. }) | Err(TakeError::Unsupported(..)) => {}
            other => panic!("{other:?}"),
        }
    }
}
