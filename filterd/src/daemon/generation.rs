//! One program's life in the daemon: a [`Candidate`] is compiled and
//! through the verifier but not attached; a [`Generation`] is (or was
//! moments ago) attached, with its counters map pinned.
//!
//! Counters follow rule names across reloads. Each program has its own
//! counters map, starting at zero, so a rule's total is the `base` carried
//! over from programs already gone, plus what every program still held
//! counts for that name. A replaced program may still be finishing packets
//! on other CPUs right after the link update; it is kept ("retired") for a
//! grace period and only then read one last time and folded into the base.
//! Nothing is ever subtracted, so totals never go backwards.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use aya::maps::{Map, MapData, MapType, PerCpuArray};
use aya::programs::Xdp;
use filter_programs::ruleset::compile::{Compiled, COUNTERS_MAP, DEFAULT_COUNTER};
use filter_programs::ruleset::{Rule, Verdict};

use super::state::{fingerprint, CounterPin, RuleInfo};
use super::DaemonError;
use crate::ruleset::{read_counters, LoadedRuleset, PROGRAM};

/// Packets and bytes per rule name.
pub type Totals = BTreeMap<String, [u64; 2]>;

/// A ruleset loaded into the kernel (verified), not yet attached.
pub struct Candidate {
    pub loaded: LoadedRuleset,
    /// Kept untyped until pinned: aya pins a typed map only by consuming it.
    pub counters: Map,
    pub names: Vec<String>,
    pub rules: Vec<RuleInfo>,
    pub fingerprint: String,
}

/// What identifies a compiled ruleset: its object, the contents of its
/// tables and what its counters are called.
pub fn fingerprint_of(compiled: &Compiled) -> Result<String, DaemonError> {
    let elf = compiled
        .elf()
        .map_err(|e| DaemonError::System(format!("writing the ELF object: {e}")))?;
    let mut tables = Vec::new();
    for t in &compiled.tables {
        tables.extend_from_slice(t.name.as_bytes());
        for (k, v) in &t.entries {
            tables.extend_from_slice(k);
            tables.extend_from_slice(v);
        }
    }
    let names = compiled.counter_names.join("\n");
    Ok(fingerprint(&[&elf, &tables, names.as_bytes()]))
}

pub fn rule_infos(rules: &[Rule], default: Verdict) -> Vec<RuleInfo> {
    let mut v: Vec<RuleInfo> = rules
        .iter()
        .map(|r| RuleInfo {
            name: r.name.clone(),
            action: r.action.name().into(),
        })
        .collect();
    v.push(RuleInfo {
        name: DEFAULT_COUNTER.into(),
        action: default.name().into(),
    });
    v
}

impl Candidate {
    /// Loads `compiled` (the verifier runs here); nothing is attached.
    pub fn load(
        compiled: &Compiled,
        rules: &[Rule],
        default: Verdict,
    ) -> Result<Candidate, DaemonError> {
        let fingerprint = fingerprint_of(compiled)?;
        let mut loaded = LoadedRuleset::load(compiled).map_err(|e| match e {
            crate::ruleset::LoadError::Verifier { .. } => DaemonError::Invalid(e.to_string()),
            other => DaemonError::System(other.to_string()),
        })?;
        let map = loaded
            .ebpf_mut()
            .take_map(COUNTERS_MAP)
            .ok_or_else(|| DaemonError::System("the object has no counters map".into()))?;
        PerCpuArray::<_, [u64; 2]>::try_from(&map)
            .map_err(|e| DaemonError::System(format!("counters map: {e}")))?;
        Ok(Candidate {
            loaded,
            counters: map,
            names: compiled.counter_names.clone(),
            rules: rule_infos(rules, default),
            fingerprint,
        })
    }

    /// Pins the counters (and the program array, if any) as generation
    /// `number` in `dir`, and becomes that generation.
    pub fn into_generation(mut self, dir: &Path, number: u64) -> Result<Generation, DaemonError> {
        let (counters_pin, programs_pin) = pin_names(number);
        let at = dir.join(&counters_pin);
        let _ = std::fs::remove_file(&at);
        self.counters
            .pin(&at)
            .map_err(|e| DaemonError::System(format!("pinning {}: {e}", at.display())))?;
        let programs = match self.program_array() {
            Ok(Some(data)) => match pin_map(&data, &dir.join(&programs_pin)) {
                Ok(()) => Some(programs_pin),
                Err(e) => {
                    let _ = std::fs::remove_file(&at);
                    return Err(e);
                }
            },
            Ok(None) => None,
            Err(e) => {
                let _ = std::fs::remove_file(&at);
                return Err(e);
            }
        };
        let counters = PerCpuArray::try_from(self.counters)
            .map_err(|e| DaemonError::System(format!("counters map: {e}")))?;
        Ok(Generation {
            number,
            counters,
            names: self.names,
            counters_pin,
            programs_pin: programs,
            loaded: Some(self.loaded),
            retired_at: None,
        })
    }

    pub fn xdp(&mut self) -> Result<&mut Xdp, DaemonError> {
        xdp_of(&mut self.loaded)
    }

    /// The program array chaining the programs, when the entry program
    /// uses one (a ruleset that fits one program has no tail calls).
    /// [`LoadedRuleset`] keeps its handle private; a second fd on the same
    /// map, found through the program's map ids, serves as well.
    pub fn program_array(&mut self) -> Result<Option<MapData>, DaemonError> {
        let info = self
            .xdp()?
            .info()
            .map_err(|e| DaemonError::System(format!("program info: {e}")))?;
        let ids = info
            .map_ids()
            .map_err(|e| DaemonError::System(format!("map ids: {e}")))?
            .unwrap_or_default();
        for id in ids {
            let Some(fd) = bpf_kernel::map::dup_own(id)
                .map_err(|e| DaemonError::System(format!("map {id}: {e}")))?
            else {
                continue;
            };
            let data =
                MapData::from_fd(fd).map_err(|e| DaemonError::System(format!("map {id}: {e}")))?;
            let info = data
                .info()
                .map_err(|e| DaemonError::System(format!("map {id}: {e}")))?;
            if info.id() == id && matches!(info.map_type(), Ok(MapType::ProgramArray)) {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }
}

/// The entry program of a loaded ruleset.
pub fn xdp_of(loaded: &mut LoadedRuleset) -> Result<&mut Xdp, DaemonError> {
    loaded
        .ebpf_mut()
        .program_mut(PROGRAM)
        .and_then(|p| <&mut Xdp>::try_from(p).ok())
        .ok_or_else(|| DaemonError::System(format!("the object has no XDP program {PROGRAM}")))
}

/// An attached (or just replaced) program's counters and what keeps its
/// tail-call chain filled.
pub struct Generation {
    pub number: u64,
    pub counters: PerCpuArray<MapData, [u64; 2]>,
    pub names: Vec<String>,
    /// File names in the interface's pin directory.
    pub counters_pin: String,
    pub programs_pin: Option<String>,
    /// The loaded object when this process loaded it (its program fds and
    /// program array); `None` for a generation adopted from pins.
    pub loaded: Option<LoadedRuleset>,
    pub retired_at: Option<Instant>,
}

impl Generation {
    /// Re-opens a generation from its pins (after a restart).
    pub fn adopt(dir: &Path, number: u64, pin: &CounterPin) -> Result<Generation, DaemonError> {
        let path = dir.join(&pin.pin);
        let names = pin.names.clone();
        let data = MapData::from_pin(&path)
            .map_err(|e| DaemonError::System(format!("opening {}: {e}", path.display())))?;
        let map = Map::from_map_data(data)
            .map_err(|e| DaemonError::System(format!("{}: {e}", path.display())))?;
        let counters = PerCpuArray::try_from(map)
            .map_err(|e| DaemonError::System(format!("{}: {e}", path.display())))?;
        if counters.len() as usize != names.len() {
            return Err(DaemonError::System(format!(
                "{}: {} counters, but the state file names {}",
                path.display(),
                counters.len(),
                names.len()
            )));
        }
        Ok(Generation {
            number,
            counters,
            names,
            counters_pin: pin.pin.clone(),
            programs_pin: pin.programs.clone(),
            loaded: None,
            retired_at: None,
        })
    }

    pub fn pin_record(&self) -> CounterPin {
        CounterPin {
            pin: self.counters_pin.clone(),
            programs: self.programs_pin.clone(),
            names: self.names.clone(),
        }
    }

    /// Removes this generation's pins (the maps live on while anything
    /// still holds them).
    pub fn unpin(&self, dir: &Path) {
        let _ = std::fs::remove_file(dir.join(&self.counters_pin));
        if let Some(p) = &self.programs_pin {
            let _ = std::fs::remove_file(dir.join(p));
        }
    }

    /// Adds this generation's counts to `totals`, by rule name.
    pub fn add_to(&self, totals: &mut Totals) -> Result<(), DaemonError> {
        let counts = read_counters(&self.counters, &self.names)
            .map_err(|e| DaemonError::System(format!("reading counters: {e}")))?;
        for c in counts {
            let t = totals.entry(c.name).or_insert([0, 0]);
            t[0] += c.packets;
            t[1] += c.bytes;
        }
        Ok(())
    }
}

/// `base` plus every generation's counts.
pub fn totals(base: &Totals, generations: &[&Generation]) -> Result<Totals, DaemonError> {
    let mut t = base.clone();
    for g in generations {
        g.add_to(&mut t)?;
    }
    Ok(t)
}

/// Pin file names of generation `n`.
pub fn pin_names(n: u64) -> (String, String) {
    (format!("counters_{n}"), format!("programs_{n}"))
}

pub fn pin_map(data: &MapData, path: &Path) -> Result<(), DaemonError> {
    let _ = std::fs::remove_file(path);
    data.pin(path)
        .map_err(|e| DaemonError::System(format!("pinning {}: {e}", path.display())))
}
