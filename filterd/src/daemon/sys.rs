//! The raw bpf() calls the daemon needs beyond aya 0.14: the link calls
//! shared with `attach` (which interface a pinned XDP link is on,
//! `BPF_LINK_DETACH` even while another process holds the link open), and
//! finding its own map descriptors without CAP_SYS_ADMIN.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

pub use crate::attach::sys::{
    link_detach, link_info, link_update, obj_get, prog_fd_by_id, LinkInfo, BPF_LINK_TYPE_XDP,
};

/// The interface's index in this network namespace, if it exists.
pub fn ifindex(name: &str) -> Option<u32> {
    crate::attach::sys::ifindex(name).ok()
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
