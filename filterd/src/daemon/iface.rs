//! [`Enforced`]: the ruleset on one interface, held by a pinned XDP link.
//!
//! Pins, in `<pin dir>/<iface>/`: `link` (the BPF link: the program stays
//! attached as long as it is pinned), `counters_<n>` (generation n's
//! counters) and, for a ruleset chained by tail calls, `programs_<n>` (its
//! program array: the kernel empties a program array once no fd and no
//! pin holds it, which would cut the chain after a `--keep` exit).
//!
//! A reload swaps the program inside the link with `BPF_LINK_UPDATE`: the
//! kernel publishes the new program with one pointer store, so each packet
//! runs the old program or the new one, never none.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aya::programs::links::FdLink;
use filter_programs::ruleset::{Interface, Mode};

use super::generation::{totals, xdp_of, Candidate, Generation, Totals};
use super::state::{self, RuleInfo, State};
use bpf_kernel::{link, obj};

use super::DaemonError;
use crate::attach::pin;

/// How long a replaced program is kept counting before its counters are
/// folded into the base: far beyond the RCU grace period after which no
/// CPU still runs it.
pub const GRACE: Duration = Duration::from_millis(500);

/// How [`Enforced::start`] found the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Attached,
    /// The pinned program was the one the config asks for.
    Adopted,
    /// Adopted, then replaced through the link (the config had changed).
    AdoptedReplaced {
        old_prog_id: u32,
    },
}

pub struct Enforced {
    pub ifname: String,
    pub mode: Mode,
    pub(super) dir: PathBuf,
    state_path: PathBuf,
    /// Our own fd on the pinned link, for `BPF_LINK_DETACH`.
    pub(super) link_fd: OwnedFd,
    pub prog_id: u32,
    pub fingerprint: String,
    pub rules: Vec<RuleInfo>,
    pub(super) generation: u64,
    /// `None` only right after adopting a link whose state file is lost.
    pub(super) live: Option<Generation>,
    pub(super) retired: Vec<Generation>,
    base: Totals,
}

fn sys_err(what: String) -> impl FnOnce(std::io::Error) -> DaemonError {
    move |e| DaemonError::System(format!("{what}: {e}"))
}

fn aya_mode(mode: Mode) -> aya::programs::XdpMode {
    match mode {
        Mode::Skb => aya::programs::XdpMode::Skb,
        Mode::Drv => aya::programs::XdpMode::Driver,
    }
}

/// The mode the kernel reports for program `prog_id` on `ifindex`.
fn running_mode(ifindex: u32, prog_id: u32) -> Option<&'static str> {
    let links = bpf_kernel::netlink::links().ok()?;
    let l = links.into_iter().find(|l| l.ifindex == ifindex)?;
    l.xdp.iter().find(|(_, id)| *id == prog_id).map(|(m, _)| *m)
}

/// Removes pins of generations no state file accounts for (left by a
/// daemon that died without cleaning up).
fn remove_stale_pins(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("counters_") || name.starts_with("programs_") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Enforced {
    /// Attaches `candidate` to `iface`, or adopts the program a previous
    /// `filterd run` left pinned there (replacing it through the link when
    /// the config changed meanwhile).
    pub fn start(
        iface: &Interface,
        candidate: Candidate,
        pin_root: &Path,
        state_dir: &Path,
    ) -> Result<(Enforced, Start), DaemonError> {
        let ifindex = bpf_kernel::iface::index(&iface.name).ok_or_else(|| {
            DaemonError::Invalid(format!("interface {:?}: no such interface", iface.name))
        })?;
        let dir = pin_root.join(&iface.name);
        pin::prepare(&dir).map_err(|e| DaemonError::System(e.to_string()))?;
        if let Some(record) = record_path(&iface.name, &dir) {
            pin::record(&record, &dir);
        }
        let state_path = state::file_for(state_dir, pin_root, &iface.name);
        let link_path = dir.join("link");
        let existing = match obj::get(&link_path) {
            Ok(fd) => Some(fd),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
            Err(e) => {
                return Err(DaemonError::System(format!(
                    "opening {}: {e}",
                    link_path.display()
                )))
            }
        };
        if let Some(fd) = existing {
            let info = link::info(fd.as_fd()).map_err(sys_err(link_path.display().to_string()))?;
            if info.link_type != link::BPF_LINK_TYPE_XDP {
                return Err(DaemonError::System(format!(
                    "{} is not an XDP link",
                    link_path.display()
                )));
            }
            if info.ifindex == ifindex {
                return Self::adopt(iface, candidate, dir, state_path, fd, info.prog_id);
            }
            if info.ifindex != 0 {
                return Err(DaemonError::System(format!(
                    "{} holds the XDP link of interface index {}, not {} ({ifindex}); is another filterd using this pin directory?",
                    link_path.display(),
                    info.ifindex,
                    iface.name
                )));
            }
            // The interface it was on is gone: the link holds nothing.
            tracing::warn!(interface = %iface.name, "removing a defunct pinned link");
            let _ = std::fs::remove_file(&link_path);
        }
        remove_stale_pins(&dir);
        let e = Self::attach_fresh(iface, ifindex, candidate, dir, state_path)?;
        Ok((e, Start::Attached))
    }

    fn attach_fresh(
        iface: &Interface,
        ifindex: u32,
        candidate: Candidate,
        dir: PathBuf,
        state_path: PathBuf,
    ) -> Result<Enforced, DaemonError> {
        let (fingerprint, rules) = (candidate.fingerprint.clone(), candidate.rules.clone());
        let mut gen = candidate.into_generation(&dir, 1)?;
        let attached = (|| {
            let loaded = gen
                .loaded
                .as_mut()
                .ok_or_else(|| DaemonError::System("no loaded program".into()))?;
            let xdp = xdp_of(loaded)?;
            let prog_id = xdp
                .info()
                .map_err(|e| DaemonError::System(format!("program info: {e}")))?
                .id();
            let id = xdp
                .attach_to_if_index(ifindex, aya_mode(iface.mode))
                .map_err(|e| {
                    DaemonError::System(format!(
                        "attaching XDP ({} mode) to {}: {e}",
                        iface.mode.name(),
                        iface.name
                    ))
                })?;
            let link = xdp
                .take_link(id)
                .map_err(|e| DaemonError::System(format!("taking the link: {e}")))?;
            // aya falls back to netlink when the kernel refuses a link;
            // dropping that attachment detaches it again.
            let fd_link = FdLink::try_from(link).map_err(|_| {
                DaemonError::System(format!(
                    "{}: the kernel attached XDP without a BPF link (Linux >= 5.9 needed)",
                    iface.name
                ))
            })?;
            let at = dir.join("link");
            // On failure the only fd of the link goes, which detaches it.
            let _pinned = fd_link
                .pin(&at)
                .map_err(|e| DaemonError::System(format!("pinning {}: {e}", at.display())))?;
            let fd = obj::get(&at).map_err(sys_err(format!("opening {}", at.display())))?;
            Ok((fd, prog_id))
        })();
        let (link_fd, prog_id) = match attached {
            Ok(v) => v,
            Err(e) => {
                gen.unpin(&dir);
                let _ = std::fs::remove_file(dir.join("link"));
                pin::remove_empty_dirs(&dir);
                return Err(e);
            }
        };
        let e = Enforced {
            ifname: iface.name.clone(),
            mode: iface.mode,
            dir,
            state_path,
            link_fd,
            prog_id,
            fingerprint,
            rules,
            generation: 1,
            live: Some(gen),
            retired: Vec::new(),
            base: Totals::new(),
        };
        e.save();
        Ok(e)
    }

    fn adopt(
        iface: &Interface,
        candidate: Candidate,
        dir: PathBuf,
        state_path: PathBuf,
        link_fd: OwnedFd,
        prog_id: u32,
    ) -> Result<(Enforced, Start), DaemonError> {
        let state = match state::read(&state_path) {
            Ok(Some(s))
                if s.prog_id == prog_id && s.interface == iface.name && !s.counters.is_empty() =>
            {
                Some(s)
            }
            Ok(Some(_)) => {
                tracing::warn!(interface = %iface.name, prog_id, "the state file describes another program; its counters start again");
                None
            }
            Ok(None) => {
                tracing::warn!(interface = %iface.name, prog_id, "no state file for the pinned program; its counters start again");
                None
            }
            Err(e) => {
                tracing::warn!(interface = %iface.name, error = %e, "unreadable state file; counters start again");
                None
            }
        };
        let mut e = Enforced {
            ifname: iface.name.clone(),
            mode: iface.mode,
            dir,
            state_path,
            link_fd,
            prog_id,
            fingerprint: String::new(),
            rules: Vec::new(),
            generation: 0,
            live: None,
            retired: Vec::new(),
            base: Totals::new(),
        };
        if let Some(s) = state {
            let now = Instant::now();
            let last = s.counters.len() - 1;
            for (i, pin) in s.counters.iter().enumerate() {
                let mut g = Generation::adopt(&e.dir, s.generation, pin)?;
                if i == last {
                    e.live = Some(g);
                } else {
                    g.retired_at = Some(now);
                    e.retired.push(g);
                }
            }
            e.generation = s.generation;
            e.fingerprint = s.fingerprint;
            e.rules = s.rules;
            e.base = s.base;
            if s.mode != iface.mode.name() {
                tracing::warn!(interface = %iface.name, running = %s.mode, config = iface.mode.name(),
                    "the adopted program keeps its XDP mode: a link update cannot change it (stop filterd without --keep, then start it)");
                e.mode = if s.mode == "drv" {
                    Mode::Drv
                } else {
                    Mode::Skb
                };
            }
        } else {
            remove_stale_pins(&e.dir);
        }
        if e.live.is_some() && candidate.fingerprint == e.fingerprint {
            e.save();
            return Ok((e, Start::Adopted));
        }
        let old = e.prog_id;
        e.swap(candidate)?;
        Ok((e, Start::AdoptedReplaced { old_prog_id: old }))
    }

    /// Folds the counters of programs replaced more than [`GRACE`] ago
    /// into the base and lets them go.
    pub fn fold(&mut self, now: Instant) -> Result<(), DaemonError> {
        let due = |g: &Generation| g.retired_at.is_some_and(|t| now.duration_since(t) >= GRACE);
        if !self.retired.iter().any(due) {
            return Ok(());
        }
        let (gone, kept): (Vec<Generation>, Vec<Generation>) =
            self.retired.drain(..).partition(due);
        self.retired = kept;
        for g in &gone {
            if let Err(e) = g.add_to(&mut self.base) {
                // Unreadable counters are lost rather than kept forever;
                // the totals still never go down.
                tracing::error!(interface = %self.ifname, error = %e, "a replaced program's counters were lost");
            }
        }
        // The state file stops naming the pins before they go, so a reader
        // never adds a generation twice or misses one.
        self.save();
        for g in &gone {
            g.unpin(&self.dir);
        }
        Ok(())
    }

    /// Per rule name: base plus every program still held.
    pub fn totals(&self) -> Result<Totals, DaemonError> {
        let gens: Vec<&Generation> = self.retired.iter().chain(self.live.as_ref()).collect();
        totals(&self.base, &gens)
    }

    fn state(&self) -> State {
        let mut s = State::new(&self.ifname, self.mode.name());
        s.generation = self.generation;
        s.fingerprint = self.fingerprint.clone();
        s.prog_id = self.prog_id;
        s.rules = self.rules.clone();
        s.counters = self
            .retired
            .iter()
            .chain(self.live.as_ref())
            .map(Generation::pin_record)
            .collect();
        s.base = self.base.clone();
        s
    }

    /// Writes the state file; a failure is logged (the program runs on,
    /// only `filterd stats` and a restart lose track of counters).
    pub fn save(&self) {
        if let Err(e) = state::write(&self.state_path, &self.state()) {
            tracing::error!(interface = %self.ifname, path = %self.state_path.display(), error = %e, "writing the state file");
        }
    }

    /// Leaves the program attached and pinned for the next `filterd run`.
    pub fn keep(self) {
        self.save();
    }

    /// Detaches the program and removes the pins and the state file.
    pub fn detach(self) -> Result<(), DaemonError> {
        link::detach(self.link_fd.as_fd())
            .map_err(sys_err(format!("detaching XDP from {}", self.ifname)))?;
        let _ = std::fs::remove_file(self.dir.join("link"));
        for g in self.retired.iter().chain(self.live.as_ref()) {
            g.unpin(&self.dir);
        }
        pin::remove_empty_dirs(&self.dir);
        let _ = std::fs::remove_dir(&self.dir);
        if let Some(record) = record_path(&self.ifname, &self.dir) {
            pin::forget(&record, &self.dir);
        }
        state::remove(&self.state_path);
        Ok(())
    }

    pub fn running_mode(&self) -> Option<&'static str> {
        bpf_kernel::iface::index(&self.ifname).and_then(|i| running_mode(i, self.prog_id))
    }
}

/// Where `filterd status` finds a daemon's pins outside the default layout
/// (a `[daemon] pin` of its own, or another network namespace).
fn record_path(ifname: &str, dir: &Path) -> Option<PathBuf> {
    let at = pin::netns_scope().ok()?.join(ifname);
    (at != dir).then(|| at.join("daemon"))
}
