//! Classic BPF socket filters: `SO_ATTACH_FILTER` and `SO_DETACH_FILTER`.
//!
//! The kernel checks a classic program when it is attached, so attaching
//! to a throwaway socket is also how tests ask the kernel whether it
//! accepts a program. Neither call needs privileges: any process may
//! filter its own sockets.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use filter_programs::cbpf::Insn;

/// Attaches `prog` as the socket filter of `fd`, replacing any filter
/// already there. The kernel validates the program first; a program it
/// refuses gives `EINVAL` (or `ENOMEM` when its translation is larger than
/// the socket's option memory, `net.core.optmem_max`).
pub fn attach_classic_filter(fd: BorrowedFd<'_>, prog: &[Insn]) -> io::Result<()> {
    // The kernel takes the length as an unsigned short; anything longer
    // would be silently truncated, so refuse it here.
    let len = u16::try_from(prog.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "classic program of {} instructions: at most 65535 can be passed",
                prog.len()
            ),
        )
    })?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer; `Insn` has the
        // layout of `struct sock_filter`.
        filter: prog.as_ptr().cast_mut().cast::<libc::sock_filter>(),
    };
    // SAFETY: fprog points at `len` valid instructions for the duration of
    // the call, and its size is passed exactly.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes the socket filter of `fd`. Fails with `ENOENT` when it has none.
pub fn detach_filter(fd: BorrowedFd<'_>) -> io::Result<()> {
    let unused: libc::c_int = 0;
    // SAFETY: the option value is a readable int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DETACH_FILTER,
            (&unused as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn attach_detach_round_trip() {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        let accept_all = [Insn::new(0x06, 0, 0, u32::MAX)];
        attach_classic_filter(sock.as_fd(), &accept_all).expect("attach");
        detach_filter(sock.as_fd()).expect("detach");
        let err = detach_filter(sock.as_fd()).expect_err("nothing left to detach");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn refused_program_is_einval() {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        let no_ret = [Insn::new(0x28, 0, 0, 12)];
        let err = attach_classic_filter(sock.as_fd(), &no_ret).expect_err("no final ret");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        let err = attach_classic_filter(sock.as_fd(), &[]).expect_err("empty");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn filter_applies_to_traffic() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("rx");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("tx");
        rx.set_nonblocking(true).expect("nonblocking");
        // On a UDP socket the filter sees the UDP header first: the length
        // at offset 4 is 8 + payload. Drop 1-byte datagrams, keep others.
        let prog = [
            Insn::new(0x28, 0, 0, 4),
            Insn::new(0x15, 0, 1, 9),
            Insn::new(0x06, 0, 0, 0),
            Insn::new(0x06, 0, 0, u32::MAX),
        ];
        attach_classic_filter(rx.as_fd(), &prog).expect("attach");
        let to = rx.local_addr().expect("addr");
        tx.send_to(b"x", to).expect("send 1");
        tx.send_to(b"yy", to).expect("send 2");
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        for _ in 0..200 {
            match rx.recv(&mut buf) {
                Ok(n) => got.push(buf[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !got.is_empty() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
        assert_eq!(got, vec![b"yy".to_vec()]);
    }
}
