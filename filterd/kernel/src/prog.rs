//! Programs: `BPF_PROG_LOAD` of a bare instruction array (the verifier,
//! with its log on refusal), `BPF_PROG_TEST_RUN` on any program fd, and
//! `BPF_PROG_GET_FD_BY_ID`.
//!
//! aya loads from ELF objects; proving the translator over a whole corpus
//! needs thousands of loads of bare instruction arrays, with the verifier's
//! log on failure, which is what [`load`] gives.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use filter_programs::ebpf::insn::{to_bytes, AluOp, Insn, Op, Operand, Reg};
use filter_programs::translate::Loops;
use filter_programs::Hook;

use crate::attr::{addr, sys_bpf, sys_bpf_fd, Cmd, GetFdByIdAttr, ProgLoadAttr, TestRunAttr};

/// The verifier log buffer for a refused program: enough for the log of
/// any program this toolkit emits at `log_level` 1.
const LOG_SIZE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the kernel verifier rejected the program ({errno}):\n{log}")]
    Verifier { errno: io::Error, log: String },
    #[error("bpf(BPF_PROG_LOAD) failed: {0}")]
    Syscall(io::Error),
}

/// A program the verifier accepted. Dropping it closes our fd; the kernel
/// frees the program once nothing else (a socket, a link, a pin) holds it.
#[derive(Debug)]
pub struct Loaded {
    fd: OwnedFd,
}

/// What one `BPF_PROG_TEST_RUN` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestRun {
    pub retval: u32,
    /// Mean nanoseconds per run, as the kernel measured over `repeat` runs.
    pub duration_ns: u32,
}

/// The kernel's `prog_name`: at most 15 of `name`'s letters, digits and
/// `_` (what it accepts), NUL-terminated.
fn prog_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let kept = name
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'_');
    for (d, s) in out.iter_mut().zip(kept.take(15)) {
        *d = s;
    }
    out
}

/// Loads `insns` as a program of `hook`'s type through the verifier. On
/// refusal the error carries the verifier's log. `name` is kept to the
/// characters the kernel accepts.
pub fn load(hook: Hook, insns: &[Insn], name: &str) -> Result<Loaded, LoadError> {
    let bytes = to_bytes(insns);
    let license = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type: hook.prog_type(),
        insn_cnt: insns.len() as u32,
        insns: addr(bytes.as_ptr()),
        license: addr(license.as_ptr()),
        prog_name: prog_name(name),
        ..ProgLoadAttr::default()
    };
    // SAFETY: insns points at insn_cnt instructions (8 bytes each) and
    // license at a NUL-terminated string, both alive for the call; no log
    // buffer is passed.
    let first = unsafe { sys_bpf_fd(Cmd::ProgLoad, &mut attr) };
    match first {
        Ok(fd) => Ok(Loaded { fd }),
        Err(errno) if errno.raw_os_error() == Some(libc::EPERM) => Err(LoadError::Syscall(errno)),
        Err(_) => {
            // Load again with the log on: the first attempt stays cheap
            // for the common case of success.
            let mut log = vec![0u8; LOG_SIZE];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = addr(log.as_mut_ptr());
            // SAFETY: as above, and log_buf points at log_size writable
            // bytes alive for the call.
            match unsafe { sys_bpf_fd(Cmd::ProgLoad, &mut attr) } {
                Ok(fd) => Ok(Loaded { fd }),
                Err(errno) => {
                    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                    let log = String::from_utf8_lossy(&log[..end]).into_owned();
                    Err(LoadError::Verifier { errno, log })
                }
            }
        }
    }
}

/// How this kernel bounds loops: `may_goto` where its verifier knows the
/// instruction (Linux 6.9+), else the counted form. Found once, by loading
/// a four-instruction socket filter with a `may_goto`. Without the right
/// to load programs the answer is `may_goto`: the real load will say why
/// it failed.
pub fn loops() -> Loops {
    static LOOPS: std::sync::OnceLock<Loops> = std::sync::OnceLock::new();
    *LOOPS.get_or_init(|| {
        let probe = [
            Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst: Reg::R0,
                src: Operand::Imm(0),
            },
            Op::MayGoto { off: 1 },
            Op::Alu {
                wide: true,
                op: AluOp::Mov,
                dst: Reg::R0,
                src: Operand::Imm(1),
            },
            Op::Exit,
        ];
        let insns: Vec<Insn> = probe.iter().flat_map(|op| op.encode()).collect();
        match load(Hook::Socket, &insns, "may_goto_probe") {
            Err(LoadError::Verifier { .. }) => Loops::Counted,
            Ok(_) | Err(LoadError::Syscall(_)) => Loops::MayGoto,
        }
    })
}

impl Loaded {
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Runs the program `repeat` times (at least once) on `data` with
    /// `BPF_PROG_TEST_RUN`. For socket filters and tc, `data` is an
    /// Ethernet frame (the kernel parses it with `eth_type_trans`); for XDP
    /// it is the frame as the driver would hand it over.
    pub fn test_run(&self, data: &[u8], repeat: u32) -> io::Result<TestRun> {
        test_run(self.fd.as_fd(), data, repeat)
    }
}

impl AsFd for Loaded {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `BPF_PROG_TEST_RUN` on any loaded program (one of ours, or one aya
/// loaded), as [`Loaded::test_run`] describes.
pub fn test_run(prog: BorrowedFd<'_>, data: &[u8], repeat: u32) -> io::Result<TestRun> {
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: data.len() as u32,
        data_in: addr(data.as_ptr()),
        repeat: repeat.max(1),
        ..TestRunAttr::default()
    };
    // SAFETY: data_in points at data_size_in readable bytes alive for the
    // call; no output buffer is passed (data_out and ctx_* are zero).
    unsafe { sys_bpf(Cmd::ProgTestRun, &mut attr)? };
    Ok(TestRun {
        retval: attr.retval,
        duration_ns: attr.duration,
    })
}

/// A new fd on the loaded program `id`; it keeps the program alive after
/// whatever ran it lets go. Needs CAP_SYS_ADMIN.
pub fn fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdByIdAttr {
        id,
        ..GetFdByIdAttr::default()
    };
    // SAFETY: the attr holds no addresses; the command returns a new fd.
    unsafe { sys_bpf_fd(Cmd::ProgGetFdById, &mut attr) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_programs::ebpf::asm::Asm;
    use filter_programs::ebpf::insn::{Operand, Reg, Size};

    fn root() -> bool {
        e2e::kernel_available("prog::tests")
    }

    #[test]
    fn verifier_accepts_and_test_run_returns() {
        if !root() {
            return;
        }
        let mut a = Asm::new();
        a.mov64(Reg::R0, Operand::Imm(2));
        a.exit();
        let p = load(Hook::Xdp, &a.assemble().unwrap(), "xdp_pass").unwrap();
        let r = p.test_run(&[0u8; 64], 1).unwrap();
        assert_eq!(r.retval, 2);
        assert_eq!(test_run(p.as_fd(), &[0u8; 64], 3).unwrap().retval, 2);
    }

    #[test]
    fn verifier_rejection_carries_the_log() {
        if !root() {
            return;
        }
        // Reads r2 before any write.
        let mut a = Asm::new();
        a.mov64(Reg::R0, Operand::Reg(Reg::R2));
        a.exit();
        match load(Hook::Socket, &a.assemble().unwrap(), "bad") {
            Err(LoadError::Verifier { log, .. }) => assert!(log.contains("R2 !read_ok"), "{log}"),
            other => panic!("expected a verifier rejection, got {other:?}"),
        }
        let mut b = Asm::new();
        b.ldx(Size::W, Reg::R0, Reg::R10, 8);
        b.exit();
        assert!(matches!(
            load(Hook::Xdp, &b.assemble().unwrap(), "bad"),
            Err(LoadError::Verifier { .. })
        ));
    }

    #[test]
    fn every_hook_loads_and_a_program_is_found_by_id() {
        if !root() {
            return;
        }
        let mut a = Asm::new();
        a.mov64(Reg::R0, Operand::Imm(0));
        a.exit();
        let insns = a.assemble().unwrap();
        for hook in Hook::ALL {
            let p = load(hook, &insns, "each_hook").unwrap_or_else(|e| panic!("{hook}: {e}"));
            assert_eq!(p.test_run(&[0u8; 64], 1).unwrap().retval, 0, "{hook}");
        }
        // An id no program has.
        let err = fd_by_id(u32::MAX).expect_err("no such program");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn names_keep_what_the_kernel_accepts() {
        assert_eq!(&prog_name("pcap-replay.x"), b"pcapreplayx\0\0\0\0\0");
        let long = prog_name("a_very_long_program_name");
        assert_eq!(&long[..15], b"a_very_long_pro");
        assert_eq!(long[15], 0);
    }
}
