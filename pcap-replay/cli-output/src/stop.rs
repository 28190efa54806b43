//! SIGINT and SIGTERM end a run cleanly: the handler only records the
//! signal, the tool checks it between packets and stops, then finishes its
//! outputs (a `-w` file holds the packets so far) and exits with
//! 128 + the signal's number, as a shell reports a process killed by it.
//! A second signal of the same kind kills the process at once (the handler
//! resets itself); outputs are written under a temporary name, so even
//! then an output's name never holds a torn file.
//!
//! `SA_RESTART` keeps reads and writes going through the signal (the flag
//! is checked between packets, not in the middle of one), while a wait in
//! `poll` is never restarted (signal(7)), so a capture waiting for packets
//! sees the flag at once.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal received, or 0.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // An atomic store is async-signal-safe.
    SIGNAL.store(sig, Ordering::Relaxed);
}

/// Installs the handler for SIGINT and SIGTERM. Called once, by a command
/// line; a library user keeps its own signal handling.
pub fn install() -> std::io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value; the handler only stores to an atomic, which is
        // async-signal-safe; sigaction has no other precondition.
        let rc = unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            act.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
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

/// The exit code after stopping on `sig`: 130 for SIGINT, 143 for SIGTERM.
pub fn exit_code(sig: i32) -> u8 {
    128 + sig.clamp(0, 127) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_shells() {
        assert_eq!(exit_code(libc::SIGINT), 130);
        assert_eq!(exit_code(libc::SIGTERM), 143);
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
    }

    #[test]
    fn a_signal_sets_the_flag_instead_of_killing() {
        install().unwrap();
        assert_eq!(requested(), None);
        // SAFETY: raise has no preconditions; the handler is installed.
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        assert_eq!(requested(), Some(libc::SIGTERM));
    }
}
