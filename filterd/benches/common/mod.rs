//! What the kernel benchmarks share: timing programs with
//! `BPF_PROG_TEST_RUN` (kernel-reported and CPU time, medians over rounds
//! with the sides interleaved) and a pass-only baseline program. Included
//! with `mod common;` (each bench is its own crate, so not every item is
//! used by every bench). What the compiler benches need too is in
//! `e2e::bench`.
#![allow(dead_code)]

use std::os::fd::BorrowedFd;

use e2e::bench::{median, thread_cpu_now};

/// Mean nanoseconds per run of one program over some packets.
pub struct Timing {
    /// What `BPF_PROG_TEST_RUN` reports (whole ns per run, truncated).
    pub kernel_ns: f64,
    /// This thread's CPU time for the syscalls over the runs.
    pub cpu_ns: f64,
}

/// One pass over the packets: mean kernel-reported ns per run and mean
/// CPU ns per run.
pub fn time_pass(prog: BorrowedFd<'_>, packets: &[&[u8]], repeat: u32) -> Timing {
    let (mut kernel, mut cpu) = (0f64, 0f64);
    for pkt in packets {
        let t = thread_cpu_now();
        let r = bpf_kernel::test_run(prog, pkt, repeat)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}"));
        cpu += (thread_cpu_now() - t).as_nanos() as f64 / repeat as f64;
        kernel += r.duration_ns as f64;
    }
    Timing {
        kernel_ns: kernel / packets.len() as f64,
        cpu_ns: cpu / packets.len() as f64,
    }
}

/// Medians over `rounds` passes, the sides interleaved so that a change in
/// the machine's load hits all of them alike.
pub fn race(progs: &[BorrowedFd<'_>], packets: &[&[u8]], repeat: u32, rounds: u32) -> Vec<Timing> {
    let mut kernel = vec![Vec::new(); progs.len()];
    let mut cpu = vec![Vec::new(); progs.len()];
    for _ in 0..rounds {
        for (i, p) in progs.iter().enumerate() {
            let t = time_pass(*p, packets, repeat);
            kernel[i].push(t.kernel_ns);
            cpu[i].push(t.cpu_ns);
        }
    }
    kernel
        .iter_mut()
        .zip(cpu.iter_mut())
        .map(|(k, c)| Timing {
            kernel_ns: median(k),
            cpu_ns: median(c),
        })
        .collect()
}

/// An XDP program that only returns `XDP_PASS`: what a test run costs
/// before any filtering.
pub fn pass_program() -> bpf_kernel::Loaded {
    use filter_programs::ebpf::asm::Asm;
    use filter_programs::ebpf::insn::{Operand, Reg};
    let mut a = Asm::new();
    a.mov64(Reg::R0, Operand::Imm(2));
    a.exit();
    let insns = a.assemble().expect("two instructions assemble");
    bpf_kernel::load(filter_programs::Hook::Xdp, &insns, "bench_pass")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A numeric setting from the environment.
pub fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// [`race`] interleaved per packet: each packet runs on every program in
/// turn before the next packet, so the programs' calls are milliseconds
/// apart and a change in the machine's load lands on all of them alike.
/// Medians over `rounds` of the mean ns per run over the packets.
pub fn race_interleaved(
    progs: &[BorrowedFd<'_>],
    packets: &[&[u8]],
    repeat: u32,
    rounds: u32,
) -> Vec<Timing> {
    let mut kernel = vec![Vec::new(); progs.len()];
    let mut cpu = vec![Vec::new(); progs.len()];
    for _ in 0..rounds {
        let mut sums = vec![(0f64, 0f64); progs.len()];
        for pkt in packets {
            for (i, p) in progs.iter().enumerate() {
                let t = time_pass(*p, &[pkt], repeat);
                sums[i].0 += t.kernel_ns;
                sums[i].1 += t.cpu_ns;
            }
        }
        for (i, (k, c)) in sums.into_iter().enumerate() {
            kernel[i].push(k / packets.len() as f64);
            cpu[i].push(c / packets.len() as f64);
        }
    }
    kernel
        .iter_mut()
        .zip(cpu.iter_mut())
        .map(|(k, c)| Timing {
            kernel_ns: median(k),
            cpu_ns: median(c),
        })
        .collect()
}
