//! Packet and metadata loads.

use super::emit::{imm, Emitter, A, CTX, DATA, DATA_END, MAX_PACKET_OFF, X};
use super::TranslateError;
use crate::cbpf::skf::{Ancillary, LoadBase, SKF_LL_OFF};
use crate::ebpf::insn::{AluOp, CallTarget, Endian, JmpOp, Op as E, Operand, Reg, Size};
use crate::ebpf::vm::context::{skb, xdp};
use crate::Hook;

const HELPER_PRANDOM: i32 = 7;
const HELPER_CPU: i32 = 8;
const HELPER_SKB_LOAD_BYTES: i32 = 26;
const HELPER_SKB_LOAD_BYTES_RELATIVE: i32 = 68;
const HDR_START_MAC: i32 = 0;
const HDR_START_NET: i32 = 1;
/// Stack bytes the load helpers copy into, just below M[].
const LOAD_BUF: i32 = -72;
/// Socket: offsets from here on reject without a load; the legacy load's
/// `SKF_LL_OFF + off` must stay inside the link-layer range.
pub(super) const SOCKET_MAX_OFF: u32 = 0x10_0000;

impl Emitter<'_> {
    /// `dst = P[k:size]`, big endian, with the classic failure semantics.
    pub(super) fn load_abs(
        &mut self,
        i: usize,
        size: Size,
        k: u32,
        dst: Reg,
    ) -> Result<(), TranslateError> {
        match (LoadBase::of(k), self.target.hook) {
            (LoadBase::Ancillary(n), _) if dst == A => self.ancillary(i, n),
            (LoadBase::Ancillary(_), _) => {
                Err(self.unsupported(i, "an ancillary load through ldxb 4*([k]&0xf)"))
            }
            (LoadBase::Invalid(_), _) => {
                self.asm.ja(self.reject());
                Ok(())
            }
            (LoadBase::Packet(off), _) if self.vlan => self.load_abs_vlan(size, off, dst),
            (LoadBase::Packet(off), _) | (LoadBase::LinkLayer(off), Hook::Xdp) => {
                self.load_packet(size, off, dst)
            }
            (LoadBase::Net(_), Hook::Xdp) => {
                Err(self.unsupported(i, "a load relative to the network header (SKF_NET_OFF)"))
            }
            (_, Hook::Trace) => Err(self.unsupported(
                i,
                "a load at the kernel's special offsets (SKF_NET_OFF, SKF_LL_OFF)",
            )),
            (LoadBase::Net(n), Hook::Tc) => {
                self.asm.mov64(Reg::R2, imm(n));
                self.skb_load_bytes(dst, size, Some(HDR_START_NET))
            }
            (LoadBase::LinkLayer(n), Hook::Tc) => {
                self.asm.mov64(Reg::R2, imm(n));
                self.skb_load_bytes(dst, size, Some(HDR_START_MAC))
            }
            (_, _) => {
                // The socket's own special offsets: the kernel's legacy
                // load knows them.
                self.asm.push(E::LdAbs {
                    size,
                    imm: k as i32,
                });
                self.asm.mov32(dst, Operand::Reg(Reg::R0));
                Ok(())
            }
        }
    }

    /// `dst = ` the `size` bytes at `off` from the link-layer header of the
    /// frame as this hook holds it.
    pub(super) fn load_packet(
        &mut self,
        size: Size,
        off: u32,
        dst: Reg,
    ) -> Result<(), TranslateError> {
        match self.target.hook {
            Hook::Xdp => {
                // The block's bounds check has proven this range.
                let end = off as u64 + size.bytes() as u64;
                if end > MAX_PACKET_OFF {
                    self.asm.ja(self.reject());
                    return Ok(());
                }
                self.asm.ldx(size, dst, DATA, off as i16);
                self.swap(dst, size);
            }
            Hook::Tc => {
                self.asm.mov64(Reg::R2, imm(off));
                self.skb_load_bytes(dst, size, None)?;
            }
            Hook::Trace => {
                self.asm.mov64(Reg::R1, imm(off));
                self.trace_load_at_r1(size, dst)?;
            }
            Hook::Socket if off >= SOCKET_MAX_OFF => {
                self.asm.ja(self.reject());
            }
            Hook::Socket => {
                // Sockets read from the MAC header whatever skb->data is;
                // the kernel's legacy load ends the program with 0 (no
                // match) when the bytes are not there, as classic BPF does.
                self.asm.push(E::LdAbs {
                    size,
                    imm: SKF_LL_OFF + off as i32,
                });
                if dst != Reg::R0 {
                    self.asm.mov32(dst, Operand::Reg(Reg::R0));
                }
            }
        }
        Ok(())
    }

    /// `A = P[X + k:size]`, as libpcap computes it: `X + k` in full width,
    /// without wrapping, so a sum past the packet rejects.
    pub(super) fn load_ind(&mut self, i: usize, size: Size, k: u32) -> Result<(), TranslateError> {
        if self.kernel {
            return self.load_ind_kernel(i, size, k);
        }
        self.index(k, 0);
        if self.vlan {
            return self.load_ind_vlan(size, k);
        }
        self.load_at_r1(size, A)
    }

    /// `r1 = X + k + j` in 64 bits. Outside kernel mode every `k` is
    /// below 2^31 (a larger one is a special offset), and `j` is added only
    /// for `k < 16`, so the sign-extended immediate is the sum itself.
    ///
    /// With the VLAN mapping the sum starts from the constant: the
    /// verifier then keeps r1 apart from X, and the branches on the offset
    /// that the mapping takes do not split X's range, so both sides of
    /// them merge again into one verifier state.
    pub(super) fn index(&mut self, k: u32, j: u32) {
        let sum = k.saturating_add(j);
        if self.vlan {
            self.asm.mov32(Reg::R1, imm(sum));
            self.asm.alu64(AluOp::Add, Reg::R1, Operand::Reg(X));
        } else {
            self.asm.mov32(Reg::R1, Operand::Reg(X));
            self.asm.alu64(AluOp::Add, Reg::R1, imm(sum));
        }
    }

    /// `dst = ` the `size` bytes at the (64-bit) offset in r1, from the
    /// link-layer header of the frame as this hook holds it.
    pub(super) fn load_at_r1(&mut self, size: Size, dst: Reg) -> Result<(), TranslateError> {
        self.load_at_r1_bounded(size, dst, false)
    }

    /// [`Emitter::load_at_r1`]; `small` when r1 is known to be below
    /// `SOCKET_MAX_OFF`, so that sockets and tc need no range check (XDP
    /// checks against the packet's end whatever r1 is).
    pub(super) fn load_at_r1_bounded(
        &mut self,
        size: Size,
        dst: Reg,
        small: bool,
    ) -> Result<(), TranslateError> {
        let n = size.bytes() as i32;
        match self.target.hook {
            Hook::Xdp => {
                self.asm.jmp(
                    true,
                    JmpOp::Jgt,
                    Reg::R1,
                    Operand::Imm(MAX_PACKET_OFF as i32 - n),
                    self.reject(),
                );
                self.asm.mov64(Reg::R3, Operand::Reg(DATA));
                self.asm.alu64(AluOp::Add, Reg::R3, Operand::Reg(Reg::R1));
                self.asm.mov64(Reg::R4, Operand::Reg(Reg::R3));
                self.asm.alu64(AluOp::Add, Reg::R4, Operand::Imm(n));
                self.asm.jmp(
                    true,
                    JmpOp::Jgt,
                    Reg::R4,
                    Operand::Reg(DATA_END),
                    self.reject(),
                );
                self.asm.ldx(size, dst, Reg::R3, 0);
                self.swap(dst, size);
            }
            Hook::Socket => {
                if !small {
                    self.asm.jmp(
                        true,
                        JmpOp::Jgt,
                        Reg::R1,
                        imm(SOCKET_MAX_OFF - 1),
                        self.reject(),
                    );
                }
                self.asm.push(E::LdInd {
                    size,
                    src: Reg::R1,
                    imm: SKF_LL_OFF,
                });
                if dst != Reg::R0 {
                    self.asm.mov32(dst, Operand::Reg(Reg::R0));
                }
            }
            Hook::Tc => {
                // The helper takes a 32-bit offset: a wider sum must not
                // wrap into the packet.
                if !small {
                    self.asm.jmp(
                        true,
                        JmpOp::Jgt,
                        Reg::R1,
                        imm(i32::MAX as u32),
                        self.reject(),
                    );
                }
                self.asm.mov64(Reg::R2, Operand::Reg(Reg::R1));
                self.skb_load_bytes(dst, size, None)?;
            }
            Hook::Trace => self.trace_load_at_r1(size, dst)?,
        }
        Ok(())
    }

    /// `A = P[X + k:size]` as the kernel computes it, for programs that use
    /// its special offsets: `X + k` wraps in 32 bits and a negative sum
    /// names the `SKF_NET_OFF` / `SKF_LL_OFF` ranges (the ancillary range
    /// fails, as the kernel's indirect loads do).
    fn load_ind_kernel(&mut self, i: usize, size: Size, k: u32) -> Result<(), TranslateError> {
        use crate::cbpf::skf::{SKF_AD_OFF, SKF_NET_OFF};
        if self.is_xdp() || self.is_trace() {
            return Err(self.unsupported(
                i,
                "an indirect load in a program that uses the kernel's special offsets",
            ));
        }
        let neg = self.asm.label();
        let done = self.asm.label();
        self.asm.mov32(Reg::R1, Operand::Reg(X));
        self.asm.alu32(AluOp::Add, Reg::R1, imm(k));
        self.asm.jmp(false, JmpOp::Jslt, Reg::R1, imm(0), neg);
        match self.target.hook {
            Hook::Socket => {
                self.asm
                    .jmp(false, JmpOp::Jgt, Reg::R1, imm(0xf_ffff), self.reject());
                self.asm.push(E::LdInd {
                    size,
                    src: Reg::R1,
                    imm: SKF_LL_OFF,
                });
                self.asm.mov32(A, Operand::Reg(Reg::R0));
                self.asm.ja(done);
                self.asm.bind(neg);
                // The kernel's own load sorts out the negative ranges.
                self.asm.push(E::LdInd {
                    size,
                    src: Reg::R1,
                    imm: 0,
                });
                self.asm.mov32(A, Operand::Reg(Reg::R0));
            }
            _ => {
                self.asm.mov64(Reg::R2, Operand::Reg(Reg::R1));
                self.skb_load_bytes(A, size, None)?;
                self.asm.ja(done);
                self.asm.bind(neg);
                let ll = self.asm.label();
                self.asm.jmp(
                    false,
                    JmpOp::Jsge,
                    Reg::R1,
                    Operand::Imm(SKF_AD_OFF),
                    self.reject(),
                );
                self.asm
                    .jmp(false, JmpOp::Jslt, Reg::R1, Operand::Imm(SKF_NET_OFF), ll);
                self.asm.mov32(Reg::R2, Operand::Reg(Reg::R1));
                self.asm
                    .alu32(AluOp::Sub, Reg::R2, Operand::Imm(SKF_NET_OFF));
                self.skb_load_bytes(A, size, Some(HDR_START_NET))?;
                self.asm.ja(done);
                self.asm.bind(ll);
                self.asm.jmp(
                    false,
                    JmpOp::Jslt,
                    Reg::R1,
                    Operand::Imm(SKF_LL_OFF),
                    self.reject(),
                );
                self.asm.mov32(Reg::R2, Operand::Reg(Reg::R1));
                self.asm
                    .alu32(AluOp::Sub, Reg::R2, Operand::Imm(SKF_LL_OFF));
                self.skb_load_bytes(A, size, Some(HDR_START_MAC))?;
            }
        }
        self.asm.bind(done);
        Ok(())
    }

    /// tc: `dst = ` `size` bytes at the offset in r2, through
    /// `bpf_skb_load_bytes` (from `skb->data`, the MAC header) or, with a
    /// start header, `bpf_skb_load_bytes_relative`. A failed copy rejects.
    /// The legacy loads would end the program with 0, which on tc is
    /// `TC_ACT_OK`, not "no match"; the helpers report failure instead.
    pub(super) fn skb_load_bytes(
        &mut self,
        dst: Reg,
        size: Size,
        start: Option<i32>,
    ) -> Result<(), TranslateError> {
        self.asm.mov64(Reg::R1, Operand::Reg(CTX));
        self.asm.mov64(Reg::R3, Operand::Reg(Reg::R10));
        self.asm.alu64(AluOp::Add, Reg::R3, Operand::Imm(LOAD_BUF));
        self.asm.mov64(Reg::R4, Operand::Imm(size.bytes() as i32));
        let helper = match start {
            Some(h) => {
                self.asm.mov64(Reg::R5, Operand::Imm(h));
                HELPER_SKB_LOAD_BYTES_RELATIVE
            }
            None => HELPER_SKB_LOAD_BYTES,
        };
        self.asm.push(E::Call(CallTarget::Helper(helper)));
        self.asm
            .jmp(true, JmpOp::Jne, Reg::R0, Operand::Imm(0), self.reject());
        self.asm.ldx(size, dst, Reg::R10, LOAD_BUF as i16);
        self.swap(dst, size);
        Ok(())
    }

    pub(super) fn swap(&mut self, dst: Reg, size: Size) {
        match size {
            Size::H => {
                self.asm.push(E::End {
                    dst,
                    endian: Endian::ToBe,
                    bits: 16,
                });
            }
            Size::W => {
                self.asm.push(E::End {
                    dst,
                    endian: Endian::ToBe,
                    bits: 32,
                });
            }
            _ => {}
        }
    }

    /// `A = ` an ancillary field, read where this hook's context has it.
    fn ancillary(&mut self, i: usize, n: u32) -> Result<(), TranslateError> {
        let Some(field) = Ancillary::from_k((crate::cbpf::skf::SKF_AD_OFF as u32).wrapping_add(n))
        else {
            // The kernel rejects such programs; libpcap just fails the load.
            self.asm.ja(self.reject());
            return Ok(());
        };
        let xdp = self.is_xdp();
        let trace = self.is_trace();
        let ctx_field = |off: u32| Some(off as i16);
        let (off, swap16) = match field {
            Ancillary::AluXorX => {
                self.asm.alu32(AluOp::Xor, A, Operand::Reg(X));
                return Ok(());
            }
            Ancillary::Cpu | Ancillary::Random => {
                let id = if field == Ancillary::Cpu {
                    HELPER_CPU
                } else {
                    HELPER_PRANDOM
                };
                self.asm.push(E::Call(CallTarget::Helper(id)));
                self.asm.mov32(A, Operand::Reg(Reg::R0));
                self.reload_data_end();
                return Ok(());
            }
            // The kernel's skb has these, at offsets its BTF gives; not
            // read yet.
            _ if trace => (None, false),
            Ancillary::IfIndex if xdp => (ctx_field(xdp::INGRESS_IFINDEX), false),
            Ancillary::Queue if xdp => (ctx_field(xdp::RX_QUEUE_INDEX), false),
            _ if xdp => (None, false),
            Ancillary::Protocol => (ctx_field(skb::PROTOCOL), true),
            Ancillary::PktType => (ctx_field(skb::PKT_TYPE), false),
            Ancillary::IfIndex => (ctx_field(skb::IFINDEX), false),
            Ancillary::Mark => (ctx_field(skb::MARK), false),
            Ancillary::Queue => (ctx_field(skb::QUEUE_MAPPING), false),
            Ancillary::RxHash => (ctx_field(skb::HASH), false),
            Ancillary::VlanTag => (ctx_field(skb::VLAN_TCI), false),
            Ancillary::VlanTagPresent => (ctx_field(skb::VLAN_PRESENT), false),
            Ancillary::VlanTpid => (ctx_field(skb::VLAN_PROTO), true),
            Ancillary::HaType
            | Ancillary::NlAttr
            | Ancillary::NlAttrNest
            | Ancillary::PayOffset => (None, false),
        };
        let Some(off) = off else {
            return Err(self.unsupported(
                i,
                format!("the ancillary field {} (SKF_AD_OFF+{n})", field.name()),
            ));
        };
        self.asm.ldx(Size::W, A, CTX, off);
        if swap16 {
            self.asm.push(E::End {
                dst: A,
                endian: Endian::ToBe,
                bits: 16,
            });
        }
        Ok(())
    }
}
