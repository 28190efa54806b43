//! Loading the ELF objects this toolkit writes.
//!
//! `aya::EbpfLoader::new` (and so `aya::Ebpf::load`) parses the running
//! kernel's BTF (`/sys/kernel/btf/vmlinux`, several megabytes) on every
//! call, for CO-RE relocations. Objects from `filter_programs::elf` carry
//! none, so one loader without kernel BTF serves the whole process: the
//! daemon's reloads and repeated socket attaches pay for no parse after
//! the first. The object's own BTF (its map types) still goes to the
//! kernel as usual. Objects from elsewhere (`filterd attach xdp FILE.o`)
//! may need relocations and go through `aya::Ebpf::load`.

use std::sync::{Mutex, OnceLock};

use aya::{Ebpf, EbpfError, EbpfLoader};

/// Parses `bytes`, written by `filter_programs::elf`, and creates its maps.
pub fn load_own(bytes: &[u8]) -> Result<Ebpf, EbpfError> {
    static LOADER: OnceLock<Mutex<EbpfLoader<'static>>> = OnceLock::new();
    let loader = LOADER.get_or_init(|| {
        let mut l = EbpfLoader::new();
        l.btf(None);
        Mutex::new(l)
    });
    // A load that panicked left no state behind that the next one reads.
    let mut l = loader
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    l.load(bytes)
}
