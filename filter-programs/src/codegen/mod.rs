//! Code generation: pcap-filter syntax tree to classic BPF, with libpcap
//! 1.10's meaning for every primitive it supports.
//!
//! The generator works as libpcap's does: each primitive becomes a small
//! graph of [`block`]s whose true/false exits are still open; `and`, `or`
//! and `not` wire exits together; link-layer state (`vlan`, `mpls`,
//! `pppoes` shift the header offsets for everything compiled after them,
//! in source order) lives in [`Layout`]; [`emit`] lays the graph out as
//! libpcap does without its optimizer. Primitives not implemented yet are
//! refused with [`ErrorKind::Unsupported`], never compiled approximately.
//!
//! ```
//! use filter_programs::codegen::{compile, Dlt, Options};
//! let prog = compile("ip", &Options::new(Dlt::En10mb)).unwrap();
//! assert_eq!(prog.len(), 4); // ldh [12]; jeq #0x800; ret #262144; ret #0
//! let err = compile("vlan", &Options::new(Dlt::Raw)).unwrap_err();
//! assert!(err.render().contains("no VLAN support"));
//! ```

mod arith;
mod block;
mod cast;
mod consts;
mod decnet;
mod direction;
mod emit;
mod encap;
mod error;
mod hostname;
mod l3;
mod l4;
mod layout;
mod linktype;
mod llc;
mod primitive;
mod protochain;
mod resolver;
pub mod socket;
#[cfg(test)]
mod tests;
mod tunnel;
mod vlan_ext;

use std::sync::Arc;

use crate::cbpf::{Insn, JmpOp, Op, Size, Src, MEMWORDS};
use crate::expr::ast::Expr;
use crate::expr::walk::Fold;
use crate::expr::Span;
use block::{Blocks, Cond};

pub use error::{CompileError, ErrorKind};
pub use layout::{Layout, Off};
pub use linktype::Dlt;
pub use resolver::{BuiltinResolver, Resolver, Transport};

/// libpcap's default snapshot length (tcpdump's too).
pub const DEFAULT_SNAPLEN: u32 = 262_144;

#[derive(Clone, Debug)]
pub struct Options {
    pub linktype: Dlt,
    /// What an accepting program returns.
    pub snaplen: u32,
    /// The network mask for `ip broadcast`; `None` is libpcap's
    /// PCAP_NETMASK_UNKNOWN.
    pub netmask: Option<u32>,
    /// Run [`crate::optimize::optimize`] on the result; without it the
    /// output is libpcap's unoptimized program, instruction for instruction.
    pub optimize: bool,
    /// The program will run as a Linux socket filter on a live capture,
    /// where `inbound`, `outbound` and `ifindex` read the packet's
    /// metadata through SKF_AD_* ancillary loads (what libpcap generates
    /// for a live Linux capture, and 1.10 for a dead handle too). Off, they
    /// are refused on link types without the field in the packet, as
    /// libpcap refuses them on a savefile.
    pub linux_ext: bool,
    /// The program will run as a Linux socket filter on a live capture,
    /// where the kernel has moved the outer VLAN tag into metadata: `vlan`
    /// tests it through SKF_AD_VLAN_TAG_PRESENT/SKF_AD_VLAN_TAG, as libpcap
    /// does on a live Linux handle (BPF_SPECIAL_VLAN_HANDLING). Other loads
    /// then read the frame as the kernel hands it over, tag taken out, so
    /// the program means what live `tcpdump -i` means, not the frame as
    /// sent (translate it with `translate::Options::kernel_view`). Off (the
    /// default), `vlan` reads the tag in the packet bytes.
    pub vlan_ext: bool,
    /// Where host, network, Ethernet, service and protocol names come from.
    pub resolver: Arc<dyn Resolver>,
}

impl PartialEq for Options {
    fn eq(&self, o: &Options) -> bool {
        self.linktype == o.linktype
            && self.snaplen == o.snaplen
            && self.netmask == o.netmask
            && self.optimize == o.optimize
            && self.linux_ext == o.linux_ext
            && self.vlan_ext == o.vlan_ext
            && Arc::ptr_eq(&self.resolver, &o.resolver)
    }
}

impl Options {
    /// tcpdump's defaults for a link type.
    pub fn new(linktype: Dlt) -> Options {
        Options {
            linktype,
            snaplen: DEFAULT_SNAPLEN,
            netmask: None,
            optimize: true,
            linux_ext: false,
            vlan_ext: false,
            resolver: Arc::new(BuiltinResolver),
        }
    }
}

/// Compiles a filter expression to classic BPF.
pub fn compile(expr: &str, opts: &Options) -> Result<Vec<Insn>, CompileError> {
    let ast = crate::expr::parse(expr).map_err(CompileError::from_parse)?;
    compile_parsed(expr, &ast, opts)
}

/// [`compile`] of an expression already parsed from `expr` (which its
/// errors quote): a caller compiling one expression for many link types
/// parses it once.
pub fn compile_parsed(
    expr: &str,
    ast: &crate::expr::Ast,
    opts: &Options,
) -> Result<Vec<Insn>, CompileError> {
    let mut g = Gen::new(expr, opts);
    let root = match &ast.root {
        // The empty filter accepts everything: one `ret`, as libpcap.
        None => g.b.ret(opts.snaplen),
        Some(e) => {
            let c = g.expr(e)?;
            g.vlan_vloffset_init(c.head)?;
            g.b.finish(c, opts.snaplen)
        }
    };
    let prog = emit::emit(&g.b, root);
    if !opts.optimize {
        return Ok(prog);
    }
    let prog = crate::optimize::optimize(&prog);
    // As pcap_compile does when its optimizer proves the filter can never
    // match: almost always a mistake (`ip6 and igmp` on an IPv4 link,
    // `not ip and ip`), and a tcpdump user has seen this error before.
    // With the optimizer off (-O0) the program compiles to `ret #0`.
    if let [only] = prog.as_slice() {
        if only.decode()
            == Ok(crate::cbpf::Op::Ret {
                val: crate::cbpf::RetVal::K(0),
            })
        {
            let span = Span::new(0, expr.trim_end().len());
            return Err(CompileError::new(
                ErrorKind::Semantic,
                span,
                "expression rejects all packets",
                expr,
            ));
        }
    }
    Ok(prog)
}

/// Where a load is relative to (libpcap's `e_offrel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OffRel {
    LinkHdr,
    /// The link-layer payload (the 802.2 header, where there is one).
    Llc,
    /// The MPLS label before the current network header.
    PrevMplsHdr,
    /// The network-layer header.
    LinkPl,
    /// The network-layer header after 802.2 without SNAP.
    LinkPlNosnap,
    LinkType,
    /// The transport header after an IPv4 header of any length.
    TranIpv4,
    /// The transport header right after a fixed IPv6 header.
    TranIpv6,
}

/// The generator's state for one compilation.
pub(crate) struct Gen<'a> {
    src: &'a str,
    opts: &'a Options,
    b: Blocks,
    lay: Layout,
    /// MPLS labels and VLAN tags seen so far (source order).
    label_depth: u32,
    vlan_depth: u32,
    /// A `vlan` took the metadata path, so the payload and link-type
    /// offsets have run-time parts that start at 0 (libpcap's
    /// `is_vlan_vloffset`).
    vlan_vloffset: bool,
    /// libpcap's scratch-register allocator: a round-robin over M[0..16].
    regused: [bool; MEMWORDS as usize],
    curreg: usize,
    /// The primitive being compiled, for error positions.
    span: Span,
}

impl<'a> Gen<'a> {
    fn new(src: &'a str, opts: &'a Options) -> Gen<'a> {
        Gen {
            src,
            opts,
            b: Blocks::default(),
            lay: Layout::new(opts.linktype),
            label_depth: 0,
            vlan_depth: 0,
            vlan_vloffset: false,
            regused: [false; MEMWORDS as usize],
            curreg: 0,
            span: Span::default(),
        }
    }

    /// Compiles `e` in source order, bottom up without recursion (see
    /// [`Expr::fold`]): chains and nesting may be thousands deep.
    fn expr(&mut self, e: &Expr) -> Result<Cond, CompileError> {
        e.fold(|e, node| {
            Ok(match node {
                Fold::Leaf => {
                    self.span = e.span;
                    self.primitive(&e.kind)?
                }
                Fold::Not(a) => self.b.not(a),
                Fold::And(a, b) => self.b.and(a, b),
                Fold::Or(a, b) => self.b.or(a, b),
            })
        })
    }

    /// libpcap's error for this primitive.
    fn err(&self, msg: impl Into<String>) -> CompileError {
        CompileError::new(ErrorKind::Semantic, self.span, msg, self.src)
    }

    fn unsupported(&self, what: impl std::fmt::Display) -> CompileError {
        CompileError::new(
            ErrorKind::Unsupported,
            self.span,
            format!("{what} is not yet supported by this compiler"),
            self.src,
        )
    }

    fn alloc_reg(&mut self) -> Result<u32, CompileError> {
        for _ in 0..MEMWORDS {
            if self.regused[self.curreg] {
                self.curreg = (self.curreg + 1) % MEMWORDS as usize;
            } else {
                self.regused[self.curreg] = true;
                return Ok(self.curreg as u32);
            }
        }
        Err(self.err("too many registers needed to evaluate expression"))
    }

    fn free_reg(&mut self, r: u32) {
        if let Some(u) = self.regused.get_mut(r as usize) {
            *u = false;
        }
    }

    /// `(field & mask) op v`; `mask` all ones adds no `and`.
    fn ncmp(&mut self, rel: OffRel, off: u32, size: Size, mask: u32, op: JmpOp, v: u32) -> Cond {
        let mut s = self.load(rel, off, size);
        if mask != u32::MAX {
            s.push(Op::Alu {
                op: crate::cbpf::AluOp::And,
                src: Src::K(mask),
            });
        }
        self.b.test(s, op, Src::K(v))
    }

    fn cmp(&mut self, rel: OffRel, off: u32, size: Size, v: u32) -> Cond {
        self.ncmp(rel, off, size, u32::MAX, JmpOp::Jeq, v)
    }

    fn cmp_op(&mut self, rel: OffRel, off: u32, size: Size, op: JmpOp, v: u32) -> Cond {
        self.ncmp(rel, off, size, u32::MAX, op, v)
    }

    fn mcmp(&mut self, rel: OffRel, off: u32, size: Size, v: u32, mask: u32) -> Cond {
        self.ncmp(rel, off, size, mask, JmpOp::Jeq, v)
    }

    /// `field < v`, as libpcap writes it: not `field >= v`.
    fn cmp_lt(&mut self, rel: OffRel, off: u32, size: Size, v: u32) -> Cond {
        let c = self.cmp_op(rel, off, size, JmpOp::Jge, v);
        self.b.not(c)
    }

    fn cmp_le(&mut self, rel: OffRel, off: u32, size: Size, v: u32) -> Cond {
        let c = self.cmp_op(rel, off, size, JmpOp::Jgt, v);
        self.b.not(c)
    }

    /// Byte-string equality, compared as libpcap does: words from the end,
    /// then a half-word, then a byte, the last-built test first.
    fn bcmp(&mut self, rel: OffRel, off: u32, v: &[u8]) -> Cond {
        let mut size = v.len();
        let mut acc: Option<Cond> = None;
        let mut chain = |g: &mut Gen, c: Cond| {
            acc = Some(match acc.take() {
                Some(a) => g.b.and(a, c),
                None => c,
            });
        };
        while size >= 4 {
            let p = &v[size - 4..size];
            let w = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
            let c = self.cmp(rel, off + size as u32 - 4, Size::W, w);
            chain(self, c);
            size -= 4;
        }
        while size >= 2 {
            let p = &v[size - 2..size];
            let h = u16::from_be_bytes([p[0], p[1]]) as u32;
            let c = self.cmp(rel, off + size as u32 - 2, Size::H, h);
            chain(self, c);
            size -= 2;
        }
        if size > 0 {
            let c = self.cmp(rel, off, Size::B, v[0] as u32);
            chain(self, c);
        }
        match acc {
            Some(c) => c,
            None => self.uncond(true),
        }
    }

    /// Always true or always false: `ld #0` or `ld #1`, then `jeq #0`.
    fn uncond(&mut self, sense: bool) -> Cond {
        self.b.test(
            vec![Op::LdImm {
                k: u32::from(!sense),
            }],
            JmpOp::Jeq,
            Src::K(0),
        )
    }
}
