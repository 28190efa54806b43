//! What a run prints: the human table, the JSON summary, and the
//! per-packet verdict lines.

mod mismatch;
mod table;
mod write;

use crate::engine::{Skip, Verdict};
use crate::replay::CaptureInfo;
use capfile::Packet;
use std::io::Write;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::replay::FileResult;

pub use mismatch::render_mismatch;
pub use table::render_table;
pub use write::PcapWriter;

/// A map from engine name to a value, serialized in engine order (the
/// order given on the command line) rather than sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineMap<T>(pub Vec<(&'static str, T)>);

impl<T> Default for EngineMap<T> {
    fn default() -> Self {
        EngineMap(Vec::new())
    }
}

impl<T: Serialize> Serialize for EngineMap<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, v) in &self.0 {
            map.serialize_entry(name, v)?;
        }
        map.end()
    }
}

/// One engine's count in a result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Matched {
    pub matched: u64,
    /// Packets this engine could not run (a kernel test run takes only
    /// whole Ethernet frames that fit a page); left out of the comparison.
    /// Present only when non-zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped: u64,
    /// `skipped` by reason, as `{"runt": 2, "too_large": 1}`; present
    /// only when something was skipped.
    #[serde(skip_serializing_if = "SkipCounts::is_empty")]
    pub skipped_reasons: SkipCounts,
}

/// Skipped packets counted by [`Skip`] reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkipCounts([u64; Skip::ALL.len()]);

impl SkipCounts {
    pub fn add(&mut self, why: Skip) {
        let i = Skip::ALL.iter().position(|s| *s == why).unwrap_or(0);
        self.0[i] += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|n| *n == 0)
    }

    /// The reasons with a count, in [`Skip::ALL`]'s order.
    pub fn iter(&self) -> impl Iterator<Item = (Skip, u64)> + '_ {
        Skip::ALL
            .iter()
            .zip(self.0)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (*s, n))
    }
}

impl Serialize for SkipCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (why, n) in self.iter() {
            map.serialize_entry(why.key(), &n)?;
        }
        map.end()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The `--json` document.
#[derive(Debug, serde::Serialize)]
pub struct JsonReport<'a> {
    pub results: &'a [FileResult],
    /// No engine disagreed with another on any packet.
    pub agree: bool,
}

impl<'a> JsonReport<'a> {
    pub fn new(results: &'a [FileResult]) -> JsonReport<'a> {
        JsonReport {
            results,
            agree: results.iter().all(|r| r.mismatches == 0),
        }
    }
}

/// Receives each packet's verdicts as the replay computes them.
pub trait VerdictSink {
    /// Called once the capture's header is read, before any packet.
    fn start(&mut self, _info: &CaptureInfo) -> std::io::Result<()> {
        Ok(())
    }

    fn verdict(
        &mut self,
        result: &FileResult,
        packet: &Packet,
        rets: &[(&'static str, Verdict)],
    ) -> std::io::Result<()>;

    /// Flushes what is buffered; called once after the last packet.
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Discards verdicts.
pub struct NoVerdicts;

impl VerdictSink for NoVerdicts {
    fn verdict(
        &mut self,
        _: &FileResult,
        _: &Packet,
        _: &[(&'static str, Verdict)],
    ) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every call to both sinks.
pub struct Tee<'a>(pub &'a mut dyn VerdictSink, pub &'a mut dyn VerdictSink);

impl VerdictSink for Tee<'_> {
    fn start(&mut self, info: &CaptureInfo) -> std::io::Result<()> {
        self.0.start(info)?;
        self.1.start(info)
    }

    fn verdict(
        &mut self,
        result: &FileResult,
        packet: &Packet,
        rets: &[(&'static str, Verdict)],
    ) -> std::io::Result<()> {
        self.0.verdict(result, packet, rets)?;
        self.1.verdict(result, packet, rets)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.0.finish()?;
        self.1.finish()
    }
}

/// Writes one JSON object per packet and program (`--verdicts`).
pub struct NdjsonVerdicts<W: Write> {
    out: W,
}

#[derive(serde::Serialize)]
struct VerdictLine<'a> {
    file: &'a str,
    expression: Option<&'a str>,
    program: &'a str,
    index: u64,
    #[serde(rename = "match")]
    matches: EngineMap<bool>,
    ret: EngineMap<u32>,
}

impl<W: Write> NdjsonVerdicts<W> {
    pub fn new(out: W) -> NdjsonVerdicts<W> {
        NdjsonVerdicts { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> VerdictSink for NdjsonVerdicts<W> {
    fn verdict(
        &mut self,
        result: &FileResult,
        packet: &Packet,
        rets: &[(&'static str, Verdict)],
    ) -> std::io::Result<()> {
        let index = packet.index;
        let line = VerdictLine {
            file: &result.file,
            expression: result.expression.as_deref(),
            program: &result.program,
            index,
            matches: EngineMap(rets.iter().map(|(n, v)| (*n, v.matched)).collect()),
            ret: EngineMap(rets.iter().map(|(n, v)| (*n, v.ret)).collect()),
        };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod tests_support {
    use crate::replay::FileResult;

    /// A result with no packets, for sinks that only pass it along.
    pub fn result() -> FileResult {
        let program = crate::program::from_expression("ip", "-e");
        FileResult::empty("a.pcap", &program, &[], None)
    }
}
