//! SIGINT and SIGTERM end a run cleanly: the handler only records the
//! signal, the replay checks it between packets and stops, and the run
//! then finishes its outputs (a `-w` file holds the packets so far) and
//! exits with 128 + the signal's number, as a shell reports a process
//! killed by it. A second signal of the same kind kills the process at
//! once (the handler resets itself); `-w` writes to a temporary file, so
//! even then the output's name never holds a torn file.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal received, or 0.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // An atomic store is async-signal-safe.
    SIGNAL.store(sig, Ordering::Relaxed);
}

/// Installs the handler for SIGINT and SIGTERM. Called once, by the
/// command line; a library user keeps its own signal handling.
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value; the handler only stores to an atomic, which is
        // async-signal-safe; sigaction has no other precondition.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            act.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// The signal that asked the run to stop, if one did.
#[inline]
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// The signal's name for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
