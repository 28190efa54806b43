//! Pinned objects: `BPF_OBJ_PIN` gives a program, map or link a path on
//! bpffs, which holds it after every fd is closed; `BPF_OBJ_GET` opens
//! that path as a plain fd, whatever kind of object it is (aya's
//! `from_pin` wants to know the kind first).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::attr::{addr, sys_bpf, sys_bpf_fd, Cmd, ObjAttr};

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Pins the object behind `fd` at `path`, which must be on bpffs and not
/// exist yet.
pub fn pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = c_path(path)?;
    let mut attr = ObjAttr {
        pathname: addr(c.as_ptr()),
        bpf_fd: fd.as_raw_fd() as u32,
        ..ObjAttr::default()
    };
    // SAFETY: pathname points at a NUL-terminated string alive for the call.
    unsafe { sys_bpf(Cmd::ObjPin, &mut attr) }.map(|_| ())
}

/// Opens the object pinned at `path`.
pub fn get(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    let mut attr = ObjAttr {
        pathname: addr(c.as_ptr()),
        ..ObjAttr::default()
    };
    // SAFETY: pathname points at a NUL-terminated string alive for the
    // call; BPF_OBJ_GET returns a new fd.
    unsafe { sys_bpf_fd(Cmd::ObjGet, &mut attr) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    use filter_programs::ebpf::insn::Insn;
    use filter_programs::Hook;

    fn check(rc: libc::c_int, what: &str) {
        assert_eq!(rc, 0, "{what}: {}", io::Error::last_os_error());
    }

    /// Runs `f` with a bpffs mounted on `dir`, in a thread of its own whose
    /// private mount namespace nobody else sees.
    fn with_private_bpffs(dir: &Path, f: impl FnOnce() + Send) {
        std::thread::scope(|s| {
            s.spawn(|| {
                let c = CString::new(dir.as_os_str().as_bytes()).unwrap();
                // SAFETY: unshare takes flags only. CLONE_NEWNS also
                // unshares this thread's fs_struct, so its mounts are its own.
                check(
                    unsafe { libc::unshare(libc::CLONE_NEWNS) },
                    "unshare(CLONE_NEWNS)",
                );
                // SAFETY: NUL-terminated strings; the flags make every
                // mount private, so nothing mounted here propagates out.
                let rc = unsafe {
                    libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    )
                };
                check(rc, "making / private");
                // SAFETY: NUL-terminated strings, no mount data.
                let rc = unsafe {
                    libc::mount(
                        c"bpf".as_ptr(),
                        c.as_ptr(),
                        c"bpf".as_ptr(),
                        0,
                        std::ptr::null(),
                    )
                };
                check(rc, "mounting bpffs");
                f();
                // SAFETY: a NUL-terminated path.
                check(
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) },
                    "umount",
                );
            });
        });
    }

    #[test]
    fn a_pinned_program_opens_again() {
        if !e2e::kernel_available("obj::tests::a_pinned_program_opens_again") {
            return;
        }
        let dir = std::env::temp_dir().join(format!("bpf-kernel-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        with_private_bpffs(&dir, || {
            // mov r0, 2; exit
            let insns = [Insn::new(0xb7, 0, 0, 0, 2), Insn::new(0x95, 0, 0, 0, 0)];
            let prog = crate::load(Hook::Xdp, &insns, "pinned").expect("loads");
            let at = dir.join("prog");
            pin(prog.as_fd(), &at).expect("pins");
            let again = pin(prog.as_fd(), &at).expect_err("the path is taken");
            assert_eq!(again.raw_os_error(), Some(libc::EEXIST));
            drop(prog);
            let fd = get(&at).expect("opens the pin");
            assert_eq!(
                crate::test_run(fd.as_fd(), &[0u8; 64], 1).unwrap().retval,
                2
            );
            let missing = get(&dir.join("none")).expect_err("nothing pinned there");
            assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
        });
        std::fs::remove_dir(&dir).unwrap();
    }
}
