//! The oracle: libpcap's own compiler, validator and interpreter, through FFI.
//!
//! The `pcap` crate links libpcap and names link types, but its compile
//! fixes the snap length and netmask, and its filter cannot say that the
//! captured length is shorter than the wire length. The verdict tests need
//! all three, so the few entry points are declared here.

use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::sync::Mutex;

use filter_programs::cbpf::Insn;

/// `PCAP_NETMASK_UNKNOWN`: what tcpdump passes when it knows no netmask.
pub const NETMASK_UNKNOWN: u32 = 0xffff_ffff;

/// tcpdump's default snap length, and so the usual "match" return value.
pub const DEFAULT_SNAPLEN: i32 = 262_144;

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
        // SAFETY: on success bf_insns points at bf_len instructions with
        // the layout of `struct bpf_insn`, which Insn repeats.
        let insns = if prog.bf_insns.is_null() {
            Vec::new()
        } else {
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

/// Runs `prog` with libpcap's interpreter, `bpf_filter`, on the captured
/// bytes `pkt` of a packet whose wire length is `wirelen`: exactly what
/// `pcap_offline_filter` does. Returns the filter's return value.
///
/// The program must pass [`validate`]: libpcap's interpreter trusts it.
pub fn filter(prog: &[Insn], pkt: &[u8], wirelen: u32) -> u32 {
    assert!(
        validate(prog),
        "libpcap::filter needs a program that bpf_validate accepts"
    );
    filter_validated(prog, pkt, wirelen)
}

/// [`filter`] without the validation, for hot loops over one program
/// already checked with [`validate`].
pub fn filter_validated(prog: &[Insn], pkt: &[u8], wirelen: u32) -> u32 {
    // SAFETY: prog is a valid program (checked by the caller through
    // bpf_validate, which bounds every jump and scratch index), and
    // bpf_filter reads at most `buflen` bytes of pkt.
    unsafe { bpf_filter(prog.as_ptr(), pkt.as_ptr(), wirelen, pkt.len() as c_uint) }
}

/// libpcap's `bpf_validate`.
pub fn validate(prog: &[Insn]) -> bool {
    if prog.is_empty() || prog.len() > c_int::MAX as usize {
        return false;
    }
    // SAFETY: reads prog.len() instructions.
    unsafe { bpf_validate(prog.as_ptr(), prog.len() as c_int) != 0 }
}

/// The DLT_ value of a name such as `EN10MB` (what `-y` takes).
pub fn dlt_from_name(name: &str) -> Option<i32> {
    let c = CString::new(name).ok()?;
    // SAFETY: c is NUL-terminated.
    let v = unsafe { pcap_datalink_name_to_val(c.as_ptr()) };
    (v >= 0).then_some(v)
}

/// The name libpcap gives a DLT_ value.
pub fn dlt_name(dlt: i32) -> Option<String> {
    // SAFETY: returns a static string or null.
    let p = unsafe { pcap_datalink_val_to_name(dlt) };
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
    fn bpf_validate_rejects_bad_programs() {
        assert!(!validate(&[]));
        assert!(!validate(&[Insn::new(0x28, 0, 0, 12)])); // no ret
        assert!(validate(&[Insn::new(0x06, 0, 0, 0)]));
    }
}
