//! The two link calls aya 0.14 lacks: which interface a pinned XDP link
//! is on (`bpf_link_info.xdp.ifindex`) and `BPF_LINK_DETACH`, which
//! detaches even while another process (a `filterd stats`, bpftool) holds
//! the link open.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_DETACH: libc::c_long = 34;
pub const BPF_LINK_TYPE_XDP: u32 = 6;

fn sys_bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<()> {
    // SAFETY: attr is a zeroed 128-byte bpf_attr alive for the call; the
    // pointers in it (if any) point at live buffers of the sizes stated.
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
        Ok(())
    }
}

/// Opens a pinned BPF object as a plain fd (`BPF_OBJ_GET`).
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = [0u64; 16];
    attr[0] = c.as_ptr() as u64;
    // SAFETY: attr points at the NUL-terminated path, alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a successful BPF_OBJ_GET returns a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub link_type: u32,
    pub prog_id: u32,
    /// 0 once the interface is gone (the link is then defunct).
    pub ifindex: u32,
}

pub fn link_info(fd: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    let mut info = [0u64; 32];
    let mut attr = [0u64; 16];
    attr[0] = u64::from(fd.as_raw_fd() as u32) | ((std::mem::size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    // struct bpf_link_info: type @0, id @4, prog_id @8, union @16 (for
    // XDP: ifindex first).
    let word = |i: usize| (info[i / 2] >> (32 * (i % 2))) as u32;
    Ok(LinkInfo {
        link_type: word(0),
        prog_id: word(2),
        ifindex: word(4),
    })
}

pub fn link_detach(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(fd.as_raw_fd() as u32);
    sys_bpf(BPF_LINK_DETACH, &mut attr)
}

pub fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is NUL-terminated and only read.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// A new fd on map `id`, which this process already holds open, found
/// through /proc/self/fdinfo. `BPF_MAP_GET_FD_BY_ID` would do the same but
/// needs CAP_SYS_ADMIN, which the daemon runs without. The caller checks
/// the map it got (an fd number may be reused meanwhile).
pub fn dup_own_map(id: u32) -> io::Result<Option<OwnedFd>> {
    let want = id.to_string();
    for entry in std::fs::read_dir("/proc/self/fdinfo")?.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if text
            .lines()
            .any(|l| l.strip_prefix("map_id:").map(str::trim) == Some(want.as_str()))
        {
            // SAFETY: fcntl on a descriptor number; a closed one fails.
            let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
            if dup >= 0 {
                // SAFETY: a fresh descriptor that we own.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(dup) }));
            }
        }
    }
    Ok(None)
}
