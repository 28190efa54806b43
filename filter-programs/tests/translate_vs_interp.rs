//! Random classic programs x random packets: for every target, our VM's
//! verdict on the translation equals the verdict our reference interpreter
//! gives the classic program, mapped through the target's actions.
//!
//! The reference is libpcap's meaning (`Program::run`) for ordinary packet
//! loads and the kernel's (`Program::run_with`) for programs that use the
//! kernel's special offsets (`SKF_AD_OFF`, `SKF_NET_OFF`, `SKF_LL_OFF`),
//! which only the kernel gives a meaning. On a live hook the wire length is
//! the frame's length, so both sides get the captured bytes as the frame.
//!
//! Cases: 20,000 by default; `FILTERD_PROPTEST_CASES=N` for more.

use e2e::gen::{packet, valid_program};
use filter_programs::cbpf::interp::{KernelCtx, NetDevice, Program as Classic};
use filter_programs::cbpf::skf::Ancillary;
use filter_programs::cbpf::{Insn, Op};
use filter_programs::ebpf::vm::{Env, Input, Maps, Program as Vm, SkbMeta};
use filter_programs::translate::{translate, Actions, Target, TranslateError};
use filter_programs::Hook;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn cases() -> u32 {
    std::env::var("FILTERD_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn uses_kernel_offsets(prog: &[Insn]) -> bool {
    prog.iter().any(|i| match i.decode() {
        Ok(Op::LdAbs { k, .. } | Op::LdInd { k, .. } | Op::LdxMsh { k }) => (k as i32) < 0,
        _ => false,
    })
}

/// The first value of the VM's `bpf_get_prandom_u32` sequence.
fn first_prandom(seed: u32) -> u32 {
    let mut x = seed | 1;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    x
}

/// Checks one case on every target; false when no target could take the
/// program (each hook refuses fields it does not have).
fn check(prog: &[Insn], frame: &[u8]) -> Result<bool, TestCaseError> {
    let classic = Classic::new(prog)
        .map_err(|e| TestCaseError::fail(format!("generator made an invalid program: {e}")))?;
    let kernel_mode = uses_kernel_offsets(prog);
    // Each `ld #rand` draws a new number in the kernel and the VM, while the
    // reference context holds one: only one draw has a single answer.
    let random = Ancillary::Random.k();
    if prog
        .iter()
        .filter(|i| matches!(i.decode(), Ok(Op::LdAbs { k, .. }) if k == random))
        .count()
        > 1
    {
        return Ok(false);
    }
    let env = Env::default();
    let meta = SkbMeta::from_ethernet(frame, [0; 6], 1);
    let mut ctx = KernelCtx::ethernet(frame);
    ctx.pkt_type = meta.pkt_type as u8;
    ctx.protocol = u16::from_be(meta.protocol.to_be()).swap_bytes();
    ctx.random = first_prandom(env.prandom_seed);
    let len = frame.len() as u32;
    let mut translated = false;
    for target in [Target::socket(), Target::xdp(), Target::tc()] {
        let insns = match translate(prog, target) {
            Ok(i) => i,
            Err(TranslateError::Unsupported { .. }) => continue,
            Err(e) => return Err(TestCaseError::fail(format!("{}: {e}", target.name()))),
        };
        translated = true;
        let vm = Vm::new(&insns).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // The socket side runs as on an AF_PACKET socket: skb->data at
        // the MAC header, so `len` and packet offsets start there.
        let input = match target.hook {
            Hook::Xdp => Input::Xdp {
                frame,
                ingress_ifindex: 1,
                rx_queue_index: 0,
            },
            _ => Input::Skb {
                frame,
                data_off: 0,
                net_off: 14.min(frame.len()),
                meta,
            },
        };
        if target.hook == Hook::Xdp {
            ctx.dev = Some(NetDevice {
                ifindex: 1,
                hatype: 1,
            });
            ctx.queue_mapping = 0;
        }
        let got = vm
            .run(&input, &mut Maps::default(), &env)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let ret = if kernel_mode {
            classic.run_with(frame, len, &ctx)
        } else {
            classic.run(frame, len)
        };
        let want = target.verdict(ret) as u64;
        prop_assert_eq!(
            got,
            want,
            "{} on {} bytes: classic returned {}",
            target.name(),
            frame.len(),
            ret
        );
    }
    Ok(translated)
}

#[test]
fn translation_equals_interpreter_on_random_programs() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let checked = std::cell::Cell::new(0u32);
    runner
        .run(&(valid_program(), packet()), |(prog, (frame, _wire))| {
            if check(&prog, &frame)? {
                checked.set(checked.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    println!(
        "translation vs interpreter: {} cases checked of {}",
        checked.get(),
        cases()
    );
    assert!(
        checked.get() > cases() * 9 / 10,
        "too many cases skipped: {}",
        checked.get()
    );
    let _ = Actions::XDP;
}
