//! `filterd status`: every XDP and tc program attached in the calling
//! thread's network namespace, whoever attached it, and which of them
//! filterd pinned.

use std::collections::HashMap;
use std::fmt::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use aya::programs::{SchedClassifier, TcAttachType};

use bpf_kernel::{link, netlink, obj};

use super::{pin, AttachError, Direction};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    pub ifname: String,
    pub ifindex: u32,
    /// `xdp`, `tc-ingress`, `tc-egress`, `tcx-ingress` or `tcx-egress`.
    pub hook: String,
    /// XDP: `skb`, `drv` or `hw`; tc: `direct-action` or `classic`; tcx: `tcx`.
    pub mode: String,
    pub prog_id: u32,
    pub name: String,
    /// The kernel's tag (a hash of the instructions), as bpftool prints it.
    pub tag: String,
    /// tc only: the filter's priority and handle.
    pub tc_slot: Option<(u16, u32)>,
    /// The filterd pin directory holding this program, if any.
    pub pinned: Option<PathBuf>,
}

/// Program ids pinned under filterd's root for this namespace, with the
/// pin directory holding each: `<iface>/<hook>` of `filterd attach`,
/// `<iface>` itself for the daemon's default pin, and the directories
/// elsewhere that [`pin::record`] names.
fn filterd_pins() -> Result<HashMap<u32, PathBuf>, AttachError> {
    let mut out = HashMap::new();
    let scope = pin::netns_scope()?;
    let Ok(ifaces) = std::fs::read_dir(&scope) else {
        return Ok(out);
    };
    let mut note = |dir: PathBuf| {
        if let Some(id) = pinned_prog(&dir) {
            out.insert(id, dir.clone());
        }
        if let Ok(fd) = obj::get(&dir.join("link")) {
            if let Ok(info) = link::info(fd.as_fd()) {
                out.insert(info.prog_id, dir);
            }
        }
    };
    for iface in ifaces.flatten() {
        note(iface.path());
        let Ok(hooks) = std::fs::read_dir(iface.path()) else {
            continue;
        };
        for hook in hooks.flatten() {
            note(pin::resolve(&hook.path()));
        }
    }
    Ok(out)
}

fn pinned_prog(dir: &Path) -> Option<u32> {
    aya::programs::ProgramInfo::from_pin(dir.join("prog"))
        .ok()
        .map(|i| i.id())
}

/// Everything attached, interface by interface, XDP first.
pub fn list() -> Result<Vec<Attached>, AttachError> {
    let links =
        netlink::links().map_err(|e| AttachError::io("listing interfaces (RTM_GETLINK)", e))?;
    let mut programs = HashMap::new();
    for p in aya::programs::loaded_programs() {
        let p = p.map_err(|e| AttachError::system("listing loaded programs", e))?;
        programs.insert(
            p.id(),
            (
                p.name_as_str().unwrap_or("").to_string(),
                format!("{:016x}", p.tag()),
            ),
        );
    }
    let pins = filterd_pins()?;
    let mut out = Vec::new();
    let mut push =
        |l: &netlink::Link, hook: String, mode: String, id: u32, slot: Option<(u16, u32)>| {
            let (name, tag) = programs.get(&id).cloned().unwrap_or_default();
            out.push(Attached {
                ifname: l.name.clone(),
                ifindex: l.ifindex,
                hook,
                mode,
                prog_id: id,
                name,
                tag,
                tc_slot: slot,
                pinned: pins.get(&id).cloned(),
            });
        };
    for l in &links {
        for (mode, id) in &l.xdp {
            push(l, "xdp".into(), mode.to_string(), *id, None);
        }
        for dir in [Direction::Ingress, Direction::Egress] {
            let filters = netlink::filters(l.ifindex, dir.parent())
                .map_err(|e| AttachError::io(format!("{}: listing tc filters", l.name), e))?;
            for f in filters.iter().filter(|f| f.kind == "bpf") {
                let mode = if f.direct_action {
                    "direct-action"
                } else {
                    "classic"
                };
                push(
                    l,
                    dir.hook_name().into(),
                    mode.into(),
                    f.prog_id.unwrap_or(0),
                    Some((f.priority, f.handle)),
                );
            }
            let tcx = match dir {
                Direction::Ingress => TcAttachType::Ingress,
                Direction::Egress => TcAttachType::Egress,
            };
            // tcx (Linux >= 6.6) is another way to run tc programs; a
            // kernel without it answers with an error, which means none.
            if let Ok((_, progs)) = SchedClassifier::query_tcx(&l.name, tcx) {
                for p in progs {
                    push(l, format!("tcx-{}", dir.name()), "tcx".into(), p.id(), None);
                }
            }
        }
    }
    Ok(out)
}

/// `{"attached": [...]}`, one object per program.
pub fn to_json(list: &[Attached]) -> String {
    let attached: Vec<_> = list
        .iter()
        .map(|a| {
            serde_json::json!({
                "interface": a.ifname,
                "ifindex": a.ifindex,
                "hook": a.hook,
                "mode": a.mode,
                "prog_id": a.prog_id,
                "name": a.name,
                "tag": a.tag,
                "priority": a.tc_slot.map(|(p, _)| p),
                "handle": a.tc_slot.map(|(_, h)| h),
                "filterd": a.pinned.is_some(),
                "pin": a.pinned.as_ref().map(|p| p.display().to_string()),
            })
        })
        .collect();
    serde_json::json!({ "attached": attached }).to_string()
}

/// One line per program, for people.
pub fn to_text(list: &[Attached]) -> String {
    if list.is_empty() {
        return "no XDP or tc programs attached\n".into();
    }
    let mut o = format!(
        "{:<12} {:<12} {:<14} {:>7}  {:<16} {:<16} {}\n",
        "INTERFACE", "HOOK", "MODE", "PROG", "NAME", "TAG", "FILTERD PIN"
    );
    for a in list {
        let _ = writeln!(
            o,
            "{:<12} {:<12} {:<14} {:>7}  {:<16} {:<16} {}",
            a.ifname,
            a.hook,
            a.mode,
            a.prog_id,
            a.name,
            a.tag,
            a.pinned
                .as_ref()
                .map_or("-".into(), |p| p.display().to_string())
        );
    }
    o
}
