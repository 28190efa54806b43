//! The memory a run needs besides its registers (stack bytes, call frames,
//! the context's bytes), kept per thread and reused from run to run, so
//! that setting up a run costs next to nothing.
//!
//! Clearing all eight stack frames (4 KiB) for every packet cost more than
//! a short filter's whole run, and most filters never touch the stack. So a
//! run clears only what the previous run on this thread wrote: every store
//! widens `dirty`, and the next run zeroes that range before it starts.
//! Stores are the only way bytes get onto the stack (helpers write through
//! them too), so every run starts on an all-zero stack, as with a fresh one.
//! Call frames are written before they are read; the context's bytes are
//! written in full by the first run that reads them (see `Machine`).

use std::cell::RefCell;

use super::context::CTX_SCRATCH;
use super::{MAX_FRAMES, STACK_SIZE};

pub(super) const STACK_BYTES: usize = STACK_SIZE * MAX_FRAMES;

/// What a BPF-to-BPF call saves: where to return, and r6-r9; and, for a
/// `bpf_loop` callback's frame, the loop.
#[derive(Clone, Copy, Default)]
pub(super) struct Frame {
    pub(super) ret: usize,
    pub(super) saved: [u64; 4],
    pub(super) looping: Option<Loop>,
}

/// A `bpf_loop` under way: the callback's first slot and what entering it
/// costs, the iteration running, how many are asked, the callback's
/// context argument.
#[derive(Clone, Copy, Default)]
pub(super) struct Loop {
    pub(super) callback: usize,
    pub(super) cost: u32,
    pub(super) i: u64,
    pub(super) n: u64,
    pub(super) ctx: u64,
}

pub(super) struct Stack {
    pub(super) bytes: [u8; STACK_BYTES],
    /// Offsets `lo..hi` may hold bytes a run wrote; empty when `lo >= hi`.
    lo: usize,
    hi: usize,
}

pub(super) struct Scratch {
    pub(super) stack: Stack,
    pub(super) frames: [Frame; MAX_FRAMES],
    pub(super) ctx: [u8; CTX_SCRATCH],
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
}

impl Scratch {
    const fn new() -> Scratch {
        Scratch {
            stack: Stack {
                bytes: [0; STACK_BYTES],
                lo: STACK_BYTES,
                hi: 0,
            },
            frames: [Frame {
                ret: 0,
                saved: [0; 4],
                looping: None,
            }; MAX_FRAMES],
            ctx: [0; CTX_SCRATCH],
        }
    }

    /// Runs `f` on this thread's scratch memory, its stack all zero.
    pub(super) fn with<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => {
                s.stack.clear();
                f(&mut s)
            }
            // Only if a run ever started another on the same thread: that
            // one gets fresh memory of its own.
            Err(_) => f(&mut Box::new(Scratch::new())),
        })
    }
}

impl Stack {
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
