//! ELF object bytes → our reader → our checker → our VM: the reader never
//! panics, and every program section it finds that the checker accepts
//! runs without a fault (as `pcap-replay --ebpf` would run it).

use filter_programs::elf::read::programs;
use filter_programs::Hook;

use crate::{ebpf_vm, Outcome};

pub fn check(data: &[u8]) -> Outcome {
    let Ok(sections) = programs(data) else {
        return Ok(());
    };
    for s in sections {
        // Replay takes sections without relocations only (see
        // pcap-replay's `load_ebpf`); others never reach the VM.
        let Some(hook) = Hook::of_section(&s.name) else {
            continue;
        };
        if s.relocations == 0 {
            ebpf_vm::run_accepted(&s.insns, hook)
                .map_err(|e| format!("section {}: {e}", s.name))?;
        }
    }
    Ok(())
}
