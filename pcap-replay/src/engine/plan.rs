//! Which engines run a program, and which are left out and why.
//!
//! Asked for by name (`--engines`), an engine that refuses the program is
//! an error, except that eBPF from an ELF object only runs in the engines
//! of its own hook: the others are left out, since there is nothing for
//! them to run. By default every engine that can run here runs: kernel
//! engines only when bpf() works, and an engine that cannot take this
//! program (a translation the hook does not support) is left out with its
//! reason. A program an engine finds invalid is an error either way.
//!
//! The libpcap engine counts a program that `bpf_validate` passes but
//! `bpf_filter` cannot run safely (`ret x`, an opcode with stray bits, a
//! loop with no way out) as one it cannot take: left out by default, an error
//! when `--engines` names it.

use serde::Serialize;

use super::{Engine, EngineError, EngineKind};
use crate::program::{Code, Program};

/// An engine that does not run, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    pub engine: &'static str,
    pub reason: String,
}

/// The engines for one program.
pub struct Plan {
    pub kinds: Vec<EngineKind>,
    /// Built once to check them; the first capture uses these.
    pub engines: Vec<Box<dyn Engine>>,
    pub left_out: Vec<LeftOut>,
}

/// Decides the engines for `program`. `requested`: the `--engines` list,
/// `None` for the default. `kernel`: whether bpf() works here (asked only
/// when a kernel engine is a candidate).
pub fn plan(
    program: &Program,
    requested: Option<&[EngineKind]>,
    kernel: &mut dyn FnMut() -> Result<(), String>,
) -> Result<Plan, EngineError> {
    let explicit = requested.is_some();
    let candidates = requested.unwrap_or(&EngineKind::ALL);
    let mut out = Plan {
        kinds: Vec::new(),
        engines: Vec::new(),
        left_out: Vec::new(),
    };
    for &kind in candidates {
        let leave = |out: &mut Plan, reason: String| {
            out.left_out.push(LeftOut {
                engine: kind.name(),
                reason,
            })
        };
        if let Code::Ebpf { hook, .. } = &program.code {
            if kind.hook() != Some(*hook) {
                let reason = match kind.hook() {
                    None => "no classic program".to_string(),
                    Some(h) => format!(
                        "the object's program is for the {} hook, not {}",
                        hook.name(),
                        h.name()
                    ),
                };
                leave(&mut out, reason);
                continue;
            }
        }
        if kind.is_kernel() && !explicit {
            if let Err(reason) = kernel() {
                leave(&mut out, reason);
                continue;
            }
        }
        match kind.build(program) {
            Ok(engine) => {
                out.kinds.push(kind);
                out.engines.push(engine);
            }
            Err(EngineError::Unsupported { reason, .. }) if !explicit => leave(&mut out, reason),
            Err(e) => return Err(e),
        }
    }
    if out.kinds.is_empty() {
        let why: Vec<String> = out
            .left_out
            .iter()
            .map(|l| format!("{}: {}", l.engine, l.reason))
            .collect();
        return Err(EngineError::Unsupported {
            engine: "any",
            program: program.label.clone(),
            reason: format!("no engine can run it ({})", why.join("; ")),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_programs::cbpf::Insn;
    use filter_programs::ebpf::insn::Insn as EInsn;
    use filter_programs::Hook;

    fn classic() -> Program {
        Program {
            label: "p".into(),
            expression: None,
            code: Code::Cbpf(vec![Insn::new(0x06, 0, 0, 1)]),
        }
    }

    fn no_kernel() -> Result<(), String> {
        Err("bpf() is not available here".into())
    }

    #[test]
    fn default_leaves_out_kernel_engines_without_bpf() {
        let p = plan(&classic(), None, &mut no_kernel).unwrap();
        let names: Vec<&str> = p.kinds.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            [
                "cbpf",
                "libpcap",
                "ebpf-socket",
                "ebpf-xdp",
                "ebpf-tc",
                "ebpf-trace"
            ]
        );
        let out: Vec<&str> = p.left_out.iter().map(|l| l.engine).collect();
        assert_eq!(out, ["kernel-socket", "kernel-xdp", "kernel-tc"]);
        assert!(p.left_out.iter().all(|l| l.reason.contains("bpf()")));
    }

    #[test]
    fn explicit_engines_are_not_probed() {
        let mut asked = false;
        let kinds = [EngineKind::Cbpf];
        let p = plan(&classic(), Some(&kinds), &mut || {
            asked = true;
            Ok(())
        })
        .unwrap();
        assert_eq!(p.kinds, kinds);
        assert!(p.left_out.is_empty() && !asked);
    }

    #[test]
    fn libpcap_is_left_out_of_what_bpf_filter_cannot_run() {
        // ret x: bpf_validate passes it, bpf_filter aborts on it.
        let prog = Program {
            label: "retx.ddd".into(),
            expression: None,
            code: Code::Cbpf(vec![Insn::new(0x0e, 0, 0, 0)]),
        };
        let p = plan(&prog, None, &mut no_kernel).unwrap();
        assert!(!p.kinds.contains(&EngineKind::Libpcap));
        assert_eq!(p.left_out[0].engine, "libpcap");
        assert!(p.left_out[0].reason.contains("ret x"), "{:?}", p.left_out);
        // Named, it is an error.
        let err = plan(&prog, Some(&[EngineKind::Libpcap]), &mut no_kernel)
            .err()
            .unwrap();
        assert!(err.to_string().contains("ret x"), "{err}");
    }

    #[test]
    fn elf_programs_run_only_in_their_hook() {
        let insns = vec![EInsn::new(0xb7, 0, 0, 0, 2), EInsn::new(0x95, 0, 0, 0, 0)];
        let prog = Program {
            label: "f.o:xdp".into(),
            expression: None,
            code: Code::Ebpf {
                insns,
                hook: Hook::Xdp,
            },
        };
        let p = plan(&prog, None, &mut no_kernel).unwrap();
        assert_eq!(p.kinds, [EngineKind::Ebpf(Hook::Xdp)]);
        let reasons: Vec<(&str, &str)> = p
            .left_out
            .iter()
            .map(|l| (l.engine, l.reason.as_str()))
            .collect();
        assert_eq!(reasons[0], ("cbpf", "no classic program"));
        assert_eq!(reasons[1], ("libpcap", "no classic program"));
        assert!(
            reasons[2].1.contains("for the xdp hook, not socket"),
            "{reasons:?}"
        );
        // Asked for by name, the classic engines are still left out.
        let p = plan(
            &prog,
            Some(&[EngineKind::Cbpf, EngineKind::Ebpf(Hook::Xdp)]),
            &mut no_kernel,
        )
        .unwrap();
        assert_eq!(p.kinds, [EngineKind::Ebpf(Hook::Xdp)]);
        assert_eq!(p.left_out[0].reason, "no classic program");
        // Nothing left to run is an error.
        assert!(plan(&prog, Some(&[EngineKind::Libpcap]), &mut no_kernel).is_err());
    }
}
