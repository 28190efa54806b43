//! The trace hook: a BTF tracepoint's program finds the packet through
//! the kernel's `struct sk_buff` ([`crate::kernel_skb`]) and reads it with
//! `bpf_probe_read_kernel`, a copy per load, after checking the load
//! against the captured length itself (the helper would read past the
//! packet without failing).
//!
//! What the filter sees (decided per socket buffer, at run time): the
//! frame from its link-layer header when the kernel has set one, else
//! from its network header (an skb on some transmit paths, a tunnel's
//! inner packet); its captured length is the linear part from there, its
//! length (`len`) the whole packet from there; an outer VLAN tag the
//! kernel holds in `vlan_all` is read as if in the bytes (`vlan.rs`).
//!
//! ```text
//!  r1 = ctx (the tracepoint's arguments); r6 = args[0] (the skb)
//!  start   = head + (mac_header != 0xffff ? mac_header : network_header)
//!            (network_header alone with `Options::trace_from_network`)
//!  wirelen = len + (data - start)             fp-104
//!  caplen  = wirelen - data_len               fp-96  (each at least 0)
//!  start                                      fp-88
//!  P[off:n] = off + n <= caplen ? probe_read(fp-72, n, start + off)
//!                               : no match
//! ```

use super::emit::{imm, Emitter, CTX, VLAN};
use super::TranslateError;
use crate::ebpf::insn::{AluOp, CallTarget, Endian, JmpOp, Op as E, Operand, Reg, Size};
use crate::kernel_skb::UNSET;

/// `bpf_probe_read_kernel(dst, size, unsafe_ptr)`.
pub const HELPER_PROBE_READ_KERNEL: i32 = 113;
/// The packet's start, captured length and length (8 bytes each).
pub const START: i16 = -88;
pub const CAPLEN: i16 = -96;
pub const WIRELEN: i16 = -104;
/// Where a load copies to (as the tc hook's helpers do).
const LOAD_BUF: i16 = -72;

impl Emitter<'_> {
    /// r6 = the skb, and the three slots above.
    pub(super) fn trace_prologue(&mut self) {
        let (l, inline) = (self.options.skb, self.inline_mode());
        let a = &mut self.asm;
        if !inline {
            a.ldx(Size::DW, CTX, Reg::R1, 0);
        }
        let set = a.label();
        a.ldx(Size::DW, Reg::R2, CTX, l.head as i16);
        if !self.options.trace_from_network {
            a.ldx(Size::H, Reg::R3, CTX, l.mac_header as i16);
            a.jmp(true, JmpOp::Jne, Reg::R3, imm(UNSET as u32), set);
        }
        a.ldx(Size::H, Reg::R3, CTX, l.network_header as i16);
        a.bind(set);
        a.alu64(AluOp::Add, Reg::R2, Operand::Reg(Reg::R3));
        a.stx(Size::DW, Reg::R10, Reg::R2, START);
        a.ldx(Size::DW, Reg::R3, CTX, l.data as i16);
        a.alu64(AluOp::Sub, Reg::R3, Operand::Reg(Reg::R2));
        a.ldx(Size::W, Reg::R4, CTX, l.len as i16);
        a.alu64(AluOp::Add, Reg::R4, Operand::Reg(Reg::R3));
        a.ldx(Size::W, Reg::R5, CTX, l.data_len as i16);
        a.mov64(Reg::R0, Operand::Reg(Reg::R4));
        a.alu64(AluOp::Sub, Reg::R0, Operand::Reg(Reg::R5));
        // A header past `data` plus `len` (no such skb should exist) leaves
        // nothing to read, not a huge length.
        for r in [Reg::R4, Reg::R0] {
            let fine = a.label();
            a.jmp(true, JmpOp::Jsge, r, Operand::Imm(0), fine);
            a.mov64(r, Operand::Imm(0));
            a.bind(fine);
        }
        a.stx(Size::DW, Reg::R10, Reg::R4, WIRELEN);
        a.stx(Size::DW, Reg::R10, Reg::R0, CAPLEN);
    }

    /// `VLAN` from `vlan_all` (see `vlan.rs` for its layout): present when
    /// the field is not zero.
    pub(super) fn trace_vlan(&mut self, present_shift: i32) {
        let l = self.options.skb;
        let a = &mut self.asm;
        a.ldx(Size::H, VLAN, CTX, l.vlan_all as i16);
        a.push(E::End {
            dst: VLAN,
            endian: Endian::ToBe,
            bits: 16,
        });
        a.alu32(AluOp::Lsh, VLAN, imm(16));
        a.ldx(Size::H, Reg::R1, CTX, l.vlan_all as i16 + 2);
        a.alu32(AluOp::Or, VLAN, Operand::Reg(Reg::R1));
        let absent = a.label();
        a.mov64(Reg::R1, Operand::Imm(0));
        a.jmp(false, JmpOp::Jeq, VLAN, imm(0), absent);
        a.mov64(Reg::R1, Operand::Imm(1));
        a.bind(absent);
        a.alu64(AluOp::Lsh, Reg::R1, Operand::Imm(present_shift));
        a.alu64(AluOp::Or, VLAN, Operand::Reg(Reg::R1));
    }

    /// `dst = ` the `size` bytes at the 64-bit offset in r1 (at most
    /// 2^33), or no match when they are not captured.
    pub(super) fn trace_load_at_r1(&mut self, size: Size, dst: Reg) -> Result<(), TranslateError> {
        let n = size.bytes() as i32;
        let reject = self.reject();
        let a = &mut self.asm;
        // caplen - off < n: not captured. Computed as a difference, so
        // the branch narrows only that number: the verifier would carry a
        // narrowed offset (and a state per narrowing) into every later
        // load, and a `protochain` loop's states would not prune.
        a.ldx(Size::DW, Reg::R4, Reg::R10, CAPLEN);
        a.alu64(AluOp::Sub, Reg::R4, Operand::Reg(Reg::R1));
        a.jmp(true, JmpOp::Jslt, Reg::R4, Operand::Imm(n), reject);
        a.ldx(Size::DW, Reg::R3, Reg::R10, START);
        a.alu64(AluOp::Add, Reg::R3, Operand::Reg(Reg::R1));
        a.mov64(Reg::R1, Operand::Reg(Reg::R10));
        a.alu64(AluOp::Add, Reg::R1, Operand::Imm(LOAD_BUF as i32));
        a.mov64(Reg::R2, Operand::Imm(n));
        a.push(E::Call(CallTarget::Helper(HELPER_PROBE_READ_KERNEL)));
        a.jmp(true, JmpOp::Jne, Reg::R0, Operand::Imm(0), reject);
        a.ldx(size, dst, Reg::R10, LOAD_BUF);
        self.swap(dst, size);
        Ok(())
    }

    /// `dst = ` the packet's length from its start (32 bits).
    pub(super) fn trace_len(&mut self, dst: Reg) {
        self.asm.ldx(Size::DW, dst, Reg::R10, WIRELEN);
        self.asm.mov32(dst, Operand::Reg(dst));
    }
}
