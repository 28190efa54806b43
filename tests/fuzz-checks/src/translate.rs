//! Classic program → translate for each hook → our eBPF VM: the VM's
//! verdict on the translation equals the verdict our reference interpreter
//! gives the classic program, mapped through the target's actions.
//!
//! The reference is libpcap's meaning (`Program::run`) for ordinary packet
//! loads and the kernel's (`Program::run_with`) for programs that use the
//! kernel's special offsets (`SKF_AD_OFF`, `SKF_NET_OFF`, `SKF_LL_OFF`),
//! which only the kernel gives a meaning. On a live hook the wire length is
//! the frame's length, so both sides get the captured bytes as the frame.
//! The proptest `translate_vs_interp` checks the same [`check`].

use filter_programs::cbpf::interp::{KernelCtx, NetDevice, Program as Classic};
use filter_programs::cbpf::skf::Ancillary;
use filter_programs::cbpf::{Insn, Op};
use filter_programs::ebpf::vm::{Env, Input, Maps, Program as Vm, SkbMeta};
use filter_programs::translate::{translate, Target, TranslateError};
use filter_programs::Hook;

use crate::{frames, Outcome};

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

/// Input: a count byte, that many 8-byte classic instructions (code and k
/// little-endian), then the seed of a derived frame.
pub fn check_bytes(data: &[u8]) -> Outcome {
    let Some((&n, rest)) = data.split_first() else {
        return Ok(());
    };
    let n = (n as usize % 64 + 1).min(rest.len() / 8);
    let prog: Vec<Insn> = rest[..n * 8]
        .chunks_exact(8)
        .map(|c| {
            let code = u16::from_le_bytes([c[0], c[1]]);
            Insn::new(
                code,
                c[2],
                c[3],
                u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    // libpcap's rules pass codes with stray bits (`bpf_validate` looks at
    // the class, mode and op only); no translation takes them, and the
    // kernel refuses them too, so they have no verdict to compare.
    if Classic::new(&prog).is_err() || prog.iter().any(|i| i.decode().is_err()) {
        return Ok(());
    }
    let seed = &rest[n * 8..];
    let frame = frames::with_seed(seed).pop().expect("frames");
    check(&prog, &frame).map(|_| ())
}

/// Checks a valid program on one frame on every target; `Ok(false)` when
/// no target could take the program (each hook refuses fields it does not
/// have) or the case has no single answer.
pub fn check(prog: &[Insn], frame: &[u8]) -> Result<bool, String> {
    let classic =
        Classic::new(prog).map_err(|e| format!("the case is not a valid program: {e}"))?;
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
            Err(e) => return Err(format!("{}: {e}", target.name())),
        };
        translated = true;
        let vm = Vm::new(&insns).map_err(|e| e.to_string())?;
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
            .map_err(|e| format!("{}: {e}", target.name()))?;
        let ret = if kernel_mode {
            classic.run_with(frame, len, &ctx)
        } else {
            classic.run(frame, len)
        };
        let want = u64::from(target.verdict(ret));
        if got != want {
            return Err(format!(
                "{} on {} bytes: VM returned {got}, classic returned {ret} (so {want})",
                target.name(),
                frame.len()
            ));
        }
    }
    if translated && !kernel_mode {
        translated |= check_trace(prog, &classic, frame, &env)?;
    }
    Ok(translated)
}

/// The trace hook on the synthetic socket buffer of a received frame:
/// with its link-layer header set, the program sees the frame; without
/// (an skb on a path that has none), the frame from its network header.
fn check_trace(prog: &[Insn], classic: &Classic, frame: &[u8], env: &Env) -> Result<bool, String> {
    let target = Target::new(Hook::Trace);
    let insns = match translate(prog, target) {
        Ok(i) => i,
        Err(TranslateError::Unsupported { .. }) => return Ok(false),
        Err(e) => return Err(format!("trace: {e}")),
    };
    let vm = Vm::new(&insns).map_err(|e| e.to_string())?;
    let net = 14.min(frame.len());
    for mac_set in [true, false] {
        let input = Input::Trace {
            frame,
            data_off: net,
            mac_set,
            vlan_all: 0,
            skb: Default::default(),
        };
        let seen = if mac_set { frame } else { &frame[net..] };
        let got = vm
            .run(&input, &mut Maps::default(), env)
            .map_err(|e| format!("trace: {e}"))?;
        let ret = classic.run(seen, seen.len() as u32);
        let want = u64::from(target.verdict(ret));
        if got != want {
            return Err(format!(
                "trace (link-layer header {}) on {} bytes: VM returned {got}, classic returned {ret} (so {want})",
                if mac_set { "set" } else { "unset" },
                seen.len()
            ));
        }
    }
    Ok(true)
}
