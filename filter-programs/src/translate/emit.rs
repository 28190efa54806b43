//! Instruction-by-instruction code generation.

use super::blocks::{block_checks, reachable};
use super::{Loops, Target, TranslateError};
use crate::cbpf::{self, JmpOp as CJmp, Op, RetVal, Src};
use crate::ebpf::asm::{Asm, Label};
use crate::ebpf::insn::{AluOp, CallTarget, JmpOp, Op as E, Operand, Reg, Size};
use crate::ebpf::vm::context::{skb, xdp};
use crate::Hook;

pub(super) const CTX: Reg = Reg::R6;
pub(super) const A: Reg = Reg::R7;
pub(super) const X: Reg = Reg::R8;
/// XDP: the packet's first byte.
pub(super) const DATA: Reg = Reg::R9;
/// XDP: the packet's end (`ctx->data_end`), kept so that a bounds check is
/// one compare, as in a hand-written program. A scratch register: reloaded
/// after every helper call (see `reload_data_end`); no other XDP code
/// writes it.
pub(super) const DATA_END: Reg = Reg::R2;
/// Socket and tc: where the kernel keeps the outer VLAN tag (see
/// `vlan.rs`): bit 32 set when the tag is in metadata, bits 0-31 the tag's
/// 4 bytes as sent (TPID, TCI), big endian.
pub(super) const VLAN: Reg = Reg::R9;

/// Farthest packet offset a check may prove; the verifier refuses larger
/// packet ranges, and no packet at these hooks is that long.
pub(super) const MAX_PACKET_OFF: u64 = 0xffff;

const HELPER_XDP_BUFF_LEN: i32 = 188;
/// The back edges' turn counter (8 bytes).
const LOOP_COUNTER: i16 = -80;
/// Where a `may_goto` back edge passes X through on tc and the trace hook
/// (their loads' scratch, free between loads).
const FORGET_X: i16 = -72;
fn is_back_edge(i: usize, k: u32) -> bool {
    ((i as u32).wrapping_add(1).wrapping_add(k) as usize) <= i
}

pub(super) struct Emitter<'a> {
    pub(super) ops: &'a [Op],
    pub(super) target: Target,
    pub(super) asm: Asm,
    pub(super) labels: Vec<Label>,
    /// Returns the "no match" verdict (0 for a socket).
    reject: Label,
    reject_used: std::cell::Cell<bool>,
    /// The program uses the kernel's special offsets, so it means what the
    /// kernel makes of it (see `translate`'s module doc).
    pub(super) kernel: bool,
    pub(super) options: super::Options,
    /// Inline mode: where a match and no match continue, instead of exits.
    exits: Option<(Label, Label)>,
    /// Packet loads and `len` address the frame as sent, wherever the
    /// kernel keeps its outer VLAN tag (see `vlan.rs`).
    pub(super) vlan: bool,
}

pub(super) fn imm(k: u32) -> Operand {
    Operand::Imm(k as i32)
}

pub(super) fn esize(s: cbpf::Size) -> Size {
    match s {
        cbpf::Size::W => Size::W,
        cbpf::Size::H => Size::H,
        cbpf::Size::B => Size::B,
    }
}

/// Stack offset of `M[k]`.
fn scratch(k: u32) -> i16 {
    -64 + 4 * (k as i16 & 15)
}

impl<'a> Emitter<'a> {
    pub(super) fn new(ops: &'a [Op], target: Target, options: super::Options) -> Emitter<'a> {
        Emitter::with_asm(ops, target, options, Asm::new(), None)
    }

    /// An emitter that appends to `asm` a fragment which jumps to `on_match`
    /// or `on_nomatch` instead of returning (see `translate::inline`).
    pub(super) fn inline(
        ops: &'a [Op],
        target: Target,
        options: super::Options,
        asm: Asm,
        on_match: Label,
        on_nomatch: Label,
    ) -> Emitter<'a> {
        Emitter::with_asm(ops, target, options, asm, Some((on_match, on_nomatch)))
    }

    fn with_asm(
        ops: &'a [Op],
        target: Target,
        options: super::Options,
        mut asm: Asm,
        exits: Option<(Label, Label)>,
    ) -> Emitter<'a> {
        let labels = (0..ops.len()).map(|_| asm.label()).collect();
        let reject = match exits {
            Some((_, nomatch)) => nomatch,
            None => asm.label(),
        };
        let kernel = options.kernel_view
            || ops.iter().any(|op| match *op {
                Op::LdAbs { k, .. } | Op::LdInd { k, .. } | Op::LdxMsh { k } => (k as i32) < 0,
                _ => false,
            });
        Emitter {
            ops,
            target,
            asm,
            labels,
            reject,
            reject_used: std::cell::Cell::new(false),
            kernel,
            options,
            exits,
            vlan: false,
        }
    }

    pub(super) fn unsupported(&self, index: usize, what: impl Into<String>) -> TranslateError {
        TranslateError::Unsupported {
            index,
            what: what.into(),
            target: self.target.name(),
        }
    }

    pub(super) fn is_xdp(&self) -> bool {
        self.target.hook == Hook::Xdp
    }

    pub(super) fn emit(mut self) -> Result<Asm, TranslateError> {
        self.prologue();
        self.body()?;
        if self.reject_used.get() && self.exits.is_none() {
            self.asm.bind(self.reject);
            let v = self.target.verdict(0);
            self.asm.mov32(Reg::R0, imm(v));
            self.asm.exit();
        }
        Ok(self.asm)
    }

    fn body(&mut self) -> Result<(), TranslateError> {
        let live = reachable(self.ops);
        let needs = if self.is_xdp() {
            block_checks(self.ops, &live)
        } else {
            vec![None; self.ops.len()]
        };
        for (i, op) in self.ops.iter().enumerate() {
            if !live[i] {
                continue;
            }
            self.asm.bind(self.labels[i]);
            if let Some(end) = needs[i].filter(|e| *e > 0) {
                self.xdp_check_fixed(end);
            }
            self.op(i, *op)?;
        }
        Ok(())
    }

    /// A fragment of a larger program (see `translate::inline`)?
    pub(super) fn inline_mode(&self) -> bool {
        self.exits.is_some()
    }

    pub(super) fn is_trace(&self) -> bool {
        self.target.hook == Hook::Trace
    }

    fn prologue(&mut self) {
        // Inline fragments find the context in r6 already.
        if self.is_trace() {
            self.trace_prologue();
        } else if self.exits.is_none() {
            self.asm.mov64(CTX, Operand::Reg(Reg::R1));
        }
        self.asm.mov32(A, imm(0));
        self.asm.mov32(X, imm(0));
        if self.is_xdp() {
            self.asm.ldx(Size::W, DATA, CTX, xdp::DATA as i16);
            self.reload_data_end();
        }
        self.vlan_prologue();
        if self
            .ops
            .iter()
            .enumerate()
            .any(|(i, op)| matches!(op, Op::Ja { k } if is_back_edge(i, *k)))
        {
            let turns = self.target.loop_turns();
            match self.target.loops() {
                Loops::Counted => {
                    self.asm.mov64(Reg::R1, imm(turns));
                    self.asm.stx(Size::DW, Reg::R10, Reg::R1, LOOP_COUNTER);
                }
                Loops::MayGoto => {
                    self.asm.mov32(Reg::R1, imm(turns));
                    self.store_unbounded(Reg::R1, LOOP_COUNTER);
                }
            }
        }
        // The verifier refuses reads of stack never written; classic BPF
        // starts with M[] unspecified, so zero is as good as any value.
        let mut read = [false; 16];
        for op in self.ops {
            if let Op::LdMem { k } | Op::LdxMem { k } = op {
                read[(*k & 15) as usize] = true;
            }
        }
        for (k, _) in read.iter().enumerate().filter(|(_, r)| **r) {
            self.asm.push(E::St {
                size: Size::W,
                dst: Reg::R10,
                off: scratch(k as u32),
                imm: 0,
            });
        }
    }

    /// `if data + end > data_end goto reject`.
    fn xdp_check_fixed(&mut self, end: u64) {
        if end > MAX_PACKET_OFF {
            self.asm.ja(self.reject());
            return;
        }
        self.asm.mov64(Reg::R1, Operand::Reg(DATA));
        self.asm.alu64(AluOp::Add, Reg::R1, imm(end as u32));
        self.asm.jmp(
            true,
            JmpOp::Jgt,
            Reg::R1,
            Operand::Reg(DATA_END),
            self.reject(),
        );
    }

    /// XDP: `DATA_END = ctx->data_end`, at the start and after each helper
    /// call (which clobbers r0-r5).
    pub(super) fn reload_data_end(&mut self) {
        if self.is_xdp() {
            self.asm.ldx(Size::W, DATA_END, CTX, xdp::DATA_END as i16);
        }
    }

    /// The label of a jump's target: `pc + 1 + off` in 32-bit arithmetic,
    /// which validation has proven lands inside the program.
    fn target_of(&self, i: usize, off: u64) -> Label {
        let t = (i as u32).wrapping_add(1).wrapping_add(off as u32) as usize;
        self.labels[t.min(self.labels.len() - 1)]
    }

    /// A jump to the "no match" exit; the exit is emitted only if used,
    /// since the verifier refuses unreachable instructions.
    pub(super) fn reject(&self) -> Label {
        self.reject_used.set(true);
        self.reject
    }

    fn op(&mut self, i: usize, op: Op) -> Result<(), TranslateError> {
        let a = &mut self.asm;
        match op {
            Op::LdImm { k } => {
                a.mov32(A, imm(k));
            }
            Op::LdxImm { k } => {
                a.mov32(X, imm(k));
            }
            Op::LdMem { k } => {
                a.ldx(Size::W, A, Reg::R10, scratch(k));
            }
            Op::LdxMem { k } => {
                a.ldx(Size::W, X, Reg::R10, scratch(k));
            }
            Op::St { k } => {
                a.stx(Size::W, Reg::R10, A, scratch(k));
            }
            Op::Stx { k } => {
                a.stx(Size::W, Reg::R10, X, scratch(k));
            }
            Op::LdLen => self.len(A),
            Op::LdxLen => self.len(X),
            Op::Alu { op, src } => self.alu(op, src),
            Op::Neg => {
                a.push(E::Neg {
                    wide: false,
                    dst: A,
                });
            }
            Op::Tax => {
                a.mov32(X, Operand::Reg(A));
            }
            Op::Txa => {
                a.mov32(A, Operand::Reg(X));
            }
            Op::Ja { k } if is_back_edge(i, k) => self.back_edge(i, k),
            Op::Ja { k } => {
                let t = self.target_of(i, k as u64);
                self.asm.ja(t);
            }
            Op::Jmp { op, src, jt, jf } => self.jump(i, op, src, jt, jf),
            Op::Ret { val } => self.ret(i, val)?,
            Op::LdAbs { size, k } => self.load_abs(i, esize(size), k, A)?,
            Op::LdInd { size, k } => self.load_ind(i, esize(size), k)?,
            Op::LdxMsh { k } => {
                self.load_abs(i, Size::B, k, X)?;
                self.asm.alu32(AluOp::And, X, imm(0xf));
                self.asm.alu32(AluOp::Lsh, X, imm(2));
            }
        }
        Ok(())
    }

    /// A backward `ja` (libpcap's `protochain` loop). The verifier accepts
    /// a loop only when it can see it end, so each back edge spends a turn
    /// of a budget (see [`Loops`]), and a packet that needs more turns
    /// rejects. libpcap's loop walks one extension header per turn.
    fn back_edge(&mut self, i: usize, k: u32) {
        let t = self.target_of(i, k as u64);
        let r = self.reject();
        // Counted: a full 64-bit spill and fill keeps the counter's exact
        // value in the verifier's view, which is what lets it see the loop
        // end. With `may_goto` the verifier must not know it (see
        // `store_unbounded`): the counter only stops a loop that never
        // ends sooner than the kernel's 8 million turns would.
        self.asm.ldx(Size::DW, Reg::R1, Reg::R10, LOOP_COUNTER);
        self.asm.jmp(true, JmpOp::Jeq, Reg::R1, imm(0), r);
        self.asm.alu64(AluOp::Sub, Reg::R1, imm(1));
        match self.target.loops() {
            Loops::Counted => {
                self.asm.stx(Size::DW, Reg::R10, Reg::R1, LOOP_COUNTER);
            }
            Loops::MayGoto => {
                self.store_unbounded(Reg::R1, LOOP_COUNTER);
                if matches!(self.target.hook, Hook::Tc | Hook::Trace) {
                    // tc's and the trace hook's "is this offset inside the
                    // VLAN tag" test makes X's range exact, and X, one
                    // header further each turn, would never lie within an
                    // earlier turn's. The next load's checks bound it again.
                    self.store_unbounded(X, FORGET_X);
                    self.asm.ldx(Size::DW, X, Reg::R10, FORGET_X);
                }
                self.asm.may_goto(r);
            }
        }
        self.asm.ja(t);
    }

    /// Stores the 32-bit `reg` as 8 bytes at `off` whose upper half was
    /// zeroed apart: a 64-bit load gives the same value back, and the
    /// verifier, which tracks the two stores as different kinds of stack,
    /// knows nothing of it. A `may_goto` loop verifies once a turn's state
    /// lies within an earlier turn's, and a value the verifier knows
    /// exactly, different each turn (a counter, an offset one header
    /// further), never does.
    fn store_unbounded(&mut self, reg: Reg, off: i16) {
        self.asm.push(E::St {
            size: Size::DW,
            dst: Reg::R10,
            off,
            imm: 0,
        });
        self.asm.stx(Size::W, Reg::R10, reg, off);
    }

    /// The wire length. A socket buffer's `len` counts from `skb->data`,
    /// without an outer VLAN tag the kernel moved into metadata; an XDP
    /// buffer's length comes from `bpf_xdp_get_buff_len`, which also counts
    /// fragments beyond `data_end`.
    fn len(&mut self, dst: Reg) {
        if self.is_xdp() {
            self.asm.mov64(Reg::R1, Operand::Reg(CTX));
            self.asm
                .push(E::Call(CallTarget::Helper(HELPER_XDP_BUFF_LEN)));
            self.asm.mov32(dst, Operand::Reg(Reg::R0));
            self.reload_data_end();
        } else {
            if self.is_trace() {
                self.trace_len(dst);
            } else {
                self.asm.ldx(Size::W, dst, CTX, skb::LEN as i16);
            }
            if self.target.hook == Hook::Socket && self.options.socket_len_offset != 0 {
                self.asm
                    .alu32(AluOp::Add, dst, imm(self.options.socket_len_offset));
            }
            if self.vlan {
                self.tag_len(Reg::R1);
                self.asm.alu32(AluOp::Add, dst, Operand::Reg(Reg::R1));
            }
        }
    }

    fn alu(&mut self, op: cbpf::AluOp, src: Src) {
        use cbpf::AluOp as C;
        let eop = match op {
            C::Add => AluOp::Add,
            C::Sub => AluOp::Sub,
            C::Mul => AluOp::Mul,
            C::Div => AluOp::Div,
            C::Or => AluOp::Or,
            C::And => AluOp::And,
            C::Lsh => AluOp::Lsh,
            C::Rsh => AluOp::Rsh,
            C::Mod => AluOp::Mod,
            C::Xor => AluOp::Xor,
        };
        match src {
            // The verifier refuses constant shifts of 32 or more; a C
            // interpreter on x86 (libpcap's) shifts by the count mod 32.
            Src::K(k) if matches!(op, C::Lsh | C::Rsh) => {
                self.asm.alu32(eop, A, imm(k & 31));
            }
            Src::K(k) => {
                self.asm.alu32(eop, A, imm(k));
            }
            Src::X => {
                match op {
                    // Classic BPF returns 0 on division by zero; eBPF would
                    // carry on with 0 (div) or A (mod).
                    C::Div | C::Mod => {
                        self.asm.jmp(false, JmpOp::Jeq, X, imm(0), self.reject());
                    }
                    // libpcap shifts by 32 or more give 0; eBPF masks the
                    // count, as the kernel's classic BPF does.
                    C::Lsh | C::Rsh if !self.kernel => {
                        let small = self.asm.label();
                        let done = self.asm.label();
                        self.asm.jmp(false, JmpOp::Jlt, X, imm(32), small);
                        self.asm.mov32(A, imm(0));
                        self.asm.ja(done);
                        self.asm.bind(small);
                        self.asm.alu32(eop, A, Operand::Reg(X));
                        self.asm.bind(done);
                        return;
                    }
                    _ => {}
                }
                self.asm.alu32(eop, A, Operand::Reg(X));
            }
        }
    }

    fn jump(&mut self, i: usize, op: CJmp, src: Src, jt: u8, jf: u8) {
        let t = self.target_of(i, jt as u64);
        let f = self.target_of(i, jf as u64);
        let rhs = match src {
            Src::K(k) => imm(k),
            Src::X => Operand::Reg(X),
        };
        let (eop, inverse) = match op {
            CJmp::Jeq => (JmpOp::Jeq, Some(JmpOp::Jne)),
            CJmp::Jgt => (JmpOp::Jgt, Some(JmpOp::Jle)),
            CJmp::Jge => (JmpOp::Jge, Some(JmpOp::Jlt)),
            CJmp::Jset => (JmpOp::Jset, None),
        };
        match (jt, jf, inverse) {
            (_, _, _) if jt == jf => {
                self.asm.ja(t);
            }
            (0, _, Some(inv)) => {
                self.asm.jmp(false, inv, A, rhs, f);
            }
            _ => {
                self.asm.jmp(false, eop, A, rhs, t);
                if jf != 0 {
                    self.asm.ja(f);
                }
            }
        }
    }

    fn ret(&mut self, i: usize, val: RetVal) -> Result<(), TranslateError> {
        if let Some((on_match, on_nomatch)) = self.exits {
            match val {
                RetVal::K(0) => self.asm.ja(on_nomatch),
                RetVal::K(_) => self.asm.ja(on_match),
                RetVal::A => {
                    self.asm.jmp(false, JmpOp::Jeq, A, imm(0), on_nomatch);
                    self.asm.ja(on_match)
                }
                RetVal::X => {
                    return Err(self.unsupported(i, "ret x (no interpreter implements it)"))
                }
            };
            return Ok(());
        }
        let t = self.target;
        match (val, t.hook) {
            (RetVal::K(k), _) => {
                self.asm.mov32(Reg::R0, imm(t.verdict(k)));
            }
            (RetVal::A, Hook::Socket) => {
                self.asm.mov32(Reg::R0, Operand::Reg(A));
            }
            (RetVal::A, _) => {
                self.asm.jmp(false, JmpOp::Jeq, A, imm(0), self.reject());
                self.asm.mov32(Reg::R0, imm(t.verdict(1)));
            }
            (RetVal::X, _) => {
                return Err(self.unsupported(i, "ret x (no interpreter implements it)"))
            }
        }
        self.asm.exit();
        Ok(())
    }
}
