//! BPF links aya 0.14 cannot handle when it did not create them: what a
//! link is (`bpf_link_info`), `BPF_LINK_UPDATE` and `BPF_LINK_DETACH`.
//! filterd opens its pinned links with [`crate::obj::get`] and manages
//! them through these after a restart.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::attr::{addr, sys_bpf, Cmd, InfoByFdAttr, LinkDetachAttr, LinkUpdateAttr};

/// `BPF_LINK_TYPE_XDP` from `enum bpf_link_type`.
pub const BPF_LINK_TYPE_XDP: u32 = 6;

/// What `bpf_link_info` says of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// `enum bpf_link_type`, e.g. [`BPF_LINK_TYPE_XDP`].
    pub link_type: u32,
    pub prog_id: u32,
    /// For XDP (and tcx) links; 0 once the device is gone.
    pub ifindex: u32,
}

/// `struct bpf_link_info`: its common head, then the union of one struct
/// per link type, which starts 8-aligned (some members hold a `u64`).
/// The union's size grows with kernels; 240 bytes leaves room, and bytes
/// the kernel does not know stay zero, as it requires.
#[repr(C)]
struct RawLinkInfo {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    /// For XDP and tcx links, `ifindex` is the first `u32`.
    per_type: [u32; 60],
}

/// The type, program and (for XDP) interface of the link `fd`.
pub fn info(fd: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    let mut info = RawLinkInfo {
        link_type: 0,
        id: 0,
        prog_id: 0,
        _pad: 0,
        per_type: [0; 60],
    };
    let mut attr = InfoByFdAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<RawLinkInfo>() as u32,
        info: addr(&mut info as *mut RawLinkInfo),
    };
    // SAFETY: info points at info_len writable bytes, alive for the call.
    unsafe { sys_bpf(Cmd::ObjGetInfoByFd, &mut attr)? };
    Ok(LinkInfo {
        link_type: info.link_type,
        prog_id: info.prog_id,
        ifindex: info.per_type[0],
    })
}

/// `BPF_LINK_UPDATE`: the link runs `prog` from now on. The kernel
/// publishes it with one pointer store, so no packet sees no program.
pub fn update(link: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = LinkUpdateAttr {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: prog.as_raw_fd() as u32,
        ..LinkUpdateAttr::default()
    };
    // SAFETY: the attr holds no addresses.
    unsafe { sys_bpf(Cmd::LinkUpdate, &mut attr) }.map(|_| ())
}

/// `BPF_LINK_DETACH`: detaches the link even while others hold it.
pub fn detach(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = LinkDetachAttr {
        link_fd: fd.as_raw_fd() as u32,
    };
    // SAFETY: the attr holds no addresses.
    unsafe { sys_bpf(Cmd::LinkDetach, &mut attr) }.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_type_union_starts_at_16() {
        assert_eq!(std::mem::offset_of!(RawLinkInfo, per_type), 16);
        assert_eq!(std::mem::size_of::<RawLinkInfo>(), 256);
    }
}
