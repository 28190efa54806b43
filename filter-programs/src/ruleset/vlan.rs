//! VLAN-tagged frames dispatched on their VLAN ID.
//!
//! A ruleset's `vlan N and ...` rules each match one VLAN ID, so a tagged
//! frame needs only the rules of its own ID and those that do not look at
//! the ID. The chain of a tag's ethertype (802.1Q `0x8100`, 802.1ad
//! `0x88a8`) is split: one chain per VLAN ID the rules name, one for the
//! other IDs, and one for frames that end inside the tag (14 or 15 bytes).
//! The prologue reaches them through a binary search on the ID:
//!
//! ```text
//!  tag     data + 16 > data_end -> chain "cut"
//!          r1 = be16(*(u16 *)(data + 14)) & 0xfff
//!          if r1 >= ids[mid] goto hi;  ...  if r1 == id goto chain(id)
//!          -> chain "other IDs"
//! ```
//!
//! Each chain holds every rule of the tag's chain specialized to its fact
//! ([`Fact::Tagged`]), so a rule of another ID is left out. A frame costs
//! about log2(IDs) compares more, instead of one test per `vlan` rule.
//!
//! A rule that compares the ID other than with `==` (`ether[14:2] & 0xfff
//! > 100`) is specialized per chain as well; one that does not look at the
//! ID is the same program in every chain. Such rules are copied into every
//! chain, so the split is made only while the copies stay few
//! ([`MAX_COPIES`]).

use super::specialize::{specialize, vid_tests, Fact, Vid};
use super::Rule;
use crate::cbpf::Insn as Classic;
use crate::ebpf::asm::{Asm, Label};
use crate::ebpf::insn::{AluOp, Endian, JmpOp, Op, Operand, Reg, Size};

/// Most rule copies the split may add (rules in every ID's chain).
pub const MAX_COPIES: usize = 4096;
/// Most VLAN IDs with a chain of their own per tag type.
pub const MAX_IDS: usize = 1024;

/// Rules that can match a chain's frames, with their specialized programs.
pub type Placed = Vec<(usize, Vec<Classic>)>;

/// One tag type's split: the chains it added or replaced.
#[derive(Clone, Debug)]
pub struct Split {
    /// The chain the prologue dispatches the tag's ethertype to (now the
    /// chain of frames cut within the tag).
    pub cut: usize,
    /// Per VLAN ID, ascending, its chain.
    pub ids: Vec<(u16, usize)>,
    /// The chain of the other IDs.
    pub rest: usize,
}

/// Splits the chain `chain` (whose fact is `Fact::EtherType(tpid)`) when
/// its rules name VLAN IDs, appending the new chains to `facts` and
/// `placed`.
pub fn split(
    rules: &[Rule],
    tpid: u16,
    chain: usize,
    facts: &mut Vec<(String, Fact)>,
    placed: &mut Vec<Placed>,
) -> Option<Split> {
    let base = placed[chain].clone();
    // Per rule of the chain: the IDs it compares with `==`, or None.
    let tests: Vec<Option<Vec<u16>>> = (base.iter())
        .map(|(i, _)| vid_tests(&rules[*i].program, tpid))
        .collect();
    let mut ids: Vec<u16> = tests.iter().flatten().flatten().copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let everywhere = tests
        .iter()
        .filter(|t| t.as_ref().is_none_or(|ids| ids.is_empty()))
        .count();
    if ids.is_empty() || ids.len() > MAX_IDS || everywhere * ids.len() > MAX_COPIES {
        return None;
    }
    let name = &facts[chain].0;
    let fact = |vid| Fact::Tagged { tpid, vid };
    // A rule of IDs `own` means, for every ID outside them, what it means
    // for none: specialized once.
    let outside: Vec<Option<Vec<Classic>>> = (base.iter().zip(&tests))
        .map(|((i, _), t)| match t {
            Some(own) if !own.is_empty() => {
                specialize(&rules[*i].program, &fact(Vid::NotIn(own.clone())))
            }
            _ => None,
        })
        .collect();
    let chain_of = |f: &Fact| -> Placed {
        (base.iter().zip(&tests).zip(&outside))
            .filter_map(|(((i, p), t), out)| {
                let vid = match f {
                    Fact::Tagged { vid, .. } => vid,
                    _ => unreachable!("tagged facts only"),
                };
                match (t, vid) {
                    (Some(own), Vid::Is(_) | Vid::NotIn(_)) if own.is_empty() => {
                        Some((*i, p.clone()))
                    }
                    (Some(own), Vid::Is(v)) if !own.contains(v) => out.clone().map(|p| (*i, p)),
                    (Some(_), Vid::NotIn(_)) => out.clone().map(|p| (*i, p)),
                    _ => specialize(&rules[*i].program, f).map(|p| (*i, p)),
                }
            })
            .collect()
    };
    let cut_fact = fact(Vid::Cut);
    placed[chain] = chain_of(&cut_fact);
    let base_name = name.clone();
    facts[chain] = (format!("{base_name}, cut within the tag"), cut_fact);
    let mut by_id = Vec::with_capacity(ids.len());
    for id in &ids {
        let f = fact(Vid::Is(*id));
        placed.push(chain_of(&f));
        facts.push((format!("{base_name}, VLAN {id}"), f));
        by_id.push((*id, facts.len() - 1));
    }
    let f = fact(Vid::NotIn(ids.clone()));
    placed.push(chain_of(&f));
    facts.push((format!("{base_name}, other VLAN IDs"), f));
    Some(Split {
        cut: chain,
        ids: by_id,
        rest: facts.len() - 1,
    })
}

/// The dispatch on the VLAN ID, at `at`, with the frame's data and end in
/// r2 and r3; `chains` are the chains' labels. Clobbers r1 only.
pub fn emit_switch(a: &mut Asm, at: Label, s: &Split, chains: &[Label]) {
    a.bind(at);
    a.mov64(Reg::R1, Operand::Reg(Reg::R2));
    a.alu64(AluOp::Add, Reg::R1, Operand::Imm(16));
    let whole = a.label();
    a.jmp(true, JmpOp::Jle, Reg::R1, Operand::Reg(Reg::R3), whole);
    a.ja(chains[s.cut]);
    a.bind(whole);
    a.ldx(Size::H, Reg::R1, Reg::R2, 14);
    a.push(Op::End {
        dst: Reg::R1,
        endian: Endian::ToBe,
        bits: 16,
    });
    a.alu64(AluOp::And, Reg::R1, Operand::Imm(0xfff));
    search(a, &s.ids, chains, chains[s.rest]);
}

/// Binary search of r1 among `ids`; a few are compared one by one.
fn search(a: &mut Asm, ids: &[(u16, usize)], chains: &[Label], rest: Label) {
    if ids.len() <= 4 {
        for (id, c) in ids {
            // Conditional jumps reach 32 Ki instructions; the chains may
            // be further.
            let next = a.label();
            a.jmp(false, JmpOp::Jne, Reg::R1, Operand::Imm(*id as i32), next);
            a.ja(chains[*c]);
            a.bind(next);
        }
        a.ja(rest);
        return;
    }
    let mid = ids.len() / 2;
    let high = a.label();
    a.jmp(
        true,
        JmpOp::Jge,
        Reg::R1,
        Operand::Imm(ids[mid].0 as i32),
        high,
    );
    search(a, &ids[..mid], chains, rest);
    a.bind(high);
    search(a, &ids[mid..], chains, rest);
}
