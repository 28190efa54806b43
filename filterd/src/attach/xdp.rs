//! [`XdpHook`]: one filterd XDP program on one interface, held by a pinned
//! BPF link. See the module documentation of [`crate::attach`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::xdp::XdpLink;
use aya::programs::Xdp;

use super::error::{load_error, parse_object};
use bpf_kernel::{iface, netlink, obj};

use super::{interface_index, pin, AttachError, Maps, Program};

/// Where XDP runs. `Auto` lets the kernel pick (native when the driver
/// has it, generic otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    #[default]
    Auto,
    Skb,
    Drv,
    Hw,
}

impl XdpMode {
    pub fn name(self) -> &'static str {
        match self {
            XdpMode::Auto => "auto",
            XdpMode::Skb => "skb",
            XdpMode::Drv => "drv",
            XdpMode::Hw => "hw",
        }
    }
    fn aya(self) -> aya::programs::XdpMode {
        match self {
            XdpMode::Auto => aya::programs::XdpMode::Default,
            XdpMode::Skb => aya::programs::XdpMode::Skb,
            XdpMode::Drv => aya::programs::XdpMode::Driver,
            XdpMode::Hw => aya::programs::XdpMode::Hardware,
        }
    }
}

/// What [`XdpHook::attach`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Attached,
    /// A filterd link was pinned: its program was swapped atomically.
    Replaced {
        old_prog_id: u32,
    },
}

#[derive(Debug)]
pub struct XdpHook {
    ifname: String,
    ifindex: u32,
    pin_dir: PathBuf,
    /// aya's handle on the pinned link, which `attach_to_link` consumes;
    /// `None` only if reopening the pin after a failed update failed.
    link: Option<FdLink>,
    /// Our own fd on the same link, for `bpf_link_info` and detaching.
    link_fd: OwnedFd,
    prog_id: u32,
    outcome: Outcome,
    maps: Maps,
}

/// The live filterd link pinned at `dir/link` (aya's handle, our own fd
/// on it, its program id), if any. A defunct one (its device is gone)
/// holds nothing and is unpinned.
fn pinned_link(dir: &Path, ifindex: u32) -> Result<Option<(FdLink, OwnedFd, u32)>, AttachError> {
    let path = dir.join("link");
    let raw = match obj::get(&path) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(AttachError::io(format!("opening {}", path.display()), e)),
    };
    let info = bpf_kernel::link::info(raw.as_fd())
        .map_err(|e| AttachError::io(path.display().to_string(), e))?;
    if info.link_type != bpf_kernel::link::BPF_LINK_TYPE_XDP {
        return Err(AttachError::Busy(format!(
            "{} is not an XDP link (type {})",
            path.display(),
            info.link_type
        )));
    }
    if info.ifindex == 0 {
        drop(raw);
        pin::unpin(&path)?;
        return Ok(None);
    }
    if info.ifindex != ifindex {
        return Err(AttachError::Busy(format!(
            "{} holds the XDP link of interface index {}, not {ifindex}; use another --pin",
            path.display(),
            info.ifindex
        )));
    }
    let link = PinnedLink::from_pin(&path)
        .map_err(|e| AttachError::system(format!("opening {}", path.display()), e))?;
    Ok(Some((FdLink::from(link), raw, info.prog_id)))
}

fn xdp_of<'a>(ebpf: &'a mut aya::Ebpf, program: &Program) -> Result<&'a mut Xdp, AttachError> {
    let p = ebpf.program_mut(&program.name).ok_or_else(|| {
        AttachError::Invalid(format!("the object has no program {}", program.name))
    })?;
    p.try_into()
        .map_err(|e| AttachError::Invalid(format!("program {} is not XDP: {e}", program.name)))
}

/// Loads `program` and pins it under a staging name in `dir`.
fn load_staged(program: &Program, dir: &Path) -> Result<(aya::Ebpf, u32, PathBuf), AttachError> {
    let mut ebpf = parse_object(program)?;
    let xdp = xdp_of(&mut ebpf, program)?;
    xdp.load().map_err(|e| load_error(e, program))?;
    let id = xdp
        .info()
        .map_err(|e| AttachError::system("reading program info", e))?
        .id();
    let staged = pin::staging(dir, "prog");
    pin::unpin(&staged)?;
    xdp.pin(&staged)
        .map_err(|e| AttachError::system(format!("pinning {}", staged.display()), e))?;
    Ok((ebpf, id, staged))
}

fn attach_error(iface: &str, mode: XdpMode, e: aya::programs::ProgramError) -> AttachError {
    let errno = super::error::errno_of(&e);
    match errno {
        Some(libc::EOPNOTSUPP) => AttachError::ModeUnsupported { iface: iface.into(), mode: mode.name(), source: io::Error::from_raw_os_error(libc::EOPNOTSUPP) },
        Some(libc::EINVAL) if matches!(mode, XdpMode::Drv | XdpMode::Hw) => {
            AttachError::ModeUnsupported { iface: iface.into(), mode: mode.name(), source: io::Error::from_raw_os_error(libc::EINVAL) }
        }
        Some(libc::EBUSY) | Some(libc::EEXIST) => AttachError::Busy(format!(
            "{iface}: another XDP program is attached (not through a filterd pin); detach it first (`ip link set dev {iface} xdp off`)"
        )),
        _ => AttachError::system(format!("attaching XDP to {iface}"), e),
    }
}

impl XdpHook {
    /// Attaches `program` to `ifname`, or, when `pin_dir` holds filterd's
    /// live link for it, replaces the program inside that link atomically
    /// (`mode` must then be `Auto` or the mode already in use). Pins the
    /// link at `pin_dir/link` and the program at `pin_dir/prog`.
    pub fn attach(
        ifname: &str,
        mode: XdpMode,
        program: &Program,
        pin_dir: &Path,
    ) -> Result<XdpHook, AttachError> {
        let ifindex = interface_index(ifname)?;
        let created = pin::prepare(pin_dir)?;
        let result = Self::attach_in(ifname, ifindex, mode, program, pin_dir);
        if result.is_err() {
            created.undo();
        }
        result
    }

    fn attach_in(
        ifname: &str,
        ifindex: u32,
        mode: XdpMode,
        program: &Program,
        dir: &Path,
    ) -> Result<XdpHook, AttachError> {
        let existing = pinned_link(dir, ifindex)?;
        if let (Some((_, _, old)), XdpMode::Skb | XdpMode::Drv | XdpMode::Hw) = (&existing, mode) {
            if let Some(current) = current_mode(ifindex, *old).filter(|c| *c != mode.name()) {
                return Err(AttachError::Busy(format!(
                    "{ifname}: filterd's program runs in {current} mode; a link update cannot change the mode (detach first)"
                )));
            }
        }
        let (mut ebpf, prog_id, staged) = load_staged(program, dir)?;
        let undo_stage = |e: AttachError| {
            let _ = pin::unpin(&staged);
            e
        };
        let xdp = xdp_of(&mut ebpf, program).map_err(undo_stage)?;
        let (link, link_fd, outcome) = match existing {
            Some((fd_link, raw, old_prog_id)) => {
                let xdp_link = XdpLink::try_from(fd_link)
                    .map_err(|e| undo_stage(AttachError::system("the pinned link", e)))?;
                let id = xdp.attach_to_link(xdp_link).map_err(|e| {
                    undo_stage(AttachError::system(
                        format!("replacing the XDP program on {ifname}"),
                        e,
                    ))
                })?;
                let link = xdp
                    .take_link(id)
                    .map_err(|e| undo_stage(AttachError::system("taking the link", e)))?;
                let fd = FdLink::try_from(link)
                    .map_err(|e| undo_stage(AttachError::system("the updated link", e)))?;
                (fd, raw, Outcome::Replaced { old_prog_id })
            }
            None => {
                let id = xdp
                    .attach_to_if_index(ifindex, mode.aya())
                    .map_err(|e| undo_stage(attach_error(ifname, mode, e)))?;
                // aya falls back to netlink when the kernel refuses a link
                // with EINVAL; such an attachment cannot be pinned, so it
                // is undone rather than left behind.
                if !has_xdp_link(prog_id) {
                    let _ = xdp.detach(id);
                    return Err(undo_stage(AttachError::Busy(format!(
                        "{ifname}: the kernel attached XDP without a BPF link; filterd needs links (Linux >= 5.9)"
                    ))));
                }
                let link = xdp
                    .take_link(id)
                    .map_err(|e| undo_stage(AttachError::system("taking the link", e)))?;
                let fd = FdLink::try_from(link)
                    .map_err(|e| undo_stage(AttachError::system("the new link", e)))?;
                let at = dir.join("link");
                // On failure `pin` drops the only fd of the link, which
                // detaches it.
                let pinned = fd.pin(&at).map_err(|e| {
                    undo_stage(AttachError::system(format!("pinning {}", at.display()), e))
                })?;
                let raw = match obj::get(&at) {
                    Ok(raw) => raw,
                    Err(e) => {
                        let _ = pin::unpin(&at);
                        return Err(undo_stage(AttachError::io(
                            format!("opening {}", at.display()),
                            e,
                        )));
                    }
                };
                (FdLink::from(pinned), raw, Outcome::Attached)
            }
        };
        if let Err(e) = pin::commit(&staged, dir, "prog") {
            if outcome == Outcome::Attached {
                let _ = bpf_kernel::link::detach(link_fd.as_fd());
                let _ = pin::unpin(&dir.join("link"));
            }
            return Err(undo_stage(e));
        }
        let maps = Maps::take_all(&mut ebpf);
        Ok(XdpHook {
            ifname: ifname.into(),
            ifindex,
            pin_dir: dir.into(),
            link: Some(link),
            link_fd,
            prog_id,
            outcome,
            maps,
        })
    }

    /// Adopts the link pinned at `pin_dir/link` (after a restart).
    pub fn from_pin(pin_dir: &Path) -> Result<XdpHook, AttachError> {
        let path = pin_dir.join("link");
        let link_fd = obj::get(&path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => AttachError::NotAttached(format!(
                "no filterd XDP link pinned at {}",
                path.display()
            )),
            _ => AttachError::io(format!("opening {}", path.display()), e),
        })?;
        let info = bpf_kernel::link::info(link_fd.as_fd())
            .map_err(|e| AttachError::io(path.display().to_string(), e))?;
        if info.link_type != bpf_kernel::link::BPF_LINK_TYPE_XDP {
            return Err(AttachError::NotAttached(format!(
                "{} is not an XDP link",
                path.display()
            )));
        }
        if info.ifindex == 0 {
            return Err(AttachError::NotAttached(format!(
                "{}: the interface of this link is gone",
                path.display()
            )));
        }
        let ifname = iface::name(info.ifindex).ok_or_else(|| {
            AttachError::NotAttached(format!(
                "{}: interface index {} is not in this network namespace",
                path.display(),
                info.ifindex
            ))
        })?;
        let link = PinnedLink::from_pin(&path)
            .map_err(|e| AttachError::system(format!("opening {}", path.display()), e))?;
        let maps = Maps::of_program(info.prog_id)?;
        Ok(XdpHook {
            ifname,
            ifindex: info.ifindex,
            pin_dir: pin_dir.into(),
            link: Some(FdLink::from(link)),
            link_fd,
            prog_id: info.prog_id,
            outcome: Outcome::Attached,
            maps,
        })
    }

    /// Swaps in `program` through `BPF_LINK_UPDATE`: no packet runs
    /// without a program.
    pub fn replace(&mut self, program: &Program) -> Result<(), AttachError> {
        let (mut ebpf, prog_id, staged) = load_staged(program, &self.pin_dir)?;
        let link_path = self.pin_dir.join("link");
        let result = (|| {
            let xdp = xdp_of(&mut ebpf, program)?;
            let fd = match self.link.take() {
                Some(l) => l,
                None => FdLink::from(
                    PinnedLink::from_pin(&link_path)
                        .map_err(|e| AttachError::system("reopening the link", e))?,
                ),
            };
            let xdp_link =
                XdpLink::try_from(fd).map_err(|e| AttachError::system("the pinned link", e))?;
            let id = xdp.attach_to_link(xdp_link).map_err(|e| {
                AttachError::system(format!("replacing the XDP program on {}", self.ifname), e)
            })?;
            let link = xdp
                .take_link(id)
                .map_err(|e| AttachError::system("taking the link", e))?;
            self.link = Some(
                FdLink::try_from(link).map_err(|e| AttachError::system("the updated link", e))?,
            );
            pin::commit(&staged, &self.pin_dir, "prog")
        })();
        if let Err(e) = result {
            let _ = pin::unpin(&staged);
            if self.link.is_none() {
                self.link = PinnedLink::from_pin(&link_path).ok().map(FdLink::from);
            }
            return Err(e);
        }
        self.outcome = Outcome::Replaced {
            old_prog_id: self.prog_id,
        };
        self.prog_id = prog_id;
        self.maps = Maps::take_all(&mut ebpf);
        Ok(())
    }

    /// Detaches the program (even if another process holds the link) and
    /// removes the pins.
    pub fn detach(self) -> Result<(), AttachError> {
        bpf_kernel::link::detach(self.link_fd.as_fd())
            .map_err(|e| AttachError::io(format!("detaching XDP from {}", self.ifname), e))?;
        pin::unpin(&self.pin_dir.join("link"))?;
        pin::unpin(&self.pin_dir.join("prog"))?;
        pin::remove_empty_dirs(&self.pin_dir);
        Ok(())
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }
    pub fn ifindex(&self) -> u32 {
        self.ifindex
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
    /// The mode the kernel reports for our program (`skb`, `drv`, `hw`).
    pub fn mode(&self) -> Option<&'static str> {
        current_mode(self.ifindex, self.prog_id)
    }
    pub fn maps(&self) -> &Maps {
        &self.maps
    }
    pub fn maps_mut(&mut self) -> &mut Maps {
        &mut self.maps
    }
}

impl AsFd for XdpHook {
    /// The link's fd.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.link_fd.as_fd()
    }
}

fn current_mode(ifindex: u32, prog_id: u32) -> Option<&'static str> {
    let links = netlink::links().ok()?;
    let l = links.into_iter().find(|l| l.ifindex == ifindex)?;
    l.xdp.iter().find(|(_, id)| *id == prog_id).map(|(m, _)| *m)
}

fn has_xdp_link(prog_id: u32) -> bool {
    aya::programs::loaded_links()
        .flatten()
        .any(|l| l.program_id() == prog_id)
}
