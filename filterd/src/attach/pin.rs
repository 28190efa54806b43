//! Pin directories on bpffs: where they are by default, mounting bpffs
//! when it is missing, and undoing what a failed attach created.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::AttachError;

/// Everything filterd pins lives under here.
pub const ROOT: &str = "/sys/fs/bpf/filterd";
const BPFFS: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The directory under [`ROOT`] for the calling thread's network namespace:
/// `ROOT` itself in the initial namespace, `ROOT/netns-<inode>` elsewhere.
pub fn netns_scope() -> Result<PathBuf, AttachError> {
    let ours = std::fs::metadata("/proc/thread-self/ns/net")
        .map_err(|e| AttachError::io("/proc/thread-self/ns/net", e))?
        .ino();
    // Unreadable init namespace (a container without /proc/1): scope by
    // inode, which is always unambiguous.
    let init = std::fs::metadata("/proc/1/ns/net").map(|m| m.ino()).ok();
    Ok(if init == Some(ours) {
        PathBuf::from(ROOT)
    } else {
        Path::new(ROOT).join(format!("netns-{ours}"))
    })
}

/// `<scope>/<ifname>/<hook>`, `hook` being `xdp`, `tc-ingress` or `tc-egress`.
pub fn default_dir(ifname: &str, hook: &str) -> Result<PathBuf, AttachError> {
    if ifname.is_empty() || ifname.contains('/') || ifname == "." || ifname == ".." {
        return Err(AttachError::NoInterface(ifname.to_string()));
    }
    Ok(netns_scope()?.join(ifname).join(hook))
}

fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statfs is plain data; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Directories created by [`prepare`], removed again by [`Created::undo`]
/// when the attach they were for fails.
#[derive(Debug, Default)]
pub struct Created(Vec<PathBuf>);

impl Created {
    /// Removes the directories, innermost first; ones that are no longer
    /// empty stay (something else was pinned there meanwhile).
    pub fn undo(self) {
        for d in self.0.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Makes `dir` exist on bpffs: mounts bpffs on /sys/fs/bpf when `dir` is
/// under it and it is not mounted, then creates the missing directories.
pub fn prepare(dir: &Path) -> Result<Created, AttachError> {
    if !dir.is_absolute() {
        return Err(AttachError::Invalid(format!(
            "pin directory {}: use an absolute path",
            dir.display()
        )));
    }
    let mut existing = dir;
    while !existing.exists() {
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    let on_bpffs = is_bpffs(existing)
        .map_err(|e| AttachError::io(format!("statfs {}", existing.display()), e))?;
    if !on_bpffs {
        if !dir.starts_with(BPFFS)
            || !(existing == Path::new(BPFFS) || Path::new(BPFFS).starts_with(existing))
        {
            return Err(AttachError::Invalid(format!(
                "pin directory {}: {} is not on a bpf filesystem (mount one with `mount -t bpf bpf {BPFFS}`)",
                dir.display(),
                existing.display()
            )));
        }
        mount_bpffs()?;
    }
    let mut created = Created::default();
    let mut missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
    missing.reverse();
    for d in missing {
        if let Err(e) = std::fs::create_dir(d) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                created.undo();
                return Err(AttachError::io(format!("creating {}", d.display()), e));
            }
        } else {
            created.0.push(d.to_path_buf());
        }
    }
    Ok(created)
}

fn mount_bpffs() -> Result<(), AttachError> {
    std::fs::create_dir_all(BPFFS).map_err(|e| AttachError::io(format!("creating {BPFFS}"), e))?;
    let (src, target, fstype, opts) = (c"bpf", c"/sys/fs/bpf", c"bpf", c"mode=0700");
    // SAFETY: all pointers are NUL-terminated strings alive for the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            opts.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(AttachError::io(
            format!("mounting bpffs on {BPFFS}"),
            io::Error::last_os_error(),
        ));
    }
    tracing::info!("mounted bpffs on {BPFFS}");
    Ok(())
}

/// Removes a pin file; a missing one is not an error.
pub fn unpin(path: &Path) -> Result<(), AttachError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(AttachError::io(format!("unpinning {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// After a detach: removes `dir` and its parents up to (not including)
/// [`ROOT`] while they are empty.
pub fn remove_empty_dirs(dir: &Path) {
    for d in dir.ancestors() {
        if d == Path::new(ROOT) || !d.starts_with(ROOT) || std::fs::remove_dir(d).is_err() {
            break;
        }
    }
}

/// Staging name of a pin replaced by [`commit`] once the attach succeeded
/// (bpffs refuses names with a dot).
pub fn staging(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}_new_{}", std::process::id()))
}

/// Moves a staged pin into place (bpffs supports rename(2)).
pub fn commit(staged: &Path, dir: &Path, name: &str) -> Result<(), AttachError> {
    let to = dir.join(name);
    std::fs::rename(staged, &to).map_err(|e| {
        AttachError::io(
            format!("renaming {} to {}", staged.display(), to.display()),
            e,
        )
    })
}

/// Records a pin directory chosen with `--pin` (or a daemon's `[daemon]
/// pin`) where `filterd status` and `detach` look: a symlink at the default
/// place, `default`, naming `actual` (bpffs has symlinks). A real directory
/// at `default` (another attach's pins) is left alone. Failing to record
/// costs only the lookup, so it is a warning, not an error.
pub fn record(default: &Path, actual: &Path) {
    if default == actual {
        return;
    }
    match std::fs::symlink_metadata(default) {
        Ok(m) if m.file_type().is_symlink() => {
            let _ = std::fs::remove_file(default);
        }
        Ok(_) => {
            tracing::warn!(default = %default.display(), pin = %actual.display(),
                "the default pin directory is in use: `filterd status` will not name this pin");
            return;
        }
        Err(_) => {}
    }
    let made = default.parent().map_or(Ok(Created::default()), prepare);
    if let Err(e) = made.and_then(|_| {
        std::os::unix::fs::symlink(actual, default)
            .map_err(|e| AttachError::io(format!("recording {}", default.display()), e))
    }) {
        tracing::warn!(error = %e, "`filterd status` will not name {}", actual.display());
    }
}

/// The directory `dir` stands for: the target of a [`record`], else `dir`.
pub fn resolve(dir: &Path) -> PathBuf {
    std::fs::read_link(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Removes the [`record`] at `default` once it names `actual` or a
/// directory that is gone.
pub fn forget(default: &Path, actual: &Path) {
    let Ok(target) = std::fs::read_link(default) else {
        return;
    };
    if target == actual || !default.exists() {
        let _ = std::fs::remove_file(default);
        if let Some(parent) = default.parent() {
            remove_empty_dirs(parent);
        }
    }
}
