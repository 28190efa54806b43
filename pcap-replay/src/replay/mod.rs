//! Programs over one capture, in every engine, packet by packet: one pass
//! over the capture for any number of programs ([`replay_many`]), each
//! with its own result, engines and verdict sink.

mod sample;

use std::sync::Arc;

use std::io::{BufRead, BufReader, Read};
use std::time::Instant;

use serde::Serialize;

use crate::engine::{Engine, LeftOut, PacketRef, Verdict};
use crate::program::Program;
use crate::report::{EngineMap, Matched, VerdictSink};
use capfile::{LinkType, Packet, PacketView};

pub use sample::{Load, Mismatch, Tracer};

/// How many disagreeing packets a result keeps for the report by default.
pub const MISMATCH_SAMPLES: usize = 10;

/// The outcome of one program over one capture. Serializes as one entry
/// of the JSON report's `results`, in this field order; fields after
/// `error` were added later and some appear only when non-empty.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FileResult {
    /// Shared by the results of one capture (and of one program below):
    /// a run makes one per program and capture.
    pub file: Arc<str>,
    pub expression: Option<Arc<str>>,
    pub program: Arc<str>,
    pub linktype: Option<LinkType>,
    pub packets: u64,
    pub engines: EngineMap<Matched>,
    pub mismatches: u64,
    /// Why reading (or an engine) stopped early. Packets before the fault
    /// are counted above.
    pub error: Option<String>,
    /// Wall-clock time of the replay.
    pub seconds: f64,
    /// Engines that did not run this program, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<LeftOut>,
    /// The first few disagreeing packets, explained.
    #[serde(rename = "mismatch_details", skip_serializing_if = "Vec::is_empty")]
    pub mismatch_samples: Vec<Mismatch>,
}

/// A program's label and expression, shared by its results.
#[derive(Clone, Debug)]
pub struct Names {
    pub label: Arc<str>,
    pub expression: Option<Arc<str>>,
}

impl Names {
    pub fn of(program: &Program) -> Names {
        Names {
            label: program.label.as_str().into(),
            expression: program.expression.as_deref().map(Arc::from),
        }
    }
}

impl FileResult {
    /// A result before any packet: every count zero.
    pub fn empty(
        file: &str,
        program: &Program,
        engines: &[Box<dyn Engine>],
        linktype: Option<LinkType>,
    ) -> FileResult {
        let names = Names::of(program);
        FileResult::named(&file.into(), &names, engines, linktype)
    }

    /// [`FileResult::empty`] with the names already shared.
    pub fn named(
        file: &Arc<str>,
        names: &Names,
        engines: &[Box<dyn Engine>],
        linktype: Option<LinkType>,
    ) -> FileResult {
        FileResult {
            file: file.clone(),
            expression: names.expression.clone(),
            program: names.label.clone(),
            linktype,
            packets: 0,
            engines: EngineMap(
                engines
                    .iter()
                    .map(|e| {
                        (
                            e.name(),
                            Matched {
                                matched: 0,
                                skipped: 0,
                                ..Default::default()
                            },
                        )
                    })
                    .collect(),
            ),
            mismatches: 0,
            error: None,
            seconds: 0.0,
            left_out: Vec::new(),
            mismatch_samples: Vec::new(),
        }
    }

    /// The reference engine's match count: libpcap when it ran, else our
    /// interpreter, else the first engine.
    pub fn reference_matched(&self) -> u64 {
        let find = |name: &str| {
            self.engines
                .0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, m)| m.matched)
        };
        find("libpcap")
            .or_else(|| find("cbpf"))
            .or_else(|| self.engines.0.first().map(|(_, m)| m.matched))
            .unwrap_or(0)
    }
}

/// Settings shared by every file of a run.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    /// Treat every packet as this link type, whatever the capture says.
    pub linktype: Option<LinkType>,
    pub capture: capfile::Options,
    /// How many disagreeing packets to explain.
    pub max_mismatches: usize,
    /// Record our interpreter's instruction trace for those packets.
    pub trace: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            linktype: None,
            capture: capfile::Options::default(),
            max_mismatches: MISMATCH_SAMPLES,
            trace: false,
        }
    }
}

/// What a sink learns about a capture once its header is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureInfo {
    pub linktype: Option<LinkType>,
    /// The header's snap length (0: none given).
    pub snaplen: u32,
    pub nanosecond: bool,
}

/// Replays `program` over the capture in `reader` (called `file` in
/// reports and errors) through `engines`, sending each packet's verdicts
/// to `sink`. Never fails: a capture error ends the file and is recorded
/// in the result; a sink error is returned for the caller to stop on.
pub fn replay<R: Read>(
    file: &str,
    reader: R,
    program: &Program,
    engines: &mut [Box<dyn Engine>],
    options: ReplayOptions,
    sink: &mut dyn VerdictSink,
) -> std::io::Result<FileResult> {
    let reader = BufReader::with_capacity(1 << 16, reader);
    replay_buffered(file, reader, program, engines, options, Some(sink))
}

/// [`replay`] over a reader that buffers itself (a
/// [`crate::file_reader::FileReader`], a `BufReader`), with the sink optional: without one, packets are
/// never copied out of the reader's buffer.
pub fn replay_buffered<R: BufRead>(
    file: &str,
    reader: R,
    program: &Program,
    engines: &mut [Box<dyn Engine>],
    options: ReplayOptions,
    sink: Option<&mut dyn VerdictSink>,
) -> std::io::Result<FileResult> {
    let mut jobs = [Job {
        result: FileResult::empty(file, program, engines, options.linktype),
        program,
        engines,
        sink,
    }];
    replay_many(file, reader, &mut jobs, options)?;
    let [job] = jobs;
    Ok(job.result)
}

/// One program's share of a pass over a capture: its engines, its verdict
/// sink (optional: without one, packets are never copied out of the
/// reader's buffer) and its result, filled in by [`replay_many`].
pub struct Job<'a, 's> {
    pub program: &'a Program,
    pub engines: &'a mut [Box<dyn Engine>],
    pub sink: Option<&'a mut (dyn VerdictSink + 's)>,
    pub result: FileResult,
}

/// Replays every job's program over the capture in `reader` (called
/// `file` in reports and errors), reading it once: each packet, as it is
/// read, goes through every program's engines in turn. A capture error
/// ends every job's file; an engine's failure ends only its own program's
/// (the others go on). A sink error is returned for the caller to stop on.
pub fn replay_many<R: BufRead>(
    file: &str,
    reader: R,
    jobs: &mut [Job<'_, '_>],
    options: ReplayOptions,
) -> std::io::Result<()> {
    let started = Instant::now();
    let outcome = replay_into(file, reader, jobs, options);
    let seconds = started.elapsed().as_secs_f64();
    for j in jobs.iter_mut() {
        j.result.seconds = seconds;
    }
    outcome
}

fn replay_into<R: BufRead>(
    file: &str,
    reader: R,
    jobs: &mut [Job<'_, '_>],
    options: ReplayOptions,
) -> std::io::Result<()> {
    let mut capture = match capfile::open_buffered(file.to_string(), reader, options.capture) {
        Ok(c) => c,
        Err(e) => {
            for j in jobs.iter_mut() {
                j.result.error = Some(e.to_string());
            }
            return Ok(());
        }
    };
    let mut runs = Vec::with_capacity(jobs.len());
    let mut results = Vec::with_capacity(jobs.len());
    let mut sinks = Vec::with_capacity(jobs.len());
    for j in jobs.iter_mut() {
        if j.result.linktype.is_none() {
            j.result.linktype = capture.linktype();
        }
        runs.push(Run::new(j.program, &mut *j.engines, options));
        results.push(&mut j.result);
        sinks.push(j.sink.as_deref_mut());
    }
    // Programs whose engine failed: their files ended there.
    let mut ended = vec![false; runs.len()];
    let mut live = runs.len();
    let mut started = false;
    // Once signalled, each unfinished result says so.
    let interrupted = |results: &mut [&mut FileResult], ended: &[bool], sig| {
        for (r, _) in results.iter_mut().zip(ended).filter(|(_, e)| !**e) {
            r.error = Some(format!(
                "{}: interrupted by {} after {} packet(s)",
                r.file,
                cli_output::stop::name(sig),
                r.packets
            ));
        }
    };
    let failed = |results: &mut [&mut FileResult], ended: &[bool], e: &capfile::CaptureError| {
        for (r, _) in results.iter_mut().zip(ended).filter(|(_, e)| !**e) {
            r.error = Some(e.to_string());
        }
    };
    // The first packet is copied out so that the header can be read after
    // it (pcapng's comes with its first interface block), and the sinks
    // start then.
    let mut first = blank_packet();
    if let Some(sig) = cli_output::stop::requested() {
        interrupted(&mut results, &ended, sig);
        return Ok(());
    }
    match capture.next_view() {
        None => {}
        Some(Err(e)) => {
            failed(&mut results, &ended, &e);
            return Ok(());
        }
        Some(Ok(packet)) => {
            packet.copy_into(&mut first);
            if let Some(lt) = options.linktype {
                first.linktype = lt;
            }
            let info = capture_info(&capture, options, Some(first.linktype));
            for s in sinks.iter_mut().flatten() {
                s.start(&info)?;
            }
            started = true;
            live = run_all(
                &mut runs,
                &mut ended,
                &mut results,
                &mut sinks,
                first.view(),
            )?;
        }
    }
    if started && live > 0 {
        // The rest lent in batches from the reader's buffer; for many
        // programs, copied into batches of our own and run program by
        // program (see `Batch`).
        let mut batch = (runs.len() >= Batch::PROGRAMS).then(Batch::default);
        let mut sink_error = None;
        let mut signal = None;
        let read = capture.for_each_view(|packet: PacketView<'_>| {
            if let Some(sig) = cli_output::stop::requested() {
                signal = Some(sig);
                return false;
            }
            let ran = match batch.as_mut() {
                None => run_all(&mut runs, &mut ended, &mut results, &mut sinks, packet),
                Some(b) => {
                    if b.push(&packet) {
                        return true;
                    }
                    b.run(&mut runs, &mut ended, &mut results, &mut sinks)
                }
            };
            match ran {
                Ok(n) => {
                    live = n;
                    live > 0
                }
                Err(e) => {
                    sink_error = Some(e);
                    false
                }
            }
        });
        // The packets read before the end, a capture error or a signal.
        if let (Some(b), None) = (batch.as_mut(), &sink_error) {
            if let Err(e) = b.run(&mut runs, &mut ended, &mut results, &mut sinks) {
                sink_error = Some(e);
            }
        }
        if let Some(e) = sink_error {
            return Err(e);
        }
        if let Some(sig) = signal {
            interrupted(&mut results, &ended, sig);
        }
        if let Err(e) = read {
            failed(&mut results, &ended, &e);
        }
        return Ok(());
    }
    if !started {
        // No packet, so no engine compiled the expression: compile it for
        // the capture's link type now, so that an error is still reported.
        let lt = options.linktype.or_else(|| capture.linktype());
        for (run, r) in runs.iter_mut().zip(results.iter_mut()) {
            if let (None, Some(lt)) = (&r.error, lt) {
                if let Some(err) = run.engines.iter_mut().find_map(|e| e.prepare(lt).err()) {
                    r.error = Some(format!("{}: {err}", r.file));
                }
            }
        }
        let info = capture_info(&capture, options, None);
        for s in sinks.iter_mut().flatten() {
            s.start(&info)?;
        }
    }
    Ok(())
}

/// Runs every program whose file has not ended on `packet`; a program
/// whose engine fails ends there. Returns how many are still running.
fn run_all(
    runs: &mut [Run<'_>],
    ended: &mut [bool],
    results: &mut [&mut FileResult],
    sinks: &mut [Option<&mut (dyn VerdictSink + '_)>],
    packet: PacketView<'_>,
) -> std::io::Result<usize> {
    for (k, run) in runs.iter_mut().enumerate() {
        if !ended[k] && !run.packet(results[k], packet, sinks[k].as_deref_mut())? {
            ended[k] = true;
        }
    }
    Ok(ended.iter().filter(|e| !**e).count())
}

/// Packets copied out of the reader to be run program by program. With
/// many programs, running each on every packet in turn reloads every
/// program's engines, result and interpreter code per packet; a batch
/// keeps one program's in cache over many packets. Each program still
/// sees its packets in order, so its result, sink and end are what a
/// packet-by-packet pass gives.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    packets: Vec<(PacketView<'static>, std::ops::Range<usize>)>,
}

impl Batch {
    /// Programs from which a pass batches: below, the copy costs more
    /// than the cache misses it saves.
    const PROGRAMS: usize = 8;
    /// Packets per batch: a small capture is one batch.
    const PACKETS: usize = 64;
    /// Bytes from which a batch is full however few its packets: large
    /// packets gain nothing from batching, and the copy stays bounded.
    const BYTES: usize = 1 << 20;

    /// Copies `packet` in; `true` while the batch is not full.
    fn push(&mut self, packet: &PacketView<'_>) -> bool {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(packet.data);
        let meta = PacketView {
            data: &[],
            ..*packet
        };
        self.packets.push((meta, at..self.bytes.len()));
        self.packets.len() < Self::PACKETS && self.bytes.len() < Self::BYTES
    }

    /// Runs every live program on the batch's packets, then empties it.
    /// Returns how many programs are still running.
    fn run(
        &mut self,
        runs: &mut [Run<'_>],
        ended: &mut [bool],
        results: &mut [&mut FileResult],
        sinks: &mut [Option<&mut (dyn VerdictSink + '_)>],
    ) -> std::io::Result<usize> {
        for (k, run) in runs.iter_mut().enumerate() {
            for (meta, range) in &self.packets {
                if ended[k] {
                    break;
                }
                let packet = PacketView {
                    data: &self.bytes[range.clone()],
                    ..*meta
                };
                if !run.packet(results[k], packet, sinks[k].as_deref_mut())? {
                    ended[k] = true;
                }
            }
        }
        self.bytes.clear();
        self.packets.clear();
        Ok(ended.iter().filter(|e| !**e).count())
    }
}

/// A pcapng file names its link type and snap length in its first
/// interface block, so sinks start at the first packet (or at the end).
fn capture_info<R: BufRead>(
    c: &capfile::CaptureReader<R>,
    options: ReplayOptions,
    lt: Option<LinkType>,
) -> CaptureInfo {
    CaptureInfo {
        linktype: options.linktype.or(lt).or_else(|| c.linktype()),
        snaplen: c.snaplen().unwrap_or(0),
        nanosecond: c.nanosecond(),
    }
}

fn blank_packet() -> Packet {
    Packet {
        index: 0,
        offset: 0,
        ts_ns: 0,
        data: Vec::new(),
        wire_len: 0,
        linktype: LinkType::ETHERNET,
    }
}

/// What running the engines on one packet after another needs.
struct Run<'e> {
    engines: &'e mut [Box<dyn Engine>],
    rets: Vec<(&'static str, Verdict)>,
    program: &'e Program,
    /// Built on the first mismatch it explains: most runs have none, and
    /// building it (for a classic program, an interpreter) for every
    /// program and capture cost more than the replay of a small capture.
    tracer: Option<Tracer>,
    options: ReplayOptions,
    /// Sinks take an owned packet: copied only for them, into one buffer.
    owned: Packet,
}

impl<'e> Run<'e> {
    fn new(
        program: &'e Program,
        engines: &'e mut [Box<dyn Engine>],
        options: ReplayOptions,
    ) -> Run<'e> {
        Run {
            rets: Vec::with_capacity(engines.len()),
            engines,
            program,
            tracer: None,
            options,
            owned: blank_packet(),
        }
    }

    /// Runs every engine on `packet`, compares their verdicts and hands
    /// them to the sink. `Ok(false)`: an engine failed, which the result
    /// records, and the file ends there.
    fn packet(
        &mut self,
        result: &mut FileResult,
        mut packet: PacketView<'_>,
        sink: Option<&mut (dyn VerdictSink + '_)>,
    ) -> std::io::Result<bool> {
        if let Some(lt) = self.options.linktype {
            packet.linktype = lt;
        }
        if result.linktype != Some(packet.linktype) {
            note_linktype(result, &packet);
        }
        if !self.run_engines(result, &packet) {
            return Ok(false);
        }
        result.packets += 1;
        // With one engine there is nothing to compare.
        if self.engines.len() > 1 {
            let (program, trace) = (self.program, self.options.trace);
            compare(
                result,
                &packet,
                &self.rets,
                self.options.max_mismatches,
                || {
                    self.tracer
                        .get_or_insert_with(|| Tracer::new(program, trace))
                },
            );
        }
        if let Some(s) = sink {
            packet.copy_into(&mut self.owned);
            s.verdict(result, &self.owned, &self.rets)?;
        }
        Ok(true)
    }

    /// Each engine's verdict into `rets` and its count; `false` when one
    /// fails.
    fn run_engines(&mut self, result: &mut FileResult, packet: &PacketView<'_>) -> bool {
        self.rets.clear();
        let view = PacketRef {
            data: packet.data,
            wire_len: packet.wire_len,
            linktype: packet.linktype,
        };
        // `result.engines` lists the engines (by name) in this order.
        let counts = result.engines.0.iter_mut();
        for (engine, (name, count)) in self.engines.iter_mut().zip(counts) {
            match engine.run(&view) {
                Ok(Some(v)) => {
                    count.matched += u64::from(v.matched);
                    self.rets.push((*name, v));
                }
                Ok(None) => {
                    count.skipped += 1;
                    count.skipped_reasons.add(engine.skip_reason());
                }
                Err(e) => {
                    result.error = Some(format!("{}: packet {}: {e}", result.file, packet.index));
                    return false;
                }
            }
        }
        true
    }
}

/// The result's link type is the first packet's. capfile ends a pcapng
/// file at an interface of another link type, as libpcap does, so a
/// second one means a reader bug: worth a warning, since one cBPF program
/// assumes one layout.
fn note_linktype(result: &mut FileResult, packet: &PacketView<'_>) {
    match result.linktype {
        None => result.linktype = Some(packet.linktype),
        Some(lt) if lt != packet.linktype => {
            tracing::warn!(
                file = &*result.file,
                packet = packet.index,
                "link type {} differs from the file's first ({lt})",
                packet.linktype
            );
        }
        Some(_) => {}
    }
}

/// Counts and explains a packet on which the engines disagree.
fn compare<'t>(
    result: &mut FileResult,
    packet: &PacketView<'_>,
    rets: &[(&'static str, Verdict)],
    max_samples: usize,
    tracer: impl FnOnce() -> &'t mut Tracer,
) {
    let first = rets.first().map(|(_, v)| v.matched);
    if rets.iter().any(|(_, v)| Some(v.matched) != first) {
        result.mismatches += 1;
        tracing::debug!(
            file = &*result.file,
            packet = packet.index,
            ?rets,
            "engines disagree"
        );
        if result.mismatch_samples.len() < max_samples {
            let mut owned = Packet {
                index: 0,
                offset: 0,
                ts_ns: 0,
                data: Vec::new(),
                wire_len: 0,
                linktype: packet.linktype,
            };
            packet.copy_into(&mut owned);
            result.mismatch_samples.push(tracer().explain(&owned, rets));
        }
    }
}

#[cfg(test)]
mod tests;
