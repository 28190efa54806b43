//! A software stream prefetcher for records lent from a mapped file.
//! [`super::Mapped`] runs it on every buffer it hands out.
//!
//! The hardware prefetcher stops at every 4 KiB page, and a mapped file's
//! pages are scattered in physical memory, so reading small records in
//! place waits on memory at almost every record header. Asking for every
//! cache line a fixed distance ahead of the cursor, each line once, keeps
//! the lines arriving as a stream does (what a `read()` copy gets from the
//! kernel's own sequential copy).

/// How far ahead of the current record to ask: a few dozen small records,
/// far enough to cover the latency of a page walk plus a memory fetch.
pub const DISTANCE: usize = 8192;
const LINE: usize = 64;

#[derive(Debug, Default)]
pub struct Prefetcher {
    /// The next line not yet asked for (an address; 0 before the first).
    next: usize,
}

impl Prefetcher {
    /// Called with the bytes from the cursor on, before a record is lent
    /// from them.
    #[inline]
    pub fn ahead(&mut self, at: &[u8]) {
        let here = at.as_ptr() as usize;
        let until = here.wrapping_add(DISTANCE);
        // A new mapping window (or the first record): start again here.
        if self.next < here || self.next > until {
            self.next = here & !(LINE - 1);
        }
        while self.next < until {
            prefetch(self.next);
            self.next += LINE;
        }
    }
}

#[inline]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint: it never faults, even on an
        // address outside any mapping, and changes no memory.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(addr as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
