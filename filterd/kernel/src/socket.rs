//! Socket filters: `SO_ATTACH_FILTER` (classic BPF), `SO_ATTACH_BPF` (a
//! loaded eBPF program) and `SO_DETACH_FILTER`; and reading a socket's
//! kind (`SO_DOMAIN`, `SO_TYPE`, ...) to know what its filter will see.
//!
//! A socket has one filter slot: classic and eBPF programs replace each
//! other, and [`detach`] removes whichever is there (`SO_DETACH_BPF` is the
//! same option). Attaching over a filter replaces it atomically: the
//! kernel publishes the new filter with one pointer store, so each packet
//! runs the old program or the new one, never none.
//!
//! The kernel checks a classic program when it is attached, so attaching
//! to a throwaway socket is also how tests ask the kernel whether it
//! accepts a program. None of these calls needs privileges: any process
//! may filter its own sockets.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use filter_programs::cbpf::Insn;

/// `setsockopt(sock, SOL_SOCKET, opt, value, sizeof value)`.
fn set_option<T>(sock: BorrowedFd<'_>, opt: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: value is a readable T alive for the call and its size is
    // passed exactly; the socket options used here only read it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt(sock, SOL_SOCKET, opt)` for an `int` option (`SO_DOMAIN`,
/// `SO_TYPE`, `SO_PROTOCOL`, ...).
pub fn int_option(sock: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v is writable for len bytes, and len is a writable socklen_t.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Attaches `prog` as the socket filter of `sock`, replacing any filter
/// already there. The kernel validates the program first; a program it
/// refuses gives `EINVAL` (or `ENOMEM` when its translation is larger than
/// the socket's option memory, `net.core.optmem_max`).
pub fn attach_classic(sock: BorrowedFd<'_>, prog: &[Insn]) -> io::Result<()> {
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
    set_option(sock, libc::SO_ATTACH_FILTER, &fprog)
}

/// Attaches the loaded socket-filter program `prog` (one of
/// [`crate::load`]'s with `Hook::Socket`, or any other) to `sock`,
/// replacing any filter already there. The socket takes its own reference
/// on the program.
pub fn attach_ebpf(sock: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let prog_fd: libc::c_int = prog.as_raw_fd();
    set_option(sock, libc::SO_ATTACH_BPF, &prog_fd)
}

/// Removes the filter of `sock`, classic or eBPF. Fails with `ENOENT`
/// when it has none.
pub fn detach(sock: BorrowedFd<'_>) -> io::Result<()> {
    let unused: libc::c_int = 0;
    set_option(sock, libc::SO_DETACH_FILTER, &unused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn a_udp_socket_says_what_it_is() {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        assert_eq!(
            int_option(sock.as_fd(), libc::SO_DOMAIN).ok(),
            Some(libc::AF_INET)
        );
        assert_eq!(
            int_option(sock.as_fd(), libc::SO_TYPE).ok(),
            Some(libc::SOCK_DGRAM)
        );
        assert_eq!(
            int_option(sock.as_fd(), libc::SO_PROTOCOL).ok(),
            Some(libc::IPPROTO_UDP)
        );
    }

    #[test]
    fn attach_detach_round_trip() {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        let accept_all = [Insn::new(0x06, 0, 0, u32::MAX)];
        attach_classic(sock.as_fd(), &accept_all).expect("attach");
        detach(sock.as_fd()).expect("detach");
        let err = detach(sock.as_fd()).expect_err("nothing left to detach");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn refused_program_is_einval() {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        let no_ret = [Insn::new(0x28, 0, 0, 12)];
        let err = attach_classic(sock.as_fd(), &no_ret).expect_err("no final ret");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        let err = attach_classic(sock.as_fd(), &[]).expect_err("empty");
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
        attach_classic(rx.as_fd(), &prog).expect("attach");
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

    #[test]
    fn ebpf_filter_attaches_and_detaches() {
        if !e2e::kernel_available("socket::tests::ebpf_filter") {
            return;
        }
        use filter_programs::ebpf::insn::Insn as EInsn;
        // mov r0, 0; exit: keeps no byte of any packet.
        let drop_all = [EInsn::new(0xb7, 0, 0, 0, 0), EInsn::new(0x95, 0, 0, 0, 0)];
        let prog =
            crate::load(filter_programs::Hook::Socket, &drop_all, "drop_all").expect("loads");
        let rx = UdpSocket::bind("127.0.0.1:0").expect("rx");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("tx");
        rx.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("timeout");
        let to = rx.local_addr().expect("addr");
        let mut buf = [0u8; 16];
        attach_ebpf(rx.as_fd(), prog.as_fd()).expect("attach");
        tx.send_to(b"dropped", to).expect("send");
        assert!(rx.recv(&mut buf).is_err(), "drop_all drops");
        detach(rx.as_fd()).expect("detach");
        tx.send_to(b"kept", to).expect("send");
        assert_eq!(rx.recv(&mut buf).ok(), Some(4), "no filter after detach");
    }
}
