//! An expression in any engine: compiled once per link type met, by our
//! compiler (every engine but `libpcap`) or by libpcap itself (`libpcap`,
//! the oracle), then run by the engine built for that code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use filter_programs::cbpf::Insn;
use filter_programs::codegen::{self, Dlt};
use libpcap_oracle::CompileOptions;

use super::{Engine, EngineError, EngineKind, PacketRef, Verdict};
use crate::program::{Code, Program};
use capfile::LinkType;

/// The engine built for one link type, or why none could be.
type Built = Result<Inner, String>;

/// Our interpreter is called directly, so that its entry inlines into the
/// replay's loop (it runs once per packet and expression); the other
/// engines through their trait object.
enum Inner {
    Cbpf(super::cbpf::CbpfEngine),
    Other(Box<dyn Engine>),
}

impl Inner {
    fn engine(&self) -> &dyn Engine {
        match self {
            Inner::Cbpf(e) => e,
            Inner::Other(e) => e.as_ref(),
        }
    }

    #[inline]
    fn run(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        match self {
            Inner::Cbpf(e) => e.run(packet),
            Inner::Other(e) => e.run(packet),
        }
    }
}

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

    fn build(&self, lt: LinkType) -> Result<Inner, String> {
        let libpcap = self.kind == EngineKind::Libpcap;
        let insns = compiled(&self.expr, lt, libpcap, || {
            if libpcap {
                libpcap_oracle::compile(&self.expr, CompileOptions::new(lt.to_dlt()))
                    .map_err(|e| format!("libpcap: {e}"))
            } else {
                let cg = Dlt::from_dlt(lt.to_dlt())
                    .ok_or_else(|| format!("link type {lt} is not supported by our compiler"))?;
                codegen::compile(&self.expr, &codegen::Options::new(cg)).map_err(|e| e.render())
            }
        })?;
        let program = Program {
            label: self.label.clone(),
            expression: Some(self.expr.clone()),
            code: Code::Cbpf(insns.to_vec()),
        };
        let built = match self.kind {
            EngineKind::Cbpf => super::cbpf::CbpfEngine::new(&program).map(Inner::Cbpf),
            kind => kind.build(&program).map(Inner::Other),
        };
        built.map_err(|e| e.to_string())
    }
}

/// What an expression compiled to for a link type, by libpcap or by us.
type Compiled = Result<Arc<[Insn]>, String>;

/// Every compilation of the run, shared: the engines of one expression
/// (our interpreter and each eBPF target take our compiler's program), and
/// the engine sets of captures replayed at once, compile each (expression,
/// link type) once. A run holds a few link types per expression.
fn compiled(
    expr: &str,
    lt: LinkType,
    libpcap: bool,
    compile: impl FnOnce() -> Result<Vec<Insn>, String>,
) -> Compiled {
    /// (expression, link type, by libpcap).
    type Key = (String, LinkType, bool);
    static CACHE: OnceLock<Mutex<HashMap<Key, Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (expr.to_string(), lt, libpcap);
    if let Some(c) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return c;
    }
    // Compiled outside the lock: another thread may compile it too, and
    // the results are equal.
    let c: Compiled = compile().map(Arc::from);
    if let Ok(mut cache) = cache.lock() {
        cache.insert(key, c.clone());
    }
    c
}

impl Engine for ExprEngine {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn skip_reason(&self) -> super::Skip {
        match self.per_linktype.get(self.last) {
            Some((_, Ok(inner))) => inner.engine().skip_reason(),
            _ => super::Skip::Refused,
        }
    }

    #[inline]
    fn run(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        // Almost every packet has the last one's link type.
        if let Some((lt, Ok(inner))) = self.per_linktype.get_mut(self.last) {
            if *lt == packet.linktype {
                return inner.run(packet);
            }
        }
        self.run_other(packet)
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
    /// [`Engine::run`] for a packet of another link type than the last
    /// (or after a failure): finds or builds its engine.
    #[cold]
    fn run_other(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
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
