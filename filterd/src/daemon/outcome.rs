//! The last reload's result, in the state directory, for `filterd
//! reload` (the systemd unit's `ExecReload`) to wait on and report: the
//! notification protocol cannot tell systemd that a reload was refused.
//!
//! `reload.json`, replaced whole (written aside, then renamed) after each
//! reload: `{"seq": n, "ok": bool, "trigger": "SIGHUP", "message": "...",
//! "unix_time": seconds}`; `seq` counts the daemon's reloads since it
//! started.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const FILE: &str = "reload.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub seq: u64,
    pub ok: bool,
    pub trigger: String,
    /// What was swapped in, or why the reload was refused.
    pub message: String,
    pub unix_time: f64,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

pub fn write(state_dir: &Path, o: &Outcome) -> io::Result<()> {
    let tmp = state_dir.join(format!(".{FILE}.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(o)?)?;
    std::fs::rename(&tmp, path(state_dir))
}

/// The last outcome; `None` before the first reload (or unreadable).
pub fn read(state_dir: &Path) -> Option<Outcome> {
    serde_json::from_slice(&std::fs::read(path(state_dir)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_and_read_back() {
        let dir = std::env::temp_dir().join(format!("filterd-outcome-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read(&dir), None);
        let o = Outcome {
            seq: 3,
            ok: false,
            trigger: "SIGHUP".into(),
            message: "rule \"x\": bad".into(),
            unix_time: 1.5,
        };
        write(&dir, &o).unwrap();
        assert_eq!(read(&dir), Some(o));
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
