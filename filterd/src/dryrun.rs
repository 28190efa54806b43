//! `filterd test`: a config's ruleset over capture files, packet by packet.
//!
//! Each file gets fresh counters. The program run is the compiled XDP
//! program itself in our VM (`ruleset::dryrun`), which checks itself
//! against the rules taken one by one; with a [`LoadedRuleset`] the kernel
//! runs every packet too and must return the same action.
//!
//! Captures are read with `capfile`, as pcap-replay reads them; where a
//! file holds what an XDP program never sees (another link type), reading
//! stops as libpcap's reader stopped before.

use std::fs::File;
use std::path::Path;

use capfile::LinkType;

use filter_programs::ruleset::compile::Compiled;
use filter_programs::ruleset::dryrun::{Counter, DryRun};
use filter_programs::ruleset::{Outcome, Rule, Verdict};
use serde::Serialize;

use crate::ruleset::LoadedRuleset;

#[derive(Debug, Serialize)]
pub struct RuleCount {
    pub name: String,
    pub action: &'static str,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct PacketVerdict {
    pub index: u64,
    pub action: &'static str,
    /// The deciding rule, or "default".
    pub rule: String,
    /// The count rules that matched on the way.
    pub counted: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FileReport {
    pub file: String,
    pub packets: u64,
    pub passed: u64,
    pub dropped: u64,
    pub rules: Vec<RuleCount>,
    pub verdicts: Vec<PacketVerdict>,
    /// Packets the kernel also ran (0 without --kernel; frames under 14
    /// bytes are never given to it, its XDP test run refuses them).
    pub kernel_checked: u64,
    /// A read error after the packets above: they are still reported.
    pub error: Option<String>,
}

/// Why a file's dry run failed outright (an error in `FileReport::error`
/// is a damaged file; these are disagreements, which are bugs).
#[derive(Debug, thiserror::Error)]
pub enum DryRunFailure {
    #[error("{file}: packet {index}: {message}")]
    Disagree {
        file: String,
        index: u64,
        message: String,
    },
}

fn name_of(rules: &[Rule], i: Option<usize>) -> String {
    i.map_or_else(|| "default".to_string(), |i| rules[i].name.clone())
}

/// What a capture reader calls on each frame: its bytes and wire length.
pub type Each<'a> = dyn FnMut(&[u8], u32) -> Result<(), DryRunFailure> + 'a;

/// Runs one file.
pub fn run_file(
    path: &Path,
    compiled: &Compiled,
    rules: &[Rule],
    default: Verdict,
    kernel: Option<&LoadedRuleset>,
) -> Result<FileReport, DryRunFailure> {
    let file = path.display().to_string();
    run_frames(
        &file,
        |each| each_frame(path, &file, each),
        compiled,
        rules,
        default,
        kernel,
    )
}

/// [`run_file`] over the frames `frames` reads, which returns why it
/// stopped early, if it did; `file` names the capture.
pub fn run_frames(
    file: &str,
    frames: impl FnOnce(&mut Each<'_>) -> Result<Option<String>, DryRunFailure>,
    compiled: &Compiled,
    rules: &[Rule],
    default: Verdict,
    kernel: Option<&LoadedRuleset>,
) -> Result<FileReport, DryRunFailure> {
    let file = file.to_string();
    let mut report = FileReport {
        file: file.clone(),
        packets: 0,
        passed: 0,
        dropped: 0,
        rules: vec![],
        verdicts: vec![],
        kernel_checked: 0,
        error: None,
    };
    let disagree = |index, message: String| DryRunFailure::Disagree {
        file: file.clone(),
        index,
        message,
    };
    let mut dry = DryRun::new(compiled, rules, default).map_err(|e| disagree(0, e.to_string()))?;
    // What the kernel's counters must have moved by: the outcomes of the
    // frames it ran, per counter.
    let mut kernel_expected = vec![0u64; rules.len() + 1];
    let mut kernel_base = match kernel {
        Some(k) => Some(k.counters().map_err(|e| disagree(0, e.to_string()))?),
        None => None,
    };
    report.error = frames(&mut |frame, wire| {
        let index = report.packets;
        let o: Outcome = dry
            .packet(frame, wire)
            .map_err(|e| disagree(index, e.to_string()))?;
        if let Some(k) = kernel.filter(|_| frame.len() >= 14) {
            let ret = k
                .test_run(frame, 1)
                .map_err(|e| disagree(index, e.to_string()))?
                .retval;
            if ret != o.verdict.xdp() {
                return Err(disagree(
                    index,
                    format!(
                        "the kernel returned {ret}, the dry run says {}",
                        o.verdict.name()
                    ),
                ));
            }
            report.kernel_checked += 1;
            kernel_expected[o.rule.unwrap_or(rules.len())] += 1;
            for c in &o.counted {
                kernel_expected[*c] += 1;
            }
        }
        report.packets += 1;
        match o.verdict {
            Verdict::Pass => report.passed += 1,
            Verdict::Drop => report.dropped += 1,
        }
        report.verdicts.push(PacketVerdict {
            index,
            action: o.verdict.name(),
            rule: name_of(rules, o.rule),
            counted: o.counted.iter().map(|i| rules[*i].name.clone()).collect(),
        });
        Ok(())
    })?;
    let counters = dry.counters();
    if let (Some(k), Some(base)) = (kernel, kernel_base.take()) {
        // The kernel counted only what it ran (its bytes are captured
        // lengths, so packets are compared, per counter).
        let now = k
            .counters()
            .map_err(|e| disagree(report.packets, e.to_string()))?;
        for ((n, b), want) in now.iter().zip(&base).zip(&kernel_expected) {
            let moved = n.packets.wrapping_sub(b.packets);
            if moved != *want {
                return Err(disagree(
                    report.packets,
                    format!(
                        "the kernel counted {moved} packets for {}, the dry run {want}",
                        n.name
                    ),
                ));
            }
        }
    }
    report.rules = counters
        .into_iter()
        .enumerate()
        .map(
            |(
                i,
                Counter {
                    name,
                    packets,
                    bytes,
                },
            )| RuleCount {
                action: rules.get(i).map_or(default.name(), |r| r.action.name()),
                name,
                packets,
                bytes,
            },
        )
        .collect();
    Ok(report)
}

/// Runs `each` on every frame of the capture at `path` (its bytes and
/// wire length) while they are Ethernet. The message says why reading
/// stopped early, if it did; `file` is what it calls the file.
fn each_frame(
    path: &Path,
    file: &str,
    each: &mut Each<'_>,
) -> Result<Option<String>, DryRunFailure> {
    let not_ethernet = |lt: LinkType| {
        let name = lt
            .name()
            .map_or_else(|| lt.to_dlt().to_string(), str::to_string);
        format!("{file}: link type {name} is not Ethernet; XDP programs see Ethernet frames")
    };
    let input = match File::open(path) {
        Ok(f) => f,
        Err(e) => return Ok(Some(format!("{file}: {e}"))),
    };
    let mut reader = match capfile::open(file, input) {
        Ok(r) => r,
        Err(e) => return Ok(Some(e.to_string())),
    };
    // A pcapng names its link type with its first interface, read with
    // the blocks that follow the header.
    if let Some(lt) = reader.linktype().filter(|lt| *lt != LinkType::ETHERNET) {
        return Ok(Some(not_ethernet(lt)));
    }
    let mut packets = 0u64;
    while let Some(next) = reader.next_view() {
        let p = match next {
            Ok(p) => p,
            Err(e) => {
                return Ok(Some(format!(
                    "{file}: after packet {packets}: byte {}: {}",
                    e.offset, e.kind
                )))
            }
        };
        if p.linktype != LinkType::ETHERNET {
            // libpcap refuses a pcapng interface of another link type than
            // the first one.
            return Ok(Some(match packets {
                0 => not_ethernet(p.linktype),
                n => format!("{file}: after packet {n}: packet {n} has link type {}, the file's first interface Ethernet", p.linktype),
            }));
        }
        each(p.data, p.wire_len)?;
        packets += 1;
    }
    match reader.linktype() {
        Some(lt) if lt != LinkType::ETHERNET => Ok(Some(not_ethernet(lt))),
        // libpcap refuses a pcapng without an interface, which cannot
        // hold a packet.
        None => Ok(Some(format!(
            "{file}: a pcapng without an interface description block"
        ))),
        Some(_) => Ok(None),
    }
}
