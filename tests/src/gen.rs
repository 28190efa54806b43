//! Random classic BPF programs and packets for property tests.
//!
//! `valid_program` yields programs that both the kernel (SO_ATTACH_FILTER)
//! and libpcap (`bpf_validate`) accept, and that both interpreters can run:
//! every opcode except `ret x` (neither libpcap's `bpf_filter` nor the
//! kernel implements it), forward jumps that land inside the program,
//! scratch loads only from cells stored before the first jump, shifts by
//! less than 32, no constant division by zero, and a final `ret`.
//!
//! `mutated_program` breaks one field of such a program, so that a test
//! sees both sides of every rule: roughly half the results stay valid.
//!
//! Types come from `filter_programs`, so use these generators from
//! integration tests (`<crate>/tests/*.rs`): a `#[cfg(test)]` unit test in
//! `filter-programs` itself sees a second copy of the crate.

pub mod edge;

use filter_programs::cbpf::skf::{Ancillary, SKF_AD_OFF, SKF_LL_OFF, SKF_NET_OFF};
use filter_programs::cbpf::{AluOp, Insn, JmpOp, Op, RetVal, Size, Src, MEMWORDS};
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Longest body `valid_program` generates. Short enough that the kernel's
/// cBPF-to-eBPF conversion never runs out of 16-bit jump offsets.
pub const MAX_BODY: usize = 40;

/// Constants worth hitting: boundaries of every rule and of 32-bit math.
pub fn interesting_k() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(15),
        Just(16),
        Just(31),
        Just(32),
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(u32::MAX),
        Just(SKF_AD_OFF as u32 - 1),
        Just(SKF_NET_OFF as u32),
        Just(SKF_NET_OFF as u32 - 1),
        Just(SKF_LL_OFF as u32),
        Just(SKF_LL_OFF as u32 - 1),
        (0u32..0x48).prop_map(|n| (SKF_AD_OFF as u32).wrapping_add(n)),
    ]
}

/// Any constant, biased towards small numbers and boundaries.
pub fn k_value() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..64,
        2 => interesting_k(),
        2 => any::<u32>(),
    ]
}

/// A packet offset for an absolute load: mostly inside a small frame,
/// sometimes ancillary data or the kernel's network / link-layer bases.
fn load_offset() -> impl Strategy<Value = u32> {
    prop_oneof![
        8 => 0u32..80,
        1 => prop::sample::select(Ancillary::ALL.to_vec()).prop_map(Ancillary::k),
        1 => (0u32..64).prop_map(|n| (SKF_NET_OFF as u32).wrapping_add(n)),
        1 => (0u32..64).prop_map(|n| (SKF_LL_OFF as u32).wrapping_add(n)),
        1 => any::<u32>(),
    ]
}

fn size() -> impl Strategy<Value = Size> {
    prop_oneof![Just(Size::W), Just(Size::H), Just(Size::B)]
}

fn src() -> impl Strategy<Value = Src> {
    prop_oneof![k_value().prop_map(Src::K), Just(Src::X)]
}

/// One instruction of the body, before jump offsets, scratch indices and
/// constants are fitted to the rules (see `fit`).
fn body_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (size(), load_offset()).prop_map(|(size, k)| Op::LdAbs { size, k }),
        2 => (size(), 0u32..64).prop_map(|(size, k)| Op::LdInd { size, k }),
        1 => k_value().prop_map(|k| Op::LdImm { k }),
        1 => any::<u32>().prop_map(|k| Op::LdMem { k }),
        1 => Just(Op::LdLen),
        1 => k_value().prop_map(|k| Op::LdxImm { k }),
        1 => any::<u32>().prop_map(|k| Op::LdxMem { k }),
        1 => Just(Op::LdxLen),
        1 => (0u32..64).prop_map(|k| Op::LdxMsh { k }),
        1 => (0u32..MEMWORDS).prop_map(|k| Op::St { k }),
        1 => (0u32..MEMWORDS).prop_map(|k| Op::Stx { k }),
        4 => (prop::sample::select(AluOp::ALL.to_vec()), src())
            .prop_map(|(op, src)| Op::Alu { op, src }),
        1 => Just(Op::Neg),
        1 => any::<u32>().prop_map(|k| Op::Ja { k }),
        4 => (prop::sample::select(JmpOp::ALL.to_vec()), src(), any::<u8>(), any::<u8>())
            .prop_map(|(op, src, jt, jf)| Op::Jmp { op, src, jt, jf }),
        1 => ret_val().prop_map(|val| Op::Ret { val }),
        1 => Just(Op::Tax),
        1 => Just(Op::Txa),
    ]
}

fn ret_val() -> impl Strategy<Value = RetVal> {
    prop_oneof![
        prop_oneof![Just(0u32), Just(262_144), Just(u32::MAX), any::<u32>()].prop_map(RetVal::K),
        Just(RetVal::A),
    ]
}

/// Makes one body instruction at `pc` of an `len`-long program obey both
/// rule sets. `stored` holds the scratch cells every path has written.
fn fit(op: Op, pc: usize, len: usize, stored: &[u32]) -> Op {
    // Jumps may land at most on the last instruction.
    let room = len - pc - 2;
    let in_range = |off: u8| (off as usize % (room.min(255) + 1)) as u8;
    let cell = |k: u32| stored.get(k as usize % stored.len().max(1)).copied();
    match op {
        Op::LdAbs { size, k } if k >= SKF_AD_OFF as u32 && Ancillary::from_k(k).is_none() => {
            Op::LdAbs { size, k: k & 0xff }
        }
        Op::LdMem { k } => cell(k).map_or(Op::LdImm { k }, |k| Op::LdMem { k }),
        Op::LdxMem { k } => cell(k).map_or(Op::LdxImm { k }, |k| Op::LdxMem { k }),
        Op::Alu {
            op: op @ (AluOp::Lsh | AluOp::Rsh),
            src: Src::K(k),
        } => Op::Alu {
            op,
            src: Src::K(k % 32),
        },
        Op::Alu {
            op: op @ (AluOp::Div | AluOp::Mod),
            src: Src::K(0),
        } => Op::Alu { op, src: Src::K(1) },
        Op::Ja { k } => Op::Ja {
            k: k % (room as u32 + 1),
        },
        Op::Jmp { op, src, jt, jf } => Op::Jmp {
            op,
            src,
            jt: in_range(jt),
            jf: in_range(jf),
        },
        other => other,
    }
}

/// Programs that the kernel and libpcap both accept (see the module doc).
pub fn valid_program() -> impl Strategy<Value = Vec<Insn>> {
    (
        btree_set(0u32..MEMWORDS, 0..=4),
        vec(body_op(), 0..=MAX_BODY),
        ret_val(),
    )
        .prop_map(|(cells, body, last)| {
            let stored: Vec<u32> = cells.into_iter().collect();
            // The stores come first, before any jump, so every path has
            // written these cells before a load reads them.
            let mut prog: Vec<Insn> = stored
                .iter()
                .enumerate()
                .map(|(i, &k)| {
                    Insn::from(if i % 2 == 0 {
                        Op::St { k }
                    } else {
                        Op::Stx { k }
                    })
                })
                .collect();
            let len = prog.len() + body.len() + 1;
            for op in body {
                let pc = prog.len();
                prog.push(Insn::from(fit(op, pc, len, &stored)));
            }
            prog.push(Insn::from(Op::Ret { val: last }));
            prog
        })
}

/// One change to one instruction (or to the length) of a program.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Replace the opcode.
    Code(u16),
    /// Flip one bit of the opcode (the high byte too).
    CodeBit(u8),
    Jt(u8),
    Jf(u8),
    K(u32),
    /// Drop the final instruction (an empty program when it was the only one).
    DropLast,
    /// Insert a load from a scratch cell, possibly one never written.
    InsertMemLoad {
        x: bool,
        k: u32,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => prop_oneof![any::<u8>().prop_map(u16::from), any::<u16>()].prop_map(Mutation::Code),
        3 => (0u8..16).prop_map(Mutation::CodeBit),
        2 => prop_oneof![0u8..8, any::<u8>()].prop_map(Mutation::Jt),
        2 => prop_oneof![0u8..8, any::<u8>()].prop_map(Mutation::Jf),
        4 => prop_oneof![interesting_k(), any::<u32>()].prop_map(Mutation::K),
        1 => Just(Mutation::DropLast),
        2 => (any::<bool>(), 0u32..18).prop_map(|(x, k)| Mutation::InsertMemLoad { x, k }),
    ]
}

impl Mutation {
    pub fn apply(&self, prog: &mut Vec<Insn>, at: usize) {
        if prog.is_empty() {
            return;
        }
        let at = at % prog.len();
        let insn = &mut prog[at];
        match *self {
            Mutation::Code(c) => insn.code = c,
            Mutation::CodeBit(b) => insn.code ^= 1 << (b % 16),
            Mutation::Jt(v) => insn.jt = v,
            Mutation::Jf(v) => insn.jf = v,
            Mutation::K(k) => insn.k = k,
            Mutation::DropLast => {
                prog.pop();
            }
            Mutation::InsertMemLoad { x, k } => {
                let op = if x { Op::LdxMem { k } } else { Op::LdMem { k } };
                prog.insert(at, Insn::from(op));
            }
        }
    }
}

/// A valid program with exactly one mutation applied.
pub fn mutated_program() -> impl Strategy<Value = Vec<Insn>> {
    (valid_program(), any::<Index>(), mutation()).prop_map(|(mut prog, at, m)| {
        let at = at.index(prog.len());
        m.apply(&mut prog, at);
        prog
    })
}

/// Half valid programs, half mutated ones.
pub fn program() -> impl Strategy<Value = Vec<Insn>> {
    prop_oneof![valid_program(), mutated_program()]
}

/// Captured bytes and a wire length no smaller than the capture. Bytes
/// are biased towards an Ethernet/IPv4 start so that jumps on common
/// constants sometimes match.
pub fn packet() -> impl Strategy<Value = (Vec<u8>, u32)> {
    let byte = prop_oneof![4 => any::<u8>(), 1 => Just(0u8), 1 => Just(0x08), 1 => Just(0x45)];
    (
        vec(byte, 0..=128),
        prop_oneof![Just(0u32), 0u32..64, Just(1500)],
    )
        .prop_map(|(bytes, extra)| {
            let wirelen = (bytes.len() as u32).saturating_add(extra);
            (bytes, wirelen)
        })
}

/// `count` values of `strategy`, the same for the same `seed`: for tests
/// that want a fixed, reproducible set instead of a proptest run.
pub fn sample<S: Strategy>(strategy: &S, count: usize, seed: u64) -> Vec<S::Value> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(
        Config {
            failure_persistence: None,
            ..Config::default()
        },
        rng,
    );
    (0..count)
        .filter_map(|_| strategy.new_tree(&mut runner).ok().map(|t| t.current()))
        .collect()
}
