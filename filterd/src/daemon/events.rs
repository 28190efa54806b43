//! What wakes the daemon: SIGHUP, SIGTERM and SIGINT through a signalfd
//! (the signals are blocked, so they queue instead of killing the process
//! while it is attaching), and changes to the config file through inotify.
//!
//! The config's directory is watched rather than the file, since editors
//! and config managers replace files by renaming a new one over them.
//! Only a finished file counts: one closed after writing, or renamed into
//! place, never one just created (it may still be half written). A burst
//! of such events (an editor's save, a config manager's rename dance) is
//! let settle before the change is reported, so the daemon reads the file
//! once it is quiet.
//!
//! A config reached through symlinks changes without an event naming it:
//! a Kubernetes ConfigMap volume holds `filterd.toml -> ..data/filterd.toml`
//! and is updated by renaming a new `..data` symlink over the old one. So
//! any finished write or rename in the directory also counts when the file
//! the config path resolves to is another one than before (its device,
//! inode and modification time); other files' writes (an editor's swap
//! file) leave it the same and do not count.

use std::cell::Cell;
use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Quiet time after a change to the config before it is reported.
pub const SETTLE: Duration = Duration::from_millis(150);
/// Most settle rounds: a file rewritten without pause is still read.
const MAX_SETTLE_ROUNDS: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Reload,
    Stop(&'static str),
    ConfigChanged,
}

pub struct Events {
    signals: OwnedFd,
    inotify: Option<OwnedFd>,
    file: OsString,
    path: PathBuf,
    /// What `path` resolved to when last looked at.
    resolved: Cell<Option<Identity>>,
}

/// The file a path resolves to: device, inode, modification time.
type Identity = (u64, u64, i64, i64);

fn identity(path: &Path) -> Option<Identity> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec()))
}

fn check(rc: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(rc)
    }
}

impl Events {
    /// Blocks the signals in the calling thread (threads spawned later
    /// inherit the mask) and starts watching `config`. Call it before
    /// spawning any thread. The signals stay blocked: unblocking one still
    /// pending at exit would kill the process after a clean shutdown.
    pub fn new(config: &Path) -> io::Result<Events> {
        // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to sigset_t values we own.
        unsafe {
            libc::sigemptyset(&mut set);
            for s in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
                libc::sigaddset(&mut set, s);
            }
            check(
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
                "pthread_sigmask",
            )?;
        }
        // SAFETY: set is initialised; -1 asks for a new fd.
        let fd = check(
            unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) },
            "signalfd",
        )?;
        // SAFETY: a fresh fd that we own.
        let signals = unsafe { OwnedFd::from_raw_fd(fd) };
        let file = config
            .file_name()
            .map(|f| f.to_os_string())
            .unwrap_or_default();
        let dir = match config.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let inotify = match Self::watch(dir) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "not watching the config for changes; reload with SIGHUP");
                None
            }
        };
        Ok(Events {
            signals,
            inotify,
            file,
            path: config.to_path_buf(),
            resolved: Cell::new(identity(config)),
        })
    }

    fn watch(dir: &Path) -> io::Result<OwnedFd> {
        // SAFETY: plain syscall.
        let fd = check(
            unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) },
            "inotify_init1",
        )?;
        // SAFETY: a fresh fd that we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mask = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO;
        // SAFETY: c is NUL-terminated; fd is an inotify instance.
        check(
            unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) },
            "inotify_add_watch",
        )?;
        Ok(owned)
    }

    /// Waits up to `timeout` and returns what happened (empty on timeout).
    pub fn wait(&self, timeout: Duration) -> io::Result<Vec<Event>> {
        let mut fds = vec![libc::pollfd {
            fd: self.signals.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(i) = &self.inotify {
            fds.push(libc::pollfd {
                fd: i.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: fds is a live array of fds.len() pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(Vec::new())
            } else {
                Err(e)
            };
        }
        let mut out = Vec::new();
        self.read_signals(&mut out)?;
        if let Some(i) = &self.inotify {
            if self.read_inotify(i)? {
                self.settle(i)?;
                out.push(Event::ConfigChanged);
            }
        }
        Ok(out)
    }

    /// Waits until the config has had no new event for [`SETTLE`].
    fn settle(&self, inotify: &OwnedFd) -> io::Result<()> {
        for _ in 0..MAX_SETTLE_ROUNDS {
            let mut fd = libc::pollfd {
                fd: inotify.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            let n = unsafe { libc::poll(&mut fd, 1, SETTLE.as_millis() as i32) };
            if n <= 0 || !self.read_inotify(inotify)? {
                return Ok(());
            }
        }
        Ok(())
    }

    fn read_signals(&self, out: &mut Vec<Event>) -> io::Result<()> {
        loop {
            // SAFETY: signalfd_siginfo is plain data.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: info is writable for size bytes.
            let n = unsafe {
                libc::read(
                    self.signals.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
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
            if n as usize != size {
                return Ok(());
            }
            out.push(match info.ssi_signo as i32 {
                libc::SIGHUP => Event::Reload,
                libc::SIGTERM => Event::Stop("SIGTERM"),
                _ => Event::Stop("SIGINT"),
            });
        }
    }

    /// Drains the inotify queue; true when an event named the config, or
    /// when there were events and the config now resolves to another file.
    fn read_inotify(&self, fd: &OwnedFd) -> io::Result<bool> {
        let mut named = false;
        let mut any = false;
        let hit = |named: bool, any: bool| {
            if !any {
                return false;
            }
            let now = identity(&self.path);
            let moved = now != self.resolved.get();
            self.resolved.set(now);
            named || moved
        };
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: buf is writable for its length.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::WouldBlock {
                    Ok(hit(named, any))
                } else {
                    Err(e)
                };
            }
            let data = &buf[..n as usize];
            let mut at = 0;
            // struct inotify_event: wd i32, mask u32, cookie u32, len u32, name[len].
            while at + 16 <= data.len() {
                let len = u32::from_ne_bytes([
                    data[at + 12],
                    data[at + 13],
                    data[at + 14],
                    data[at + 15],
                ]) as usize;
                let name = data.get(at + 16..at + 16 + len).unwrap_or_default();
                let name = name.split(|b| *b == 0).next().unwrap_or_default();
                any = true;
                if OsString::from_vec(name.to_vec()) == self.file {
                    named = true;
                }
                at += 16 + len;
            }
            if n == 0 {
                return Ok(hit(named, any));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn changed(events: &Events) -> bool {
        events
            .wait(Duration::from_millis(300))
            .unwrap()
            .contains(&Event::ConfigChanged)
    }

    /// A config still being written is not reported; its close is, and so
    /// is a finished file renamed over it.
    #[test]
    fn only_finished_files_are_changes() {
        let dir = std::env::temp_dir().join(format!("filterd-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("filterd.toml");
        let events = Events::new(&config).unwrap();

        let mut half = std::fs::File::create(&config).unwrap();
        half.write_all(b"[[interface]]\nname = ").unwrap();
        assert!(
            !changed(&events),
            "a file still open for writing was reported"
        );
        half.write_all(b"\"eth0\"\n").unwrap();
        drop(half);
        assert!(
            changed(&events),
            "closing the written file was not reported"
        );

        let tmp = dir.join(".filterd.toml.new");
        std::fs::write(&tmp, b"# new\n").unwrap();
        assert!(!changed(&events), "another file's write was reported");
        std::fs::rename(&tmp, &config).unwrap();
        assert!(
            changed(&events),
            "a rename over the config was not reported"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A ConfigMap volume: the config is a symlink through `..data`, and an
    /// update renames a new `..data` over it; that is a change, once.
    #[test]
    fn a_symlink_swap_under_the_config_is_a_change() {
        use std::os::unix::fs::symlink;
        let dir = std::env::temp_dir().join(format!("filterd-events-cm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("..v1")).unwrap();
        std::fs::write(dir.join("..v1/filterd.toml"), b"# one\n").unwrap();
        symlink("..v1", dir.join("..data")).unwrap();
        symlink("..data/filterd.toml", dir.join("filterd.toml")).unwrap();
        let events = Events::new(&dir.join("filterd.toml")).unwrap();

        std::fs::create_dir_all(dir.join("..v2")).unwrap();
        std::fs::write(dir.join("..v2/filterd.toml"), b"# two\n").unwrap();
        symlink("..v2", dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        std::fs::remove_dir_all(dir.join("..v1")).unwrap();
        assert!(changed(&events), "the swap was not reported");
        assert!(!changed(&events), "reported twice");
        std::fs::write(dir.join("other.txt"), b"x").unwrap();
        assert!(!changed(&events), "another file's write was reported");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
