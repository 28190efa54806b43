//! The stack's bytes, kept per thread and reused from run to run.
//!
//! Clearing all eight frames (4 KiB) for every packet cost more than a
//! short filter's whole run, and most filters never touch the stack. So a
//! run clears only what the previous run on this thread wrote: every store
//! widens `dirty`, and the next run zeroes that range before it starts.
//! Stores are the only way bytes get onto the stack (helpers write through
//! them too), so every run starts on an all-zero stack, as with a fresh one.

use std::cell::RefCell;

use super::{MAX_FRAMES, STACK_SIZE};

pub(super) const STACK_BYTES: usize = STACK_SIZE * MAX_FRAMES;

pub(super) struct Stack {
    pub(super) bytes: [u8; STACK_BYTES],
    /// Offsets `lo..hi` may hold bytes a run wrote; empty when `lo >= hi`.
    lo: usize,
    hi: usize,
}

thread_local! {
    static STACK: RefCell<Stack> = const { RefCell::new(Stack::new()) };
}

impl Stack {
    const fn new() -> Stack {
        Stack { bytes: [0; STACK_BYTES], lo: STACK_BYTES, hi: 0 }
    }

    /// Runs `f` on this thread's stack, all zero.
    pub(super) fn with<R>(f: impl FnOnce(&mut Stack) -> R) -> R {
        STACK.with(|cell| match cell.try_borrow_mut() {
            Ok(mut stack) => {
                stack.clear();
                f(&mut stack)
            }
            // Only if a run ever started another on the same thread: that
            // one gets a fresh stack of its own.
            Err(_) => f(&mut Box::new(Stack::new())),
        })
    }

    fn clear(&mut self) {
        if self.lo < self.hi {
            self.bytes[self.lo..self.hi].fill(0);
        }
        (self.lo, self.hi) = (STACK_BYTES, 0);
    }

    /// Notes that `off..off + size` is about to be written (the write's own
    /// bounds check rejects anything outside the stack).
    #[inline]
    pub(super) fn dirty(&mut self, off: u64, size: usize) {
        let off = off.min(STACK_BYTES as u64) as usize;
        self.lo = self.lo.min(off);
        self.hi = self.hi.max((off + size).min(STACK_BYTES));
    }
}
