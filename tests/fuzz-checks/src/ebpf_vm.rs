//! Random eBPF → our checker → our VM: a program the checker accepts never
//! faults in the VM (no access outside its regions, no jump outside the
//! program, no running off its end, no call chain too deep).
//!
//! Raw bytes rarely make a program the checker takes, so the input is read
//! as a sequence of 4-byte choices, each one instruction (or a short idiom
//! such as a bounds-checked packet load) drawn from the shapes real filters
//! use, with registers, sizes, offsets and immediates from the input.

use filter_programs::ebpf::check::check as checker;
use filter_programs::ebpf::insn::Insn;
use filter_programs::ebpf::vm::{Env, Input, Maps, Program, SkbMeta, VmError};
use filter_programs::Hook;

use crate::{frames, Outcome};

const ALU64: u8 = 0x07;
const ALU32: u8 = 0x04;
const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
const LDX: u8 = 0x61; // class LDX, mode MEM; | size
const ST: u8 = 0x62;
const STX: u8 = 0x63;
const SIZES: [u8; 4] = [0x00, 0x08, 0x10, 0x18];
const X: u8 = 0x08;
/// add sub mul div or and lsh rsh neg mod xor mov arsh
const ALU_OPS: [u8; 13] = [
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0,
];
/// jeq jgt jge jset jne jsgt jsge jlt jle jslt jsle
const JMP_OPS: [u8; 11] = [
    0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0,
];
/// map_lookup_elem, ktime_get_ns, get_prandom_u32, get_smp_processor_id,
/// skb_load_bytes, xdp_get_buff_len, and one the VM does not know.
const HELPERS: [i32; 7] = [1, 5, 7, 8, 26, 188, 1000];

fn imm(d: u8) -> i32 {
    match d >> 6 {
        0 => i32::from(d & 0x3f),
        1 => -i32::from(d & 0x3f),
        2 => 1 << (d & 31),
        _ => [0x7fff_ffff, -1, 14, 12, 0x0800, 0x86dd, 0xffff, 60][d as usize & 7],
    }
}

/// The ctx offsets of `data` and `data_end` at a hook.
fn packet_fields(hook: Hook) -> (i16, i16) {
    match hook {
        Hook::Xdp => (0, 4),
        _ => (76, 80),
    }
}

/// The program the input describes: the first byte picks the hook, each
/// following 4 bytes one choice; r6 keeps the context.
pub fn program(data: &[u8]) -> (Hook, Vec<Insn>) {
    let hook = Hook::ALL[data.first().copied().unwrap_or(0) as usize % 3];
    let (pdata, pend) = packet_fields(hook);
    let mut p = vec![Insn::new(ALU64 | 0xb0 | X, 6, 1, 0, 0)];
    for c in data.get(1..).unwrap_or(&[]).chunks_exact(4) {
        let (a, b, r, d) = (c[0], c[1], c[2], c[3]);
        let (dst, src) = (r % 10, (r >> 4) % 11);
        let x = if a & 0x80 != 0 { X } else { 0 };
        match a % 12 {
            0 | 1 => p.push(Insn::new(
                ALU64 | ALU_OPS[b as usize % 13] | x,
                dst,
                src,
                0,
                imm(d),
            )),
            2 => p.push(Insn::new(
                ALU32 | ALU_OPS[b as usize % 13] | x,
                dst,
                src,
                0,
                imm(d),
            )),
            3 => {
                let off = i16::from(d as i8);
                p.push(Insn::new(LDX | SIZES[b as usize % 4], dst, src, off, 0));
            }
            4 => {
                let off = -8 * (i16::from(d % 64) + 1);
                let size = SIZES[b as usize % 4];
                match a & 0x80 {
                    0 => p.push(Insn::new(ST | size, 10, 0, off, imm(b))),
                    _ => p.push(Insn::new(STX | size, 10, src, off, 0)),
                }
            }
            5 => {
                let class = if a & 0x40 != 0 { JMP32 } else { JMP };
                let op = JMP_OPS[b as usize % 11];
                p.push(Insn::new(
                    class | op | x,
                    dst,
                    src,
                    i16::from(d % 8),
                    imm(d),
                ));
            }
            6 => p.push(Insn::new(JMP, 0, 0, -(i16::from(d % 8) + 1), 0)),
            7 => p.push(Insn::new(JMP | 0x80, 0, 0, 0, HELPERS[b as usize % 7])),
            8 => {
                // r2 = data; r3 = data_end; if r2 + n > r3 skip the load.
                let n = i32::from(d % 64) + 1;
                p.push(Insn::new(LDX, 2, 6, pdata, 0));
                p.push(Insn::new(LDX, 3, 6, pend, 0));
                p.push(Insn::new(ALU64 | 0xb0 | X, 4, 2, 0, 0));
                p.push(Insn::new(ALU64, 4, 0, 0, n));
                p.push(Insn::new(JMP | 0x20 | X, 4, 3, 1, 0));
                let size = SIZES[b as usize % 4];
                p.push(Insn::new(LDX | size, dst, 2, i16::from(d % 64), 0));
            }
            9 => {
                p.push(Insn::new(ALU64 | 0xb0, 0, 0, 0, imm(d)));
                p.push(Insn::new(JMP | 0x90, 0, 0, 0, 0));
            }
            10 => {
                p.push(Insn::new(0x18, dst, 0, 0, imm(d)));
                p.push(Insn::new(0, 0, 0, 0, imm(b)));
            }
            _ => p.push(Insn::new(LDX, dst, 6, i16::from(d % 48) * 4, 0)),
        }
    }
    p.push(Insn::new(ALU64 | 0xb0, 0, 0, 0, 0));
    p.push(Insn::new(JMP | 0x90, 0, 0, 0, 0));
    (hook, p)
}

pub fn check(data: &[u8]) -> Outcome {
    let (hook, prog) = program(data);
    run_accepted(&prog, hook)
}

/// Whether an error is a fault: something the checker exists to rule out.
/// Running out of budget, or a helper or map the VM lacks, is not.
fn is_fault(e: &VmError) -> bool {
    matches!(
        e,
        VmError::OutOfBounds { .. }
            | VmError::BadJump { .. }
            | VmError::FellOff { .. }
            | VmError::CallDepth { .. }
    )
}

/// Runs `prog` on the typical frames if our checker accepts it for `hook`;
/// `Err` when an accepted program faults.
pub fn run_accepted(prog: &[Insn], hook: Hook) -> Outcome {
    if checker(prog, hook).is_err() {
        return Ok(());
    }
    let vm = Program::new(prog).map_err(|e| format!("accepted but does not decode: {e}"))?;
    let env = Env {
        budget: 100_000,
        ..Env::default()
    };
    for frame in frames::typical() {
        let input = match hook {
            Hook::Xdp => Input::Xdp {
                frame: &frame,
                ingress_ifindex: 1,
                rx_queue_index: 0,
            },
            _ => Input::Skb {
                frame: &frame,
                data_off: if hook == Hook::Socket {
                    14.min(frame.len())
                } else {
                    0
                },
                net_off: 14.min(frame.len()),
                meta: SkbMeta::from_ethernet(&frame, [0; 6], 1),
            },
        };
        match vm.run(&input, &mut Maps::new(&[], 1), &env) {
            Err(e) if is_fault(&e) => {
                return Err(format!(
                    "{} program the checker accepts faults: {e}",
                    hook.name()
                ))
            }
            _ => {}
        }
    }
    Ok(())
}
