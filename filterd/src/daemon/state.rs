//! The state file of one enforced interface: what the pinned counters
//! mean (rule names and actions), which pins hold them, and the totals
//! carried over from programs that are gone.
//!
//! bpffs holds only BPF objects, so the file lives in a runtime directory
//! (`/run/filterd` by default), under a name derived from the pin
//! directory: two daemons with different pin directories (say, in two
//! network namespaces) never share a file. It is replaced with rename(2),
//! so a reader sees the old file or the new one, never half of one.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where `filterd run` writes state unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/run/filterd";
const VERSION: u32 = 1;

/// One program's counters map, pinned at `<pin dir>/<iface>/<pin>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterPin {
    pub pin: String,
    /// The program array pinned with it, when the program chains others.
    pub programs: Option<String>,
    /// Counter index to rule name (the last is `default`).
    pub names: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    pub name: String,
    pub action: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub interface: String,
    pub mode: String,
    /// Counts reloads; names the pins of each program.
    pub generation: u64,
    /// Of the compiled ruleset, to tell on restart whether the running
    /// program is the one the config asks for.
    pub fingerprint: String,
    pub prog_id: u32,
    /// The running program's rules, then `default` with its verdict.
    pub rules: Vec<RuleInfo>,
    /// The running program's counters (last) and those of programs
    /// replaced moments ago whose late packets are still being counted.
    pub counters: Vec<CounterPin>,
    /// Per rule name: packets and bytes of programs folded away.
    pub base: BTreeMap<String, [u64; 2]>,
}

impl State {
    pub fn new(interface: &str, mode: &str) -> State {
        State {
            version: VERSION,
            interface: interface.into(),
            mode: mode.into(),
            generation: 0,
            fingerprint: String::new(),
            prog_id: 0,
            rules: Vec::new(),
            counters: Vec::new(),
            base: BTreeMap::new(),
        }
    }
}

/// `<state dir>/<pin dir with '/' as '_'>`.
pub fn dir_for(state_dir: &Path, pin_dir: &Path) -> PathBuf {
    let key: String = pin_dir
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    state_dir.join(if key.is_empty() { "root".into() } else { key })
}

pub fn file_for(state_dir: &Path, pin_dir: &Path, iface: &str) -> PathBuf {
    dir_for(state_dir, pin_dir).join(format!("{iface}.json"))
}

/// Writes `state` atomically (temporary file, then rename).
pub fn write(path: &Path, state: &State) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Reads a state file; `Ok(None)` when there is none.
pub fn read(path: &Path) -> io::Result<Option<State>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let state: State = serde_json::from_slice(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    if state.version != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: state version {} (this filterd writes {VERSION})",
                path.display(),
                state.version
            ),
        ));
    }
    Ok(Some(state))
}

/// Every state file under `<state dir>/<pin dir key>`, sorted by name.
pub fn list(state_dir: &Path, pin_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = dir_for(state_dir, pin_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// Removes a state file and its directory when that is left empty.
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// FNV-1a, 64 bits: a stable fingerprint (std's hasher may change between
/// Rust releases, and a restart may run a newer build).
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_keys_by_pin_dir() {
        let tmp = std::env::temp_dir().join(format!("filterd-state-{}", std::process::id()));
        let path = file_for(&tmp, Path::new("/sys/fs/bpf/filterd"), "eth0");
        assert!(
            path.ends_with("sys_fs_bpf_filterd/eth0.json"),
            "{}",
            path.display()
        );
        let mut s = State::new("eth0", "skb");
        s.base.insert("no-ssh".into(), [3, 180]);
        s.counters.push(CounterPin {
            pin: "counters_1".into(),
            programs: None,
            names: vec!["no-ssh".into(), "default".into()],
        });
        write(&path, &s).expect("write");
        assert_eq!(read(&path).expect("read"), Some(s));
        assert_eq!(
            list(&tmp, Path::new("/sys/fs/bpf/filterd")).expect("list"),
            vec![path.clone()]
        );
        remove(&path);
        assert_eq!(read(&path).expect("read"), None);
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn fingerprints_separate_parts() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b"x"]), fingerprint(&[b"x"]));
    }
}
