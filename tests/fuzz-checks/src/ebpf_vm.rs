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
/// The loop counter's stack slot.
const COUNTER: i16 = -512;
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
/// get_prandom_u32, get_smp_processor_id, xdp_get_buff_len (each called
/// with r1 = ctx), and one the checker does not know.
const HELPERS: [i32; 4] = [7, 8, 188, 1000];

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
/// following 4 bytes one choice.
pub fn program(data: &[u8]) -> (Hook, Vec<Insn>) {
    let hook = Hook::ALL[data.first().copied().unwrap_or(0) as usize % 3];
    let (pdata, pend) = packet_fields(hook);
    // r6 = ctx; the others but r1 = 0 (the checker refuses reads of
    // registers never written, which would end most programs early); the
    // loop counter at fp-512 = 4 (the only loops the checker takes are the
    // translator's, counted down in one stack slot).
    let mut p = vec![Insn::new(ALU64 | 0xb0 | X, 6, 1, 0, 0)];
    p.extend([0, 2, 3, 4, 7, 8, 9].map(|r| Insn::new(ALU64 | 0xb0, r, 0, 0, 0)));
    p.push(Insn::new(ALU64 | 0xb0, 5, 0, 0, 4));
    p.push(Insn::new(STX | 0x18, 10, 5, COUNTER, 0));
    let body = p.len();
    for c in data.get(1..).unwrap_or(&[]).chunks_exact(4) {
        let (a, b, r, d) = (c[0], c[1], c[2], c[3]);
        let (dst, src) = (r % 10, (r >> 4) % 11);
        let x = if a & 0x80 != 0 { X } else { 0 };
        match a % 12 {
            0..=2 => {
                let class = if a % 12 == 2 { ALU32 } else { ALU64 };
                let op = ALU_OPS[b as usize % 13];
                p.push(operation(class | op, x, dst, src, imm(d)));
            }
            3 => {
                let off = i16::from(d as i8);
                p.push(Insn::new(LDX | SIZES[b as usize % 4], dst, src, off, 0));
            }
            4 => {
                let off = -8 * (i16::from(d % 63) + 1);
                let size = SIZES[b as usize % 4];
                match a & 0x80 {
                    0 => p.push(Insn::new(ST | size, 10, 0, off, imm(b))),
                    _ => p.push(Insn::new(STX | size, 10, src, off, 0)),
                }
            }
            5 => {
                let class = if a & 0x40 != 0 { JMP32 } else { JMP };
                let op = JMP_OPS[b as usize % 11];
                p.push(Insn {
                    off: i16::from(d % 8),
                    ..operation(class | op, x, dst, src, imm(d))
                });
            }
            6 => {
                // The counted back edge: r5 = counter; if r5 == 0 leave;
                // counter = r5 - 1; goto back.
                p.push(Insn::new(LDX | 0x18, 5, 10, COUNTER, 0));
                p.push(Insn::new(JMP | 0x10, 5, 0, 3, 0));
                p.push(Insn::new(ALU64 | 0x10, 5, 0, 0, 1));
                p.push(Insn::new(STX | 0x18, 10, 5, COUNTER, 0));
                p.push(Insn::new(JMP, 0, 0, -(i16::from(d % 16) + 5), 0));
            }
            7 if b & 1 == 0 => {
                p.push(Insn::new(ALU64 | 0xb0 | X, 1, 6, 0, 0));
                p.push(Insn::new(
                    JMP | 0x80,
                    0,
                    0,
                    0,
                    HELPERS[(b >> 1) as usize % 4],
                ));
            }
            7 => {
                // bpf_skb_load_bytes[_relative](ctx, d, fp-64, n[, start]).
                p.push(Insn::new(ALU64 | 0xb0 | X, 1, 6, 0, 0));
                p.push(Insn::new(ALU64 | 0xb0, 2, 0, 0, imm(d)));
                p.push(Insn::new(ALU64 | 0xb0 | X, 3, 10, 0, 0));
                p.push(Insn::new(ALU64, 3, 0, 0, -64));
                p.push(Insn::new(ALU64 | 0xb0, 4, 0, 0, i32::from(r % 64)));
                p.push(Insn::new(ALU64 | 0xb0, 5, 0, 0, i32::from(b >> 7)));
                p.push(Insn::new(
                    JMP | 0x80,
                    0,
                    0,
                    0,
                    if b & 2 == 0 { 26 } else { 68 },
                ));
            }
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
                // if dst != imm goto +2; r0 = imm; exit
                p.push(Insn::new(JMP | 0x50, dst, 0, 2, imm(b)));
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
    // Keep every jump inside the program: past the end goes to the final
    // exit, before the body to its start.
    let last = p.len() as i64 - 1;
    for (i, insn) in p.iter_mut().enumerate() {
        let (class, op) = (insn.code & 0x07, insn.code & 0xf0);
        if (class == JMP || class == JMP32) && op != 0x80 && op != 0x90 {
            let target = (i as i64 + 1 + i64::from(insn.off)).clamp(body as i64, last);
            insn.off = (target - i as i64 - 1) as i16;
        }
    }
    (hook, p)
}

/// An ALU or jump operation with the fields the kernel wants zero zeroed:
/// no immediate with a register source, no source register with a
/// constant, neither for a negation.
fn operation(code: u8, x: u8, dst: u8, src: u8, imm: i32) -> Insn {
    let alu = code & 0x07 == ALU64 || code & 0x07 == ALU32;
    if alu && code & 0xf0 == 0x80 {
        Insn::new(code, dst, 0, 0, 0)
    } else if x != 0 {
        Insn::new(code | X, dst, src, 0, 0)
    } else {
        Insn::new(code, dst, 0, 0, imm)
    }
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
        match vm.run(&input, &mut Maps::default(), &env) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The target is only worth its CPU if many of its programs get past
    /// the checker into the VM.
    #[test]
    fn the_generator_makes_programs_the_checker_accepts() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let (mut accepted, n) = (0, 5000);
        for i in 0..n {
            let len = 1 + 4 * (i % 12);
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let (hook, prog) = program(&data);
            if checker(&prog, hook).is_ok() {
                accepted += 1;
                run_accepted(&prog, hook).unwrap();
            }
        }
        eprintln!("{accepted} of {n} generated programs accepted");
        assert!(accepted * 5 > n, "only {accepted} of {n} accepted");
    }
}
