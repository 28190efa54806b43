//! Maps: finding this process's own map descriptors by map id, and
//! writing entries whose sizes are known only at run time.
//!
//! `BPF_MAP_GET_FD_BY_ID` needs CAP_SYS_ADMIN, which the filterd daemon
//! runs without; a map the process already holds open is found through
//! `/proc/self/fdinfo` instead.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::attr::{addr, sys_bpf, Cmd, MapElemAttr};

/// `bpf_map_update_elem(map, key, value, BPF_ANY)`. The map's key and
/// value sizes are checked against the slices first, so the kernel never
/// reads past them.
pub fn update(map: BorrowedFd<'_>, sizes: (u32, u32), key: &[u8], value: &[u8]) -> io::Result<()> {
    if key.len() != sizes.0 as usize || value.len() != sizes.1 as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a {}-byte key and {}-byte value for a map of {} and {}",
                key.len(),
                value.len(),
                sizes.0,
                sizes.1
            ),
        ));
    }
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: addr(key.as_ptr()),
        value: addr(value.as_ptr()),
        ..MapElemAttr::default()
    };
    // SAFETY: key and value are live slices of the map's key and value
    // sizes (checked above), which is all the kernel reads.
    unsafe { sys_bpf(Cmd::MapUpdateElem, &mut attr) }.map(|_| ())
}

/// A new fd on map `id`, which this process already holds open, found
/// through /proc/self/fdinfo. The caller checks the map it got (an fd
/// number may be reused meanwhile).
pub fn dup_own(id: u32) -> io::Result<Option<OwnedFd>> {
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
            // SAFETY: fcntl on a descriptor number takes no memory; a
            // number closed meanwhile fails with EBADF.
            let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
            if dup >= 0 {
                // SAFETY: F_DUPFD_CLOEXEC returned a fresh descriptor that
                // nothing else owns.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(dup) }));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_this_process_does_not_hold_is_none() {
        assert!(dup_own(u32::MAX).expect("fdinfo readable").is_none());
    }
}
