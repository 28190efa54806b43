//! Replacing the program of one interface in steps, so that a reload of
//! several interfaces is all or nothing:
//! - [`Enforced::stage`] does everything that can fail for reasons of its
//!   own (pinning the new generation, finding its program) and changes
//!   nothing a packet sees;
//! - [`Enforced::commit`] is the one `BPF_LINK_UPDATE`, and keeps what
//!   [`Enforced::revert`] needs to put the previous program back when a
//!   later interface of the same reload fails.
//!
//! The previous program is held by a new fd taken before the update: once
//! the link lets go of it, an adopted program (loaded by an earlier
//! `filterd run`) would otherwise be freed, and could not be found again
//! without CAP_SYS_ADMIN.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use super::generation::{xdp_of, Candidate, Generation};
use super::iface::Enforced;
use super::state::RuleInfo;
use bpf_kernel::{link, prog};

use super::DaemonError;

/// A new generation pinned beside the running one, not yet attached.
pub struct Staged {
    gen: Generation,
    prog_id: u32,
    fingerprint: String,
    rules: Vec<RuleInfo>,
}

/// What the link ran before a commit.
pub struct Undo {
    /// `None` when no fd on it could be had (then a revert is refused).
    prog: Option<OwnedFd>,
    prog_id: u32,
    fingerprint: String,
    rules: Vec<RuleInfo>,
    /// Whether the commit retired a generation (an adopted link without
    /// its state file has none).
    retired: bool,
}

fn program_fd(gen: &mut Generation) -> Result<OwnedFd, DaemonError> {
    let loaded = gen
        .loaded
        .as_mut()
        .ok_or_else(|| DaemonError::System("no loaded program".into()))?;
    let fd = xdp_of(loaded)?
        .fd()
        .map_err(|e| DaemonError::System(format!("program fd: {e}")))?;
    fd.as_fd()
        .try_clone_to_owned()
        .map_err(|e| DaemonError::System(format!("duplicating the program fd: {e}")))
}

impl Enforced {
    /// Pins `candidate` as the next generation; on failure nothing new
    /// stays pinned.
    pub fn stage(&mut self, candidate: Candidate) -> Result<Staged, DaemonError> {
        self.generation += 1;
        let (fingerprint, rules) = (candidate.fingerprint.clone(), candidate.rules.clone());
        let mut gen = candidate.into_generation(&self.dir, self.generation)?;
        let prog_id = gen
            .loaded
            .as_mut()
            .ok_or_else(|| DaemonError::System("no loaded program".into()))
            .and_then(|l| {
                xdp_of(l)?
                    .info()
                    .map(|i| i.id())
                    .map_err(|e| DaemonError::System(format!("program info: {e}")))
            });
        match prog_id {
            Ok(prog_id) => Ok(Staged {
                gen,
                prog_id,
                fingerprint,
                rules,
            }),
            Err(e) => {
                gen.unpin(&self.dir);
                Err(e)
            }
        }
    }

    /// Removes a staged generation's pins.
    pub fn abandon(&self, staged: Staged) {
        staged.gen.unpin(&self.dir);
    }

    /// Points the link at the staged program. On failure the running
    /// program stays and the staged pins are removed.
    pub fn commit(&mut self, mut staged: Staged) -> Result<Undo, DaemonError> {
        let previous = match self.live.as_mut().map(program_fd) {
            Some(Ok(fd)) => Some(fd),
            _ => prog::fd_by_id(self.prog_id).ok(),
        };
        let updated = program_fd(&mut staged.gen).and_then(|fd| {
            link::update(self.link_fd.as_fd(), fd.as_fd()).map_err(|e| {
                DaemonError::System(format!("BPF_LINK_UPDATE on {}: {e}", self.ifname))
            })
        });
        if let Err(e) = updated {
            self.abandon(staged);
            return Err(e);
        }
        let undo = Undo {
            prog: previous,
            prog_id: self.prog_id,
            fingerprint: std::mem::replace(&mut self.fingerprint, staged.fingerprint),
            rules: std::mem::replace(&mut self.rules, staged.rules),
            retired: self.live.is_some(),
        };
        if let Some(mut old) = self.live.replace(staged.gen) {
            old.retired_at = Some(Instant::now());
            self.retired.push(old);
        }
        self.prog_id = staged.prog_id;
        self.save();
        Ok(undo)
    }

    /// Puts back the program `undo` recorded. The reverted generation
    /// retires like any replaced one, so what it counted meanwhile stays
    /// counted. The previous generation counts again; if it was adopted
    /// without its counters, the reverted program's pins keep counting
    /// nothing new.
    pub fn revert(&mut self, undo: Undo) -> Result<(), DaemonError> {
        let prog = undo.prog.ok_or_else(|| {
            DaemonError::System(format!(
                "{}: no fd on the previous program {} (adopted, and no CAP_SYS_ADMIN to find it by id); the new one stays",
                self.ifname, undo.prog_id
            ))
        })?;
        link::update(self.link_fd.as_fd(), prog.as_fd()).map_err(|e| {
            DaemonError::System(format!(
                "putting program {} back on {}: {e}",
                undo.prog_id, self.ifname
            ))
        })?;
        let now = Instant::now();
        // The generation retired by the commit is the last one retired.
        let previous = if undo.retired {
            self.retired.pop()
        } else {
            None
        }
        .map(|mut g| {
            g.retired_at = None;
            g
        });
        if let Some(mut reverted) = std::mem::replace(&mut self.live, previous) {
            reverted.retired_at = Some(now);
            self.retired.push(reverted);
        }
        self.prog_id = undo.prog_id;
        self.fingerprint = undo.fingerprint;
        self.rules = undo.rules;
        self.save();
        Ok(())
    }

    /// Replaces the running program with `candidate` through the link;
    /// on failure the running program stays and nothing new stays pinned.
    pub fn swap(&mut self, candidate: Candidate) -> Result<(), DaemonError> {
        let staged = self.stage(candidate)?;
        self.commit(staged).map(|_| ())
    }
}
