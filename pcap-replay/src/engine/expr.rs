//! An expression in any engine: compiled once per link type met, by our
//! compiler (every engine but `libpcap`) or by libpcap itself (`libpcap`,
//! the oracle), then run by the engine built for that code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use filter_programs::cbpf::{interp, Insn};
use filter_programs::codegen::{self, Dlt};
use filter_programs::expr::Ast;
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
    per_linktype: Vec<Entry>,
    /// The entry of `per_linktype` that ran the last packet.
    last: usize,
}

/// Packets an engine of ours runs on the unoptimized program before it is
/// rebuilt on the optimized one. Optimizing an expression costs about as
/// much as running it on a thousand small packets, and most captures of a
/// corpus hold fewer; the two programs return the same for every packet,
/// complete or cut short (docs/OPTIMIZER.md), so only the speed changes.
pub const OPTIMIZE_AFTER: u32 = 1024;

struct Entry {
    lt: LinkType,
    built: Built,
    /// Packets left before the slow path looks at it again: on the
    /// unoptimized program, until it is rebuilt on the optimized one.
    left: u32,
    optimized: bool,
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

    /// Do we start it on the unoptimized program? Our interpreter and VM
    /// build an engine in microseconds; a kernel engine loads a program,
    /// and libpcap's compiles its own.
    fn tiered(&self) -> bool {
        matches!(self.kind, EngineKind::Cbpf | EngineKind::Ebpf(_))
    }

    fn build(&self, lt: LinkType, optimize: bool) -> Result<Inner, String> {
        let libpcap = self.kind == EngineKind::Libpcap;
        let compilation = compiled(&self.expr, lt, libpcap, optimize, |parsed| {
            if libpcap {
                libpcap_oracle::compile(&self.expr, CompileOptions::new(lt.to_dlt()))
                    .map_err(|e| format!("libpcap: {e}"))
            } else {
                let cg = Dlt::from_dlt(lt.to_dlt())
                    .ok_or_else(|| format!("link type {lt} is not supported by our compiler"))?;
                let options = codegen::Options {
                    optimize,
                    ..codegen::Options::new(cg)
                };
                let ast = parsed
                    .get_or_init(|| {
                        filter_programs::expr::parse(&self.expr)
                            .map_err(|e| codegen::CompileError::from_parse(e).render())
                    })
                    .as_ref()
                    .map_err(Clone::clone)?;
                codegen::compile_parsed(&self.expr, ast, &options).map_err(|e| e.render())
            }
        })?;
        let program = || Program {
            label: self.label.clone(),
            expression: Some(self.expr.clone()),
            code: Code::Cbpf(compilation.insns.clone()),
        };
        match self.kind {
            // Our interpreter's form of the program, built once for all
            // the captures of the run: most of them are short, so building
            // it per capture would cost more than running it.
            EngineKind::Cbpf => {
                let shared = compilation.interp.get_or_init(|| {
                    // The unoptimized program runs on fewer than
                    // OPTIMIZE_AFTER packets: its closures would cost
                    // more to build than they save.
                    let build = match optimize {
                        true => interp::Program::new,
                        false => interp::Program::new_looped,
                    };
                    build(&compilation.insns).map(Arc::new).map_err(|e| {
                        EngineError::Invalid {
                            engine: "cbpf",
                            program: self.label.clone(),
                            reason: e.to_string(),
                        }
                        .to_string()
                    })
                });
                let p = shared.clone()?;
                Ok(Inner::Cbpf(super::cbpf::CbpfEngine::shared(p)))
            }
            kind => kind
                .build(&program())
                .map(Inner::Other)
                .map_err(|e| e.to_string()),
        }
    }
}

/// One (expression, link type)'s program, and our interpreter's form of
/// it once an engine needed it.
struct Compilation {
    insns: Vec<Insn>,
    interp: OnceLock<Result<Arc<interp::Program>, String>>,
}

/// What an expression compiled to for a link type, by libpcap or by us.
type Compiled = Result<Arc<Compilation>, String>;

/// An expression parsed once for every link type our compiler meets, or
/// its error rendered.
type Parsed = OnceLock<Result<Ast, String>>;

/// Every compilation of the run, shared: the engines of one expression
/// (our interpreter and each eBPF target take our compiler's program), and
/// the engine sets of captures replayed at once, compile each (expression,
/// link type) once. A run holds a few link types per expression.
fn compiled(
    expr: &str,
    lt: LinkType,
    libpcap: bool,
    optimize: bool,
    compile: impl FnOnce(&Parsed) -> Result<Vec<Insn>, String>,
) -> Compiled {
    /// (link type, by libpcap, optimized), under the expression.
    type Key = (LinkType, bool, bool);
    type Cell = Arc<OnceLock<Compiled>>;
    type OfExpr = (Arc<Parsed>, HashMap<Key, Cell>);
    static CACHE: OnceLock<Mutex<HashMap<String, OfExpr>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (lt, libpcap, optimize);
    let (parsed, cell): (Arc<Parsed>, Cell) = {
        let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
        let of_expr = match map.get_mut(expr) {
            Some(m) => m,
            None => map.entry(expr.to_string()).or_default(),
        };
        (of_expr.0.clone(), of_expr.1.entry(key).or_default().clone())
    };
    // Compiled outside the map's lock; a second thread that wants it
    // meanwhile waits for this one instead of compiling it again.
    cell.get_or_init(|| {
        compile(&parsed).map(|insns| {
            Arc::new(Compilation {
                insns,
                interp: OnceLock::new(),
            })
        })
    })
    .clone()
}

impl Engine for ExprEngine {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn skip_reason(&self) -> super::Skip {
        match self.per_linktype.get(self.last).map(|e| &e.built) {
            Some(Ok(inner)) => inner.engine().skip_reason(),
            _ => super::Skip::Refused,
        }
    }

    #[inline]
    fn run(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        // Almost every packet has the last one's link type.
        if let Some(e) = self.per_linktype.get_mut(self.last) {
            if let (true, 1.., Ok(inner)) = (e.lt == packet.linktype, e.left, &mut e.built) {
                e.left -= 1;
                return inner.run(packet);
            }
        }
        self.run_other(packet)
    }

    fn prepare(&mut self, linktype: LinkType) -> Result<(), EngineError> {
        let at = self.built_for(linktype);
        match self.per_linktype.get(at).map(|e| &e.built) {
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
    /// [`Engine::run`] for a packet of another link type than the last,
    /// after a failure, or when its entry's count ran out: finds or builds
    /// its engine (the optimized one once the count ran out).
    #[cold]
    fn run_other(&mut self, packet: &PacketRef<'_>) -> Result<Option<Verdict>, EngineError> {
        let at = self.built_for(packet.linktype);
        let engine = self.kind.name();
        if self.per_linktype.get(at).is_some_and(|e| e.left == 0) {
            if !self.per_linktype[at].optimized {
                // It builds whenever the unoptimized program did; should
                // it not, that one stays.
                if let Ok(inner) = self.build(packet.linktype, true) {
                    self.per_linktype[at].built = Ok(inner);
                }
            }
            let e = &mut self.per_linktype[at];
            (e.left, e.optimized) = (u32::MAX, true);
        }
        match self.per_linktype.get_mut(at).map(|e| &mut e.built) {
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
        match self.per_linktype.iter().position(|e| e.lt == lt) {
            Some(i) => i,
            None => {
                let tiered = self.tiered();
                let built = self.build(lt, !tiered);
                self.per_linktype.push(Entry {
                    lt,
                    built,
                    // This packet is the first.
                    left: if tiered { OPTIMIZE_AFTER - 1 } else { u32::MAX },
                    optimized: !tiered,
                });
                self.per_linktype.len() - 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_programs::cbpf::interp;

    /// Frames of a few kinds with varied bytes, some cut short.
    fn frames(n: usize) -> Vec<Vec<u8>> {
        let mut rng = e2e::rng::Rng(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next_u64();
        (0..n)
            .map(|_| {
                let r = next();
                let mut f = vec![0u8; 14 + 20 + 20];
                f[12..14].copy_from_slice(if r % 4 == 0 {
                    &[0x08, 0x06]
                } else {
                    &[0x08, 0x00]
                });
                f[14] = 0x45;
                f[23] = [6u8, 17, 1][(r >> 8) as usize % 3];
                f[26..34].copy_from_slice(&next().to_be_bytes());
                f[34..38].copy_from_slice(&next().to_be_bytes()[..4]);
                // Ports 0-127, so that `port 80` and `portrange` hit.
                f[35] &= 0x7f;
                f[37] &= 0x7f;
                f.truncate(14 + (r >> 16) as usize % 41);
                f
            })
            .collect()
    }

    /// An engine starts on the unoptimized program, is rebuilt on the
    /// optimized one after [`OPTIMIZE_AFTER`] packets, and returns what
    /// both programs return on every packet, cut or whole.
    #[test]
    fn the_optimized_program_takes_over_with_the_same_verdicts() {
        let expr = "tcp dst port 80 or (udp and src portrange 10-60) or not ip";
        let program = crate::program::from_expression(expr, "-e");
        let mut engine = ExprEngine::new(EngineKind::Cbpf, &program, expr);
        let compile = |optimize| {
            let options = codegen::Options {
                optimize,
                ..codegen::Options::new(Dlt::from_dlt(1).unwrap())
            };
            interp::Program::new(&codegen::compile(expr, &options).unwrap()).unwrap()
        };
        let (plain, optimized) = (compile(false), compile(true));
        let frames = frames(3 * OPTIMIZE_AFTER as usize);
        let mut matched = 0;
        for (i, f) in frames.iter().enumerate() {
            let packet = PacketRef {
                data: f,
                wire_len: 54,
                linktype: LinkType::ETHERNET,
            };
            let v = engine.run(&packet).unwrap().unwrap();
            let want = plain.run(f, 54);
            assert_eq!((v.ret, optimized.run(f, 54)), (want, want), "packet {i}");
            matched += usize::from(v.matched);
            let e = &engine.per_linktype[0];
            assert_eq!(e.optimized, i >= OPTIMIZE_AFTER as usize, "packet {i}");
        }
        assert!(matched > 100 && matched < frames.len() - 100, "{matched}");
    }
}
