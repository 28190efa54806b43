//! An output never lost or torn (`-w` of both tools):
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

/// What an output is written through.
pub type Sink = BufWriter<Box<dyn Write + Send>>;

/// Why an output could not be opened or put in place.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(
        "-w {out}: it is the input {input} (the same file); writing it would destroy the \
         capture before it is read"
    )]
    IsAnInput { out: String, input: String },
    #[error("{path}: cannot create: {source}")]
    Create { path: String, source: io::Error },
    #[error("-w: {0}")]
    Write(#[source] io::Error),
    #[error("-w: cannot rename {tmp} to {dest}: {source}")]
    Rename {
        tmp: String,
        dest: String,
        source: io::Error,
    },
}

/// An output being written; [`Output::commit`] puts it in place, and
/// dropping it uncommitted removes what was written.
pub struct Output {
    /// The temporary file and the name it becomes, for a regular file.
    rename: Option<(PathBuf, PathBuf)>,
    /// The temporary file, to make it durable before the rename.
    file: Option<File>,
    committed: bool,
}

/// Refuses `out` when it names one of `inputs` (`-` for standard input).
pub fn check_not_an_input(out: &Path, inputs: &[PathBuf]) -> Result<(), OutputError> {
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
                return Err(OutputError::IsAnInput {
                    out: out.display().to_string(),
                    input: if input.as_os_str() == "-" {
                        "on standard input".to_string()
                    } else {
                        input.display().to_string()
                    },
                });
            }
        }
    }
    Ok(())
}

impl Output {
    /// Opens the output for `path` (`-`: standard output) and returns it
    /// with its sink.
    pub fn create(path: &Path) -> Result<(Output, Sink), OutputError> {
        let cannot = |source: io::Error| OutputError::Create {
            path: path.display().to_string(),
            source,
        };
        let direct = Output {
            rename: None,
            file: None,
            committed: false,
        };
        if path.as_os_str() == "-" {
            return Ok((direct, BufWriter::new(Box::new(io::stdout()))));
        }
        // Through a symlink, the file it names is replaced.
        let dest = match fs::canonicalize(path) {
            Ok(p) => p,
            Err(_) => path.to_path_buf(),
        };
        let old = fs::metadata(&dest);
        if let Ok(m) = &old {
            if !m.is_file() {
                // A device or a FIFO: written as it is.
                let f = OpenOptions::new().write(true).open(&dest).map_err(cannot)?;
                return Ok((direct, BufWriter::new(Box::new(f))));
            }
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
        let mut out = Output {
            rename: Some((tmp, dest)),
            file: None,
            committed: false,
        };
        // From here on, dropping `out` removes the temporary file.
        out.file = Some(f.try_clone().map_err(cannot)?);
        Ok((out, BufWriter::new(Box::new(f))))
    }

    /// Puts the finished output in place: `sink` is flushed, the temporary
    /// file synced and renamed over the destination.
    pub fn commit(mut self, sink: Option<Sink>) -> Result<(), OutputError> {
        if let Some(mut s) = sink {
            s.flush().map_err(OutputError::Write)?;
        }
        if let Some(f) = &self.file {
            f.sync_all().map_err(OutputError::Write)?;
        }
        if let Some((tmp, dest)) = &self.rename {
            fs::rename(tmp, dest).map_err(|source| OutputError::Rename {
                tmp: tmp.display().to_string(),
                dest: dest.display().to_string(),
                source,
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
        let dir = std::env::temp_dir().join(format!("cli-output-file-{}", std::process::id()));
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
