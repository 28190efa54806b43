//! A TPACKET_V3 receive ring on an AF_PACKET `SOCK_RAW` socket.
//!
//! The socket is opened with protocol 0, which registers no packet hook:
//! nothing is queued on it until `bind` names a protocol. The filter is
//! attached before the ring is mapped and before that `bind`, so the first
//! packet the ring ever holds has been through our program. (The drain in
//! [`Ring::open`] is there for the case where that assumption breaks, e.g.
//! a kernel that queues on protocol 0; it costs one failed `recv`.)
//!
//! The kernel fills whole blocks and hands each one over by setting
//! `TP_STATUS_USER` in its descriptor; we give it back by writing
//! `TP_STATUS_KERNEL`. A block is also handed over when it is not full once
//! `tp_retire_blk_tov` milliseconds have passed, which bounds how late a
//! packet shows up.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};

use crate::socket::SocketProgram;

/// Block size floor: big enough that a block holds many small packets.
const MIN_BLOCK: usize = 1 << 20;
const BLOCKS: usize = 8;
/// Only a validation unit for V3 (packets are variable length in a block).
const FRAME: usize = 2048;
/// How long a partly filled block waits before the kernel hands it over.
const RETIRE_MS: u32 = 10;

// <linux/if_packet.h>
const TPACKET_V3: libc::c_int = 2;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: u16 = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const ETH_P_8021Q: u16 = 0x8100;

// Offsets in `struct tpacket_block_desc` (the `hdr` union is 8-aligned).
const BLK_STATUS: usize = 8;
const BLK_NUM_PKTS: usize = 12;
const BLK_FIRST: usize = 16;
const BLK_LEN: usize = 20;

/// The outer VLAN tag the kernel took out of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    pub tpid: u16,
    pub tci: u16,
}

/// One packet in a block, as the kernel stored it.
#[derive(Debug)]
pub struct Packet<'a> {
    pub sec: u32,
    pub nsec: u32,
    /// The length on the wire (without the tag the kernel removed).
    pub len: u32,
    /// The bytes kept: the filter's return value, clipped to the packet.
    pub data: &'a [u8],
    pub tag: Option<Tag>,
}

/// Counters of `PACKET_STATISTICS` (they reset on every read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets the filter accepted, delivered or not.
    pub packets: u32,
    /// Of those, packets dropped because the ring was full.
    pub drops: u32,
}

pub struct Ring {
    fd: OwnedFd,
    map: *mut u8,
    block_size: usize,
    blocks: usize,
    next: usize,
}

// SAFETY: the mapping belongs to this value alone; moving it to another
// thread moves sole access with it.
unsafe impl Send for Ring {}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(())
    }
}

fn setsockopt<T>(fd: BorrowedFd<'_>, level: i32, opt: i32, v: &T, what: &str) -> io::Result<()> {
    // SAFETY: v is readable for size_of::<T>() bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    check(rc, what)
}

/// The interface index of `name`, with the name in the error.
pub fn ifindex(name: &str) -> io::Result<i32> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
    // SAFETY: c is NUL-terminated.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {name:?} in this network namespace"),
        ));
    }
    Ok(i as i32)
}

/// The block size for `snaplen`: a power of two that holds the largest
/// packet the filter keeps, with room for the headers.
fn block_size(snaplen: u32) -> usize {
    (snaplen as usize + 4096).next_power_of_two().max(MIN_BLOCK)
}

impl Ring {
    /// Opens the ring on `ifindex` with `filter` attached before any packet
    /// can arrive. `snaplen` sizes the blocks (the filter itself truncates).
    pub fn open(
        ifindex: i32,
        filter: &SocketProgram,
        snaplen: u32,
        promisc: bool,
    ) -> io::Result<Ring> {
        // SAFETY: plain socket(2); the fd is owned right after.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        check(raw, "socket(AF_PACKET, SOCK_RAW)")?;
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        filter
            .attach(fd.as_fd())
            .map_err(|e| io::Error::new(e.kind(), format!("SO_ATTACH_BPF: {e}")))?;
        drain(fd.as_fd())?;
        setsockopt(
            fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &TPACKET_V3,
            "PACKET_VERSION",
        )?;
        let block_size = block_size(snaplen);
        let req = libc::tpacket_req3 {
            tp_block_size: block_size as u32,
            tp_block_nr: BLOCKS as u32,
            tp_frame_size: FRAME as u32,
            tp_frame_nr: (block_size / FRAME * BLOCKS) as u32,
            tp_retire_blk_tov: RETIRE_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(
            fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            "PACKET_RX_RING",
        )?;
        let len = block_size * BLOCKS;
        // SAFETY: maps the ring the kernel just allocated for this fd.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("mmap of the ring: {e}")));
        }
        let ring = Ring {
            fd,
            map: map.cast(),
            block_size,
            blocks: BLOCKS,
            next: 0,
        };
        if promisc {
            // SAFETY: packet_mreq is plain data; all-zero is valid.
            let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
            mreq.mr_ifindex = ifindex;
            mreq.mr_type = PACKET_MR_PROMISC;
            // Dropped by the kernel when the socket closes, as tcpdump's is.
            setsockopt(
                ring.fd.as_fd(),
                libc::SOL_PACKET,
                PACKET_ADD_MEMBERSHIP,
                &mreq,
                "PACKET_MR_PROMISC",
            )?;
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check(rc, "bind(AF_PACKET)")?;
        Ok(ring)
    }

    fn block_ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: i < blocks, so the offset stays inside the mapping.
        unsafe { self.map.add(i * self.block_size) }
    }

    fn read_u32(&self, block: usize, off: usize) -> u32 {
        // SAFETY: off + 4 <= block_size for the descriptor fields read here;
        // volatile because the kernel writes the block concurrently.
        unsafe { std::ptr::read_volatile(self.block_ptr(block).add(off).cast::<u32>()) }
    }

    /// Waits up to `timeout_ms` for the next block the kernel has filled.
    /// `Ok(None)` on timeout or when a signal interrupted the wait.
    pub fn next_block(&mut self, timeout_ms: i32) -> io::Result<Option<Block<'_>>> {
        if self.read_u32(self.next, BLK_STATUS) & TP_STATUS_USER == 0 {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::Interrupted {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
            if pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
                return Err(io::Error::other(
                    "the capture socket reported an error (interface gone?)",
                ));
            }
            if self.read_u32(self.next, BLK_STATUS) & TP_STATUS_USER == 0 {
                return Ok(None);
            }
        }
        // The packets were written before the status: read them after it.
        fence(Ordering::Acquire);
        let index = self.next;
        self.next = (self.next + 1) % self.blocks;
        let num = self.read_u32(index, BLK_NUM_PKTS);
        let first = self.read_u32(index, BLK_FIRST) as usize;
        let len = (self.read_u32(index, BLK_LEN) as usize).min(self.block_size);
        // SAFETY: the block is ours until Block::drop hands it back, and
        // the slice lies inside the mapping.
        let bytes = unsafe { std::slice::from_raw_parts(self.block_ptr(index), self.block_size) };
        Ok(Some(Block {
            ring: self,
            index,
            bytes,
            len,
            remaining: num,
            at: first,
        }))
    }

    /// Reads and resets the kernel's counters.
    pub fn stats(&self) -> io::Result<Stats> {
        let mut s = [0u32; 3]; // struct tpacket_stats_v3
        let mut len = std::mem::size_of_val(&s) as libc::socklen_t;
        // SAFETY: s is writable for len bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                s.as_mut_ptr().cast(),
                &mut len,
            )
        };
        check(rc, "PACKET_STATISTICS")?;
        Ok(Stats {
            packets: s[0],
            drops: s[1],
        })
    }
}

impl AsFd for Ring {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what open mapped; nothing borrows it (a
        // Block borrows the Ring mutably).
        unsafe { libc::munmap(self.map.cast(), self.block_size * self.blocks) };
    }
}

/// Empties the socket's queue without reading into user memory.
fn drain(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut byte = 0u8;
    loop {
        // SAFETY: one writable byte; MSG_TRUNC discards the rest.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(())
            } else {
                Err(e)
            };
        }
    }
}

/// A block handed over by the kernel; handed back on drop.
pub struct Block<'r> {
    ring: &'r Ring,
    index: usize,
    bytes: &'r [u8],
    len: usize,
    remaining: u32,
    at: usize,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

impl<'r> Block<'r> {
    /// The next packet, `None` at the end of the block. A header pointing
    /// outside the block is an error rather than a wild read.
    pub fn next_packet(&mut self) -> io::Result<Option<Packet<'r>>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let b = &self.bytes[..self.len];
        let bad = || io::Error::other("malformed TPACKET_V3 block (packet header out of bounds)");
        let h = self.at;
        // struct tpacket3_hdr, field by field.
        let next = u32_at(b, h).ok_or_else(bad)? as usize;
        let sec = u32_at(b, h + 4).ok_or_else(bad)?;
        let nsec = u32_at(b, h + 8).ok_or_else(bad)?;
        let snaplen = u32_at(b, h + 12).ok_or_else(bad)? as usize;
        let len = u32_at(b, h + 16).ok_or_else(bad)?;
        let status = u32_at(b, h + 20).ok_or_else(bad)?;
        let mac = u16_at(b, h + 24).ok_or_else(bad)? as usize;
        let tci = u32_at(b, h + 32).ok_or_else(bad)?;
        let tpid = u16_at(b, h + 36).ok_or_else(bad)?;
        let data = self.bytes.get(h + mac..h + mac + snaplen).ok_or_else(bad)?;
        // libpcap's test: a non-zero TCI, or the flag for a zero one.
        let tag = (tci != 0 || status & TP_STATUS_VLAN_VALID != 0).then_some(Tag {
            tpid: if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                tpid
            } else {
                ETH_P_8021Q
            },
            tci: tci as u16,
        });
        self.remaining -= 1;
        self.at = h + next;
        Ok(Some(Packet {
            sec,
            nsec,
            len,
            data,
            tag,
        }))
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        // Our reads of the block happen before the kernel may reuse it.
        fence(Ordering::Release);
        let p = self.ring.block_ptr(self.index);
        // SAFETY: the status word is inside the block we own.
        unsafe { std::ptr::write_volatile(p.add(BLK_STATUS).cast::<u32>(), TP_STATUS_KERNEL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hold_the_snaplen_and_are_powers_of_two() {
        assert_eq!(block_size(96), MIN_BLOCK);
        assert_eq!(block_size(262_144), MIN_BLOCK);
        let big = block_size(2_000_000);
        assert!(big.is_power_of_two() && big >= 2_000_000 + 4096);
        assert_eq!(block_size(u32::MAX) % FRAME, 0);
    }

    #[test]
    fn missing_interface_is_named() {
        let e = ifindex("no-such-if0").expect_err("missing");
        assert!(e.to_string().contains("no-such-if0"), "{e}");
    }
}
