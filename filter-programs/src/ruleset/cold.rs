//! The cold path: frames the lookups cannot serve (IPv4 and IPv6 headers
//! cut short, an IPv6 fragment header) and frames of rare ethertypes (ARP,
//! RARP, the others, runts) run the rules' classic programs in an
//! interpreter written in eBPF, one `bpf_loop` callback per classic
//! instruction.
//!
//! Why: these frames need every rule, in order, with libpcap's meaning of
//! a load that fails, so compiled they cost most of a large ruleset's code
//! (at 10,000 rules, four fifths of 618,000 instructions, and the
//! verifier's seconds). Interpreted they cost one small program and data
//! in a map, and some microseconds per frame, for frames a wire rarely
//! carries.
//!
//! The data, one array map `cold_code` of 32 KiB values, addressed by
//! 8-byte slot (value `slot >> 12`, offset `(slot & 4095) * 8`):
//!
//! ```text
//!  per frame class, a list, two slots per rule that can match the class:
//!     slot 2n:   start (u32) | end (u32)    the rule's program: [start, end)
//!     slot 2n+1: rule << 2 | action (u32) | 0      action 0 count, 1 pass, 2 drop
//!  ending with slot 1 = u32::MAX
//!  then the programs, specialized to the class, one instruction a slot:
//!     code (u16) | jt (u8) | jf (u8) | k (u32)     (struct sock_filter)
//! ```
//!
//! The state, in the per-CPU array `cold_state` (see `State`), holds A, X,
//! the scratch cells and where the run is; the callback's context, on the
//! caller's stack, holds the XDP context and the state's address.
//!
//! Meaning (that of [`crate::cbpf::interp::Program::run`], libpcap's
//! `bpf_filter`): a load past the frame, a division by zero, `ret x`, an
//! unknown instruction, or a jump out of the rule's program make the rule
//! return 0; `lsh`/`rsh x` by 32 or more give 0, by `k` shift `k & 31`;
//! scratch cells start zeroed. Beyond libpcap: a frame whose rules take
//! more than `bpf_loop`'s 2^23 instructions in all (only loops can) ends
//! `XDP_ABORTED`, visible in the `xdp:xdp_exception` tracepoint.

use super::{Action, Verdict};
use crate::cbpf::Insn as Classic;
use crate::ebpf::asm::{Asm, Label};
use crate::ebpf::insn::{AluOp, CallTarget, Endian, JmpOp, Op, Operand, Pseudo, Reg, Size};
use crate::elf::{MapBtf, ValueLayout};

/// The map of lists and programs.
pub const CODE_MAP: &str = "cold_code";
/// The per-CPU interpreter state.
pub const STATE_MAP: &str = "cold_state";
/// Slots per value of the code map.
pub const CHUNK: usize = 4096;
/// `bpf_loop`'s most iterations.
const MAX_LOOPS: i32 = 1 << 23;

const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const HELPER_MAP_LOOKUP: i32 = 1;
const HELPER_LOOP: i32 = 181;
const HELPER_XDP_BUFF_LEN: i32 = 188;
const HELPER_XDP_LOAD_BYTES: i32 = 189;

/// The state's fields (u32 each, byte offsets).
struct State;
impl State {
    const A: i16 = 0;
    const X: i16 = 4;
    /// The next instruction; `NEW_RULE` before a rule starts.
    const PC: i16 = 8;
    /// The list slot of the next rule.
    const NEXT: i16 = 12;
    /// The running rule's `rule << 2 | action`.
    const RULE: i16 = 16;
    const START: i16 = 20;
    const END: i16 = 24;
    /// The deciding rule (the default's index for the default), or
    /// `UNDECIDED`.
    const DECIDED: i16 = 28;
    /// 1 pass, 2 drop.
    const VERDICT: i16 = 32;
    /// Where a packet load lands.
    const BUF: i16 = 36;
    /// The 16 scratch cells.
    const MEM: i16 = 40;
}

/// The state's size in bytes.
pub const STATE_SIZE: u32 = 104;
/// What a VM run may spend in the cold path: every iteration `bpf_loop`
/// allows, each entering a callback of at most this many slots.
pub const VM_BUDGET: u64 = (MAX_LOOPS as u64) * 1024;

const NEW_RULE: i32 = -1;
const UNDECIDED: i32 = -1;
const END_OF_LIST: u32 = u32::MAX;

/// The lists and programs of the cold path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColdCode {
    /// 8-byte slots, as the map holds them.
    pub slots: Vec<[u8; 8]>,
    /// Per frame class given to [`ColdCode::build`]: the slot of its list,
    /// or `None` for a class the cold path does not serve.
    pub lists: Vec<Option<usize>>,
}

/// One rule of a class's list: its index, action and classic program.
pub type Entry<'a> = (usize, Action, &'a [Classic]);

impl ColdCode {
    /// Lays out the lists of `classes` (`None`: not served cold) and their
    /// programs; identical programs are stored once.
    pub fn build(classes: &[Option<Vec<Entry<'_>>>]) -> ColdCode {
        let list_slots: usize = classes.iter().flatten().map(|l| 2 * (l.len() + 1)).sum();
        let mut slots = vec![[0u8; 8]; list_slots];
        let mut code: Vec<[u8; 8]> = Vec::new();
        let mut seen: std::collections::HashMap<&[Classic], (u32, u32)> = Default::default();
        let mut lists = Vec::with_capacity(classes.len());
        let mut at = 0usize;
        for class in classes {
            let Some(entries) = class else {
                lists.push(None);
                continue;
            };
            lists.push(Some(at));
            for &(rule, action, prog) in entries {
                let (start, end) = *seen.entry(prog).or_insert_with(|| {
                    let start = (list_slots + code.len()) as u32;
                    code.extend(prog.iter().map(encode));
                    (start, (list_slots + code.len()) as u32)
                });
                let act = match action {
                    Action::Count => 0,
                    Action::Pass => 1,
                    Action::Drop => 2,
                };
                slots[at] = pair(start, end);
                slots[at + 1] = pair((rule as u32) << 2 | act, 0);
                at += 2;
            }
            slots[at + 1] = pair(END_OF_LIST, 0);
            at += 2;
        }
        slots.extend(code);
        ColdCode { slots, lists }
    }

    /// The code map's values: `CHUNK` slots each, the last zero-padded.
    pub fn chunks(&self) -> Vec<Vec<u8>> {
        self.slots
            .chunks(CHUNK)
            .map(|c| {
                let mut v: Vec<u8> = c.iter().flatten().copied().collect();
                v.resize(CHUNK * 8, 0);
                v
            })
            .collect()
    }

    pub fn code_map(&self) -> MapBtf {
        MapBtf {
            name: CODE_MAP.into(),
            map_type: BPF_MAP_TYPE_ARRAY,
            max_entries: self.slots.len().div_ceil(CHUNK).max(1) as u32,
            value: ValueLayout::Opaque {
                key_size: 4,
                value_size: (CHUNK * 8) as u32,
            },
            map_flags: 0,
        }
    }

    pub fn state_map() -> MapBtf {
        MapBtf {
            name: STATE_MAP.into(),
            map_type: BPF_MAP_TYPE_PERCPU_ARRAY,
            max_entries: 1,
            value: ValueLayout::Opaque {
                key_size: 4,
                value_size: STATE_SIZE,
            },
            map_flags: 0,
        }
    }
}

fn pair(lo: u32, hi: u32) -> [u8; 8] {
    let mut s = [0u8; 8];
    s[..4].copy_from_slice(&lo.to_le_bytes());
    s[4..].copy_from_slice(&hi.to_le_bytes());
    s
}

fn encode(i: &Classic) -> [u8; 8] {
    let mut s = [0u8; 8];
    s[..2].copy_from_slice(&i.code.to_le_bytes());
    s[2] = i.jt;
    s[3] = i.jf;
    s[4..].copy_from_slice(&i.k.to_le_bytes());
    s
}

/// Where the emitted code finds what it needs.
pub struct Emit {
    /// Map indices in the object.
    pub code_map: u64,
    pub state_map: u64,
    pub counters_map: u64,
    /// The verdict and counter index of a frame no rule decides.
    pub default: Verdict,
    pub default_index: u32,
}

fn verdict_code(v: Verdict) -> i32 {
    match v {
        Verdict::Pass => 1,
        Verdict::Drop => 2,
    }
}

fn map(a: &mut Asm, dst: Reg, index: u64) {
    a.push(Op::LdImm64 {
        dst,
        pseudo: Pseudo::MapFd,
        src_reg: 1,
        imm: index,
    });
}

fn st(a: &mut Asm, dst: Reg, off: i16, imm: i32) {
    a.push(Op::St {
        size: Size::W,
        dst,
        off,
        imm,
    });
}

fn call(a: &mut Asm, helper: i32) {
    a.push(Op::Call(CallTarget::Helper(helper)));
}

impl Emit {
    /// The main program's side, at `run` with the list's slot in r9 and
    /// the context in r6: runs the list, then goes to `tails` (pass,
    /// drop) with the deciding counter in r8. `key` is a free 4-byte
    /// stack slot; `ctx` 16 free bytes for the callback's context.
    pub fn run(
        &self,
        a: &mut Asm,
        run: Label,
        callback: Label,
        tails: (Label, Label),
        key: i16,
        ctx: i16,
    ) {
        let abort = a.label();
        a.bind(run);
        st(a, Reg::R10, key, 0);
        map(a, Reg::R1, self.state_map);
        a.mov64(Reg::R2, Operand::Reg(Reg::R10));
        a.alu64(AluOp::Add, Reg::R2, Operand::Imm(key as i32));
        call(a, HELPER_MAP_LOOKUP);
        a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), abort);
        a.stx(Size::W, Reg::R0, Reg::R9, State::NEXT);
        st(a, Reg::R0, State::PC, NEW_RULE);
        st(a, Reg::R0, State::DECIDED, UNDECIDED);
        for m in 0..16 {
            st(a, Reg::R0, State::MEM + 4 * m, 0);
        }
        a.stx(Size::DW, Reg::R10, Reg::R6, ctx);
        a.stx(Size::DW, Reg::R10, Reg::R0, ctx + 8);
        a.mov64(Reg::R1, Operand::Imm(MAX_LOOPS));
        a.ld_func(Reg::R2, callback);
        a.mov64(Reg::R3, Operand::Reg(Reg::R10));
        a.alu64(AluOp::Add, Reg::R3, Operand::Imm(ctx as i32));
        a.mov64(Reg::R4, Operand::Imm(0));
        call(a, HELPER_LOOP);
        a.ldx(Size::DW, Reg::R1, Reg::R10, ctx + 8);
        a.ldx(Size::W, Reg::R8, Reg::R1, State::DECIDED);
        a.jmp(false, JmpOp::Jeq, Reg::R8, Operand::Imm(UNDECIDED), abort);
        a.ldx(Size::W, Reg::R2, Reg::R1, State::VERDICT);
        let pass = a.label();
        a.jmp(true, JmpOp::Jne, Reg::R2, Operand::Imm(2), pass);
        a.ja(tails.1);
        a.bind(pass);
        a.ja(tails.0);
        a.bind(abort);
        a.mov64(
            Reg::R0,
            Operand::Imm(crate::translate::Actions::XDP_ABORTED as i32),
        );
        a.exit();
    }

    /// The callback, at `callback`: after the main program's last `exit`.
    /// It runs one classic instruction (or starts the next rule) per call;
    /// r6 = XDP context, r7 = state, r8 = A, r9 = X.
    pub fn callback(&self, a: &mut Asm, callback: Label) {
        let l = Labels::new(a);
        a.bind(callback);
        a.ldx(Size::DW, Reg::R6, Reg::R2, 0);
        a.ldx(Size::DW, Reg::R7, Reg::R2, 8);
        a.ldx(Size::W, Reg::R1, Reg::R7, State::PC);
        a.jmp(
            false,
            JmpOp::Jeq,
            Reg::R1,
            Operand::Imm(NEW_RULE),
            l.next_rule,
        );
        // A jump out of the rule's program ends it with 0.
        a.ldx(Size::W, Reg::R2, Reg::R7, State::END);
        a.jmp(true, JmpOp::Jge, Reg::R1, Operand::Reg(Reg::R2), l.fail);
        a.ldx(Size::W, Reg::R2, Reg::R7, State::START);
        a.jmp(true, JmpOp::Jlt, Reg::R1, Operand::Reg(Reg::R2), l.fail);
        self.fetch(a, CHUNK as i32 - 1, l.abort);
        // r2 = code, r3 = jt, r4 = jf, r5 = k
        a.ldx(Size::H, Reg::R2, Reg::R0, 0);
        a.ldx(Size::B, Reg::R3, Reg::R0, 2);
        a.ldx(Size::B, Reg::R4, Reg::R0, 3);
        a.ldx(Size::W, Reg::R5, Reg::R0, 4);
        a.ldx(Size::W, Reg::R1, Reg::R7, State::PC);
        a.alu32(AluOp::Add, Reg::R1, Operand::Imm(1));
        a.stx(Size::W, Reg::R7, Reg::R1, State::PC);
        a.ldx(Size::W, Reg::R8, Reg::R7, State::A);
        a.ldx(Size::W, Reg::R9, Reg::R7, State::X);
        // By class, then by code.
        let classes = [0, 1, 2, 3, 4, 5, 6, 7].map(|_| a.label());
        a.mov64(Reg::R0, Operand::Reg(Reg::R2));
        a.alu64(AluOp::And, Reg::R0, Operand::Imm(7));
        for (c, to) in classes.iter().enumerate().skip(1) {
            a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(c as i32), *to);
        }
        a.bind(classes[0]);
        self.ld(a, &l);
        a.bind(classes[1]);
        self.ldx(a, &l);
        a.bind(classes[2]);
        self.store(a, &l, Reg::R8);
        a.bind(classes[3]);
        self.store(a, &l, Reg::R9);
        a.bind(classes[4]);
        self.alu(a, &l);
        a.bind(classes[5]);
        self.jmp(a, &l);
        a.bind(classes[6]);
        self.ret(a, &l);
        a.bind(classes[7]);
        self.misc(a, &l);
        self.ends(a, &l);
    }

    /// r0 = the address of the slot in r1, through the code map; clobbers
    /// r1-r5 and the callback's stack. `mask`: 4095, or 4094 for a list
    /// entry's two slots.
    fn fetch(&self, a: &mut Asm, mask: i32, abort: Label) {
        a.stx(Size::W, Reg::R10, Reg::R1, -16);
        a.alu64(AluOp::Rsh, Reg::R1, Operand::Imm(12));
        a.stx(Size::W, Reg::R10, Reg::R1, -8);
        map(a, Reg::R1, self.code_map);
        a.mov64(Reg::R2, Operand::Reg(Reg::R10));
        a.alu64(AluOp::Add, Reg::R2, Operand::Imm(-8));
        call(a, HELPER_MAP_LOOKUP);
        a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), abort);
        a.ldx(Size::W, Reg::R1, Reg::R10, -16);
        a.alu64(AluOp::And, Reg::R1, Operand::Imm(mask));
        a.alu64(AluOp::Lsh, Reg::R1, Operand::Imm(3));
        a.alu64(AluOp::Add, Reg::R0, Operand::Reg(Reg::R1));
    }

    /// A packet load of `size` bytes at the offset in r2 into `dst`, in
    /// host order; a load past the frame fails the rule.
    fn load(&self, a: &mut Asm, l: &Labels, size: Size, dst: Reg) {
        let n = match size {
            Size::W => 4,
            Size::H => 2,
            _ => 1,
        };
        a.mov64(Reg::R1, Operand::Reg(Reg::R6));
        a.mov64(Reg::R3, Operand::Reg(Reg::R7));
        a.alu64(AluOp::Add, Reg::R3, Operand::Imm(State::BUF as i32));
        a.mov64(Reg::R4, Operand::Imm(n));
        call(a, HELPER_XDP_LOAD_BYTES);
        a.jmp(true, JmpOp::Jne, Reg::R0, Operand::Imm(0), l.fail);
        a.ldx(size, dst, Reg::R7, State::BUF);
        if n > 1 {
            a.push(Op::End {
                dst,
                endian: Endian::ToBe,
                bits: 8 * n as u8,
            });
        }
    }

    /// `dst = the frame's length`.
    fn len(&self, a: &mut Asm, dst: Reg) {
        a.mov64(Reg::R1, Operand::Reg(Reg::R6));
        call(a, HELPER_XDP_BUFF_LEN);
        a.mov32(dst, Operand::Reg(Reg::R0));
    }

    /// `dst = M[k]` or `M[k] = src` with k in r5; k past the cells fails.
    fn mem(&self, a: &mut Asm, l: &Labels, reg: Reg, store: bool) {
        a.jmp(true, JmpOp::Jge, Reg::R5, Operand::Imm(16), l.fail);
        a.alu64(AluOp::Lsh, Reg::R5, Operand::Imm(2));
        a.mov64(Reg::R1, Operand::Reg(Reg::R7));
        a.alu64(AluOp::Add, Reg::R1, Operand::Reg(Reg::R5));
        if store {
            a.stx(Size::W, Reg::R1, reg, State::MEM);
        } else {
            a.ldx(Size::W, reg, Reg::R1, State::MEM);
        }
    }

    /// Jumps on r2 (the code) to each handler; unknown codes fail.
    fn dispatch(a: &mut Asm, l: &Labels, cases: &[u16]) -> Vec<Label> {
        let to: Vec<Label> = cases.iter().map(|_| a.label()).collect();
        for (c, t) in cases.iter().zip(&to) {
            a.jmp(true, JmpOp::Jeq, Reg::R2, Operand::Imm(*c as i32), *t);
        }
        a.ja(l.fail);
        to
    }

    fn ld(&self, a: &mut Asm, l: &Labels) {
        // ld [k] h/b/w, ld [x + k] h/b/w, #k, M[k], len
        let to = Self::dispatch(
            a,
            l,
            &[0x28, 0x30, 0x20, 0x48, 0x50, 0x40, 0x00, 0x60, 0x80],
        );
        for (n, size) in [Size::H, Size::B, Size::W].into_iter().enumerate() {
            a.bind(to[n]);
            a.mov64(Reg::R2, Operand::Reg(Reg::R5));
            self.load(a, l, size, Reg::R8);
            a.ja(l.set_a);
        }
        for (n, size) in [Size::H, Size::B, Size::W].into_iter().enumerate() {
            a.bind(to[3 + n]);
            // X + k without wrap-around: past 2^32 fails.
            a.mov64(Reg::R2, Operand::Reg(Reg::R9));
            a.alu64(AluOp::Add, Reg::R2, Operand::Reg(Reg::R5));
            a.mov64(Reg::R1, Operand::Reg(Reg::R2));
            a.alu64(AluOp::Rsh, Reg::R1, Operand::Imm(32));
            a.jmp(true, JmpOp::Jne, Reg::R1, Operand::Imm(0), l.fail);
            self.load(a, l, size, Reg::R8);
            a.ja(l.set_a);
        }
        a.bind(to[6]);
        a.mov64(Reg::R8, Operand::Reg(Reg::R5));
        a.ja(l.set_a);
        a.bind(to[7]);
        self.mem(a, l, Reg::R8, false);
        a.ja(l.set_a);
        a.bind(to[8]);
        self.len(a, Reg::R8);
        a.ja(l.set_a);
    }

    fn ldx(&self, a: &mut Asm, l: &Labels) {
        // ldx 4*([k]&0xf), #k, M[k], len
        let to = Self::dispatch(a, l, &[0xb1, 0x01, 0x61, 0x81]);
        a.bind(to[0]);
        a.mov64(Reg::R2, Operand::Reg(Reg::R5));
        self.load(a, l, Size::B, Reg::R9);
        a.alu32(AluOp::And, Reg::R9, Operand::Imm(0xf));
        a.alu32(AluOp::Lsh, Reg::R9, Operand::Imm(2));
        a.ja(l.set_x);
        a.bind(to[1]);
        a.mov64(Reg::R9, Operand::Reg(Reg::R5));
        a.ja(l.set_x);
        a.bind(to[2]);
        self.mem(a, l, Reg::R9, false);
        a.ja(l.set_x);
        a.bind(to[3]);
        self.len(a, Reg::R9);
        a.ja(l.set_x);
    }

    /// `st` (A) or `stx` (X): only the code without other bits.
    fn store(&self, a: &mut Asm, l: &Labels, reg: Reg) {
        let code = if reg == Reg::R8 { 0x02 } else { 0x03 };
        let to = Self::dispatch(a, l, &[code]);
        a.bind(to[0]);
        self.mem(a, l, reg, true);
        a.ja(l.cont);
    }

    fn alu(&self, a: &mut Asm, l: &Labels) {
        use AluOp::*;
        let ops = [Add, Sub, Mul, Div, Or, And, Lsh, Rsh, Mod, Xor];
        let opcode = |op: AluOp| -> u16 {
            match op {
                Add => 0x00,
                Sub => 0x10,
                Mul => 0x20,
                Div => 0x30,
                Or => 0x40,
                And => 0x50,
                Lsh => 0x60,
                Rsh => 0x70,
                Mod => 0x90,
                _ => 0xa0,
            }
        };
        let mut cases = vec![0x84u16]; // neg
        for op in ops {
            cases.push(0x04 | opcode(op));
            cases.push(0x0c | opcode(op));
        }
        let to = Self::dispatch(a, l, &cases);
        a.bind(to[0]);
        a.push(Op::Neg {
            wide: false,
            dst: Reg::R8,
        });
        a.ja(l.set_a);
        for (n, op) in ops.into_iter().enumerate() {
            for (x, src) in [Reg::R5, Reg::R9].into_iter().enumerate() {
                a.bind(to[1 + 2 * n + x]);
                a.mov64(Reg::R1, Operand::Reg(src));
                match (op, x) {
                    (Div | Mod, _) => {
                        a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), l.fail);
                    }
                    (Lsh | Rsh, 0) => {
                        a.alu32(AluOp::And, Reg::R1, Operand::Imm(31));
                    }
                    (Lsh | Rsh, _) => {
                        let within = a.label();
                        a.jmp(true, JmpOp::Jlt, Reg::R1, Operand::Imm(32), within);
                        a.mov64(Reg::R8, Operand::Imm(0));
                        a.ja(l.set_a);
                        a.bind(within);
                    }
                    _ => {}
                }
                a.alu32(op, Reg::R8, Operand::Reg(Reg::R1));
                a.ja(l.set_a);
            }
        }
    }

    fn jmp(&self, a: &mut Asm, l: &Labels) {
        let conds = [JmpOp::Jeq, JmpOp::Jgt, JmpOp::Jge, JmpOp::Jset];
        let mut cases = vec![0x05u16]; // ja
        for n in 0..conds.len() as u16 {
            cases.push(0x15 + 0x10 * n);
            cases.push(0x1d + 0x10 * n);
        }
        let to = Self::dispatch(a, l, &cases);
        a.bind(to[0]);
        a.ldx(Size::W, Reg::R1, Reg::R7, State::PC);
        a.alu32(AluOp::Add, Reg::R1, Operand::Reg(Reg::R5));
        a.stx(Size::W, Reg::R7, Reg::R1, State::PC);
        a.ja(l.cont);
        let (taken, skip) = (a.label(), a.label());
        for (n, op) in conds.into_iter().enumerate() {
            for (x, src) in [Reg::R5, Reg::R9].into_iter().enumerate() {
                a.bind(to[1 + 2 * n + x]);
                a.jmp(true, op, Reg::R8, Operand::Reg(src), taken);
                a.ja(skip);
            }
        }
        a.bind(taken);
        a.mov64(Reg::R4, Operand::Reg(Reg::R3));
        a.bind(skip);
        a.ldx(Size::W, Reg::R1, Reg::R7, State::PC);
        a.alu32(AluOp::Add, Reg::R1, Operand::Reg(Reg::R4));
        a.stx(Size::W, Reg::R7, Reg::R1, State::PC);
        a.ja(l.cont);
    }

    fn ret(&self, a: &mut Asm, l: &Labels) {
        // ret #k, ret a; `ret x` is not libpcap's: it fails.
        let to = Self::dispatch(a, l, &[0x06, 0x16]);
        let check = a.label();
        a.bind(to[0]);
        a.mov64(Reg::R1, Operand::Reg(Reg::R5));
        a.ja(check);
        a.bind(to[1]);
        a.mov64(Reg::R1, Operand::Reg(Reg::R8));
        a.bind(check);
        a.jmp(true, JmpOp::Jeq, Reg::R1, Operand::Imm(0), l.fail);
        a.ja(l.matched);
    }

    fn misc(&self, a: &mut Asm, l: &Labels) {
        let to = Self::dispatch(a, l, &[0x07, 0x87]);
        a.bind(to[0]);
        a.mov64(Reg::R9, Operand::Reg(Reg::R8));
        a.ja(l.set_x);
        a.bind(to[1]);
        a.mov64(Reg::R8, Operand::Reg(Reg::R9));
        a.ja(l.set_a);
    }

    /// The shared ends: store A or X and go on; a rule's end, matched or
    /// not; the next rule or the default.
    fn ends(&self, a: &mut Asm, l: &Labels) {
        let stop = a.label();
        a.bind(l.set_a);
        a.stx(Size::W, Reg::R7, Reg::R8, State::A);
        a.ja(l.cont);
        a.bind(l.set_x);
        a.stx(Size::W, Reg::R7, Reg::R9, State::X);
        a.bind(l.cont);
        a.mov64(Reg::R0, Operand::Imm(0));
        a.exit();
        a.bind(l.abort);
        a.mov64(Reg::R0, Operand::Imm(1));
        a.exit();

        // Matched: a pass or drop rule decides; a count rule counts.
        let count = a.label();
        a.bind(l.matched);
        a.ldx(Size::W, Reg::R1, Reg::R7, State::RULE);
        a.mov64(Reg::R2, Operand::Reg(Reg::R1));
        a.alu64(AluOp::And, Reg::R2, Operand::Imm(3));
        a.alu64(AluOp::Rsh, Reg::R1, Operand::Imm(2));
        a.jmp(true, JmpOp::Jeq, Reg::R2, Operand::Imm(0), count);
        a.stx(Size::W, Reg::R7, Reg::R1, State::DECIDED);
        a.stx(Size::W, Reg::R7, Reg::R2, State::VERDICT);
        a.ja(stop);
        a.bind(count);
        a.stx(Size::W, Reg::R10, Reg::R1, -8);
        self.len(a, Reg::R9);
        map(a, Reg::R1, self.counters_map);
        a.mov64(Reg::R2, Operand::Reg(Reg::R10));
        a.alu64(AluOp::Add, Reg::R2, Operand::Imm(-8));
        call(a, HELPER_MAP_LOOKUP);
        a.jmp(true, JmpOp::Jeq, Reg::R0, Operand::Imm(0), l.next_rule);
        a.ldx(Size::DW, Reg::R1, Reg::R0, 0);
        a.alu64(AluOp::Add, Reg::R1, Operand::Imm(1));
        a.stx(Size::DW, Reg::R0, Reg::R1, 0);
        a.ldx(Size::DW, Reg::R1, Reg::R0, 8);
        a.alu64(AluOp::Add, Reg::R1, Operand::Reg(Reg::R9));
        a.stx(Size::DW, Reg::R0, Reg::R1, 8);
        a.ja(l.next_rule);

        // Failed (returned 0) or counted: the list's next rule.
        a.bind(l.fail);
        a.bind(l.next_rule);
        a.ldx(Size::W, Reg::R1, Reg::R7, State::NEXT);
        self.fetch(a, CHUNK as i32 - 2, l.abort);
        a.ldx(Size::W, Reg::R1, Reg::R0, 0);
        a.ldx(Size::W, Reg::R2, Reg::R0, 4);
        a.ldx(Size::W, Reg::R3, Reg::R0, 8);
        let default = a.label();
        a.jmp(
            false,
            JmpOp::Jeq,
            Reg::R3,
            Operand::Imm(END_OF_LIST as i32),
            default,
        );
        a.stx(Size::W, Reg::R7, Reg::R1, State::START);
        a.stx(Size::W, Reg::R7, Reg::R1, State::PC);
        a.stx(Size::W, Reg::R7, Reg::R2, State::END);
        a.stx(Size::W, Reg::R7, Reg::R3, State::RULE);
        a.ldx(Size::W, Reg::R1, Reg::R7, State::NEXT);
        a.alu32(AluOp::Add, Reg::R1, Operand::Imm(2));
        a.stx(Size::W, Reg::R7, Reg::R1, State::NEXT);
        st(a, Reg::R7, State::A, 0);
        st(a, Reg::R7, State::X, 0);
        a.ja(l.cont);
        a.bind(default);
        st(a, Reg::R7, State::DECIDED, self.default_index as i32);
        st(a, Reg::R7, State::VERDICT, verdict_code(self.default));
        a.bind(stop);
        a.mov64(Reg::R0, Operand::Imm(1));
        a.exit();
    }
}

/// The callback's shared targets.
struct Labels {
    set_a: Label,
    set_x: Label,
    cont: Label,
    fail: Label,
    matched: Label,
    next_rule: Label,
    abort: Label,
}

impl Labels {
    fn new(a: &mut Asm) -> Labels {
        Labels {
            set_a: a.label(),
            set_x: a.label(),
            cont: a.label(),
            fail: a.label(),
            matched: a.label(),
            next_rule: a.label(),
            abort: a.label(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_then_programs_stored_once() {
        let p1 = [Classic {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 1,
        }];
        let p2 = [
            Classic {
                code: 0x28,
                jt: 0,
                jf: 0,
                k: 12,
            },
            Classic {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0,
            },
        ];
        let c = ColdCode::build(&[
            Some(vec![
                (0, Action::Count, &p1[..]),
                (3, Action::Drop, &p2[..]),
            ]),
            None,
            Some(vec![(3, Action::Drop, &p2[..])]),
        ]);
        // lists: 2 entries + end (6 slots), 1 entry + end (4 slots); then
        // p1 at 10, p2 at 11..13
        assert_eq!(c.lists, vec![Some(0), None, Some(6)]);
        assert_eq!(c.slots.len(), 13);
        assert_eq!(c.slots[0], pair(10, 11));
        assert_eq!(c.slots[1], pair(0, 0));
        assert_eq!(c.slots[2], pair(11, 13));
        assert_eq!(c.slots[3], pair(3 << 2 | 2, 0));
        assert_eq!(c.slots[5], pair(u32::MAX, 0));
        assert_eq!(c.slots[6], pair(11, 13));
        assert_eq!(c.slots[9], pair(u32::MAX, 0));
        assert_eq!(c.slots[11], [0x28, 0, 0, 0, 12, 0, 0, 0]);
        assert_eq!(c.chunks().len(), 1);
        assert_eq!(c.chunks()[0].len(), CHUNK * 8);
    }
}
