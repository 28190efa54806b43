//! The facts that hold before one instruction, on every path to it:
//! registers, which stack bytes are written, and registers spilled whole
//! to 8-byte stack slots.

use super::value::{Range, Val};

pub(super) const STACK: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct State {
    pub regs: [Val; 11],
    /// Stack byte `fp + off` is written on every path, at `off + 512`.
    pub init: [bool; STACK],
    /// A register spilled whole to slot `fp + 8 * i - 512`.
    pub spill: [Option<Val>; STACK / 8],
}

impl State {
    pub fn entry() -> State {
        let mut regs = [Val::Uninit; 11];
        regs[1] = Val::Ctx { off: 0 };
        regs[10] = Val::Stack { off: 0 };
        State {
            regs,
            init: [false; STACK],
            spill: [None; STACK / 8],
        }
    }

    /// What holds on both paths; with `widen`, ranges that grew jump to
    /// their widest.
    pub fn join(&self, o: &State, widen: bool) -> State {
        let mut out = self.clone();
        for (a, b) in out.regs.iter_mut().zip(o.regs.iter()) {
            *a = if widen { a.widen(*b) } else { a.join(*b) };
        }
        for (a, b) in out.init.iter_mut().zip(o.init.iter()) {
            *a &= *b;
        }
        for (a, b) in out.spill.iter_mut().zip(o.spill.iter()) {
            *a = match (*a, *b) {
                (Some(x), Some(y)) => Some(if widen { x.widen(y) } else { x.join(y) }),
                _ => None,
            };
        }
        out
    }

    /// Applies `f` to every packet pointer with variable part `id`, in
    /// registers and spills.
    pub fn each_pkt(&mut self, id: u32, mut f: impl FnMut(&mut Val)) {
        let hit = |v: &Val| matches!(v, Val::Pkt { id: i, .. } if *i == id);
        for r in self.regs.iter_mut().filter(|r| hit(r)) {
            f(r);
        }
        for s in self.spill.iter_mut().flatten().filter(|s| hit(s)) {
            f(s);
        }
    }

    /// Records a write of `size` bytes at `fp + off` (already in bounds);
    /// a whole aligned 8-byte write of `val` spills it.
    pub fn stack_write(&mut self, off: i64, size: usize, val: Option<Val>) {
        let at = (off + STACK as i64) as usize;
        for b in &mut self.init[at..at + size] {
            *b = true;
        }
        for slot in at / 8..(at + size).div_ceil(8) {
            self.spill[slot] = None;
        }
        if size == 8 && at.is_multiple_of(8) {
            self.spill[at / 8] = val;
        }
    }

    /// The value a read of `size` bytes at `fp + off` gives: a spilled
    /// register read back whole, else a number of that width. `Err` when
    /// it would read part of a spilled pointer.
    pub fn stack_read(&self, off: i64, size: usize, signed: bool) -> Result<Val, ()> {
        let at = (off + STACK as i64) as usize;
        if size == 8 && at.is_multiple_of(8) {
            if let Some(v) = self.spill[at / 8] {
                return Ok(v);
            }
        }
        for slot in at / 8..(at + size).div_ceil(8) {
            if self.spill[slot].is_some_and(|v| v.is_pointer()) {
                return Err(());
            }
        }
        Ok(Val::Scalar(if signed {
            Range::FULL
        } else {
            Range::bytes(size)
        }))
    }

    pub fn stack_init(&self, off: i64, size: usize) -> bool {
        let at = (off + STACK as i64) as usize;
        self.init[at..at + size].iter().all(|b| *b)
    }
}
