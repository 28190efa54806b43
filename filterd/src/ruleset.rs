//! A compiled filterd ruleset in the kernel: loaded through aya from our
//! ELF object (so the bytes are the ones `ip` and bpftool would load too),
//! verified, and readable: its per-CPU counters summed per rule name.
//!
//! Attaching is the caller's business (the daemon attaches through an XDP
//! link); this module is what the dry-run proofs and the daemon share.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use aya::maps::{Array, PerCpuArray, ProgramArray};
use aya::programs::{ProgramError, Xdp};
use aya::Ebpf;
use filter_programs::ebpf::disasm::disassemble;
use filter_programs::ruleset::cold;
use filter_programs::ruleset::compile::{Compiled, Table, COUNTERS_MAP, PROGRAMS_MAP};
use filter_programs::ruleset::dryrun::Counter;

use bpf_kernel::TestRun;

/// The entry program's name in the object (`filterd`).
pub use filter_programs::ruleset::compile::PROGRAM;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("writing the ELF object: {0}")]
    Elf(#[from] filter_programs::elf::ElfError),
    #[error("aya could not load the object: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("the object lacks the XDP program or map {0}")]
    Missing(String),
    /// The verifier's log, then our disassembly, so the two can be read
    /// side by side by instruction number.
    #[error("the kernel refused the ruleset program: {error}\n--- verifier log ---\n{log}\n--- program ---\n{disassembly}")]
    Verifier {
        error: io::Error,
        log: String,
        disassembly: String,
    },
    #[error("loading the program: {0}")]
    Program(ProgramError),
    #[error("BPF_PROG_TEST_RUN: {0}")]
    TestRun(io::Error),
    #[error("the counters map: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("filling the map {0}: {1}")]
    Fill(String, io::Error),
}

/// A ruleset program that passed the verifier, with the programs it
/// tail-calls. The program array is owned here: the kernel empties a
/// program array when the last file descriptor or pin of it goes, so keep
/// this value alive (or pin the map) while the program is attached.
pub struct LoadedRuleset {
    ebpf: Ebpf,
    programs: ProgramArray<aya::maps::MapData>,
    counter_names: Vec<String>,
}

impl LoadedRuleset {
    pub fn load(compiled: &Compiled) -> Result<LoadedRuleset, LoadError> {
        let bytes = compiled.elf()?;
        let mut ebpf = crate::object::load_own(&bytes)?;
        let names = compiled.program_names();
        for (name, insns) in names.iter().zip(&compiled.programs) {
            let xdp: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| LoadError::Missing(name.clone()))?
                .try_into()
                .map_err(|_| LoadError::Missing(name.clone()))?;
            xdp.load().map_err(|e| match e {
                ProgramError::LoadError {
                    io_error,
                    verifier_log,
                } => {
                    let (log, disassembly) = excerpt(&verifier_log.to_string(), insns);
                    LoadError::Verifier {
                        error: io_error,
                        log: format!("program {name}:\n{log}"),
                        disassembly,
                    }
                }
                other => LoadError::Program(other),
            })?;
        }
        let map = ebpf
            .take_map(PROGRAMS_MAP)
            .ok_or_else(|| LoadError::Missing(PROGRAMS_MAP.into()))?;
        let mut programs = ProgramArray::try_from(map)?;
        for (i, name) in names.iter().enumerate() {
            let xdp: &Xdp = ebpf
                .program(name)
                .ok_or_else(|| LoadError::Missing(name.clone()))?
                .try_into()
                .map_err(|_| LoadError::Missing(name.clone()))?;
            programs.set(i as u32, xdp.fd().map_err(LoadError::Program)?, 0)?;
        }
        for table in &compiled.tables {
            let map = ebpf
                .map(&table.name)
                .ok_or_else(|| LoadError::Missing(table.name.clone()))?;
            fill(map, table)?;
        }
        if let Some(cold) = &compiled.cold {
            let map = ebpf
                .map_mut(cold::CODE_MAP)
                .ok_or_else(|| LoadError::Missing(cold::CODE_MAP.into()))?;
            let mut code: Array<_, [u8; cold::CHUNK * 8]> = Array::try_from(map)?;
            for (k, chunk) in cold.chunks().iter().enumerate() {
                let value: &[u8; cold::CHUNK * 8] = chunk
                    .as_slice()
                    .try_into()
                    .map_err(|_| LoadError::Missing("a whole cold-path chunk".into()))?;
                code.set(k as u32, value, 0)?;
            }
        }
        Ok(LoadedRuleset {
            ebpf,
            programs,
            counter_names: compiled.counter_names.clone(),
        })
    }

    /// The program array chaining the programs (pin it to keep it filled
    /// after this process exits).
    pub fn programs_map(&self) -> &ProgramArray<aya::maps::MapData> {
        &self.programs
    }

    /// The aya object, for attaching and pinning.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    pub fn program_fd(&self) -> Result<BorrowedFd<'_>, LoadError> {
        let xdp: &Xdp = self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| LoadError::Missing(PROGRAM.into()))?
            .try_into()
            .map_err(|_| LoadError::Missing(PROGRAM.into()))?;
        Ok(xdp.fd().map_err(LoadError::Program)?.as_fd())
    }

    /// The verifier's processed-instruction count, summed over the
    /// programs (`bpf_prog_info.verified_insns`; `None` before Linux 5.16).
    pub fn verified_insns(&self) -> Option<u64> {
        let mut total = 0u64;
        for (name, _) in self.ebpf.programs() {
            if !name.starts_with(PROGRAM) {
                continue;
            }
            let xdp: &Xdp = self.ebpf.program(name)?.try_into().ok()?;
            total += u64::from(xdp.info().ok()?.verified_instruction_count()?);
        }
        Some(total)
    }

    /// One `BPF_PROG_TEST_RUN` of the program on `frame`; counters count it.
    pub fn test_run(&self, frame: &[u8], repeat: u32) -> Result<TestRun, LoadError> {
        let fd = self.program_fd()?;
        bpf_kernel::test_run(fd, frame, repeat).map_err(LoadError::TestRun)
    }

    /// Counters summed over CPUs, in counter order (rules, then default).
    pub fn counters(&self) -> Result<Vec<Counter>, LoadError> {
        let map = self
            .ebpf
            .map(COUNTERS_MAP)
            .ok_or_else(|| LoadError::Missing(COUNTERS_MAP.into()))?;
        let array: PerCpuArray<_, [u64; 2]> = PerCpuArray::try_from(map)?;
        read_counters(&array, &self.counter_names)
    }
}

/// Fills one of the fast path's maps (a tuple table, or a bitmap's trie,
/// hash or array), whose sizes are the table's.
fn fill(map: &aya::maps::Map, table: &Table) -> Result<(), LoadError> {
    use aya::maps::Map;
    let data = match map {
        Map::HashMap(d) | Map::LpmTrie(d) | Map::Array(d) => d,
        _ => {
            return Err(LoadError::Missing(format!(
                "{}: a hash, trie or array",
                table.name
            )))
        }
    };
    let sizes = (table.key_size, table.value_size);
    for (key, value) in &table.entries {
        bpf_kernel::map::update(data.fd().as_fd(), sizes, key, value)
            .map_err(|e| LoadError::Fill(table.name.clone(), e))?;
    }
    Ok(())
}

/// Sums each entry of a counters map over CPUs.
pub fn read_counters<T: std::borrow::Borrow<aya::maps::MapData>>(
    array: &PerCpuArray<T, [u64; 2]>,
    names: &[String],
) -> Result<Vec<Counter>, LoadError> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let values = array.get(&(i as u32), 0)?;
            let (packets, bytes) = values.iter().fold((0, 0), |(p, b), v| (p + v[0], b + v[1]));
            Ok(Counter {
                name: name.clone(),
                packets,
                bytes,
            })
        })
        .collect()
}

/// The end of a verifier log and our disassembly around the instruction it
/// stopped at: a ruleset program has hundreds of thousands of instructions,
/// and a reload failure must stay readable in a log.
fn excerpt(log: &str, insns: &[filter_programs::ebpf::insn::Insn]) -> (String, String) {
    const LOG_LINES: usize = 60;
    const AROUND: usize = 20;
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_LINES)..].join("\n");
    let tail = if lines.len() > LOG_LINES {
        format!("... ({} earlier lines)\n{tail}", lines.len() - LOG_LINES)
    } else {
        tail
    };
    let text = disassemble(insns).unwrap_or_else(|e| format!("(not disassembled: {e})"));
    // The last instruction the verifier looked at: "N: (op) ...".
    let at = lines.iter().rev().find_map(|l| {
        l.split_once(": (")
            .and_then(|(n, _)| n.trim().parse::<usize>().ok())
    });
    let numbered = |l: &&str| {
        l.split_once(':')
            .and_then(|(n, _)| n.trim().parse::<usize>().ok())
    };
    let dis = match at {
        Some(at) => text
            .lines()
            .filter(|l| numbered(l).is_some_and(|n| n + AROUND >= at && n <= at + 5))
            .collect::<Vec<_>>()
            .join("\n"),
        None => text.lines().take(2 * AROUND).collect::<Vec<_>>().join("\n"),
    };
    (tail, dis)
}
