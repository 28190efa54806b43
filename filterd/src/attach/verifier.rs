//! A verifier rejection, shown as our disassembly with the verifier's own
//! trace beside each instruction, the refused one marked with the reason,
//! then the whole log.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::io;

use filter_programs::ebpf::disasm::disassemble;
use filter_programs::ebpf::insn::Insn;

/// The instruction number of a trace line `N: (op) ...`.
fn insn_line(line: &str) -> Option<(usize, &str)> {
    let (num, rest) = line.trim_start().split_once(": ")?;
    let n = num.parse().ok()?;
    let op = rest.strip_prefix('(')?;
    (op.len() > 3 && op.as_bytes()[2] == b')').then_some((n, rest))
}

fn is_stats(line: &str) -> bool {
    [
        "processed ",
        "verification time",
        "stack depth",
        "max_states",
        "peak_states",
        "mark_read",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

/// The last instruction the verifier looked at, and what it said after it.
pub fn failure(log: &str) -> (Option<usize>, String) {
    let lines: Vec<&str> = log.lines().collect();
    let last = lines.iter().rposition(|l| insn_line(l).is_some());
    let after = last.map_or(0, |i| i + 1);
    let msg: Vec<&str> = lines[after..]
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !is_stats(l))
        .collect();
    (
        last.and_then(|i| insn_line(lines[i]).map(|(n, _)| n)),
        msg.join("; "),
    )
}

fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EACCES) => "EACCES".into(),
        Some(libc::EINVAL) => "EINVAL".into(),
        Some(libc::E2BIG) => "E2BIG".into(),
        Some(libc::ENOSPC) => "ENOSPC: the log or the program is too large".into(),
        _ => e.to_string(),
    }
}

pub fn render(errno: &io::Error, log: &str, insns: &[Insn]) -> String {
    let (at, msg) = failure(log);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "the kernel verifier rejected the program (bpf() failed with {}){}",
        errno_name(errno),
        if msg.is_empty() {
            String::new()
        } else {
            format!(": {msg}")
        }
    );
    // The last time the trace reached each instruction.
    let mut seen: BTreeMap<usize, &str> = BTreeMap::new();
    for l in log.lines() {
        if let Some((n, rest)) = insn_line(l) {
            seen.insert(n, rest);
        }
    }
    match disassemble(insns) {
        Ok(text) => {
            let width = text.lines().map(str::len).max().unwrap_or(0).min(60);
            let _ = writeln!(
                out,
                "\n   {:width$} | verifier (last visit)",
                "our disassembly"
            );
            for line in text.lines() {
                let n = line
                    .trim_start()
                    .split(':')
                    .next()
                    .and_then(|s| s.parse::<usize>().ok());
                let mark = if n.is_some() && n == at { ">>" } else { "  " };
                let right = match n {
                    Some(n) if Some(n) == at && !msg.is_empty() => {
                        format!("{}  <-- {msg}", seen.get(&n).copied().unwrap_or(""))
                    }
                    Some(n) => seen.get(&n).copied().unwrap_or("(not reached)").to_string(),
                    None => String::new(),
                };
                let _ = writeln!(out, "{mark} {line:width$} | {right}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "(our disassembler cannot decode the program: {e})");
        }
    }
    let _ = write!(out, "\nkernel verifier log:\n{}", log.trim_end());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use filter_programs::ebpf::asm::Asm;
    use filter_programs::ebpf::insn::{Operand, Reg};

    #[test]
    fn marks_the_refused_instruction() {
        let mut a = Asm::new();
        a.mov64(Reg::R6, Operand::Reg(Reg::R1));
        a.mov64(Reg::R0, Operand::Reg(Reg::R2));
        a.exit();
        let insns = a.assemble().expect("assembles");
        let log = "func#0 @0\n0: R1=ctx() R10=fp0\n0: (bf) r6 = r1                       ; R1=ctx() R6_w=ctx()\n\
                   1: (bf) r0 = r2\nR2 !read_ok\nprocessed 2 insns (limit 1000000) max_states_per_insn 0\n";
        assert_eq!(failure(log), (Some(1), "R2 !read_ok".to_string()));
        let text = render(&io::Error::from_raw_os_error(libc::EACCES), log, &insns);
        let marked: Vec<&str> = text.lines().filter(|l| l.starts_with(">>")).collect();
        assert_eq!(marked.len(), 1, "{text}");
        assert!(
            marked[0].contains("r0 = r2") && marked[0].contains("<-- R2 !read_ok"),
            "{text}"
        );
        assert!(
            text.contains("(not reached)"),
            "exit was never reached: {text}"
        );
        assert!(text.contains("kernel verifier log:\nfunc#0 @0"), "{text}");
    }
}
