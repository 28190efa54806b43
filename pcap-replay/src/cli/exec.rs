//! The run: programs and engines decided once, then every capture read
//! once, every program run on each packet as it is read (captures several
//! at a time, rayon), with results and verdict lines kept in the order
//! given on the command line: program by program, capture by capture.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cli_output::{check_not_an_input, Output, Sink};
use rayon::prelude::*;

use super::progress::{self, Progress};
use super::{parse_linktype, Cli, Outcome};
use crate::engine::{self, Engine, EngineKind, LeftOut};
use crate::file_reader::FileReader;
use crate::program::{self, Code, Program};
use crate::replay::{replay_many, FileResult, Job, Names, ReplayOptions};
use crate::report::{render_table, JsonReport, NdjsonVerdicts, PcapWriter, Tee, VerdictSink};

/// One program's engines. Each capture borrows a set from the pool and
/// gives it back, so parallel captures never share an engine and an
/// expression's per-link-type compilations are reused.
struct Planned {
    program: Program,
    /// Shared by its results.
    names: Names,
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
    // Asked once for all programs, planned in parallel (each parses its
    // expression).
    let probed: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    programs
        .into_par_iter()
        .map(|program| {
            let mut kernel = || probed.get_or_init(engine::kernel_probe).clone();
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
                names: Names::of(&program),
                program,
                kinds: plan.kinds,
                left_out: plan.left_out,
                pool: Mutex::new(vec![plan.engines]),
                parse_error,
            })
        })
        .collect::<Vec<Result<Planned, String>>>()
        .into_iter()
        // The first program's error, as in order.
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
    let stdin_uses = cli.captures.iter().filter(|c| c.as_os_str() == "-").count();
    if stdin_uses > 1 {
        return Err("standard input (-) can be read only once: give it once".into());
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
    let captures = cli.captures.len();
    let shared = Shared {
        options,
        writer: writer.as_ref(),
        progress: &progress,
        spare_core: captures < rayon::current_num_threads(),
    };
    // One pass per capture, each filling its programs' results where the
    // report has them (program by program, capture by capture): nothing
    // is moved between lists afterwards, and the list is made (its pages
    // touched) in parallel. For many programs over many small captures,
    // building it capture by capture and reordering it was a tenth of the
    // run.
    let programs = planned.len();
    let mut results: Vec<FileResult> = Vec::new();
    (0..programs * captures)
        .into_par_iter()
        .map(|_| FileResult::default())
        .collect_into_vec(&mut results);
    let mut rows: Vec<_> = results
        .chunks_mut(captures.max(1))
        .map(<[_]>::iter_mut)
        .collect();
    let columns: Vec<Vec<&mut FileResult>> = (0..captures)
        .map(|_| rows.iter_mut().filter_map(Iterator::next).collect())
        .collect();
    let outcomes: Vec<Result<(), String>> = columns
        .into_par_iter()
        .zip(cli.captures.par_iter())
        .enumerate()
        .map(|(c, (mut column, capture))| {
            let parts: Vec<Option<PathBuf>> = (0..programs)
                .map(|p| parts.path(p * captures + c))
                .collect();
            replay_capture(&planned, capture, &parts, &shared, &mut column)
        })
        .collect();
    let failed: Vec<bool> = outcomes.iter().map(Result::is_err).collect();
    let mut fatal = outcomes.into_iter().find_map(Result::err);
    if fatal.is_some() {
        // A failed capture's results are not reported.
        results = (results.into_iter().enumerate())
            .filter(|(j, _)| !failed[j % captures])
            .map(|(_, r)| r)
            .collect();
    }
    if let Some(out) = verdicts.as_mut() {
        for i in 0..results.len() {
            if let Some(part) = parts.path(i) {
                if let Err(e) = parts.append(&part, out) {
                    fatal.get_or_insert(format!("writing verdicts: {e}"));
                }
            }
        }
    }
    if cli.json || cli.quiet || cli.count {
        // Many programs over many captures may make many errors: formatted
        // in parallel, written at once, in order.
        let text = lines(&results, |out, r| match &r.error {
            Some(e) => writeln!(out, "pcap-replay: error: {e}"),
            None => Ok(()),
        });
        let mut errors = io::stderr().lock();
        let _ = text.iter().try_for_each(|t| errors.write_all(t));
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

/// Every program over one capture, read once, into `results` (a result
/// per program). `Err` only for a failed output (verdict part file,
/// `-w`): those stop the run. `parts`: each program's verdict part file.
fn replay_capture(
    planned: &[Planned],
    path: &Path,
    parts: &[Option<PathBuf>],
    shared: &Shared<'_>,
    results: &mut [&mut FileResult],
) -> Result<(), String> {
    let Shared {
        options,
        writer,
        progress,
        spare_core,
    } = *shared;
    let name = path.display().to_string();
    let file: Arc<str> = name.as_str().into();
    let mut sets: Vec<Vec<Box<dyn Engine>>> = planned
        .iter()
        .map(Planned::take)
        .collect::<Result<_, _>>()?;
    for ((p, engines), r) in planned.iter().zip(&sets).zip(results.iter_mut()) {
        **r = FileResult::named(&file, &p.names, engines, options.linktype);
        r.error = p.parse_error.clone();
    }
    let source = if name == "-" {
        Some(Source::Stream(BufReader::with_capacity(
            STREAM_BUFFER,
            Box::new(io::stdin().lock()),
        )))
    } else {
        match File::open(path) {
            Ok(f) => Some(match FileReader::new(f, spare_core) {
                Ok(r) => Source::File(r),
                Err(f) => Source::Stream(BufReader::with_capacity(STREAM_BUFFER, Box::new(f))),
            }),
            Err(e) => {
                // Reported as a capture that yielded nothing, so the other
                // captures still run and the report names this one.
                for r in results.iter_mut().filter(|r| r.error.is_none()) {
                    r.error = Some(format!("{name}: cannot open: {e}"));
                }
                None
            }
        }
    };
    let mut part_sinks: Vec<Option<NdjsonVerdicts<BufWriter<File>>>> = parts
        .iter()
        .map(|part| match part {
            Some(p) => File::create(p)
                .map(|f| Some(NdjsonVerdicts::new(BufWriter::new(f))))
                .map_err(|e| format!("{}: cannot create: {e}", p.display())),
            None => Ok(None),
        })
        .collect::<Result<_, _>>()?;
    if let Some(source) = source {
        let mut guard = match writer {
            Some(w) => Some(
                w.lock()
                    .map_err(|_| "-w: a writer thread panicked".to_string())?,
            ),
            None => None,
        };
        // `-w` takes one program: the first's sink, beside its verdicts.
        let mut tee;
        let mut sinks: Vec<Option<&mut dyn VerdictSink>> = Vec::with_capacity(planned.len());
        let mut rest = part_sinks.iter_mut();
        let first: Option<&mut dyn VerdictSink> =
            match (rest.next().and_then(Option::as_mut), guard.as_deref_mut()) {
                (Some(p), Some(w)) => {
                    tee = Tee(p, w);
                    Some(&mut tee)
                }
                (Some(p), None) => Some(p),
                (None, Some(w)) => Some(w),
                (None, None) => None,
            };
        sinks.push(first);
        sinks.extend(rest.map(|p| p.as_mut().map(|p| p as &mut dyn VerdictSink)));
        let mut jobs: Vec<Job<'_, '_>> = Vec::with_capacity(planned.len());
        let mut slots = Vec::with_capacity(planned.len());
        for (k, ((p, engines), sink)) in planned.iter().zip(&mut sets).zip(sinks).enumerate() {
            if p.parse_error.is_none() && results[k].error.is_none() {
                jobs.push(Job {
                    program: &p.program,
                    engines,
                    sink,
                    result: std::mem::take(results[k]),
                });
                slots.push(k);
            }
        }
        match source {
            Source::File(r) => {
                let len = Some(r.len());
                let reader = progress.track(&name, len, r);
                replay_many(&name, reader, &mut jobs, options)
            }
            Source::Stream(s) => {
                let reader = progress.track(&name, None, s);
                replay_many(&name, reader, &mut jobs, options)
            }
        }
        .map_err(|e| e.to_string())?;
        for (job, k) in jobs.into_iter().zip(slots) {
            *results[k] = job.result;
        }
    }
    for s in part_sinks.iter_mut().flatten() {
        s.finish().map_err(|e| format!("writing verdicts: {e}"))?;
    }
    for ((p, set), r) in planned.iter().zip(sets).zip(results.iter_mut()) {
        r.left_out = p.left_out.clone();
        p.give_back(set);
    }
    Ok(())
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
        Box::new(io::BufWriter::new(io::stderr().lock()))
    } else {
        Box::new(io::BufWriter::new(io::stdout().lock()))
    };
    let written = if cli.json {
        serde_json::to_writer(&mut out, &JsonReport::new(&outcome.results))
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
    } else if cli.count {
        lines(&outcome.results, |out, r| {
            writeln!(out, "{}", r.reference_matched())
        })
        .iter()
        .try_for_each(|t| out.write_all(t))
    } else {
        out.write_all(render_table(&outcome.results).as_bytes())
    };
    match written.and_then(|()| out.flush()) {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `line`'s text for each result, in order: formatted in parallel in
/// chunks (a run of many programs over many captures has thousands).
fn lines(
    results: &[FileResult],
    line: impl Fn(&mut Vec<u8>, &FileResult) -> io::Result<()> + Sync,
) -> Vec<Vec<u8>> {
    results
        .par_chunks(1024)
        .map(|chunk| {
            let mut out = Vec::new();
            for r in chunk {
                // Writing into memory cannot fail.
                let _ = line(&mut out, r);
            }
            out
        })
        .collect()
}

pub(super) fn dedup_in_order(kinds: &mut Vec<EngineKind>) {
    let mut seen = Vec::new();
    kinds.retain(|k| {
        let new = !seen.contains(k);
        seen.push(*k);
        new
    });
}
