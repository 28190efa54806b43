//! A software stream prefetcher for records lent from the reader's buffer.
//! [`super::FileReader`] runs it on every buffer it hands out.
//!
//! A chunk is larger than a core's L2 cache, so by the time the readers
//! reach its later part, the lines the kernel copied there have moved out
//! to L3, and the hardware prefetcher stops at every 4 KiB page. Reading
//! small records in place would then wait on memory at almost every record
//! header. Asking for every cache line a fixed distance ahead of the
//! cursor, each line once, keeps them arriving as a stream does.

/// How far ahead of the cursor to ask: the readers take records in
/// batches of up to 4 KiB from one look at the buffer (capfile's
/// `for_each_view`), and asking for the next batch's lines while this one
/// is replayed measured best (2-4 KiB against 1, 8 and 16 KiB, 0.63-0.64
/// against 0.65-0.67 of tcpdump's time on small frames).
pub const DISTANCE: usize = 4096;
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
        // A new chunk (or the first record): start again here.
        // The last call left `next` on the first line at or past its
        // `until`; a call from the same place (the readers ask for the
        // buffer more than once per record) or a little further on finds
        // it less than a line past the new `until`, and asks for nothing.
        if self.next < here || self.next > until.saturating_add(LINE) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_is_asked_for_once_however_often_the_buffer_is_asked() {
        let buf = vec![0u8; 4 * DISTANCE];
        let mut p = Prefetcher::default();
        p.ahead(&buf[5..]);
        let first = p.next;
        assert!(first >= buf.as_ptr() as usize + 5 + DISTANCE);
        // Again from the same place, and a few bytes on: nothing new, or
        // one line.
        p.ahead(&buf[5..]);
        assert_eq!(p.next, first);
        for at in 6..200 {
            let before = p.next;
            p.ahead(&buf[at..]);
            assert!(
                p.next - before <= LINE,
                "at {at}: {} lines",
                (p.next - before) / LINE
            );
        }
        // A jump back (a new chunk) starts again.
        p.ahead(&buf[..]);
        let start = buf.as_ptr() as usize;
        assert!(p.next >= start + DISTANCE && p.next < start + DISTANCE + LINE);
    }
}
