//! A `NETLINK_ROUTE` socket that sends one request and collects the
//! replies, until the end of a dump or the acknowledgement.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::wire::{Message, Request};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
pub(super) const NLM_F_ACK: u16 = 4;
pub(super) const NLM_F_DUMP: u16 = 0x300;

pub(super) struct Socket(OwnedFd);

impl Socket {
    pub fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2), no memory passed.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(Socket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sends message `kind` with `flags` and `body`, and returns the
    /// payloads of the replies of type `want`. A kernel error reply is the
    /// `Err`, with its errno.
    pub fn request(
        &self,
        kind: u16,
        flags: u16,
        body: &[u8],
        want: u16,
    ) -> io::Result<Vec<Vec<u8>>> {
        self.send(
            &Request {
                kind,
                flags: NLM_F_REQUEST | flags,
                seq: 1,
            }
            .emit(body),
        )?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let mut rest = self.recv(&mut buf)?;
            while let Some(next) = Message::split(rest) {
                let (m, after) = next.map_err(|_| io::Error::other("malformed netlink message"))?;
                match m.kind() {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        return match m.errno() {
                            0 => Ok(out),
                            errno => Err(io::Error::from_raw_os_error(errno)),
                        }
                    }
                    t if t == want => out.push(m.payload().to_vec()),
                    _ => {}
                }
                rest = after;
            }
        }
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; all zero but the family
        // addresses the kernel.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: msg and to are readable for the lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One datagram of replies.
    fn recv<'b>(&self, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(&buf[..n as usize])
    }
}
