//! The human report: per program, one row per capture.

use std::fmt::Write;

use crate::replay::FileResult;
use capfile::LinkType;

/// The link type's libpcap name (`EN10MB`), or its number.
fn linktype_name(lt: Option<LinkType>) -> String {
    match lt {
        Some(lt) => libpcap_oracle::dlt_name(lt.to_dlt()).unwrap_or_else(|| lt.to_string()),
        None => "-".into(),
    }
}

/// Renders the results as text tables, grouped by program in run order.
pub fn render_table(results: &[FileResult]) -> String {
    let mut out = String::new();
    let mut start = 0;
    while start < results.len() {
        // Several `-e` share the label `-e`; the expression tells them apart.
        let key = |r: &FileResult| (r.program.clone(), r.expression.clone());
        let first = key(&results[start]);
        let end = results[start..]
            .iter()
            .position(|r| key(r) != first)
            .map_or(results.len(), |n| start + n);
        render_program(&mut out, &results[start..end]);
        start = end;
    }
    let mismatches: u64 = results.iter().map(|r| r.mismatches).sum();
    let errors = results.iter().filter(|r| r.error.is_some()).count();
    let verdict = if mismatches == 0 {
        "all engines agree on every packet".to_string()
    } else {
        format!("engines DISAGREE on {mismatches} packets")
    };
    let _ = write!(out, "{verdict}");
    if errors > 0 {
        let _ = write!(
            out,
            "; {errors} of {} captures could not be read to the end",
            results.len()
        );
    }
    out.push('\n');
    out
}

fn render_program(out: &mut String, results: &[FileResult]) {
    let Some(first) = results.first() else { return };
    let names: Vec<&str> = first.engines.0.iter().map(|(n, _)| *n).collect();
    let _ = writeln!(out, "program {}", first.program);
    if let Some(expr) = &first.expression {
        let _ = writeln!(out, "expression {expr}");
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["file".to_string(), "linktype".into(), "packets".into()];
    header.extend(names.iter().map(|n| n.to_string()));
    header.extend(["mismatches".to_string(), "time".into(), "status".into()]);
    rows.push(header);
    let mut totals = vec![0u64; names.len() + 2];
    for r in results {
        let mut row = vec![
            r.file.to_string(),
            linktype_name(r.linktype),
            r.packets.to_string(),
        ];
        totals[0] += r.packets;
        for (i, (_, m)) in r.engines.0.iter().enumerate() {
            row.push(m.matched.to_string());
            totals[1 + i] += m.matched;
        }
        row.push(r.mismatches.to_string());
        totals[names.len() + 1] += r.mismatches;
        row.push(seconds(r.seconds));
        row.push(
            if r.error.is_some() {
                "ERROR"
            } else if r.mismatches > 0 {
                "DIFF"
            } else {
                "ok"
            }
            .into(),
        );
        rows.push(row);
    }
    if results.len() > 1 {
        let mut row = vec!["total".to_string(), String::new()];
        row.extend(totals.iter().map(u64::to_string));
        row.push(seconds(results.iter().map(|r| r.seconds).sum()));
        row.push(String::new());
        rows.push(row);
    }
    write_rows(out, &rows);
    let mut left_out: Vec<String> = Vec::new();
    for r in results {
        for l in &r.left_out {
            let line = format!("  left out: {}: {}", l.engine, l.reason);
            if !left_out.contains(&line) {
                left_out.push(line);
            }
        }
    }
    for line in left_out {
        let _ = writeln!(out, "{line}");
    }
    for r in results {
        for m in &r.mismatch_samples {
            out.push_str(&super::render_mismatch(&r.file, m));
        }
        if r.mismatches > r.mismatch_samples.len() as u64 {
            let more = r.mismatches - r.mismatch_samples.len() as u64;
            let _ = writeln!(
                out,
                "  mismatch: {} ... and {more} more (see --verdicts, --max-mismatches)",
                r.file
            );
        }
        for (engine, count) in r.engines.0.iter().filter(|(_, c)| c.skipped > 0) {
            let why: Vec<String> = count
                .skipped_reasons
                .iter()
                .map(|(why, n)| format!("{n} {}", why.describe()))
                .collect();
            let _ = writeln!(
                out,
                "  skipped: {} {engine}: {} packet(s) it cannot run, left out of the comparison ({})",
                r.file,
                count.skipped,
                why.join(", ")
            );
        }
        if let Some(e) = &r.error {
            let _ = writeln!(out, "  error: {e}");
        }
    }
}

/// Seconds with millisecond precision.
fn seconds(s: f64) -> String {
    format!("{s:.3}s")
}

/// Left-aligns the first two columns and right-aligns the numbers.
fn write_rows(out: &mut String, rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let w = widths[c];
            if c < 2 || c + 1 == cols {
                let _ = write!(line, "  {cell:<w$}");
            } else {
                let _ = write!(line, "  {cell:>w$}");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
