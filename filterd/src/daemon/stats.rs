//! `filterd stats`: the counters of a running (or `--keep`'d) daemon, read
//! from its pins and state files by another process.
//!
//! A daemon may fold a replaced program's counters into the base and
//! unpin them between our reading its state file and opening the pins; the
//! state file then names a pin that is gone, and reading starts over.

use std::path::Path;

use serde::Serialize;

use super::generation::{totals, Generation, Totals};
use super::state::{self, State};
use super::DaemonError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleStats {
    pub name: String,
    pub action: String,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InterfaceStats {
    pub interface: String,
    pub mode: String,
    pub prog_id: u32,
    pub generation: u64,
    pub rules: Vec<RuleStats>,
}

fn attempt(pin_root: &Path, state: &State) -> Result<Totals, DaemonError> {
    let dir = pin_root.join(&state.interface);
    let mut gens = Vec::new();
    for pin in &state.counters {
        gens.push(Generation::adopt(&dir, state.generation, pin)?);
    }
    totals(&state.base, &gens.iter().collect::<Vec<_>>())
}

/// One interface's counters from its state file.
pub fn read_interface(pin_root: &Path, path: &Path) -> Result<Option<InterfaceStats>, DaemonError> {
    let mut last = None;
    for _ in 0..20 {
        let Some(state) = state::read(path).map_err(|e| DaemonError::System(e.to_string()))? else {
            return Ok(None);
        };
        match attempt(pin_root, &state) {
            Ok(t) => {
                let rules = state
                    .rules
                    .iter()
                    .map(|r| {
                        let [packets, bytes] = t.get(&r.name).copied().unwrap_or([0, 0]);
                        RuleStats {
                            name: r.name.clone(),
                            action: r.action.clone(),
                            packets,
                            bytes,
                        }
                    })
                    .collect();
                return Ok(Some(InterfaceStats {
                    interface: state.interface,
                    mode: state.mode,
                    prog_id: state.prog_id,
                    generation: state.generation,
                    rules,
                }));
            }
            Err(e) => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    Err(last.unwrap_or_else(|| DaemonError::System("reading the counters".into())))
}

/// Every interface the daemon pinning under `pin_root` enforces.
pub fn read_all(pin_root: &Path, state_dir: &Path) -> Result<Vec<InterfaceStats>, DaemonError> {
    let files = state::list(state_dir, pin_root).map_err(|e| DaemonError::System(e.to_string()))?;
    let mut out = Vec::new();
    for f in files {
        if let Some(s) = read_interface(pin_root, &f)? {
            out.push(s);
        }
    }
    Ok(out)
}
