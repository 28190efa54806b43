//! The intermediate form code generation builds: basic blocks, each a list
//! of statements ending in one conditional jump (or a `ret`), joined into
//! conditions whose true and false exits are still dangling.
//!
//! This is the shape libpcap's generator works in, so `and`, `or` and
//! `not` combine conditions by wiring exits instead of by emitting code,
//! and the unoptimized program has libpcap's control flow block for block.

use crate::cbpf::{JmpOp, Op, Src};

/// Index of a block in the arena.
pub type BlockId = usize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// `if (A op src) goto jt else goto jf`.
    Jump { op: JmpOp, src: Src },
    /// `ret #k`.
    Ret(u32),
}

#[derive(Clone, Debug)]
pub struct Block {
    pub stmts: Vec<Op>,
    pub end: End,
    pub jt: Option<BlockId>,
    pub jf: Option<BlockId>,
}

/// A dangling branch: which block, and whether it is its true branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    pub block: BlockId,
    pub on_true: bool,
}

/// A boolean condition under construction: control enters at `head`;
/// reaching any exit in `t` means the condition holds, any in `f` that it
/// does not.
#[derive(Clone, Debug)]
pub struct Cond {
    pub head: BlockId,
    pub t: Vec<Exit>,
    pub f: Vec<Exit>,
}

/// The block arena of one compilation.
#[derive(Debug, Default)]
pub struct Blocks {
    pub blocks: Vec<Block>,
}

impl Blocks {
    /// A one-block condition: `stmts`, then `A op src`.
    pub fn test(&mut self, stmts: Vec<Op>, op: JmpOp, src: Src) -> Cond {
        let id = self.push(Block {
            stmts,
            end: End::Jump { op, src },
            jt: None,
            jf: None,
        });
        Cond {
            head: id,
            t: vec![Exit {
                block: id,
                on_true: true,
            }],
            f: vec![Exit {
                block: id,
                on_true: false,
            }],
        }
    }

    pub fn ret(&mut self, k: u32) -> BlockId {
        self.push(Block {
            stmts: Vec::new(),
            end: End::Ret(k),
            jt: None,
            jf: None,
        })
    }

    fn push(&mut self, b: Block) -> BlockId {
        self.blocks.push(b);
        self.blocks.len() - 1
    }

    fn patch(&mut self, exits: &[Exit], target: BlockId) {
        for e in exits {
            let b = &mut self.blocks[e.block];
            if e.on_true {
                b.jt = Some(target);
            } else {
                b.jf = Some(target);
            }
        }
    }

    /// `a and b`: `a` holding leads on to `b`.
    pub fn and(&mut self, a: Cond, b: Cond) -> Cond {
        self.patch(&a.t, b.head);
        let mut f = a.f;
        f.extend(b.f);
        Cond {
            head: a.head,
            t: b.t,
            f,
        }
    }

    /// `a or b`: `a` failing leads on to `b`.
    pub fn or(&mut self, a: Cond, b: Cond) -> Cond {
        self.patch(&a.f, b.head);
        let mut t = a.t;
        t.extend(b.t);
        Cond {
            head: a.head,
            t,
            f: b.f,
        }
    }

    pub fn not(&mut self, c: Cond) -> Cond {
        Cond {
            head: c.head,
            t: c.f,
            f: c.t,
        }
    }

    /// Ends every exit in a `ret`: the snap length when the condition
    /// holds, 0 when it does not. Returns the entry block.
    pub fn finish(&mut self, c: Cond, snaplen: u32) -> BlockId {
        let yes = self.ret(snaplen);
        self.patch(&c.t, yes);
        let no = self.ret(0);
        self.patch(&c.f, no);
        c.head
    }
}
