//! The few raw calls aya 0.14 does not offer: the interface and the
//! program of a pinned link (`bpf_link_info`), `BPF_LINK_DETACH`,
//! `BPF_LINK_UPDATE` on a link aya did not create, a program by id, and
//! opening a pin as a plain fd.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::AttachError;

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_DETACH: libc::c_long = 34;
pub const BPF_LINK_TYPE_XDP: u32 = 6;

fn sys_bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<i64> {
    // SAFETY: attr is a zero-padded 128-byte bpf_attr, alive for the call;
    // any pointers in it point at live buffers of the sizes given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens a pinned object (`BPF_OBJ_GET`).
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = [0u64; 16];
    attr[0] = c.as_ptr() as u64;
    let fd = sys_bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: a successful BPF_OBJ_GET returns a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// What `bpf_link_info` says of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub link_type: u32,
    pub prog_id: u32,
    /// For XDP (and tcx) links; 0 once the device is gone.
    pub ifindex: u32,
}

pub fn link_info(fd: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    let mut info = [0u64; 32];
    let mut attr = [0u64; 16];
    attr[0] = u64::from(fd.as_raw_fd() as u32) | ((std::mem::size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    // type u32 @0, id @4, prog_id @8, then the per-type union @16.
    let w = |i: usize| (info[i / 2] >> (32 * (i % 2))) as u32;
    Ok(LinkInfo {
        link_type: w(0),
        prog_id: w(2),
        ifindex: w(4),
    })
}

/// `BPF_LINK_DETACH`: detaches the link even while others hold it.
pub fn link_detach(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(fd.as_raw_fd() as u32);
    sys_bpf(BPF_LINK_DETACH, &mut attr).map(|_| ())
}

/// `BPF_LINK_UPDATE`: the link runs `prog` from now on. The kernel
/// publishes it with one pointer store, so no packet sees no program.
pub fn link_update(link: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = [0u64; 16];
    // link_fd u32 @0, new_prog_fd u32 @4, flags u32 @8, old_prog_fd u32 @12.
    attr[0] = u64::from(link.as_raw_fd() as u32) | (u64::from(prog.as_raw_fd() as u32) << 32);
    sys_bpf(BPF_LINK_UPDATE, &mut attr).map(|_| ())
}

/// A new fd on the loaded program `id`; it keeps the program alive after
/// whatever ran it lets go.
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(id);
    let fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: a successful BPF_PROG_GET_FD_BY_ID returns a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub fn ifindex(ifname: &str) -> Result<u32, AttachError> {
    let c = CString::new(ifname).map_err(|_| AttachError::NoInterface(ifname.to_string()))?;
    // SAFETY: c is NUL-terminated.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(AttachError::NoInterface(ifname.to_string())),
        i => Ok(i),
    }
}

pub fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    // SAFETY: on success the buffer holds a NUL-terminated name.
    (!p.is_null()).then(|| {
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    })
}
