//! [`TcHook`]: filterd's `cls_bpf` filter (direct action) under clsact,
//! at a fixed priority and handle. See [`crate::attach`].

use std::path::{Path, PathBuf};

use aya::programs::tc::{NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle};
use aya::programs::{Link, SchedClassifier, TcAttachType};
use bpf_kernel::netlink::{self, CLSACT_EGRESS, CLSACT_INGRESS};

use super::error::{errno_of, load_error, parse_object};
use super::xdp::Outcome;
use super::{interface_index, pin, AttachError, Maps, Program};

/// filterd's slot in the clsact chain: the first priority, so it runs
/// before filters other tools add with the kernel's default priorities.
pub const PRIORITY: u16 = 1;
pub const HANDLE: u32 = 0xfd;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
    /// The pin directory's last component.
    pub fn hook_name(self) -> &'static str {
        match self {
            Direction::Ingress => "tc-ingress",
            Direction::Egress => "tc-egress",
        }
    }
    fn aya(self) -> TcAttachType {
        match self {
            Direction::Ingress => TcAttachType::Ingress,
            Direction::Egress => TcAttachType::Egress,
        }
    }
    pub fn parent(self) -> u32 {
        match self {
            Direction::Ingress => CLSACT_INGRESS,
            Direction::Egress => CLSACT_EGRESS,
        }
    }
}

#[derive(Debug)]
pub struct TcHook {
    ifname: String,
    ifindex: u32,
    direction: Direction,
    pin_dir: PathBuf,
    prog_id: u32,
    outcome: Outcome,
    maps: Maps,
}

/// The program id of the filter in filterd's slot, if there is one.
fn slot(ifindex: u32, direction: Direction) -> Result<Option<u32>, AttachError> {
    let filters = netlink::filters(ifindex, direction.parent())
        .map_err(|e| AttachError::io(format!("listing tc {} filters", direction.name()), e))?;
    Ok(filters
        .iter()
        .find(|f| f.priority == PRIORITY && f.handle == HANDLE)
        .map(|f| f.prog_id.unwrap_or(0)))
}

fn slot_link(ifname: &str, direction: Direction) -> Result<SchedClassifierLink, AttachError> {
    SchedClassifierLink::attached(
        ifname,
        direction.aya(),
        PRIORITY,
        TcHandle::from(HANDLE),
        None,
    )
    .map_err(|e| AttachError::io(ifname.to_string(), e))
}

fn classifier<'a>(
    ebpf: &'a mut aya::Ebpf,
    program: &Program,
) -> Result<&'a mut SchedClassifier, AttachError> {
    let p = ebpf.program_mut(&program.name).ok_or_else(|| {
        AttachError::Invalid(format!("the object has no program {}", program.name))
    })?;
    p.try_into().map_err(|e| {
        AttachError::Invalid(format!(
            "program {} is not a tc classifier: {e}",
            program.name
        ))
    })
}

/// Attaches (or, when the slot is taken, replaces in place) and returns
/// the staged pin's path, the new program's id and what happened.
fn install(
    ifname: &str,
    ifindex: u32,
    direction: Direction,
    program: &Program,
    dir: &Path,
) -> Result<(aya::Ebpf, u32, Outcome), AttachError> {
    let mut ebpf = parse_object(program)?;
    let cls = classifier(&mut ebpf, program)?;
    cls.load().map_err(|e| load_error(e, program))?;
    let prog_id = cls
        .info()
        .map_err(|e| AttachError::system("reading program info", e))?
        .id();
    let staged = pin::staging(dir, "prog");
    pin::unpin(&staged)?;
    cls.pin(&staged)
        .map_err(|e| AttachError::system(format!("pinning {}", staged.display()), e))?;
    let result = (|| {
        if let Err(e) = aya::programs::tc::qdisc_add_clsact(ifname) {
            if errno_of(&e) != Some(libc::EEXIST) {
                return Err(AttachError::system(
                    format!("adding the clsact qdisc to {ifname}"),
                    e,
                ));
            }
        }
        let (id, outcome) = match slot(ifindex, direction)? {
            Some(old_prog_id) => {
                // RTM_NEWTFILTER on the same priority and handle without
                // NLM_F_EXCL: cls_bpf swaps the program in place.
                let id = cls
                    .attach_to_link(slot_link(ifname, direction)?)
                    .map_err(|e| {
                        AttachError::system(format!("replacing the tc program on {ifname}"), e)
                    })?;
                (id, Outcome::Replaced { old_prog_id })
            }
            None => {
                let opts = NlOptions {
                    priority: PRIORITY,
                    handle: TcHandle::from(HANDLE),
                    classid: None,
                };
                let id = cls
                    .attach_with_options(ifname, direction.aya(), TcAttachOptions::Netlink(opts))
                    .map_err(|e| {
                        AttachError::system(
                            format!("attaching tc {} on {ifname}", direction.name()),
                            e,
                        )
                    })?;
                (id, Outcome::Attached)
            }
        };
        // The filter must outlive this process: aya would delete it when
        // the link is dropped. A netlink link owns no fd, so forgetting it
        // leaks nothing.
        let link = cls
            .take_link(id)
            .map_err(|e| AttachError::system("taking the tc link", e))?;
        std::mem::forget(link);
        if let Err(e) = pin::commit(&staged, dir, "prog") {
            if outcome == Outcome::Attached {
                let _ = slot_link(ifname, direction).map(|l| l.detach());
            }
            return Err(e);
        }
        Ok(outcome)
    })();
    match result {
        Ok(outcome) => Ok((ebpf, prog_id, outcome)),
        Err(e) => {
            let _ = pin::unpin(&staged);
            Err(e)
        }
    }
}

impl TcHook {
    /// Attaches `program` on `ifname` in `direction` (adding clsact when
    /// missing), or replaces filterd's program there atomically. Pins the
    /// program at `pin_dir/prog`.
    pub fn attach(
        ifname: &str,
        direction: Direction,
        program: &Program,
        pin_dir: &Path,
    ) -> Result<TcHook, AttachError> {
        let ifindex = interface_index(ifname)?;
        let created = pin::prepare(pin_dir)?;
        match install(ifname, ifindex, direction, program, pin_dir) {
            Ok((mut ebpf, prog_id, outcome)) => Ok(TcHook {
                ifname: ifname.into(),
                ifindex,
                direction,
                pin_dir: pin_dir.into(),
                prog_id,
                outcome,
                maps: Maps::take_all(&mut ebpf),
            }),
            Err(e) => {
                created.undo();
                Err(e)
            }
        }
    }

    /// Adopts filterd's filter (after a restart): the program pinned at
    /// `pin_dir/prog` must be the one in the slot.
    pub fn from_pin(
        ifname: &str,
        direction: Direction,
        pin_dir: &Path,
    ) -> Result<TcHook, AttachError> {
        let ifindex = interface_index(ifname)?;
        let path = pin_dir.join("prog");
        let info = aya::programs::ProgramInfo::from_pin(&path).map_err(|e| match errno_of(&e) {
            Some(libc::ENOENT) => AttachError::NotAttached(format!(
                "no filterd tc program pinned at {}",
                path.display()
            )),
            _ => AttachError::system(format!("opening {}", path.display()), e),
        })?;
        match slot(ifindex, direction)? {
            Some(id) if id == info.id() => {}
            other => {
                return Err(AttachError::NotAttached(format!(
                    "{ifname} tc {}: the pinned program {} is not the one attached ({other:?})",
                    direction.name(),
                    info.id()
                )))
            }
        }
        Ok(TcHook {
            ifname: ifname.into(),
            ifindex,
            direction,
            pin_dir: pin_dir.into(),
            prog_id: info.id(),
            outcome: Outcome::Attached,
            maps: Maps::of_program(info.id())?,
        })
    }

    /// Swaps in `program` atomically (same priority and handle).
    pub fn replace(&mut self, program: &Program) -> Result<(), AttachError> {
        let (mut ebpf, prog_id, outcome) = install(
            &self.ifname,
            self.ifindex,
            self.direction,
            program,
            &self.pin_dir,
        )?;
        self.outcome = outcome;
        self.prog_id = prog_id;
        self.maps = Maps::take_all(&mut ebpf);
        Ok(())
    }

    pub fn detach(self) -> Result<(), AttachError> {
        detach(&self.ifname, self.direction, &self.pin_dir)
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }
    pub fn direction(&self) -> Direction {
        self.direction
    }
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
    pub fn maps(&self) -> &Maps {
        &self.maps
    }
    pub fn maps_mut(&mut self) -> &mut Maps {
        &mut self.maps
    }
}

/// Removes filterd's filter from `ifname`'s `direction` and its pin, and
/// the clsact qdisc once no filter of anyone is left under it (as after
/// `tc qdisc del dev IFACE clsact`; one that still holds filters stays).
pub fn detach(ifname: &str, direction: Direction, pin_dir: &Path) -> Result<(), AttachError> {
    let ifindex = interface_index(ifname)?;
    let attached = slot(ifindex, direction)?.is_some();
    let pinned = pin_dir.join("prog").exists();
    if !attached && !pinned {
        return Err(AttachError::NotAttached(format!(
            "{ifname}: no filterd tc {} program (priority {PRIORITY}, handle {HANDLE:#x})",
            direction.name()
        )));
    }
    if attached {
        slot_link(ifname, direction)?.detach().map_err(|e| {
            AttachError::system(
                format!("detaching tc {} from {ifname}", direction.name()),
                e,
            )
        })?;
    }
    pin::unpin(&pin_dir.join("prog"))?;
    pin::remove_empty_dirs(pin_dir);
    remove_empty_clsact(ifname, ifindex);
    Ok(())
}

/// The filter is gone already, so a failure here only leaves an empty
/// qdisc behind: logged, not an error.
fn remove_empty_clsact(ifname: &str, ifindex: u32) {
    let empty = [CLSACT_INGRESS, CLSACT_EGRESS]
        .iter()
        .map(|p| netlink::filters(ifindex, *p).map(|f| f.is_empty()))
        .collect::<Result<Vec<bool>, _>>();
    match empty {
        Ok(e) if e.iter().all(|x| *x) => match netlink::delete_clsact(ifindex) {
            Ok(removed) => tracing::debug!(ifname, removed, "no filter left: clsact qdisc removed"),
            Err(e) => tracing::warn!(ifname, error = %e, "removing the empty clsact qdisc"),
        },
        Ok(_) => tracing::debug!(ifname, "other filters remain: the clsact qdisc stays"),
        Err(e) => tracing::warn!(ifname, error = %e, "listing tc filters; the clsact qdisc stays"),
    }
}
