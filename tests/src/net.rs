//! A throwaway network namespace with a veth pair, entered with `setns` on
//! a thread of our own, and the raw AF_PACKET sockets the test uses.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::process::Command;

/// A network namespace that is deleted on drop, so also when the test
/// panics.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `fd-<tag>-<pid>` holding veth `v0` <-> `v1`, both up.
    pub fn with_veth(tag: &str) -> Netns {
        let ns = Netns {
            name: format!("fd-{tag}-{}", std::process::id()),
        };
        // A namespace left over by a killed run of this same pid would make
        // `add` fail; deleting first keeps reruns clean.
        let _ = Command::new("ip")
            .args(["netns", "delete", &ns.name])
            .output();
        run(Command::new("ip").args(["netns", "add", &ns.name]));
        // Without IPv6 the kernel sends no router or neighbour solicitations
        // on the pair. Not required (foreign frames are told apart by their
        // source MAC), just less noise.
        ns.enter(|| {
            for p in ["all", "default"] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{p}/disable_ipv6"), "1");
            }
        });
        ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
        ns.ip(&["link", "set", "v0", "up"]);
        ns.ip(&["link", "set", "v1", "up"]);
        ns
    }

    /// The namespace's name, as `ip netns` lists it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file, for `nsenter --net=<path>`: unlike
    /// `ip netns exec`, nsenter keeps the host's /sys, so bpffs pins made
    /// inside stay visible.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs `ip -n <ns> ARGS`, panicking on failure.
    pub fn ip(&self, args: &[&str]) {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args));
    }

    /// Runs `f` on a new thread that has joined the namespace; sockets it
    /// opens live there. A panic in `f` is re-raised here, after which
    /// `Drop` still deletes the namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: a valid namespace fd; setns only affects this thread.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", io::Error::last_os_error());
                f()
            });
            match worker.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The interface index of `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> i32 {
    let c = CString::new(name).expect("no NUL");
    // SAFETY: c is a NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {name}: {}", io::Error::last_os_error());
    i as i32
}

const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_STATISTICS: libc::c_int = 6;
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// `struct tpacket_auxdata` from <linux/if_packet.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aux {
    pub status: u32,
    pub len: u32,
    pub snaplen: u32,
    pub mac: u16,
    pub net: u16,
    pub vlan_tci: u16,
    pub vlan_tpid: u16,
}

/// An AF_PACKET SOCK_RAW socket: it sees frames from the MAC header.
pub struct PacketSocket(OwnedFd);

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(())
    }
}

fn setsockopt<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    opt: libc::c_int,
    v: &T,
    what: &str,
) -> io::Result<()> {
    // SAFETY: v is readable for size_of::<T>() bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as u32,
        )
    };
    check(rc, what)
}

impl PacketSocket {
    /// Protocol 0: the socket receives nothing until `bind`, so a filter
    /// can be attached before the first frame reaches it.
    pub fn new() -> io::Result<PacketSocket> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        check(fd, "socket(AF_PACKET)")?;
        // SAFETY: fd is a fresh descriptor we own.
        let s = PacketSocket(unsafe { OwnedFd::from_raw_fd(fd) });
        // Room for every frame of a round: a drop would look like a verdict.
        setsockopt(
            s.as_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &(8i32 << 20),
            "SO_RCVBUFFORCE",
        )?;
        Ok(s)
    }

    fn addr(ifindex: i32, protocol: u16) -> libc::sockaddr_ll {
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        a.sll_family = libc::AF_PACKET as u16;
        a.sll_protocol = protocol.to_be();
        a.sll_ifindex = ifindex;
        a
    }

    /// Starts receiving every protocol on `ifindex`.
    pub fn bind_all(&self, ifindex: i32) -> io::Result<()> {
        let a = Self::addr(ifindex, libc::ETH_P_ALL as u16);
        // SAFETY: a is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                self.0.as_raw_fd(),
                (&a as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        check(rc, "bind(AF_PACKET)")
    }

    pub fn enable_auxdata(&self) -> io::Result<()> {
        setsockopt(
            self.as_fd(),
            libc::SOL_PACKET,
            PACKET_AUXDATA,
            &1i32,
            "PACKET_AUXDATA",
        )
    }

    /// Sends `frame` as is (MAC header included) out of `ifindex`.
    pub fn send(&self, ifindex: i32, frame: &[u8]) -> io::Result<()> {
        let a = Self::addr(ifindex, 0);
        // SAFETY: frame and a are valid for the sizes passed.
        let rc = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&a as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        check(rc as libc::c_int, "sendto(AF_PACKET)")
    }

    /// One queued frame and its auxiliary data (when enabled), or None when
    /// the queue is empty.
    pub fn recv(&self) -> io::Result<Option<(Vec<u8>, Option<Aux>)>> {
        let mut buf = vec![0u8; 4096];
        let mut ctrl = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctrl.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&ctrl);
        // SAFETY: msg points at live buffers of the sizes it states.
        let n = unsafe { libc::recvmsg(self.0.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        buf.truncate(n as usize);
        let mut aux = None;
        // SAFETY: the kernel filled msg_control with well-formed cmsgs; the
        // CMSG_* helpers walk them within msg_controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                    aux = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<Aux>()));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(Some((buf, aux)))
    }

    /// Frames dropped for lack of buffer space since the last call.
    pub fn drops(&self) -> io::Result<u32> {
        let mut stats = [0u32; 2]; // struct tpacket_stats { tp_packets, tp_drops }
        let mut len = std::mem::size_of_val(&stats) as libc::socklen_t;
        // SAFETY: stats is writable for len bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.0.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                stats.as_mut_ptr().cast(),
                &mut len,
            )
        };
        check(rc, "PACKET_STATISTICS")?;
        Ok(stats[1])
    }
}
