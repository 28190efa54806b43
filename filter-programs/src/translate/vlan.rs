//! The frame as sent, on hooks where the kernel may have taken the outer
//! VLAN tag out of it.
//!
//! Before packet sockets and tc see a received frame, the kernel moves an
//! outer 802.1Q or 802.1ad tag (priority-only tags with VID 0 included)
//! from the bytes into the socket buffer's metadata: `vlan_proto` (the
//! TPID) and `vlan_tci`, with `vlan_present` set. Only the outer tag moves;
//! an inner tag stays in the bytes. A classic program, like a pcap file,
//! means the frame as it was on the wire, so on these hooks every packet
//! load addresses the frame with the tag's 4 bytes put back at offset 12,
//! and `len` counts them:
//!
//! ```text
//!  offset as sent    tag in the bytes (P = 0)   tag in metadata (P = 1)
//!  0 .. 12           packet[off]                packet[off]
//!  12 .. 16          packet[off]                the tag (TPID, TCI)
//!  16 ..             packet[off]                packet[off - 4]
//! ```
//!
//! One program covers both cases, with `P` (tag in metadata) kept where the
//! verifier cannot learn it: offsets from 16 on are `off - 4 * P` without a
//! branch, and the bytes at 12..16 come from a branch on a copy of `P`,
//! which tells the verifier nothing about the original, so both sides
//! merge again into one state. (Two copies of the program behind one test
//! of `vlan_present` would double the verifier's walk, and libpcap's
//! `protochain` loop on tc already needs half its budget.) A test run never
//! sets the tag: `P = 0` reads every byte where it always did.
//!
//! A program that uses the kernel's special offsets (`SKF_AD_*`,
//! `SKF_NET_OFF`, `SKF_LL_OFF`) means what the kernel makes of it; the
//! kernel's own converter reads such a program's loads from the frame with
//! the tag moved out (the tag itself is `SKF_AD_VLAN_TAG*`), so it keeps
//! that meaning. XDP sees the tag in the bytes unless the device's VLAN
//! offload strips it, and reads the bytes as they are.

use super::emit::{imm, Emitter, A, CTX, VLAN};
use super::TranslateError;
use crate::cbpf::Op;
use crate::ebpf::asm::Label;
use crate::ebpf::insn::{AluOp, Endian, JmpOp, Op as E, Operand, Reg, Size};
use crate::ebpf::vm::context::skb;

/// Bytes of one tag, and where in the frame as sent it sits.
const TAG_LEN: u32 = 4;
const TAG_START: u32 = 12;
const TAG_END: u32 = TAG_START + TAG_LEN;
/// `VLAN >> PRESENT_SHIFT` is `P`.
const PRESENT_SHIFT: i32 = 32;

impl Emitter<'_> {
    /// Sets up `VLAN` when the program reads the packet or its length on a
    /// socket or tc hook, outside kernel mode (see the module doc).
    pub(super) fn vlan_prologue(&mut self) {
        let reads = self.ops.iter().any(|op| {
            matches!(
                op,
                Op::LdAbs { .. } | Op::LdInd { .. } | Op::LdxMsh { .. } | Op::LdLen | Op::LdxLen
            )
        });
        if self.kernel || self.is_xdp() || !reads {
            return;
        }
        self.vlan = true;
        if self.is_trace() {
            self.trace_vlan(PRESENT_SHIFT);
            return;
        }
        // vlan_proto is kept in network byte order, vlan_tci in host order.
        // 32-bit operations clear bits 32-63, where P goes last.
        self.asm.ldx(Size::W, VLAN, CTX, skb::VLAN_PROTO as i16);
        self.asm.push(E::End {
            dst: VLAN,
            endian: Endian::ToBe,
            bits: 16,
        });
        self.asm.alu32(AluOp::Lsh, VLAN, imm(16));
        self.asm.ldx(Size::W, Reg::R1, CTX, skb::VLAN_TCI as i16);
        self.asm.alu32(AluOp::And, Reg::R1, imm(0xffff));
        self.asm.alu32(AluOp::Or, VLAN, Operand::Reg(Reg::R1));
        self.asm
            .ldx(Size::W, Reg::R1, CTX, skb::VLAN_PRESENT as i16);
        self.asm.alu32(AluOp::And, Reg::R1, imm(1));
        self.asm
            .alu64(AluOp::Lsh, Reg::R1, Operand::Imm(PRESENT_SHIFT));
        self.asm.alu64(AluOp::Or, VLAN, Operand::Reg(Reg::R1));
    }

    /// `dst = 4 * P`: what the tag adds to `len`, and takes from an offset.
    pub(super) fn tag_len(&mut self, dst: Reg) {
        self.asm.mov64(dst, Operand::Reg(VLAN));
        self.asm
            .alu64(AluOp::Rsh, dst, Operand::Imm(PRESENT_SHIFT - 2));
        self.asm.alu64(AluOp::And, dst, imm(TAG_LEN));
    }

    /// `goto tagged` when the tag is in metadata, through a copy of `P` so
    /// the verifier keeps `VLAN` unknown on both sides.
    fn if_tag_in_metadata(&mut self, tagged: Label) {
        self.asm.mov64(Reg::R2, Operand::Reg(VLAN));
        self.asm
            .alu64(AluOp::Rsh, Reg::R2, Operand::Imm(PRESENT_SHIFT));
        self.asm.jmp(true, JmpOp::Jne, Reg::R2, imm(0), tagged);
    }

    /// `dst = P[off:size]` of the frame as sent.
    pub(super) fn load_abs_vlan(
        &mut self,
        size: Size,
        off: u32,
        dst: Reg,
    ) -> Result<(), TranslateError> {
        let n = size.bytes() as u32;
        let end = off as u64 + n as u64;
        if end <= TAG_START as u64 {
            return self.load_packet(size, off, dst);
        }
        if off >= TAG_END {
            return self.load_shifted(size, off, dst);
        }
        if off >= TAG_START && end <= TAG_END as u64 {
            // The packet's bytes first: the verifier meets the narrower
            // state of the tag's side second, and prunes it.
            let tagged = self.asm.label();
            let done = self.asm.label();
            self.if_tag_in_metadata(tagged);
            self.load_packet(size, off, dst)?;
            self.asm.ja(done);
            self.asm.bind(tagged);
            self.tag_bytes(dst, off - TAG_START, n);
            self.asm.bind(done);
            return Ok(());
        }
        // Across a boundary: byte by byte, big endian. Every byte past the
        // packet rejects, as the whole load would.
        for j in 0..n {
            self.load_abs_vlan(Size::B, off + j, Reg::R0)?;
            self.accumulate(dst, j);
        }
        Ok(())
    }

    /// `dst = ` the packet's bytes at `off - 4 * P`.
    fn load_shifted(&mut self, size: Size, off: u32, dst: Reg) -> Result<(), TranslateError> {
        if off >= super::load::SOCKET_MAX_OFF {
            // No packet is that long; the plain load knows the limits.
            return self.load_packet(size, off, dst);
        }
        self.tag_len(Reg::R2);
        self.asm.mov64(Reg::R1, imm(off));
        self.asm.alu64(AluOp::Sub, Reg::R1, Operand::Reg(Reg::R2));
        self.load_at_r1_bounded(size, dst, true)
    }

    /// `dst = ` bytes `t .. t + n` of the tag.
    fn tag_bytes(&mut self, dst: Reg, t: u32, n: u32) {
        self.asm.mov32(dst, Operand::Reg(VLAN));
        let shift = 8 * (TAG_LEN - t - n);
        if shift != 0 {
            self.asm.alu32(AluOp::Rsh, dst, imm(shift));
        }
        if n < 4 {
            self.asm.alu32(AluOp::And, dst, imm((1u32 << (8 * n)) - 1));
        }
    }

    /// Appends the byte in r0 to a big-endian value being built in `dst`
    /// (`j`: how many bytes it already has).
    fn accumulate(&mut self, dst: Reg, j: u32) {
        if j == 0 {
            self.asm.mov32(dst, Operand::Reg(Reg::R0));
        } else {
            self.asm.alu32(AluOp::Lsh, dst, imm(8));
            self.asm.alu32(AluOp::Or, dst, Operand::Reg(Reg::R0));
        }
    }

    /// `A = P[X + k:size]` of the frame as sent, with `X + k` (64 bits) in
    /// r1, computed apart from X (see `index`). From 16 on the offset loses
    /// `4 * P`; below 16 (possible only for `k < 16`) the bytes are read
    /// one by one, each from where it is.
    pub(super) fn load_ind_vlan(&mut self, size: Size, k: u32) -> Result<(), TranslateError> {
        let low = (k < TAG_END).then(|| self.asm.label());
        let done = self.asm.label();
        if let Some(low) = low {
            self.asm.jmp(true, JmpOp::Jlt, Reg::R1, imm(TAG_END), low);
        }
        self.tag_len(Reg::R2);
        self.asm.alu64(AluOp::Sub, Reg::R1, Operand::Reg(Reg::R2));
        self.load_at_r1(size, A)?;
        let Some(low) = low else {
            return Ok(());
        };
        self.asm.ja(done);
        self.asm.bind(low);
        for j in 0..size.bytes() as u32 {
            // Legacy loads and helpers clobber r1-r5: recompute the offset.
            if j > 0 {
                self.index(k, j);
            }
            let (packet, high, tagged, got) = (
                self.asm.label(),
                self.asm.label(),
                self.asm.label(),
                self.asm.label(),
            );
            self.asm
                .jmp(true, JmpOp::Jlt, Reg::R1, imm(TAG_START), packet);
            self.asm.jmp(true, JmpOp::Jge, Reg::R1, imm(TAG_END), high);
            self.if_tag_in_metadata(tagged);
            self.asm.ja(packet);
            self.asm.bind(high);
            self.tag_len(Reg::R2);
            self.asm.alu64(AluOp::Sub, Reg::R1, Operand::Reg(Reg::R2));
            // Below 20 here.
            self.asm.bind(packet);
            self.load_at_r1_bounded(Size::B, Reg::R0, true)?;
            self.asm.ja(got);
            // Tag byte r1 - 12: VLAN >> 8 * (15 - r1).
            self.asm.bind(tagged);
            self.asm.mov64(Reg::R2, imm(TAG_END - 1));
            self.asm.alu64(AluOp::Sub, Reg::R2, Operand::Reg(Reg::R1));
            self.asm.alu64(AluOp::Lsh, Reg::R2, imm(3));
            self.asm.mov32(Reg::R0, Operand::Reg(VLAN));
            self.asm.alu32(AluOp::Rsh, Reg::R0, Operand::Reg(Reg::R2));
            self.asm.alu32(AluOp::And, Reg::R0, imm(0xff));
            self.asm.bind(got);
            self.accumulate(A, j);
        }
        self.asm.bind(done);
        Ok(())
    }
}
