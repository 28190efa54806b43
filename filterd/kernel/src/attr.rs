//! The `bpf(2)` system call: its command numbers, one `#[repr(C)]`
//! argument struct per command, and the one wrapper every call goes
//! through.
//!
//! # The layout of `union bpf_attr`
//!
//! `bpf(cmd, attr, size)` takes a pointer to `union bpf_attr`, a union of
//! one anonymous struct per command (or group of commands) in
//! `<linux/bpf.h>`. Each struct below is one of those members, with its
//! fields in the header's order and named as there: `__u32`/`__s32` as
//! `u32`/`i32`, and every pointer as an `__aligned_u64`, i.e. a `u64`
//! holding the address, so the layout is the same on 32- and 64-bit
//! systems. `repr(C)` then gives the kernel's offsets (each field
//! naturally aligned, the whole 8-aligned like the union).
//!
//! The kernel copies `size` bytes and reads everything past them as zero;
//! bytes past its own union must be zero. So a struct here may stop after
//! the last field this crate uses: the fields it leaves out are zero,
//! which is what the kernel wants of fields nobody sets. Output fields
//! (`retval`, `duration`, ...) are written back into the same memory, so
//! every struct reaches at least its last output field.
//!
//! No struct has implicit padding: Rust leaves a padding byte's value
//! unspecified, and the kernel refuses (`EINVAL`) a non-zero byte after a
//! command's last field. Where alignment would pad, a `_tail` field that
//! is always zero stands in.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// `enum bpf_cmd`: the commands this crate issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Cmd {
    MapUpdateElem = 2,
    ProgLoad = 5,
    ObjPin = 6,
    ObjGet = 7,
    ProgTestRun = 10,
    ProgGetFdById = 13,
    ObjGetInfoByFd = 15,
    LinkUpdate = 29,
    LinkDetach = 34,
}

/// `BPF_PROG_LOAD`: the leading fields, through `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
}

/// `BPF_OBJ_PIN` and `BPF_OBJ_GET` share this member.
#[repr(C)]
#[derive(Default)]
pub(crate) struct ObjAttr {
    pub pathname: u64,
    pub bpf_fd: u32,
    pub file_flags: u32,
    pub path_fd: i32,
    pub _tail: u32,
}

/// `BPF_PROG_TEST_RUN`, whole: the kernel writes `retval`, `duration`
/// and the `*_size_out` fields back.
#[repr(C)]
#[derive(Default)]
pub(crate) struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    pub _tail: u32,
}

/// `BPF_PROG_GET_FD_BY_ID` (and the other `*_GET_FD_BY_ID` commands):
/// `id` is the union of `start_id`, `prog_id`, `map_id`, `btf_id` and
/// `link_id`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct GetFdByIdAttr {
    pub id: u32,
    pub next_id: u32,
    pub open_flags: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD`: `info` points at `info_len` bytes of the
/// object's `bpf_*_info` struct, which the kernel fills (and it sets
/// `info_len` to what it wrote).
#[repr(C)]
#[derive(Default)]
pub(crate) struct InfoByFdAttr {
    pub bpf_fd: u32,
    pub info_len: u32,
    pub info: u64,
}

/// `BPF_LINK_UPDATE`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct LinkUpdateAttr {
    pub link_fd: u32,
    pub new_prog_fd: u32,
    pub flags: u32,
    pub old_prog_fd: u32,
}

/// `BPF_MAP_UPDATE_ELEM`: `key` and `value` point at the map's key and
/// value sizes.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}

/// `BPF_LINK_DETACH`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct LinkDetachAttr {
    pub link_fd: u32,
}

/// The structs above, and only they, may be handed to [`sys_bpf`]: each
/// is `repr(C)`, laid out as its member of `union bpf_attr`.
pub(crate) trait Attr {}
impl Attr for ProgLoadAttr {}
impl Attr for ObjAttr {}
impl Attr for TestRunAttr {}
impl Attr for GetFdByIdAttr {}
impl Attr for InfoByFdAttr {}
impl Attr for LinkUpdateAttr {}
impl Attr for LinkDetachAttr {}
impl Attr for MapElemAttr {}

/// A user-space address as the kernel takes it in a `bpf_attr` field.
pub(crate) fn addr<T>(p: *const T) -> u64 {
    p as usize as u64
}

/// `bpf(cmd, attr, sizeof attr)`: the syscall's non-negative result, or
/// the errno.
///
/// # Safety
///
/// Every address in `attr` (`insns`, `log_buf`, `data_in`, `info`, ...)
/// points at memory valid, for the whole call, for what `cmd` does with it:
/// readable for the length given beside it, or writable for output
/// buffers; NUL-terminated for path names. Zero addresses are fine where
/// the command treats them as absent.
pub(crate) unsafe fn sys_bpf<A: Attr>(cmd: Cmd, attr: &mut A) -> io::Result<i64> {
    // SAFETY: attr is a live, exclusively borrowed, repr(C) bpf_attr
    // member of exactly the size passed, so the kernel reads and writes
    // only inside it; the addresses inside it are valid by this
    // function's contract.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_int,
            attr as *mut A,
            std::mem::size_of::<A>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as i64)
    }
}

/// [`sys_bpf`] for the commands whose result is a new file descriptor
/// (`BPF_PROG_LOAD`, `BPF_OBJ_GET`, `BPF_*_GET_FD_BY_ID`).
///
/// # Safety
///
/// As [`sys_bpf`], and `cmd` is one of those commands.
pub(crate) unsafe fn sys_bpf_fd<A: Attr>(cmd: Cmd, attr: &mut A) -> io::Result<OwnedFd> {
    // SAFETY: the caller upholds sys_bpf's contract.
    let fd = unsafe { sys_bpf(cmd, attr)? };
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::other("bpf() returned no fd"))?;
    // SAFETY: on success these commands return a descriptor the kernel
    // just opened for this process, which nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    // Offsets from <linux/bpf.h>, so a typo in a field list cannot ship.
    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(size_of::<ProgLoadAttr>(), 72);
        assert_eq!(offset_of!(ObjAttr, path_fd), 16);
        assert_eq!(offset_of!(TestRunAttr, data_in), 16);
        assert_eq!(offset_of!(TestRunAttr, duration), 36);
        assert_eq!(offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(offset_of!(TestRunAttr, batch_size), 72);
        assert_eq!(offset_of!(InfoByFdAttr, info), 8);
        assert_eq!(offset_of!(LinkUpdateAttr, old_prog_fd), 12);
        assert_eq!(size_of::<GetFdByIdAttr>(), 12);
        // No implicit padding: each size is the sum of its fields.
        assert_eq!(size_of::<ObjAttr>(), 8 + 4 * 4);
        assert_eq!(
            size_of::<TestRunAttr>(),
            4 * 4 + 2 * 8 + 4 * 4 + 2 * 8 + 4 * 4
        );
        assert_eq!(size_of::<InfoByFdAttr>(), 16);
        assert_eq!(size_of::<LinkUpdateAttr>(), 16);
    }
}
