//! The run: programs and engines decided once, then every (program,
//! capture) pair replayed, several at a time (rayon), with results and
//! verdict lines kept in the order given on the command line.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cli_output::{check_not_an_input, Output, Sink};
use rayon::prelude::*;

use super::progress::{self, Progress};
use super::{parse_linktype, Cli, Outcome};
use crate::engine::{self, Engine, EngineKind, LeftOut};
use crate::file_reader::FileReader;
use crate::program::{self, Code, Program};
use crate::replay::{replay_buffered, FileResult, ReplayOptions};
use crate::report::{
    render_table, JsonReport, NdjsonVerdicts, NoVerdicts, PcapWriter, Tee, VerdictSink,
};

/// One program's engines. Each capture borrows a set from the pool and
/// gives it back, so parallel captures never share an engine and an
/// expression's per-link-type compilations are reused.
struct Planned {
    program: Program,
    kinds: Vec<EngineKind>,
    left_out: Vec<LeftOut>,
    pool: Mutex<Vec<Vec<Box<dyn Engine>>>>,
    /// An expression that does not parse: every capture gets this error.
    parse_error: Option<String>,
}

impl Planned {
    fn take(&self) -> Result<Vec<Box<dyn Engine>>, String> {
        if let Some(set) = self.pool.lock().ok().and_then(|mut p| p.pop()) {
            return Ok(set);
        }
        self.kinds
            .iter()
            .map(|k| k.build(&self.program).map_err(|e| e.to_string()))
            .collect()
    }

    fn give_back(&self, set: Vec<Box<dyn Engine>>) {
        if let Ok(mut p) = self.pool.lock() {
            p.push(set);
        }
    }
}

fn load_programs(cli: &Cli) -> Result<Vec<Program>, String> {
    let mut programs: Vec<Program> = cli
        .cbpf
        .iter()
        .map(|p| program::load_cbpf(p))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if let Some(path) = &cli.ebpf {
        programs.push(program::load_ebpf(path, cli.section.as_deref()).map_err(|e| e.to_string())?);
    }
    programs.extend(
        cli.expression
            .iter()
            .map(|e| program::from_expression(e, "-e")),
    );
    for f in &cli.expr_file {
        programs.extend(program::load_expr_file(f).map_err(|e| e.to_string())?);
    }
    Ok(programs)
}

/// Decides every program's engines. With `-y`, every packet has that
/// link type, so an expression is compiled for it here: one that does not
/// compile is an error before any capture is read.
fn plan_all(
    cli: &Cli,
    programs: Vec<Program>,
    linktype: Option<capfile::LinkType>,
) -> Result<Vec<Planned>, String> {
    let requested = cli.engines.clone().map(|mut k| {
        dedup_in_order(&mut k);
        k
    });
    let mut probed: Option<Result<(), String>> = None;
    let mut kernel = || probed.get_or_insert_with(engine::kernel_probe).clone();
    programs
        .into_iter()
        .map(|program| {
            let mut plan = engine::plan(&program, requested.as_deref(), &mut kernel)
                .map_err(|e| e.to_string())?;
            let parse_error = match &program.code {
                Code::Expr(e) => filter_programs::expr::parse(e)
                    .err()
                    .map(|err| format!("{}: {}", program.label, err.render())),
                _ => None,
            };
            if let (Some(lt), None) = (linktype, &parse_error) {
                for e in plan.engines.iter_mut() {
                    e.prepare(lt)
                        .map_err(|e| format!("{}: {e}", program.label))?;
                }
            }
            Ok(Planned {
                program,
                kinds: plan.kinds,
                left_out: plan.left_out,
                pool: Mutex::new(vec![plan.engines]),
                parse_error,
            })
        })
        .collect()
}

/// Everything but the exit code. `Err` is a fatal error (bad program,
/// bad arguments, unwritable output), reported before or instead of any
/// result; capture errors are results.
pub fn execute(cli: &Cli) -> Result<Outcome, String> {
    let linktype = match &cli.linktype {
        None => None,
        Some(s) => Some(parse_linktype(s).ok_or_else(|| format!("-y {s}: unknown link type"))?),
    };
    let programs = load_programs(cli)?;
    let stdin_uses = cli.captures.iter().filter(|c| c.as_os_str() == "-").count() * programs.len();
    if stdin_uses > 1 {
        return Err(
            "standard input (-) can be read only once: give it once, with one program".into(),
        );
    }
    if cli.write.is_some() && (programs.len() != 1 || cli.captures.len() != 1) {
        return Err("-w takes one program and one capture, as tcpdump -r IN -w OUT does".into());
    }
    let planned = plan_all(cli, programs, linktype)?;
    for p in &planned {
        if let Some(e) = &p.parse_error {
            eprintln!("pcap-replay: error: {e}");
        }
    }
    let options = ReplayOptions {
        linktype,
        capture: capfile::Options {
            // Read as libpcap reads: a classic pcap record over the snap
            // length is cut to it (issue 16).
            strict_snaplen: false,
            known_linktypes_only: linktype.is_none(),
        },
        max_mismatches: cli.max_mismatches,
        trace: cli.trace,
    };
    let mut verdicts = match &cli.verdicts {
        None => None,
        Some(path) => {
            let f = File::create(path)
                .map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
            Some(BufWriter::new(f))
        }
    };
    let (output, writer) = match &cli.write {
        None => (None, None),
        Some(path) => {
            check_not_an_input(path, &cli.captures).map_err(|e| e.to_string())?;
            let (out, sink) = Output::create(path).map_err(|e| e.to_string())?;
            (Some(out), Some(Mutex::new(PcapWriter::new(sink))))
        }
    };
    let parts = PartFiles::new(cli.verdicts.as_deref());
    let progress = Progress::new(progress::wanted(
        io::stderr().is_terminal(),
        cli.quiet,
        cli.json,
        cli.count,
    ));
    let tasks: Vec<(usize, &Path)> = (0..planned.len())
        .flat_map(|p| cli.captures.iter().map(move |c| (p, c.as_path())))
        .collect();
    let shared = Shared {
        options,
        writer: writer.as_ref(),
        progress: &progress,
        spare_core: tasks.len() < rayon::current_num_threads(),
    };
    let ran: Vec<Result<FileResult, String>> = tasks
        .par_iter()
        .enumerate()
        .map(|(i, (p, capture))| {
            let part = parts.path(i);
            run_task(&planned[*p], capture, part.as_deref(), &shared)
        })
        .collect();
    let mut results = Vec::with_capacity(ran.len());
    let mut fatal = None;
    for (i, r) in ran.into_iter().enumerate() {
        if let (Some(out), Some(part)) = (verdicts.as_mut(), parts.path(i)) {
            if let Err(e) = parts.append(&part, out) {
                fatal.get_or_insert(format!("writing verdicts: {e}"));
            }
        }
        match r {
            Ok(result) => {
                if let Some(e) = &result.error {
                    if cli.json || cli.quiet || cli.count {
                        eprintln!("pcap-replay: error: {e}");
                    }
                }
                results.push(result);
            }
            Err(e) => {
                fatal.get_or_insert(e);
            }
        }
    }
    parts.remove();
    if let Some(e) = fatal {
        return Err(e);
    }
    if let Some(out) = verdicts.as_mut() {
        out.flush().map_err(|e| format!("writing verdicts: {e}"))?;
    }
    if let (Some(w), Some(out)) = (writer, output) {
        let mut w = w
            .into_inner()
            .map_err(|_| "-w: a writer thread panicked".to_string())?;
        w.finish().map_err(|e| format!("-w: {e}"))?;
        out.commit(w.into_inner()).map_err(|e| e.to_string())?;
    }
    let outcome = Outcome {
        results,
        interrupted: cli_output::stop::requested(),
    };
    print_report(cli, &outcome).map_err(|e| format!("writing the report: {e}"))?;
    Ok(outcome)
}

/// What every task of a run shares.
struct Shared<'a> {
    options: ReplayOptions,
    writer: Option<&'a Mutex<PcapWriter<Sink>>>,
    progress: &'a Progress,
    /// Fewer tasks than threads: a core would idle beside each task, so
    /// large captures are read ahead on it (see `FileReader::new`).
    spare_core: bool,
}

/// One program over one capture. `Err` only for a failed output (verdict
/// part file, `-w`): those stop the run.
fn run_task(
    planned: &Planned,
    path: &Path,
    part: Option<&Path>,
    shared: &Shared<'_>,
) -> Result<FileResult, String> {
    let options = shared.options;
    let name = path.display().to_string();
    let mut engines = planned.take()?;
    let mut result = match &planned.parse_error {
        Some(e) => {
            let mut r = FileResult::empty(&name, &planned.program, &engines, options.linktype);
            r.error = Some(e.clone());
            r
        }
        None => replay_path(path, &planned.program, &mut engines, part, shared)?,
    };
    result.left_out = planned.left_out.clone();
    planned.give_back(engines);
    Ok(result)
}

fn replay_path(
    path: &Path,
    program: &Program,
    engines: &mut [Box<dyn Engine>],
    part: Option<&Path>,
    shared: &Shared<'_>,
) -> Result<FileResult, String> {
    let Shared {
        options,
        writer,
        progress,
        spare_core,
    } = *shared;
    let name = path.display().to_string();
    let source = if name == "-" {
        Source::Stream(BufReader::with_capacity(
            STREAM_BUFFER,
            Box::new(io::stdin().lock()),
        ))
    } else {
        match File::open(path) {
            Ok(f) => match FileReader::new(f, spare_core) {
                Ok(r) => Source::File(r),
                Err(f) => Source::Stream(BufReader::with_capacity(STREAM_BUFFER, Box::new(f))),
            },
            Err(e) => {
                // Reported as a capture that yielded nothing, so the other
                // captures still run and the report names this one.
                let mut result = FileResult::empty(&name, program, engines, options.linktype);
                result.error = Some(format!("{name}: cannot open: {e}"));
                return Ok(result);
            }
        }
    };
    let mut none = NoVerdicts;
    let mut part_sink = match part {
        Some(p) => {
            let f = File::create(p).map_err(|e| format!("{}: cannot create: {e}", p.display()))?;
            Some(NdjsonVerdicts::new(BufWriter::new(f)))
        }
        None => None,
    };
    let mut guard = match writer {
        Some(w) => Some(
            w.lock()
                .map_err(|_| "-w: a writer thread panicked".to_string())?,
        ),
        None => None,
    };
    let wanted = part_sink.is_some() || guard.is_some();
    let first: &mut dyn VerdictSink = match part_sink.as_mut() {
        Some(s) => s,
        None => &mut none,
    };
    let mut none2 = NoVerdicts;
    let second: &mut dyn VerdictSink = match guard.as_deref_mut() {
        Some(w) => w,
        None => &mut none2,
    };
    let mut tee = Tee(first, second);
    // Without a sink, packets are never copied out of the reader's buffer.
    let sink: Option<&mut dyn VerdictSink> = if wanted { Some(&mut tee) } else { None };
    let result = match source {
        Source::File(r) => {
            let len = Some(r.len());
            let reader = progress.track(&name, len, r);
            replay_buffered(&name, reader, program, engines, options, sink)
        }
        Source::Stream(s) => {
            let reader = progress.track(&name, None, s);
            replay_buffered(&name, reader, program, engines, options, sink)
        }
    }
    .map_err(|e| e.to_string())?;
    if let Some(s) = part_sink.as_mut() {
        s.finish().map_err(|e| format!("writing verdicts: {e}"))?;
    }
    Ok(result)
}

/// Read size for standard input, pipes and devices.
const STREAM_BUFFER: usize = 1 << 16;

/// Where a capture's bytes come from: a regular file through a
/// [`FileReader`] (records lent from its buffer, a file that shrinks an
/// error), anything else (standard input, a pipe, a device) through a
/// `BufReader`.
enum Source {
    File(FileReader),
    Stream(BufReader<Box<dyn io::Read>>),
}

/// Per-task verdict files, concatenated in task order once all have run,
/// so that `--verdicts` keeps the command line's order while captures run
/// in parallel, without holding any verdict in memory.
struct PartFiles {
    dir: Option<PathBuf>,
}

impl PartFiles {
    fn new(verdicts: Option<&Path>) -> PartFiles {
        let dir = verdicts.map(|v| {
            let parent = v
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let stem = v
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            parent.join(format!(".{stem}.parts-{}", std::process::id()))
        });
        if let Some(d) = &dir {
            let _ = fs::create_dir_all(d);
        }
        PartFiles { dir }
    }

    fn path(&self, task: usize) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{task}.ndjson")))
    }

    fn append(&self, part: &Path, out: &mut impl Write) -> io::Result<()> {
        match File::open(part) {
            Ok(mut f) => {
                io::copy(&mut f, out)?;
                fs::remove_file(part)
            }
            // A task that failed before writing anything.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn remove(&self) {
        if let Some(d) = &self.dir {
            let _ = fs::remove_dir_all(d);
        }
    }
}

fn print_report(cli: &Cli, outcome: &Outcome) -> io::Result<()> {
    if cli.quiet {
        return Ok(());
    }
    // With `-w -` the capture owns standard output; the report goes to
    // standard error.
    let mut out: Box<dyn Write> = if cli.write.as_deref() == Some(Path::new("-")) {
        Box::new(io::stderr().lock())
    } else {
        Box::new(io::stdout().lock())
    };
    let written = if cli.json {
        serde_json::to_writer(&mut out, &JsonReport::new(&outcome.results))
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
    } else if cli.count {
        outcome
            .results
            .iter()
            .try_for_each(|r| writeln!(out, "{}", r.reference_matched()))
    } else {
        out.write_all(render_table(&outcome.results).as_bytes())
    };
    match written.and_then(|()| out.flush()) {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

pub(super) fn dedup_in_order(kinds: &mut Vec<EngineKind>) {
    let mut seen = Vec::new();
    kinds.retain(|k| {
        let new = !seen.contains(k);
        seen.push(*k);
        new
    });
}
