//! The `-w` output, never lost or torn:
//!
//! - a path that is also an input (the same file by device and inode, so
//!   also through another name or a symlink) is refused before anything is
//!   opened for writing;
//! - a regular file (or a new one) is written to a temporary file in the
//!   same directory and renamed into place once complete, so its name only
//!   ever holds the old file or the whole new one; after an error the
//!   temporary file is removed and any old file is left as it was;
//! - `-` writes to standard output; a device or FIFO is written directly.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What `-w` writes into.
pub type Sink = BufWriter<Box<dyn Write + Send>>;

pub struct Output {
    /// The temporary file and the name it becomes, for a regular file.
    rename: Option<(PathBuf, PathBuf)>,
    /// The temporary file, to make it durable before the rename.
    file: Option<File>,
    committed: bool,
}

/// Refuses `out` when it names one of `inputs`.
pub fn check_not_an_input(out: &Path, inputs: &[PathBuf]) -> Result<(), String> {
    if out.as_os_str() == "-" {
        return Ok(());
    }
    let Ok(meta) = fs::metadata(out) else {
        return Ok(());
    };
    for input in inputs {
        // Standard input may be the file itself (`- < a.pcap`).
        let at = if input.as_os_str() == "-" {
            Path::new("/dev/stdin")
        } else {
            input.as_path()
        };
        if let Ok(m) = fs::metadata(at) {
            if (m.dev(), m.ino()) == (meta.dev(), meta.ino()) && meta.is_file() {
                return Err(format!(
                    "-w {}: it is the input {} (the same file); writing it would destroy the \
                     capture before it is read",
                    out.display(),
                    if input.as_os_str() == "-" {
                        "on standard input".to_string()
                    } else {
                        input.display().to_string()
                    }
                ));
            }
        }
    }
    Ok(())
}

impl Output {
    /// Opens the output for `path` and returns it with its sink.
    pub fn create(path: &Path) -> Result<(Output, Sink), String> {
        let cannot = |e: io::Error| format!("{}: cannot create: {e}", path.display());
        if path.as_os_str() == "-" {
            let out = Output {
                rename: None,
                file: None,
                committed: false,
            };
            return Ok((out, BufWriter::new(Box::new(io::stdout()))));
        }
        // Through a symlink, the file it names is replaced.
        let dest = match fs::canonicalize(path) {
            Ok(p) => p,
            Err(_) => path.to_path_buf(),
        };
        let old = fs::metadata(&dest);
        match &old {
            Ok(m) if !m.is_file() => {
                // A device or a FIFO: written as it is.
                let f = OpenOptions::new().write(true).open(&dest).map_err(cannot)?;
                let out = Output {
                    rename: None,
                    file: None,
                    committed: false,
                };
                return Ok((out, BufWriter::new(Box::new(f))));
            }
            _ => {}
        }
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(cannot)?;
        // The file it replaces keeps its mode.
        if let Ok(m) = &old {
            let _ = f.set_permissions(m.permissions());
        }
        let clone = f.try_clone().map_err(cannot)?;
        let out = Output {
            rename: Some((tmp, dest)),
            file: Some(clone),
            committed: false,
        };
        Ok((out, BufWriter::new(Box::new(f))))
    }

    /// Puts the finished output in place: `sink` is flushed, the temporary
    /// file synced and renamed over the destination.
    pub fn commit(mut self, sink: Option<Sink>) -> Result<(), String> {
        if let Some(mut s) = sink {
            s.flush().map_err(|e| format!("-w: {e}"))?;
        }
        if let Some(f) = &self.file {
            f.sync_all().map_err(|e| format!("-w: {e}"))?;
        }
        if let Some((tmp, dest)) = &self.rename {
            fs::rename(tmp, dest).map_err(|e| {
                format!(
                    "-w: cannot rename {} to {}: {e}",
                    tmp.display(),
                    dest.display()
                )
            })?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.committed {
            if let Some((tmp, _)) = &self.rename {
                let _ = fs::remove_file(tmp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_is_refused_by_inode_and_others_pass() {
        let dir = std::env::temp_dir().join(format!("pcap-replay-output-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.pcap");
        fs::write(&a, b"x").unwrap();
        let link = dir.join("link.pcap");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let inputs = [a.clone()];
        assert!(check_not_an_input(&a, &inputs).is_err());
        assert!(check_not_an_input(&link, &inputs).is_err());
        assert!(check_not_an_input(&dir.join("new.pcap"), &inputs).is_ok());
        assert!(check_not_an_input(Path::new("-"), &inputs).is_ok());
        // Written, then renamed into place; uncommitted, nothing is left.
        let out = dir.join("out.pcap");
        let (o, mut sink) = Output::create(&out).unwrap();
        sink.write_all(b"data").unwrap();
        assert!(!out.exists());
        o.commit(Some(sink)).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"data");
        let (o, mut sink) = Output::create(&out).unwrap();
        sink.write_all(b"torn").unwrap();
        drop(sink);
        drop(o);
        assert_eq!(fs::read(&out).unwrap(), b"data");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            3,
            "a temporary file is left"
        );
        // A replaced file keeps its mode.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&out, fs::Permissions::from_mode(0o600)).unwrap();
        let (o, sink) = Output::create(&out).unwrap();
        o.commit(Some(sink)).unwrap();
        assert_eq!(
            fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
