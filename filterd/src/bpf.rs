//! The two `bpf(2)` commands that verify and run raw instructions:
//! `BPF_PROG_LOAD` (the verifier, with its log) and `BPF_PROG_TEST_RUN`.
//!
//! aya loads and attaches from ELF objects; proving the translator over a
//! whole corpus needs thousands of loads of bare instruction arrays, with
//! the verifier's log on failure, which is what this module gives.

use std::ffi::c_long;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use filter_programs::ebpf::insn::{to_bytes, Insn};

const BPF_PROG_LOAD: c_long = 5;
const BPF_PROG_TEST_RUN: c_long = 10;

/// The program types this toolkit emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgType {
    SocketFilter = 1,
    SchedCls = 3,
    Xdp = 6,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the kernel verifier rejected the program ({errno}):\n{log}")]
    Verifier { errno: io::Error, log: String },
    #[error("bpf(BPF_PROG_LOAD) failed: {0}")]
    Syscall(io::Error),
}

/// A program the verifier accepted.
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

// The leading fields of `union bpf_attr` for each command, laid out as in
// <linux/bpf.h>; the kernel requires the rest of the union to be zero,
// which the padding guarantees.
#[repr(C, align(8))]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    _rest: [u8; 64],
}

#[repr(C, align(8))]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _rest: [u8; 36],
}

fn sys_bpf<T>(cmd: c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: attr points at a properly laid out, zero-padded bpf_attr of
    // the given size, alive for the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>() as u32) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Loads `insns` through the verifier. On rejection the error carries the
/// verifier's log.
pub fn load(prog_type: ProgType, insns: &[Insn], name: &str) -> Result<Loaded, LoadError> {
    let bytes = to_bytes(insns);
    let license = c"GPL";
    let mut log = vec![0u8; 1 << 20];
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().filter(|b| b.is_ascii_alphanumeric() || *b == b'_').take(15)) {
        *d = s;
    }
    let mut attr = ProgLoadAttr {
        prog_type: prog_type as u32,
        insn_cnt: insns.len() as u32,
        insns: bytes.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type: 0,
        _rest: [0; 64],
    };
    match sys_bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new fd we own.
        Ok(fd) => Ok(Loaded { fd: unsafe { OwnedFd::from_raw_fd(fd as i32) } }),
        Err(errno) if errno.raw_os_error() == Some(libc::EPERM) => Err(LoadError::Syscall(errno)),
        Err(_) => {
            // Load again with the log on: the first attempt stays cheap
            // for the common case of success.
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            match sys_bpf(BPF_PROG_LOAD, &mut attr) {
                // SAFETY: as above.
                Ok(fd) => Ok(Loaded { fd: unsafe { OwnedFd::from_raw_fd(fd as i32) } }),
                Err(errno) => {
                    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                    let log = String::from_utf8_lossy(&log[..end]).into_owned();
                    Err(LoadError::Verifier { errno, log })
                }
            }
        }
    }
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

/// `BPF_PROG_TEST_RUN` on any loaded program (one of ours, or one aya
/// loaded), as [`Loaded::test_run`] describes.
pub fn test_run(prog: std::os::fd::BorrowedFd<'_>, data: &[u8], repeat: u32) -> io::Result<TestRun> {
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        retval: 0,
        data_size_in: data.len() as u32,
        data_size_out: 0,
        data_in: data.as_ptr() as u64,
        data_out: 0,
        repeat: repeat.max(1),
        duration: 0,
        ctx_size_in: 0,
        ctx_size_out: 0,
        ctx_in: 0,
        ctx_out: 0,
        flags: 0,
        cpu: 0,
        batch_size: 0,
        _rest: [0; 36],
    };
    sys_bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(TestRun { retval: attr.retval, duration_ns: attr.duration })
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_programs::ebpf::asm::Asm;
    use filter_programs::ebpf::insn::{Operand, Reg, Size};

    fn root() -> bool {
        e2e::kernel_available("bpf::tests")
    }

    #[test]
    fn verifier_accepts_and_test_run_returns() {
        if !root() {
            return;
        }
        let mut a = Asm::new();
        a.mov64(Reg::R0, Operand::Imm(2));
        a.exit();
        let p = load(ProgType::Xdp, &a.assemble().unwrap(), "xdp_pass").unwrap();
        let r = p.test_run(&[0u8; 64], 1).unwrap();
        assert_eq!(r.retval, 2);
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
        match load(ProgType::SocketFilter, &a.assemble().unwrap(), "bad") {
            Err(LoadError::Verifier { log, .. }) => assert!(log.contains("R2 !read_ok"), "{log}"),
            other => panic!("expected a verifier rejection, got {other:?}"),
        }
        let mut b = Asm::new();
        b.ldx(Size::W, Reg::R0, Reg::R10, 8);
        b.exit();
        assert!(matches!(load(ProgType::Xdp, &b.assemble().unwrap(), "bad"), Err(LoadError::Verifier { .. })));
    }
}
