//! XDP and tc attachment through aya: load, attach, replace atomically,
//! pin, adopt after a restart, detach, and list what is attached.
//!
//! # API (what the CLI and the daemon use)
//!
//! ```text
//!  Program::build(&Source, Hook) -> Program            pure: expression | cBPF | ELF -> ELF bytes
//!  Program::from_object(&elf::Object) -> Program       the daemon's own program (with maps)
//!
//!  XdpHook::attach(ifname, XdpMode, &Program, pin_dir) -> XdpHook   attach, or replace if pinned
//!  XdpHook::from_pin(pin_dir) -> XdpHook                            adopt after a restart
//!  hook.replace(&Program)                                           BPF_LINK_UPDATE: no gap
//!  hook.maps().get("counters") -> Option<&aya::maps::Map>           the running program's maps
//!  hook.detach()                                                    unpin and detach
//!
//!  TcHook::attach(ifname, Direction, &Program, pin_dir) -> TcHook   same shape for tc
//!  status::list() -> Vec<status::Attached>                          every XDP/tc program here
//!  pin::default_dir(ifname, "xdp" | "tc-ingress" | "tc-egress")
//! ```
//!
//! # XDP: one pinned link per interface
//!
//! `XdpHook::attach` creates a BPF link (`bpf_link_create`) and pins it at
//! `<pin_dir>/link`, and pins the program at `<pin_dir>/prog`. A link lives
//! as long as someone holds it; the pin is that someone once the process
//! exits. When `<pin_dir>/link` already holds a live XDP link on the same
//! interface, `attach` does not detach anything: it swaps the program
//! inside the link with `BPF_LINK_UPDATE` (aya's `attach_to_link`), which
//! the kernel does by publishing the new program pointer with
//! `rcu_assign_pointer` (generic XDP and veth alike), so every packet runs
//! the old program or the new one. `tests/tests/attach_xdp_gap.rs`
//! (`xdp_replace_under_flood_has_no_gap`) counts it.
//!
//! # tc: clsact, direct action, a fixed (priority, handle)
//!
//! filterd's tc filter is a `cls_bpf` filter in direct-action mode at
//! priority [`tc::PRIORITY`] and handle [`tc::HANDLE`] under the clsact
//! qdisc (added when missing). Attaching where that filter exists sends
//! `RTM_NEWTFILTER` for the same priority and handle without `NLM_F_EXCL`:
//! `cls_bpf_change` swaps the program with `list_replace_rcu`, so the
//! replacement is atomic too. The filter outlives the process on its own;
//! the program pin at `<pin_dir>/prog` is how `status` tells it is ours and
//! how `TcHook::from_pin` finds its maps.
//!
//! # Failures leave nothing behind
//!
//! Everything that can be refused is done before anything is attached:
//! compiling, loading through the verifier, pinning the new program under a
//! staging name. Attaching is the last step that can fail; only after it
//! succeeds is the link pinned (XDP: if that pin fails, the link fd is
//! closed and the link with it) and the staged program pin renamed into
//! place. On any failure the staging pin and the directories created for
//! it are removed.
//!
//! # VLAN per hook (measured on veth, Linux 6.18; `tests/tests/attach_xdp_tc.rs`)
//!
//! XDP runs on the frame as it came off the wire: an 802.1Q/802.1ad tag is
//! still in the bytes (no device in these tests offloads tags on receive),
//! so an XDP program means what libpcap means on the frame as sent. Packet
//! sockets and tc ingress run after `__netif_receive_skb_core` has moved
//! the outer tag into `skb->vlan_*`: they see the frame without it.
//!
//! # Pins and network namespaces
//!
//! Interface names repeat across network namespaces, bpffs does not: the
//! default pin directory is `/sys/fs/bpf/filterd/<iface>/<hook>` in the
//! initial namespace and `/sys/fs/bpf/filterd/netns-<inode>/<iface>/<hook>`
//! elsewhere. bpffs is mounted on `/sys/fs/bpf` when it is missing.

pub mod error;
pub mod pin;
pub mod program;
pub mod status;
pub mod tc;
pub mod verifier;
pub mod xdp;

pub use error::AttachError;
pub use program::{Program, Source};
pub use tc::{Direction, TcHook};
pub use xdp::{Outcome, XdpHook, XdpMode};

use aya::maps::{Map, MapData};

/// The maps of an attached program, by name. For a program this process
/// loaded, the names are the ELF's; for an adopted one, the kernel's (at
/// most 15 characters, as `bpf_map_info.name` keeps them).
#[derive(Debug, Default)]
pub struct Maps(Vec<(String, Map)>);

impl Maps {
    pub fn get(&self, name: &str) -> Option<&Map> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Map> {
        self.0.iter_mut().find(|(n, _)| n == name).map(|(_, m)| m)
    }
    /// Takes a map out, e.g. to keep reading the counters of a program
    /// after [`XdpHook::replace`] swapped in another one.
    pub fn take(&mut self, name: &str) -> Option<Map> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// Takes every map out of a loaded object, so they outlive it.
    fn take_all(ebpf: &mut aya::Ebpf) -> Maps {
        let names: Vec<String> = ebpf.maps().map(|(n, _)| n.to_string()).collect();
        Maps(
            names
                .into_iter()
                .filter_map(|n| ebpf.take_map(&n).map(|m| (n, m)))
                .collect(),
        )
    }

    /// The maps a loaded program uses, found through its id.
    fn of_program(prog_id: u32) -> Result<Maps, AttachError> {
        let info = program_info(prog_id)?;
        let ids = info
            .map_ids()
            .map_err(|e| AttachError::system("reading the program's map ids", e))?
            .unwrap_or_default();
        let mut maps = Vec::new();
        for id in ids {
            let data = MapData::from_id(id)
                .map_err(|e| AttachError::system(format!("opening map {id}"), e))?;
            let name = data
                .info()
                .ok()
                .and_then(|i| i.name_as_str().map(str::to_string))
                .unwrap_or_else(|| format!("map{id}"));
            let map = Map::from_map_data(data)
                .map_err(|e| AttachError::system(format!("map {name}"), e))?;
            maps.push((name, map));
        }
        Ok(Maps(maps))
    }
}

/// The index of interface `name` in the calling thread's network
/// namespace, or [`AttachError::NoInterface`].
pub fn interface_index(name: &str) -> Result<u32, AttachError> {
    bpf_kernel::iface::index(name).ok_or_else(|| AttachError::NoInterface(name.to_string()))
}

/// The kernel's description of program `id`.
pub fn program_info(id: u32) -> Result<aya::programs::ProgramInfo, AttachError> {
    for p in aya::programs::loaded_programs() {
        let p = p.map_err(|e| AttachError::system("listing loaded programs", e))?;
        if p.id() == id {
            return Ok(p);
        }
    }
    Err(AttachError::NotAttached(format!(
        "no loaded program has id {id}"
    )))
}
