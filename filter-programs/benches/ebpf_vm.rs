//! Our eBPF VM (`filter_programs::ebpf::vm`) against the rbpf crate's
//! interpreter and its x86_64 JIT, on the same XDP translations of typical
//! expressions, over every packet of the corpus's Ethernet pcaps.
//!
//! Run: `cargo bench -p filter-programs --bench ebpf_vm`. One iteration runs one
//! program over all packets; time / packets is the cost of one verdict.
//! After Criterion, a paired measurement alternates our VM and rbpf's
//! interpreter in short rounds and prints the median per-round ratio, which
//! the machine's drift between Criterion's separate measurements of the two
//! sides does not reach (`-- none` runs only that part).
//!
//! Why XDP: its translation reads the packet through direct packet access
//! and calls no helper, which rbpf can run as it is. The socket
//! translation's legacy `LD_ABS`/`LD_IND` loads mean something else in
//! rbpf (no byte swap, and a load past the end is an error instead of
//! "reject the packet"), and its VLAN code reads `__sk_buff` fields rbpf
//! has no notion of.
//!
//! The one change rbpf needs: the kernel's verifier rewrites the 32-bit
//! loads of `xdp_md->data`/`data_end` into 64-bit pointer loads; rbpf has
//! no verifier rewriting, so `for_rbpf` does that rewrite itself (same
//! instruction count) and rbpf gets a metadata buffer holding the two
//! pointers. Every packet's verdict must be equal on all sides before
//! anything is timed.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{paired_rounds, thread_cpu_now, ThreadCpuTime, EXPRESSIONS};
use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use e2e::bench::ethernet_packets;
use filter_programs::codegen::{compile, Dlt, Options};
use filter_programs::ebpf::insn::{to_bytes, Insn};
use filter_programs::ebpf::vm::{Env, Input, Maps, Program};
use filter_programs::translate::{translate, Target};

const LDX_W: u8 = 0x61;
const LDX_DW: u8 = 0x79;
const CALL: u8 = 0x85;
/// The translation keeps the context in r6 for the whole program.
const CTX_REG: u8 = 6;

/// The XDP program as rbpf can run it: `xdp_md->data` (offset 0) and
/// `data_end` (offset 4) become 64-bit loads from an 16-byte metadata
/// buffer holding the two pointers, as the kernel's verifier would rewrite
/// them. Anything else that touches the context, or a helper call, is
/// refused: rbpf would not mean the same by it.
fn for_rbpf(insns: &[Insn]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(insns.len());
    for (i, insn) in insns.iter().enumerate() {
        let mut insn = *insn;
        if insn.code == CALL {
            return Err(format!("slot {i}: helper call {}", insn.imm));
        }
        let reads_ctx = insn.code & 0x07 == 0x01 && insn.src() == CTX_REG;
        if reads_ctx {
            match (insn.code, insn.off) {
                (LDX_W, 0) => insn.code = LDX_DW,
                (LDX_W, 4) => (insn.code, insn.off) = (LDX_DW, 8),
                _ => return Err(format!("slot {i}: context access {insn:?}")),
            }
        }
        out.push(insn);
    }
    Ok(to_bytes(&out))
}

/// rbpf's metadata buffer for `frame`: data and data_end pointers.
fn mbuff_for(frame: &[u8], mbuff: &mut [u8; 16]) {
    let start = frame.as_ptr() as u64;
    mbuff[..8].copy_from_slice(&start.to_le_bytes());
    mbuff[8..].copy_from_slice(&(start + frame.len() as u64).to_le_bytes());
}

fn ours(prog: &Program, maps: &mut Maps, env: &Env, frame: &[u8]) -> u64 {
    let input = Input::Xdp {
        frame,
        ingress_ifindex: 0,
        rx_queue_index: 0,
    };
    match prog.run(&input, maps, env) {
        Ok(v) => v,
        Err(e) => panic!("our VM: {e}"),
    }
}

/// One XDP program as each side runs it.
struct Sides {
    prog: Program,
    interp: rbpf::EbpfVmMbuff<'static>,
    jit: rbpf::EbpfVmMbuff<'static>,
    insns: usize,
}

fn sides(expr: &str) -> Sides {
    let cbpf = compile(expr, &Options::new(Dlt::En10mb)).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let insns = translate(&cbpf, Target::xdp()).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let prog = Program::new(&insns).unwrap_or_else(|e| panic!("{expr}: {e}"));
    // rbpf borrows the bytes for as long as the VM lives; one program per
    // expression per bench run.
    let bytes: &'static [u8] = for_rbpf(&insns)
        .unwrap_or_else(|e| panic!("{expr}: rbpf cannot run it: {e}"))
        .leak();
    let interp =
        rbpf::EbpfVmMbuff::new(Some(bytes)).unwrap_or_else(|e| panic!("{expr}: rbpf: {e}"));
    let mut jit =
        rbpf::EbpfVmMbuff::new(Some(bytes)).unwrap_or_else(|e| panic!("{expr}: rbpf: {e}"));
    jit.jit_compile()
        .unwrap_or_else(|e| panic!("{expr}: rbpf JIT: {e}"));
    Sides {
        prog,
        interp,
        jit,
        insns: insns.len(),
    }
}

/// One pass of our VM over all packets.
fn ours_pass(prog: &Program, maps: &mut Maps, env: &Env, packets: &[Vec<u8>]) -> u64 {
    let mut n = 0u64;
    for pkt in packets {
        n = n.wrapping_add(ours(prog, maps, env, black_box(pkt)));
    }
    n
}

/// One pass of rbpf's interpreter over all packets.
fn rbpf_pass(interp: &rbpf::EbpfVmMbuff, packets: &[Vec<u8>]) -> u64 {
    let mut n = 0u64;
    let mut mbuff = [0u8; 16];
    for pkt in packets {
        mbuff_for(black_box(pkt), &mut mbuff);
        n = n.wrapping_add(interp.execute_program(pkt, &mbuff).unwrap_or(u64::MAX));
    }
    n
}

fn ebpf_vm(c: &mut Criterion<ThreadCpuTime>) {
    // rbpf's JIT and `execute_program_jit` want mutable packet buffers.
    let mut packets: Vec<Vec<u8>> = ethernet_packets().into_iter().map(|(p, _)| p).collect();
    assert!(
        packets.len() > 1000,
        "only {} Ethernet packets in the corpus",
        packets.len()
    );
    let mut group = c.benchmark_group("ebpf_vm");
    group
        .throughput(Throughput::Elements(packets.len() as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let env = Env::default();
    let mut maps = Maps::default();
    for expr in EXPRESSIONS {
        let Sides {
            prog,
            interp,
            jit,
            insns,
        } = sides(expr);
        eprintln!("{expr}: {insns} eBPF instructions");

        // Same verdicts, or the comparison means nothing. The interpreter
        // checks every access, so it runs first: the JIT checks none.
        let mut mbuff = [0u8; 16];
        for (n, pkt) in packets.iter_mut().enumerate() {
            let want = ours(&prog, &mut maps, &env, pkt);
            mbuff_for(pkt, &mut mbuff);
            let got = interp
                .execute_program(pkt, &mbuff)
                .unwrap_or_else(|e| panic!("{expr} packet {n}: {e}"));
            assert_eq!(got, want, "{expr} packet {n}: rbpf interpreter vs our VM");
            // SAFETY: the interpreter just ran this program on this packet
            // with every access checked; the JIT'd code makes the same
            // accesses (pointers from mbuff, which points into pkt).
            let got = unsafe { jit.execute_program_jit(pkt, &mut mbuff) }
                .unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(got, want, "{expr} packet {n}: rbpf JIT vs our VM");
        }

        group.bench_function(BenchmarkId::new("ours", expr), |b| {
            b.iter(|| ours_pass(&prog, &mut maps, &env, &packets))
        });
        group.bench_function(BenchmarkId::new("rbpf", expr), |b| {
            b.iter(|| rbpf_pass(&interp, &packets))
        });
        group.bench_function(BenchmarkId::new("rbpf-jit", expr), |b| {
            b.iter(|| {
                let mut n = 0u64;
                let mut mbuff = [0u8; 16];
                for pkt in packets.iter_mut() {
                    mbuff_for(black_box(pkt), &mut mbuff);
                    // SAFETY: checked on these very packets above.
                    n = n.wrapping_add(
                        unsafe { jit.execute_program_jit(pkt, &mut mbuff) }.unwrap_or(u64::MAX),
                    );
                }
                n
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime(WallTime));
    targets = ebpf_vm
}
/// Rounds of the paired measurement, and passes over the packets per side
/// in one round (a round takes a few milliseconds).
const ROUNDS: usize = 200;
const PASSES: u32 = 4;

/// CPU time of `PASSES` runs of `pass`, in ns per packet.
fn pass_ns(packets: usize, mut pass: impl FnMut() -> u64) -> f64 {
    let start = thread_cpu_now();
    let mut n = 0u64;
    for _ in 0..PASSES {
        n = n.wrapping_add(pass());
    }
    black_box(n);
    thread_cpu_now().saturating_sub(start).as_nanos() as f64 / (f64::from(PASSES) * packets as f64)
}

/// Our VM and rbpf's interpreter back to back in each round (alternating
/// which goes first); medians of each side and of the per-round ratios.
fn paired() {
    let packets: Vec<Vec<u8>> = ethernet_packets().into_iter().map(|(p, _)| p).collect();
    println!(
        "\npaired ({ROUNDS} rounds of {PASSES} passes over {} packets, thread CPU time):",
        packets.len()
    );
    println!("| expression | insns | ours (ns/packet) | rbpf (ns/packet) | ratio |");
    println!("|---|---:|---:|---:|---:|");
    let env = Env::default();
    let mut maps = Maps::default();
    for expr in EXPRESSIONS {
        let s = sides(expr);
        let n = packets.len();
        let p = paired_rounds(
            ROUNDS,
            || pass_ns(n, || ours_pass(&s.prog, &mut maps, &env, &packets)),
            || pass_ns(n, || rbpf_pass(&s.interp, &packets)),
        );
        println!(
            "| `{expr}` | {} | {:.1} | {:.1} | {:.3} |",
            s.insns, p.ours, p.theirs, p.ratio
        );
    }
}

fn main() {
    common::criterion_then(benches, paired);
}
