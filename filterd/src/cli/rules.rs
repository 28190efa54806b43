//! `filterd check` and `filterd test`: a config validated whole, and its
//! dry run over capture files.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use filter_programs::ruleset::{compile, Verdict};

use super::{fail, Failure, EXIT_ERROR, EXIT_INVALID};
use crate::daemon::config::{self, Config};
use crate::dryrun::{run_file, FileReport};
use crate::ruleset::LoadedRuleset;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    filterd check configs/example.toml\n  \
    filterd check --no-kernel configs/example.toml   # skip the verifier (no root needed)\n  \
    filterd check --json configs/mixed-10k.toml | jq '.rule_plans[] | select(.classified == \"chain\")'\n\n\
    Each rule is either found by lookups (the IPv4, IPv6 or ARP tuple tables `tuples_N`, or the\n\
    per-field bitmaps `lbvs4_*`/`lbvs6_*` for shapes past the tables) or tested in order in\n\
    the chain (with the reason); its share is the part of the program's instructions that is\n\
    its own.\n\
    Exit codes: 0 valid, 1 the config has errors (all are listed), 2 I/O or system error.")]
pub struct CheckArgs {
    /// Do not load the program into the kernel's verifier (which needs
    /// root or CAP_BPF); check the syntax, rules and interfaces only.
    #[arg(long)]
    pub no_kernel: bool,
    /// Machine-readable output: one JSON document (the program, each
    /// rule's classification and share, the verifier's figures).
    #[arg(long)]
    pub json: bool,
    /// The config (TOML).
    pub config: PathBuf,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    filterd test configs/example.toml capture.pcap\n  \
    filterd test --json --summary configs/example.toml a.pcap b.pcapng | jq '.files[].rules'\n  \
    filterd test --kernel configs/example.toml capture.pcap   # the kernel runs every packet too\n\n\
    Each packet line: index, final action, the deciding rule (or `default`), and the count\n\
    rules it matched on the way. Exit codes: 0 done, 1 the config has errors or the engines\n\
    disagree (a bug: please report it), 2 a file could not be read (packets before the\n\
    fault are still reported).")]
pub struct TestArgs {
    /// The interface whose default action applies (needed when the config
    /// lists several).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,
    /// Machine-readable output: one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Only the per-rule counts, not one line per packet.
    #[arg(long)]
    pub summary: bool,
    /// Also run every packet through the kernel (BPF_PROG_TEST_RUN; needs
    /// root) and fail unless it returns the dry run's action.
    #[arg(long)]
    pub kernel: bool,
    /// The config (TOML).
    pub config: PathBuf,
    /// Capture files (pcap or pcapng, Ethernet).
    #[arg(required = true, value_name = "PCAP")]
    pub pcaps: Vec<PathBuf>,
}

/// Reads and validates a config, reporting every problem at once.
pub fn load_config(path: &Path) -> Result<Config, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(EXIT_ERROR, format!("{}: {e}", path.display())))?;
    config::parse(&text).map_err(|e| fail(EXIT_INVALID, format!("{}: {e}", path.display())))
}

fn interface_exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated string; the call only reads it.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

pub fn check(args: CheckArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let config = load_config(&args.config)?;
    let missing: Vec<String> = config
        .interfaces
        .iter()
        .filter(|i| !interface_exists(&i.name))
        .map(|i| format!("interface {:?}: no such interface on this host", i.name))
        .collect();
    if !missing.is_empty() {
        return Err(fail(
            EXIT_INVALID,
            format!("{}: {}", args.config.display(), missing.join("\n")),
        ));
    }
    let defaults: Vec<Verdict> = if config.interfaces.is_empty() {
        vec![Verdict::Pass]
    } else {
        config.interfaces.iter().map(|i| i.default).collect()
    };
    let t = std::time::Instant::now();
    let compiled =
        compile(&config.rules, defaults[0]).map_err(|e| fail(EXIT_INVALID, e.to_string()))?;
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let verifier = if args.no_kernel {
        None
    } else {
        let t = std::time::Instant::now();
        let loaded = LoadedRuleset::load(&compiled).map_err(|e| match e {
            crate::ruleset::LoadError::Verifier { .. } => fail(EXIT_INVALID, e.to_string()),
            other => fail(
                EXIT_ERROR,
                format!("{other} (run as root, or use --no-kernel)"),
            ),
        })?;
        Some((t.elapsed().as_secs_f64() * 1e3, loaded.verified_insns()))
    };
    let report = super::check_report::Report::new(&config, &compiled, compile_ms, verifier);
    if args.json {
        let _ = writeln!(out, "{}", report.json());
    } else {
        report.print(out);
    }
    Ok(())
}

pub fn test(args: TestArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let config = load_config(&args.config)?;
    let default = match (&args.interface, config.interfaces.as_slice()) {
        (Some(name), ifaces) => {
            ifaces
                .iter()
                .find(|i| &i.name == name)
                .ok_or_else(|| {
                    fail(
                        EXIT_ERROR,
                        format!("-i {name}: not an interface of the config"),
                    )
                })?
                .default
        }
        (None, []) => Verdict::Pass,
        (None, [one]) => one.default,
        (None, _) => {
            return Err(fail(
                EXIT_ERROR,
                "the config lists several interfaces: pick one with -i",
            ))
        }
    };
    let compiled =
        compile(&config.rules, default).map_err(|e| fail(EXIT_INVALID, e.to_string()))?;
    let kernel = if args.kernel {
        Some(LoadedRuleset::load(&compiled).map_err(|e| fail(EXIT_ERROR, e.to_string()))?)
    } else {
        None
    };
    let mut reports = Vec::new();
    for path in &args.pcaps {
        let r = run_file(path, &compiled, &config.rules, default, kernel.as_ref())
            .map_err(|e| fail(EXIT_INVALID, e.to_string()))?;
        reports.push(r);
    }
    if args.json {
        let files: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if args.summary {
                    if let Some(o) = v.as_object_mut() {
                        o.remove("verdicts");
                    }
                }
                v
            })
            .collect();
        let doc = serde_json::json!({
            "config": args.config.display().to_string(),
            "default": default.name(),
            "files": files,
        });
        let _ = writeln!(out, "{doc}");
    } else {
        for r in &reports {
            print_report(r, args.summary, out);
        }
    }
    match reports.iter().find_map(|r| r.error.as_ref()) {
        Some(e) => Err(fail(EXIT_ERROR, e.clone())),
        None => Ok(()),
    }
}

fn print_report(r: &FileReport, summary: bool, out: &mut dyn Write) {
    let _ = writeln!(
        out,
        "{}: {} packets, {} passed, {} dropped",
        r.file, r.packets, r.passed, r.dropped
    );
    if !summary {
        for v in &r.verdicts {
            let counted = if v.counted.is_empty() {
                String::new()
            } else {
                format!(" (counted: {})", v.counted.join(", "))
            };
            let _ = writeln!(out, "  {:>6} {:<4} {}{counted}", v.index, v.action, v.rule);
        }
    }
    let width = r
        .rules
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "  {:<width$}  {:<6} {:>10} {:>12}",
        "rule", "action", "packets", "bytes"
    );
    for c in &r.rules {
        let _ = writeln!(
            out,
            "  {:<width$}  {:<6} {:>10} {:>12}",
            c.name, c.action, c.packets, c.bytes
        );
    }
    if r.kernel_checked > 0 {
        let _ = writeln!(
            out,
            "  kernel: {} packets run, every action equal",
            r.kernel_checked
        );
    }
}
