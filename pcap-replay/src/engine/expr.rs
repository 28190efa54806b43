//! An expression in any engine: compiled once per link type met, by our
//! compiler (every engine but `libpcap`) or by libpcap itself (`libpcap`,
//! the oracle), then run by the engine built for that code.

use filter_programs::codegen::{self, Dlt};
use libpcap_oracle::CompileOptions;

use super::{Engine, EngineError, EngineKind, PacketRef, Verdict};
use crate::program::{Code, Program};
use capfile::LinkType;

/// The engine built for one link type, or why none could be.
type Built = Result<Box<dyn Engine>, String>;

pub struct ExprEngine {
    kind: EngineKind,
    label: String,
    expr: String,
    /// The engine for each link type met, or why there is none. A capture
    /// has one or a few link types, so a list beats a hash per packet.
    per_linktype: Vec<(LinkType, Built)>,
    /// The entry of `per_linktype` that ran the last packet.
    last: usize,
}

impl ExprEngine {
    pub fn new(kind: EngineKind, program: &Program, expr: &str) -> ExprEngine {
        ExprEngine {
            kind,
            label: program.label.clone(),
            expr: expr.to_string(),
            per_linktype: Vec::new(),
            last: 0,
        }
    }

    fn build(&self, lt: LinkType) -> Result<Box<dyn Engine>, String> {
        let insns = if self.kind == EngineKind::Libpcap {
            libpcap_oracle::compile(&self.expr, CompileOptions::new(lt.to_dlt()))
                .map_err(|e| format!("libpcap: {e}"))?
        } else {
            let cg = Dlt::from_dlt(lt.to_dlt())
                .ok_or_else(|| format!("link type {lt} is not supported by our compiler"))?;
            codegen::compile(&self.expr, &codegen::Options::new(cg)).map_err(|e| e.render())?
        };
        let program = Program {
            label: self.label.clone(),
            expression: Some(self.expr.clone()),
            code: Code::Cbpf(insns),
        };
        self.kind.build(&program).map_err(|e| e.to_string())
    }
}

impl Engine for ExprEngine {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn skip_reason(&self) -> super::Skip {
        match self.per_linktype.get(self.last) {
            Some((_, Ok(inner))) => inner.skip_reason(),
            _ => super::Skip::Refused,
        }
    }

    fn run(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        let at = self.built_for(packet.linktype);
        let engine = self.kind.name();
        match self.per_linktype.get_mut(at).map(|(_, e)| e) {
            Some(Ok(inner)) => {
                self.last = at;
                inner.run(packet)
            }
            Some(Err(reason)) => Err(EngineError::Invalid {
                engine,
                program: self.expr.clone(),
                reason: reason.clone(),
            }),
            None => Err(EngineError::Run {
                engine,
                reason: "no engine for this link type".into(),
            }),
        }
    }

    fn prepare(&mut self, linktype: LinkType) -> Result<(), EngineError> {
        let at = self.built_for(linktype);
        match self.per_linktype.get(at).map(|(_, e)| e) {
            Some(Err(reason)) => Err(EngineError::Invalid {
                engine: self.kind.name(),
                program: self.expr.clone(),
                reason: reason.clone(),
            }),
            _ => Ok(()),
        }
    }
}

impl ExprEngine {
    /// The index of the engine built for `lt` (built now if it is new).
    fn built_for(&mut self, lt: LinkType) -> usize {
        match self.per_linktype.iter().position(|(l, _)| *l == lt) {
            Some(i) => i,
            None => {
                let built = self.build(lt);
                self.per_linktype.push((lt, built));
                self.per_linktype.len() - 1
            }
        }
    }
}
