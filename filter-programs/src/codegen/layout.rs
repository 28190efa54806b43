//! Where the headers are: offsets with a constant part and, after a
//! tunnel whose inner headers move with the packet (`geneve`, `vxlan`), a
//! run-time part kept in a scratch cell (libpcap's `bpf_abs_offset`), and
//! the loads relative to them.

use super::{Dlt, Gen, OffRel};
use crate::cbpf::{AluOp, Op, Size, Src};

/// An absolute offset: `k`, plus `M[reg]` at run time when `reg` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Off {
    pub k: u32,
    pub reg: Option<u32>,
}

impl Off {
    pub const fn fixed(k: u32) -> Off {
        Off { k, reg: None }
    }

    fn plus(self, n: u32) -> Off {
        Off {
            k: self.k.wrapping_add(n),
            reg: self.reg,
        }
    }
}

/// Offsets of the headers, from the start of the packet. They change as
/// `vlan`, `mpls`, `pppoes`, `geneve` and `vxlan` are compiled, in source
/// order, as in libpcap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub link: Dlt,
    /// Start of the link-layer header.
    pub linkhdr: Off,
    /// The link-layer header before the last encapsulation was entered.
    pub prevlinkhdr: Off,
    /// Start of the link-layer payload.
    pub linkpl: Off,
    /// The link-layer type field; `None` where there is none.
    pub linktype: Option<Off>,
    /// Network header, from the payload: past MPLS labels if any.
    pub nl: u32,
    /// Network header after an 802.2 header without SNAP.
    pub nl_nosnap: u32,
    /// Inside a Geneve or VXLAN tunnel: the inner "link type" is an
    /// EtherType whether or not an inner Ethernet header is present.
    pub encap: bool,
}

impl Layout {
    pub fn new(link: Dlt) -> Layout {
        let (linktype, linkpl, nl_nosnap) = match link {
            Dlt::En10mb => (Some(12), 14, 3),
            Dlt::Null | Dlt::Loop => (Some(0), 4, 0),
            Dlt::Raw | Dlt::Ipv4 | Dlt::Ipv6 => (None, 0, 0),
            Dlt::LinuxSll => (Some(14), 16, 0),
            Dlt::LinuxSll2 => (Some(0), 20, 0),
            Dlt::Ppp => (Some(2), 4, 0),
        };
        Layout {
            link,
            linkhdr: Off::fixed(0),
            prevlinkhdr: Off::fixed(0),
            linkpl: Off::fixed(linkpl),
            linktype: linktype.map(Off::fixed),
            nl: 0,
            nl_nosnap,
            encap: false,
        }
    }

    /// A new link layer starts at `hdr` (libpcap's `PUSH_LINKHDR`).
    pub fn push_linkhdr(&mut self, link: Dlt, hdr: Off) {
        self.prevlinkhdr = self.linkhdr;
        self.link = link;
        self.linkhdr = hdr;
        self.encap = false;
    }
}

impl Gen<'_> {
    /// `X = M[reg]` when the offset has a run-time part.
    fn varpart(&self, o: Off) -> Option<Op> {
        o.reg.map(|k| Op::LdxMem { k })
    }

    /// A load at `off` past the absolute offset `o`.
    fn load_rel(&self, o: Off, off: u32, size: Size) -> Vec<Op> {
        let k = o.k.wrapping_add(off);
        match self.varpart(o) {
            Some(x) => vec![x, Op::LdInd { size, k }],
            None => vec![Op::LdAbs { size, k }],
        }
    }

    /// `X` = the IPv4 header length, plus the run-time part of the
    /// payload offset if any (libpcap's `gen_loadx_iphdrlen`).
    pub(super) fn loadx_iphdrlen(&self) -> Vec<Op> {
        let l = &self.lay;
        let nl = l.linkpl.k.wrapping_add(l.nl);
        match self.varpart(l.linkpl) {
            Some(x) => vec![
                x,
                Op::LdInd {
                    size: Size::B,
                    k: nl,
                },
                Op::Alu {
                    op: AluOp::And,
                    src: Src::K(0xf),
                },
                Op::Alu {
                    op: AluOp::Lsh,
                    src: Src::K(2),
                },
                Op::Alu {
                    op: AluOp::Add,
                    src: Src::X,
                },
                Op::Tax,
            ],
            None => vec![Op::LdxMsh { k: nl }],
        }
    }

    /// `X = M[reg]` for the network header's run-time part, if any, for
    /// loads indexed by a computed value.
    pub(super) fn linkpl_varpart(&self) -> Option<Op> {
        self.varpart(self.lay.linkpl)
    }

    pub(super) fn linkhdr_varpart(&self) -> Option<Op> {
        self.varpart(self.lay.linkhdr)
    }

    /// The statements loading `size` bytes at `off` relative to `rel`.
    pub(super) fn load(&self, rel: OffRel, off: u32, size: Size) -> Vec<Op> {
        let l = &self.lay;
        match rel {
            OffRel::LinkHdr => self.load_rel(l.linkhdr, off, size),
            OffRel::Llc => self.load_rel(l.linkpl, off, size),
            OffRel::PrevMplsHdr => self.load_rel(l.linkpl.plus(l.nl.wrapping_sub(4)), off, size),
            OffRel::LinkPl => self.load_rel(l.linkpl.plus(l.nl), off, size),
            OffRel::LinkPlNosnap => self.load_rel(l.linkpl.plus(l.nl_nosnap), off, size),
            // libpcap's "offset not set" is all ones and its sums wrap.
            OffRel::LinkType => {
                let o = l.linktype.unwrap_or(Off::fixed(u32::MAX));
                self.load_rel(o, off, size)
            }
            OffRel::TranIpv4 => {
                let mut s = self.loadx_iphdrlen();
                s.push(Op::LdInd {
                    size,
                    k: l.linkpl.k.wrapping_add(l.nl).wrapping_add(off),
                });
                s
            }
            OffRel::TranIpv6 => self.load_rel(l.linkpl.plus(l.nl).plus(40), off, size),
        }
    }
}
