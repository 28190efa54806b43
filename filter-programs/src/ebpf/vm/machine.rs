//! What a run touches besides its registers: the context, the packet, the
//! stack and the maps, every access checked against its region; and the
//! helpers.

use super::context::{skb, trace, xdp, Input, CTX_SCRATCH};
use super::maps::{MapKind, Maps};
use super::memory::{read_le, write_le, Region};
use super::scratch::Stack;
use super::{Env, VmError};
use crate::cbpf::skf::LoadBase;
use crate::ebpf::insn::Size;

/// Tag of a map handle (what `LD_IMM64` with a map-fd pseudo source loads):
/// not memory, only an argument for the map helpers.
pub(super) const MAP_HANDLE: u64 = 5 << 40;
/// Tag of a function handle (`LD_IMM64` with a function pseudo source):
/// the callee's first slot, only an argument for `bpf_loop`.
pub(super) const FUNC_HANDLE: u64 = 6 << 40;

const EFAULT: u64 = -14i64 as u64;
pub(super) const EINVAL: u64 = -22i64 as u64;
pub(super) const E2BIG: u64 = -7i64 as u64;

pub(super) struct Machine<'a, 'm, 's> {
    input: &'a Input<'a>,
    /// The bytes from `data` on, and `data`'s address: a packet load is
    /// one subtraction and one bounds check.
    pkt: &'a [u8],
    pkt_base: u64,
    /// The context offsets of `data`, `data_end` and `data_meta`, and the
    /// pointers a 32- or 64-bit load of them gives (as after the kernel
    /// verifier's rewrite): XDP programs read nothing else of the context.
    pointers: [(u64, u64); 3],
    pub(super) maps: &'m mut Maps,
    stack: &'s mut Stack,
    /// The context's bytes, valid once `ctx_ready`: written on the first
    /// access that needs them, since most runs need none.
    ctx: &'s mut [u8; CTX_SCRATCH],
    ctx_ready: bool,
    prandom: u32,
    /// The slot running a helper, for its errors.
    pub(super) pc: usize,
    /// The full packet length (at least the frame's).
    wire_len: u32,
}

impl<'a, 'm, 's> Machine<'a, 'm, 's> {
    pub(super) fn new(
        input: &'a Input<'a>,
        maps: &'m mut Maps,
        stack: &'s mut Stack,
        ctx: &'s mut [u8; CTX_SCRATCH],
        env: &Env,
    ) -> Self {
        let frame = input.frame();
        let data_off = input.data_off();
        let data = Region::Packet.base() + data_off as u64;
        let data_end = Region::Packet.base() + frame.len() as u64;
        let offsets = match input {
            Input::Skb { .. } => [skb::DATA, skb::DATA_END, skb::DATA_META],
            Input::Xdp { .. } => [xdp::DATA, xdp::DATA_END, xdp::DATA_META],
            // A tracepoint's context holds no packet pointers: offsets no
            // access has.
            Input::Trace { .. } => [u32::MAX; 3],
        };
        Machine {
            input,
            pkt: &frame[data_off..],
            pkt_base: data,
            pointers: [
                (offsets[0] as u64, data),
                (offsets[1] as u64, data_end),
                (offsets[2] as u64, data),
            ],
            maps,
            stack,
            ctx,
            ctx_ready: false,
            prandom: env.prandom_seed | 1,
            pc: 0,
            wire_len: env.wire_len.unwrap_or(0).max(frame.len() as u32),
        }
    }

    /// The context's bytes, written first if this run has not yet.
    fn ctx(&mut self) -> &mut [u8] {
        let size = self.input.ctx_size();
        if !self.ctx_ready {
            self.input.write_ctx(&mut self.ctx[..size]);
            let len = self.wire_len.saturating_sub(self.input.data_off() as u32);
            match self.input {
                Input::Skb { .. } => {
                    let _ = write_le(&mut self.ctx[..], skb::LEN as u64, 4, len as u64);
                    let _ = write_le(
                        &mut self.ctx[..],
                        skb::WIRE_LEN as u64,
                        4,
                        self.wire_len as u64,
                    );
                }
                Input::Trace { frame, skb: l, .. } => {
                    let paged = self.wire_len.saturating_sub(frame.len() as u32);
                    let obj = &mut self.ctx[trace::ARGS..];
                    let _ = write_le(obj, l.len as u64, 4, len as u64);
                    let _ = write_le(obj, l.data_len as u64, 4, paged as u64);
                }
                Input::Xdp { .. } => {}
            }
            self.ctx_ready = true;
        }
        &mut self.ctx[..size]
    }

    /// The `N` packet bytes at `addr`, if they are all inside the packet.
    /// Anything else (another region, an error) is for [`Machine::load`].
    #[inline(always)]
    pub(super) fn packet<const N: usize>(&self, addr: u64) -> Option<[u8; N]> {
        // Below `data` or in another region wraps to a huge offset.
        let off = usize::try_from(addr.wrapping_sub(self.pkt_base)).ok()?;
        self.pkt.get(off..)?.first_chunk::<N>().copied()
    }

    /// The pointer a 32- or 64-bit load at `addr` gives, if `addr` is one
    /// of the context's pointer fields.
    #[inline(always)]
    pub(super) fn pointer(&self, addr: u64) -> Option<u64> {
        let off = addr.wrapping_sub(Region::Ctx.base());
        let [a, b, c] = self.pointers;
        if off == a.0 {
            Some(a.1)
        } else if off == b.0 {
            Some(b.1)
        } else if off == c.0 {
            Some(c.1)
        } else {
            None
        }
    }

    fn oob(pc: usize, addr: u64, size: usize, kind: &'static str) -> VmError {
        VmError::OutOfBounds {
            pc,
            addr,
            size,
            kind,
        }
    }

    pub(super) fn load(&mut self, pc: usize, addr: u64, size: usize) -> Result<u64, VmError> {
        let v = match Region::of(addr) {
            Some((Region::Ctx, off)) => match self.pointer(addr) {
                Some(p) if size >= 4 => Some(p),
                _ => {
                    let visible = self.input.ctx_visible();
                    read_le(&self.ctx()[..visible], off, size)
                }
            },
            Some((Region::Kernel, off)) => match self.input {
                Input::Trace { .. } => read_le(&self.ctx()[trace::ARGS..], off, size),
                _ => None,
            },
            Some((Region::Stack, off)) => read_le(&self.stack.bytes, off, size),
            Some((Region::Packet, off)) => off
                .checked_sub(self.pkt_base - Region::Packet.base())
                .and_then(|o| read_le(self.pkt, o, size)),
            Some((Region::MapValue(i), off)) => self.maps.read(i as usize, off, size),
            None => None,
        };
        v.ok_or_else(|| Self::oob(pc, addr, size, "load"))
    }

    pub(super) fn store(
        &mut self,
        pc: usize,
        addr: u64,
        size: usize,
        v: u64,
    ) -> Result<(), VmError> {
        let ok = match Region::of(addr) {
            Some((Region::Stack, off)) => {
                self.stack.dirty(off, size);
                write_le(&mut self.stack.bytes, off, size, v)
            }
            Some((Region::Ctx, off)) if self.input.writable(off, size) => {
                write_le(self.ctx(), off, size, v)
            }
            Some((Region::MapValue(i), off)) => self.maps.write(i as usize, off, size, v),
            // Packets are read-only here: no program we emit writes one.
            _ => None,
        };
        ok.ok_or_else(|| Self::oob(pc, addr, size, "store"))
    }

    fn read_bytes(&mut self, addr: u64, len: usize) -> Result<Vec<u8>, VmError> {
        (0..len as u64)
            .map(|i| self.load(self.pc, addr.wrapping_add(i), 1).map(|b| b as u8))
            .collect()
    }

    fn write_bytes(&mut self, addr: u64, bytes: &[u8]) -> Result<(), VmError> {
        for (i, b) in bytes.iter().enumerate() {
            self.store(self.pc, addr.wrapping_add(i as u64), 1, *b as u64)?;
        }
        Ok(())
    }

    /// Zeroes `len` bytes at `addr` without allocating them: `len` comes
    /// from the program, and the first byte outside a writable region ends
    /// the run long before a hostile length could cost anything.
    fn write_zeros(&mut self, addr: u64, len: usize) -> Result<(), VmError> {
        for i in 0..len {
            self.store(self.pc, addr.wrapping_add(i as u64), 1, 0)?;
        }
        Ok(())
    }

    /// `LD_ABS`/`LD_IND`: big-endian loads relative to `skb->data`, with the
    /// kernel's negative-offset bases. `None` ends the program with 0.
    pub(super) fn legacy_load(&self, size: Size, off: u32) -> Result<Option<u64>, VmError> {
        let Input::Skb { frame, net_off, .. } = *self.input else {
            return Err(VmError::Unsupported {
                pc: self.pc,
                what: "legacy packet load outside a socket buffer".into(),
            });
        };
        let start = match LoadBase::of(off) {
            LoadBase::Packet(k) => self.input.data_off() as u64 + k as u64,
            LoadBase::Net(k) => net_off as u64 + k as u64,
            LoadBase::LinkLayer(k) => k as u64,
            LoadBase::Ancillary(_) | LoadBase::Invalid(_) => return Ok(None),
        };
        let n = size.bytes();
        let bytes = usize::try_from(start)
            .ok()
            .and_then(|s| frame.get(s..s.checked_add(n)?));
        Ok(bytes.map(|b| b.iter().fold(0u64, |acc, x| (acc << 8) | *x as u64)))
    }

    /// The program a `bpf_tail_call(ctx, map, index)` goes to, if the map
    /// is a program array holding one at `index`.
    pub(super) fn tail_call_target(&self, map: u64, index: u64) -> Result<Option<usize>, VmError> {
        if map & !0xffff_ffff != MAP_HANDLE {
            return Err(VmError::Unsupported {
                pc: self.pc,
                what: format!("map argument {map:#x} is not a map"),
            });
        }
        let map = (map & 0xffff_ffff) as usize;
        match self.maps.def(map) {
            Some(def) if def.kind == MapKind::ProgArray => {}
            _ => {
                return Err(VmError::Unsupported {
                    pc: self.pc,
                    what: format!("tail call through map {map}, not a program array"),
                })
            }
        }
        Ok(self.maps.program_at(map, index as u32))
    }

    /// What a helper call spends of the budget besides its own slot: one
    /// unit per 8 bytes it may copy, as the loads and stores doing it
    /// would. The lengths come from the program (a map's key and value,
    /// `len`) and the VM copies byte by byte, so without this a loop of
    /// calls could run far longer than its instructions say.
    pub(super) fn helper_cost(&self, id: i32, a: [u64; 5]) -> u64 {
        let bytes = match id {
            1..=3 => {
                let def = self.maps.def((a[0] & 0xffff_ffff) as usize);
                def.map_or(0, |d| match id {
                    2 => d.key_size as u64 + d.value_size as u64,
                    _ => d.key_size as u64,
                })
            }
            26 | 68 | 189 => a[3] as u32 as u64,
            113 => a[1] as u32 as u64,
            _ => 0,
        };
        bytes.div_ceil(8)
    }

    pub(super) fn helper(&mut self, id: i32, a: [u64; 5]) -> Result<u64, VmError> {
        let pc = self.pc;
        let map_of = |h: u64| -> Result<usize, VmError> {
            if h & !0xffff_ffff != MAP_HANDLE {
                return Err(VmError::Unsupported {
                    pc,
                    what: format!("map argument {h:#x} is not a map"),
                });
            }
            Ok((h & 0xffff_ffff) as usize)
        };
        match id {
            1..=3 => {
                let map = map_of(a[0])?;
                let def = self.maps.def(map).ok_or(VmError::NoSuchMap {
                    pc,
                    map: map as u64,
                })?;
                let key = self.read_bytes(a[1], def.key_size as usize)?;
                Ok(match id {
                    1 => self
                        .maps
                        .lookup(map, &key)
                        .map_or(0, |off| Region::MapValue(map as u8).base() + off),
                    2 => {
                        let value = self.read_bytes(a[2], def.value_size as usize)?;
                        self.maps.update(map, &key, &value, a[3]) as u64
                    }
                    _ => self.maps.delete(map, &key) as u64,
                })
            }
            5 => Ok(0),
            7 => {
                // xorshift32: deterministic, so runs can be replayed.
                let mut x = self.prandom;
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                self.prandom = x;
                Ok(x as u64)
            }
            8 => Ok(self.maps.cpu as u64),
            26 | 68 => self.skb_load_bytes(id, a),
            113 if matches!(self.input, Input::Trace { .. }) => self.probe_read_kernel(a),
            // bpf_xdp_get_buff_len: the VM's frames have no fragments.
            188 if matches!(self.input, Input::Xdp { .. }) => Ok(self.wire_len as u64),
            189 => {
                let (off, to, len) = (a[1] as u32 as usize, a[2], a[3] as u32 as usize);
                match self.input.frame().get(off..off.saturating_add(len)) {
                    Some(bytes) if matches!(self.input, Input::Xdp { .. }) => {
                        let bytes = bytes.to_vec();
                        self.write_bytes(to, &bytes)?;
                        Ok(0)
                    }
                    _ => Ok(EINVAL),
                }
            }
            _ => Err(VmError::UnknownHelper { pc, id }),
        }
    }

    /// `bpf_probe_read_kernel(to, len, from)`: copies `len` bytes of the
    /// captured frame or the synthetic socket buffer; anything else (past
    /// the capture, another region) zeroes the destination and returns
    /// -EFAULT, as a read of unmapped kernel memory does.
    fn probe_read_kernel(&mut self, a: [u64; 5]) -> Result<u64, VmError> {
        let (to, len, from) = (a[0], a[1] as u32 as usize, a[2]);
        let range = |off: u64, size: usize| {
            let o = usize::try_from(off).ok()?;
            Some(o..o.checked_add(len).filter(|e| *e <= size)?)
        };
        // Copied without allocating: the frame outlives the machine, and
        // the object (at most `trace::MAX_SKB` bytes) goes through a
        // buffer on the host's stack.
        let mut obj = [0u8; trace::MAX_SKB];
        let src: Option<&[u8]> = match Region::of(from) {
            Some((Region::Packet, off)) => {
                let frame = self.input.frame();
                range(off, frame.len()).map(|r| &frame[r])
            }
            Some((Region::Kernel, off)) => {
                let bytes = &self.ctx()[trace::ARGS..];
                match range(off, bytes.len()) {
                    Some(r) => {
                        let n = r.len();
                        obj[..n].copy_from_slice(&bytes[r]);
                        Some(&obj[..n])
                    }
                    None => None,
                }
            }
            _ => None,
        };
        match src {
            Some(bytes) => {
                self.write_bytes(to, bytes)?;
                Ok(0)
            }
            None => {
                self.write_zeros(to, len)?;
                Ok(EFAULT)
            }
        }
    }

    /// `bpf_skb_load_bytes(skb, off, to, len)` and
    /// `bpf_skb_load_bytes_relative(skb, off, to, len, start)`: copy or, on
    /// failure, zero the destination and return -EFAULT (-EINVAL for a bad
    /// start header).
    fn skb_load_bytes(&mut self, id: i32, a: [u64; 5]) -> Result<u64, VmError> {
        let Input::Skb { frame, net_off, .. } = *self.input else {
            return Err(VmError::Unsupported {
                pc: self.pc,
                what: format!("helper #{id} needs a socket buffer"),
            });
        };
        let (off, to, len) = (a[1] as u32, a[2], a[3] as u32 as usize);
        let start = if id == 26 {
            (off <= i32::MAX as u32).then(|| self.input.data_off() + off as usize)
        } else {
            match a[4] {
                0 if off <= 0xffff => Some(off as usize),
                1 if off <= 0xffff => Some(net_off + off as usize),
                0 | 1 => None,
                _ => return Ok(EINVAL),
            }
        };
        let src = start
            .and_then(|s| frame.get(s..s.checked_add(len)?))
            .map(<[u8]>::to_vec);
        match src {
            Some(bytes) => {
                self.write_bytes(to, &bytes)?;
                Ok(0)
            }
            None => {
                self.write_zeros(to, len)?;
                Ok(EFAULT)
            }
        }
    }
}
