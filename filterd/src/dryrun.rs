//! `filterd test`: a config's ruleset over capture files, packet by packet.
//!
//! Each file gets fresh counters. The program run is the compiled XDP
//! program itself in our VM (`ruleset::dryrun`), which checks itself
//! against the rules taken one by one; with a [`LoadedRuleset`] the kernel
//! runs every packet too and must return the same action.

use std::path::Path;

use filter_programs::ruleset::compile::Compiled;
use filter_programs::ruleset::dryrun::{Counter, DryRun};
use filter_programs::ruleset::{Outcome, Rule, Verdict};
use serde::Serialize;

use crate::ruleset::LoadedRuleset;

const DLT_EN10MB: i32 = 1;

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
    Disagree { file: String, index: u64, message: String },
}

fn name_of(rules: &[Rule], i: Option<usize>) -> String {
    i.map_or_else(|| "default".to_string(), |i| rules[i].name.clone())
}

/// Runs one file.
pub fn run_file(
    path: &Path,
    compiled: &Compiled,
    rules: &[Rule],
    default: Verdict,
    kernel: Option<&LoadedRuleset>,
) -> Result<FileReport, DryRunFailure> {
    let file = path.display().to_string();
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
    let disagree = |index, message: String| DryRunFailure::Disagree { file: file.clone(), index, message };
    let mut dry = DryRun::new(compiled, rules, default).map_err(|e| disagree(0, e.to_string()))?;
    // What the kernel's counters must have moved by: the outcomes of the
    // frames it ran, per counter.
    let mut kernel_expected = vec![0u64; rules.len() + 1];
    let mut kernel_base = match kernel {
        Some(k) => Some(k.counters().map_err(|e| disagree(0, e.to_string()))?),
        None => None,
    };
    match pcap::Capture::from_file(path) {
        Err(e) => report.error = Some(format!("{file}: {e}")),
        Ok(cap) if cap.get_datalink().0 != DLT_EN10MB => {
            report.error = Some(format!(
                "{file}: link type {} is not Ethernet; XDP programs see Ethernet frames",
                cap.get_datalink().get_name().unwrap_or_else(|_| cap.get_datalink().0.to_string())
            ));
        }
        Ok(mut cap) => loop {
            let p = match cap.next_packet() {
                Ok(p) => p,
                Err(pcap::Error::NoMorePackets) => break,
                Err(e) => {
                    report.error = Some(format!("{file}: after packet {}: {e}", report.packets));
                    break;
                }
            };
            let index = report.packets;
            let (frame, wire) = (p.data, p.header.len);
            let o: Outcome = dry.packet(frame, wire).map_err(|e| disagree(index, e.to_string()))?;
            if let Some(k) = kernel.filter(|_| frame.len() >= 14) {
                let ret = k.test_run(frame, 1).map_err(|e| disagree(index, e.to_string()))?.retval;
                if ret != o.verdict.xdp() {
                    return Err(disagree(index, format!("the kernel returned {ret}, the dry run says {}", o.verdict.name())));
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
        },
    }
    let counters = dry.counters();
    if let (Some(k), Some(base)) = (kernel, kernel_base.take()) {
        // The kernel counted only what it ran (its bytes are captured
        // lengths, so packets are compared, per counter).
        let now = k.counters().map_err(|e| disagree(report.packets, e.to_string()))?;
        for ((n, b), want) in now.iter().zip(&base).zip(&kernel_expected) {
            let moved = n.packets.wrapping_sub(b.packets);
            if moved != *want {
                return Err(disagree(
                    report.packets,
                    format!("the kernel counted {moved} packets for {}, the dry run {want}", n.name),
                ));
            }
        }
    }
    report.rules = counters
        .into_iter()
        .enumerate()
        .map(|(i, Counter { name, packets, bytes })| RuleCount {
            action: rules.get(i).map_or(default.name(), |r| r.action.name()),
            name,
            packets,
            bytes,
        })
        .collect();
    Ok(report)
}
