//! libpcap as the oracle: its compiler (`pcap_compile`), validator
//! (`bpf_validate`) and interpreter (`bpf_filter`), through FFI, and the
//! system's names as libpcap resolves them ([`resolve`]).
//!
//! This is the workspace's one binding to libpcap: pcap-replay's `libpcap`
//! engine, the compiler's tests and the benches all compare against it
//! here, so the compiler stays pure and no application links libpcap for
//! this.
//!
//! The `pcap` crate links libpcap and names link types, but its compile
//! fixes the snap length and netmask, and its filter cannot say that the
//! captured length is shorter than the wire length. The verdict tests need
//! all three, so the few entry points are declared here.
//!
//! `bpf_filter` trusts its program: a jump past the end or a scratch index
//! out of range would read out of bounds, an opcode `bpf_validate` lets
//! through but the interpreter does not implement (`ret x`, stray size or
//! high bits) makes it `abort()`, and a backward `ja` can loop forever. So a
//! program runs only as a [`Validated`], which needs `bpf_validate`, our
//! validator under libpcap's rules, and only opcodes `bpf_filter`
//! implements, and no loop without a way out.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod resolve;

use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::fmt;
use std::sync::Mutex;

use filter_programs::cbpf::validate::{self as cbpf_validate, RuleSet};
use filter_programs::cbpf::{Insn, Op, RetVal};

/// `PCAP_NETMASK_UNKNOWN`: what tcpdump passes when it knows no netmask.
pub const NETMASK_UNKNOWN: u32 = 0xffff_ffff;

/// tcpdump's default snap length, and so the usual "match" return value.
pub const DEFAULT_SNAPLEN: i32 = 262_144;

// `bpf_filter` and `bpf_validate` read `struct bpf_insn` (u16 code, u8 jt,
// u8 jf, u32 k); Insn is `#[repr(C)]` with those fields, and this checks it
// keeps that size and alignment.
const _: () = assert!(std::mem::size_of::<Insn>() == 8 && std::mem::align_of::<Insn>() == 4);

#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut Insn,
}

#[repr(C)]
struct PcapT {
    _private: [u8; 0],
}

#[link(name = "pcap")]
extern "C" {
    fn pcap_open_dead(linktype: c_int, snaplen: c_int) -> *mut PcapT;
    fn pcap_close(p: *mut PcapT);
    fn pcap_compile(
        p: *mut PcapT,
        fp: *mut BpfProgram,
        text: *const c_char,
        optimize: c_int,
        netmask: u32,
    ) -> c_int;
    fn pcap_freecode(fp: *mut BpfProgram);
    fn pcap_geterr(p: *mut PcapT) -> *const c_char;
    fn pcap_datalink_name_to_val(name: *const c_char) -> c_int;
    fn pcap_datalink_val_to_name(dlt: c_int) -> *const c_char;
    fn bpf_filter(prog: *const Insn, pkt: *const u8, wirelen: c_uint, buflen: c_uint) -> c_uint;
    fn bpf_validate(prog: *const Insn, len: c_int) -> c_int;
}

/// libpcap's generated parser keeps no global state since 1.8, but its
/// name-resolution and error paths have not always been reentrant; one
/// compile at a time costs nothing next to what the tests run.
static COMPILE_LOCK: Mutex<()> = Mutex::new(());

/// Options of one `pcap_compile` call.
#[derive(Clone, Copy, Debug)]
pub struct CompileOptions {
    /// A DLT_ value (what `pcap_datalink` returns), not a LINKTYPE_.
    pub dlt: i32,
    pub snaplen: i32,
    pub optimize: bool,
    pub netmask: u32,
}

impl CompileOptions {
    /// tcpdump's defaults for a link type: snaplen 262144, optimizer on,
    /// unknown netmask.
    pub fn new(dlt: i32) -> CompileOptions {
        CompileOptions {
            dlt,
            snaplen: DEFAULT_SNAPLEN,
            optimize: true,
            netmask: NETMASK_UNKNOWN,
        }
    }
}

/// Compiles `expr` with `pcap_compile` on a dead handle. The error is
/// libpcap's own message.
pub fn compile(expr: &str, opts: CompileOptions) -> Result<Vec<Insn>, String> {
    let text = CString::new(expr).map_err(|_| "expression contains a NUL byte".to_string())?;
    let _guard = COMPILE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: pcap_open_dead only allocates; a null return is handled.
    let p = unsafe { pcap_open_dead(opts.dlt, opts.snaplen) };
    if p.is_null() {
        return Err("pcap_open_dead failed".into());
    }
    let mut prog = BpfProgram {
        bf_len: 0,
        bf_insns: std::ptr::null_mut(),
    };
    // SAFETY: p is a live handle, prog is writable, text is NUL-terminated.
    let rc = unsafe {
        pcap_compile(
            p,
            &mut prog,
            text.as_ptr(),
            opts.optimize as c_int,
            opts.netmask,
        )
    };
    let result = if rc != 0 {
        // SAFETY: pcap_geterr returns the handle's NUL-terminated buffer.
        Err(unsafe { CStr::from_ptr(pcap_geterr(p)) }
            .to_string_lossy()
            .into_owned())
    } else {
        let insns = if prog.bf_insns.is_null() {
            Vec::new()
        } else {
            // SAFETY: on success bf_insns points at bf_len instructions with
            // the layout of `struct bpf_insn`, which Insn repeats (checked
            // above), and they live until pcap_freecode below.
            unsafe { std::slice::from_raw_parts(prog.bf_insns, prog.bf_len as usize) }.to_vec()
        };
        // SAFETY: prog came from a successful pcap_compile.
        unsafe { pcap_freecode(&mut prog) };
        Ok(insns)
    };
    // SAFETY: p came from pcap_open_dead and is not used after this.
    unsafe { pcap_close(p) };
    result
}

/// A classic BPF program that libpcap's interpreter can run: the only form
/// in which [`bpf_filter`](Validated::filter) runs one, since that
/// interpreter trusts every jump and scratch index it is given and aborts
/// on an opcode it does not implement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validated {
    insns: Box<[Insn]>,
}

/// Why a program may not run in `bpf_filter`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The offending instruction (0-based), if one is to blame.
    pub index: Option<usize>,
    pub reason: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "instruction {i}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for Refused {}

impl Validated {
    /// `prog`, if [`Validated::check`] accepts it.
    pub fn new(prog: &[Insn]) -> Option<Validated> {
        Validated::check(prog).ok()
    }

    /// `prog`, if `bpf_filter` can run it without reading out of bounds or
    /// aborting: our validator under libpcap's rules (which repeats
    /// `bpf_validate`, with the reason), `bpf_validate` itself, and then
    /// every opcode one that `bpf_filter` implements: `bpf_validate` looks
    /// only at the class, mode and op bits, so it passes `ret x` and codes
    /// with stray bits, on which `bpf_filter` calls `abort()`.
    ///
    /// A backward `ja` makes a loop, which libpcap's own compiler emits
    /// (`ip6 protochain`) and `bpf_filter` runs without a step limit. A
    /// loop with no way out (every instruction reachable from the start
    /// must have a path to a `ret`) is refused; one with a way out runs as
    /// it runs in tcpdump, which ends only if the packet leads it out.
    pub fn check(prog: &[Insn]) -> Result<Validated, Refused> {
        cbpf_validate::validate(prog, RuleSet::Libpcap).map_err(|e| Refused {
            index: Some(e.index),
            reason: e.rule.to_string(),
        })?;
        if !validate(prog) {
            return Err(Refused {
                index: None,
                reason: "libpcap's bpf_validate refuses the program".into(),
            });
        }
        for (i, insn) in prog.iter().enumerate() {
            let aborts = match insn.decode() {
                Err(_) => format!(
                    "opcode {:#06x}: bpf_validate passes it (it checks only the class, mode and \
                     op bits), but libpcap's bpf_filter does not implement it and would abort",
                    insn.code
                ),
                Ok(Op::Ret { val: RetVal::X }) => "ret x: bpf_validate passes it, but libpcap's \
                     bpf_filter does not implement it and would abort"
                    .into(),
                Ok(_) => continue,
            };
            return Err(Refused {
                index: Some(i),
                reason: aborts,
            });
        }
        if let Some((i, target)) = endless_loop(prog) {
            return Err(Refused {
                index: Some(i),
                reason: format!(
                    "ja back to instruction {target} makes a loop with no way out (no path \
                     from it reaches a ret), and libpcap's bpf_filter has no step limit, so \
                     it would run forever"
                ),
            });
        }
        Ok(Validated { insns: prog.into() })
    }

    /// The instructions, as given to [`Validated::new`].
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Runs the program with libpcap's interpreter, `bpf_filter`, on the
    /// captured bytes `pkt` of a packet whose wire length is `wirelen`:
    /// exactly what `pcap_offline_filter` does. Returns the filter's return
    /// value.
    pub fn filter(&self, pkt: &[u8], wirelen: u32) -> u32 {
        // SAFETY: insns passed bpf_validate (the only way to build a
        // Validated is `check`), which bounds every jump and scratch index
        // and requires a final return, and every opcode is one bpf_filter
        // implements, so it never aborts; bpf_filter checks every packet load
        // against `buflen`, so it reads at most pkt.len() bytes of pkt.
        // `wirelen` only feeds `ld len`.
        unsafe {
            bpf_filter(
                self.insns.as_ptr(),
                pkt.as_ptr(),
                wirelen,
                pkt.len() as c_uint,
            )
        }
    }
}

/// [`Validated::filter`] for a program checked on this one call: panics
/// when [`Validated::check`] refuses `prog`. For a loop over packets, build the
/// [`Validated`] once.
pub fn filter(prog: &[Insn], pkt: &[u8], wirelen: u32) -> u32 {
    Validated::new(prog)
        .expect("libpcap_oracle::filter needs a program that bpf_filter can run")
        .filter(pkt, wirelen)
}

impl Validated {
    /// The first instruction (index, cell) that loads a scratch cell which
    /// some path from the start reaches without storing to it. There
    /// `bpf_filter`, which leaves scratch memory uninitialized, returns what
    /// its stack happens to hold, so no verdict of ours can be held against
    /// it. libpcap's own compiler emits such reads (`geneve` on radiotap
    /// reads M[0] and M[1] unwritten), so the program still runs.
    pub fn unwritten_scratch_read(&self) -> Option<(usize, u32)> {
        unwritten_scratch_read(&self.insns)
    }
}

/// [`Validated::unwritten_scratch_read`]: a must-written analysis to a
/// fixpoint, so loops (backward `ja`) are covered; `prog` has passed
/// `bpf_validate`, so every jump lands inside it and every cell index is
/// below 16.
fn unwritten_scratch_read(prog: &[Insn]) -> Option<(usize, u32)> {
    let n = prog.len();
    // written[i]: the cells written on every path to i (None: unreached).
    let mut written: Vec<Option<u16>> = vec![None; n];
    written[0] = Some(0);
    let mut work = vec![0usize];
    while let Some(i) = work.pop() {
        let Some(mut w) = written[i] else { continue };
        if let Ok(Op::St { k } | Op::Stx { k }) = prog[i].decode() {
            w |= 1 << (k & 15);
        }
        for t in successors(prog, i).into_iter().flatten().filter(|&t| t < n) {
            let merged = written[t].map_or(w, |old| old & w);
            if written[t] != Some(merged) {
                written[t] = Some(merged);
                work.push(t);
            }
        }
    }
    prog.iter()
        .enumerate()
        .find_map(|(i, insn)| match insn.decode() {
            Ok(Op::LdMem { k } | Op::LdxMem { k }) => {
                let w = written[i]?;
                (w & (1 << (k & 15)) == 0).then_some((i, k))
            }
            _ => None,
        })
}

/// Where control can go from instruction `i` (a backward `ja` wraps as
/// `bpf_filter` computes it; a target may lie outside the program).
fn successors(prog: &[Insn], i: usize) -> [Option<usize>; 2] {
    match prog[i].decode() {
        Ok(Op::Ret { .. }) => [None, None],
        Ok(Op::Ja { k }) => [
            Some((i as u32).wrapping_add(1).wrapping_add(k) as usize),
            None,
        ],
        Ok(Op::Jmp { jt, jf, .. }) => {
            [Some(i + 1 + usize::from(jt)), Some(i + 1 + usize::from(jf))]
        }
        _ => [Some(i + 1), None],
    }
}

/// The first backward `ja` (index and target), reachable from the start,
/// from which no path leads to a `ret`: the jump that closes a loop with
/// no way out. Every such loop has one, since only `ja` jumps backward.
/// `prog` has passed `bpf_validate`, so every jump lands inside it.
fn endless_loop(prog: &[Insn]) -> Option<(usize, usize)> {
    let n = prog.len();
    let succ = |i: usize| successors(prog, i);
    // Predecessors, then every instruction that can reach a ret.
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for t in succ(i).into_iter().flatten().filter(|&t| t < n) {
            preds[t].push(i);
        }
    }
    let mut ends = vec![false; n];
    let mut work: Vec<usize> = (0..n).filter(|&i| succ(i) == [None, None]).collect();
    for &i in &work {
        ends[i] = true;
    }
    while let Some(i) = work.pop() {
        for &p in &preds[i] {
            if !ends[p] {
                ends[p] = true;
                work.push(p);
            }
        }
    }
    // The first reachable instruction that cannot.
    let mut seen = vec![false; n];
    let mut work = vec![0usize];
    seen[0] = true;
    while let Some(i) = work.pop() {
        for t in succ(i).into_iter().flatten().filter(|&t| t < n) {
            if !seen[t] {
                seen[t] = true;
                work.push(t);
            }
        }
    }
    (0..n).find_map(|i| {
        let [Some(t), None] = succ(i) else {
            return None;
        };
        let closes = seen[i] && !ends[i] && t <= i && matches!(prog[i].decode(), Ok(Op::Ja { .. }));
        closes.then_some((i, t))
    })
}

/// libpcap's `bpf_validate`.
pub fn validate(prog: &[Insn]) -> bool {
    if prog.is_empty() || prog.len() > c_int::MAX as usize {
        return false;
    }
    // SAFETY: bpf_validate reads exactly `len` instructions, and prog has
    // that many.
    unsafe { bpf_validate(prog.as_ptr(), prog.len() as c_int) != 0 }
}

/// The DLT_ value of a name such as `EN10MB` (what `-y` takes).
pub fn dlt_from_name(name: &str) -> Option<i32> {
    let c = CString::new(name).ok()?;
    // SAFETY: c is NUL-terminated and outlives the call.
    let v = unsafe { pcap_datalink_name_to_val(c.as_ptr()) };
    (v >= 0).then_some(v)
}

/// The name libpcap gives a DLT_ value.
pub fn dlt_name(dlt: i32) -> Option<String> {
    // SAFETY: takes any int; returns a static string or null.
    let p = unsafe { pcap_datalink_val_to_name(dlt) };
    // SAFETY: non-null results point into libpcap's static, NUL-terminated
    // name table.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_filters_like_tcpdump() {
        let en10mb = dlt_from_name("EN10MB").unwrap();
        assert_eq!(en10mb, 1);
        let prog = compile("ip", CompileOptions::new(en10mb)).unwrap();
        // (000) ldh [12]; (001) jeq #0x800 jt 2 jf 3; (002) ret #262144; (003) ret #0
        assert_eq!(prog.len(), 4);
        assert_eq!(prog[0], Insn::new(0x28, 0, 0, 12));
        let mut frame = [0u8; 34];
        frame[12] = 0x08;
        assert_eq!(filter(&prog, &frame, 34), 262_144);
        frame[12] = 0x86;
        assert_eq!(filter(&prog, &frame, 34), 0);
        // Truncated before the ethertype: the load fails, the packet is rejected.
        frame[12] = 0x08;
        assert_eq!(filter(&prog, &frame[..13], 34), 0);
    }

    #[test]
    fn compile_errors_are_libpcap_messages() {
        let err = compile("tcp port", CompileOptions::new(1)).unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
    }

    #[test]
    fn only_programs_bpf_validate_accepts_run() {
        assert_eq!(Validated::new(&[]), None);
        // No final ret.
        assert_eq!(Validated::new(&[Insn::new(0x28, 0, 0, 12)]), None);
        // A ja past the end.
        let jump_out = [Insn::new(0x05, 0, 0, 5), Insn::new(0x06, 0, 0, 0)];
        assert_eq!(Validated::new(&jump_out), None);
        let accept = [Insn::new(0x06, 0, 0, 0xffff)];
        let prog = Validated::new(&accept).unwrap();
        assert_eq!(prog.insns(), &accept);
        assert_eq!(prog.filter(&[], 60), 0xffff);
    }

    #[test]
    fn programs_bpf_filter_would_abort_on_are_refused() {
        // `ret x` (0x0e) and `ret #k` with a stray size bit (0x0e | 0x10 would
        // be `ret a`, so 0x46): bpf_validate passes both, bpf_filter aborts.
        for code in [0x0e_u16, 0x46, 0x106] {
            let prog = [Insn::new(code, 0, 0, 1)];
            assert!(validate(&prog), "{code:#x}: bpf_validate should pass it");
            let err = Validated::check(&prog).unwrap_err();
            assert_eq!(err.index, Some(0), "{code:#x}");
            assert!(err.reason.contains("would abort"), "{err}");
            assert_eq!(Validated::new(&prog), None);
        }
        // A stray bit on a load before a good ret.
        let prog = [Insn::new(0x28 | 0x100, 0, 0, 12), Insn::new(0x06, 0, 0, 1)];
        assert!(validate(&prog));
        assert_eq!(Validated::check(&prog).unwrap_err().index, Some(0));
    }

    #[test]
    fn loops_with_no_way_out_are_refused() {
        // ja to itself (k = -1); a ja back over a load; two jas into each
        // other's arms behind a forward jump.
        for (prog, at) in [
            (
                vec![Insn::new(0x05, 0, 0, u32::MAX), Insn::new(0x06, 0, 0, 1)],
                (0, 0),
            ),
            (
                vec![
                    Insn::new(0x30, 0, 0, 0),
                    Insn::new(0x05, 0, 0, u32::MAX - 1),
                    Insn::new(0x06, 0, 0, 1),
                ],
                (1, 0),
            ),
            (
                vec![
                    Insn::new(0x15, 0, 3, 0),            // jeq #0: 1 or 4
                    Insn::new(0x05, 0, 0, 1),            // ja 3
                    Insn::new(0x06, 0, 0, 0),            // ret (unreachable)
                    Insn::new(0x05, 0, 0, u32::MAX - 2), // ja 1
                    Insn::new(0x06, 0, 0, 1),
                ],
                (3, 1),
            ),
        ] {
            assert!(validate(&prog), "{prog:?}");
            let err = Validated::check(&prog).unwrap_err();
            assert_eq!(err.index, Some(at.0), "{err}");
            assert!(err.reason.contains("no way out"), "{err}");
            assert!(
                err.reason
                    .contains(&format!("back to instruction {}", at.1)),
                "{err}"
            );
        }
        // A loop with a way out runs: libpcap's own protochain loop.
        let prog = compile("ip6 protochain 6", CompileOptions::new(1)).unwrap();
        assert!(prog.iter().any(|i| i.code == 0x05 && (i.k as i32) < 0));
        let v = Validated::check(&prog).unwrap();
        assert_eq!(v.filter(&[0u8; 60], 60), 0);
    }

    #[test]
    fn a_read_of_unwritten_scratch_is_found() {
        let read = |prog: &[Insn]| Validated::check(prog).unwrap().unwritten_scratch_read();
        // ldx M[14] with no store before it: bpf_filter would read its stack.
        let prog = [
            Insn::new(0x61, 0, 0, 14), // ldx M[14]
            Insn::new(0x48, 0, 0, 16), // ldh [x + 16]
            Insn::new(0x06, 0, 0, 1),
        ];
        assert_eq!(read(&prog), Some((0, 14)));
        // Written on one path only: found, at the load.
        let prog = [
            Insn::new(0x15, 0, 1, 0), // jeq #0: 1 or 2
            Insn::new(0x02, 0, 0, 3), // st M[3]
            Insn::new(0x60, 0, 0, 3), // ld M[3]
            Insn::new(0x16, 0, 0, 0), // ret a
        ];
        assert_eq!(read(&prog), Some((2, 3)));
        // Written on every path, and libpcap's own arithmetic and loops.
        let prog = [
            Insn::new(0x02, 0, 0, 3),
            Insn::new(0x15, 0, 0, 0),
            Insn::new(0x60, 0, 0, 3),
            Insn::new(0x16, 0, 0, 0),
        ];
        assert_eq!(read(&prog), None);
        for expr in [
            "ip[2:2] - 20 > ip[0] & 0xf",
            "ip6 protochain 6",
            "len - 14 > 100 * 2",
        ] {
            let prog = compile(expr, CompileOptions::new(1)).unwrap();
            assert_eq!(read(&prog), None, "{expr}");
        }
    }

    #[test]
    fn bpf_validate_rejects_bad_programs() {
        assert!(!validate(&[]));
        assert!(!validate(&[Insn::new(0x28, 0, 0, 12)])); // no ret
        assert!(validate(&[Insn::new(0x06, 0, 0, 0)]));
    }
}
