//! The command line: arguments (clap), the run, and the exit code.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::capture::LinkType;
use crate::engine::{Engine, EngineKind};
use crate::libpcap;
use crate::program::{self, Program};
use crate::replay::{replay, FileResult, ReplayOptions};
use crate::report::{render_table, JsonReport, NdjsonVerdicts, NoVerdicts, VerdictSink};

const EXAMPLES: &str = "\
Examples:
  pcap-replay -e 'tcp port 80' capture.pcap
  pcap-replay --expr-file filters.txt --json captures/*.pcap
  tcpdump -ddd -r capture.pcap 'tcp port 80' > web.ddd
  pcap-replay --cbpf web.ddd capture.pcap
  pcap-replay --cbpf web.ddd --json --verdicts verdicts.ndjson a.pcap b.pcapng
  cat capture.pcap | pcap-replay --cbpf web.ddd -

Exit status: 0 when every engine agrees on every packet, 1 when some
packet gets different verdicts, 2 on any error (unreadable program or
capture; a corrupt capture's packets before the fault are still replayed).
Set RUST_LOG (e.g. RUST_LOG=pcap_replay=debug) for logs on stderr.";

/// Replay captures through several filter engines and check that they
/// give every packet the same verdict.
#[derive(Debug, Parser)]
#[command(name = "pcap-replay", version, after_help = EXAMPLES)]
pub struct Cli {
    /// A classic BPF program in any tcpdump dump format (`tcpdump -d`,
    /// `-dd` or `-ddd`). May be given more than once.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["expression", "expr_file"])]
    pub cbpf: Vec<PathBuf>,

    /// A pcap-filter expression, as tcpdump takes it. Our engines run what
    /// our compiler makes of it; the libpcap engine compiles it with
    /// libpcap. May be given more than once.
    #[arg(short = 'e', long = "expr", value_name = "EXPR")]
    pub expression: Vec<String>,

    /// A file of expressions, one per line (`#` starts a comment line);
    /// one result per (capture, expression).
    #[arg(long, value_name = "FILE")]
    pub expr_file: Vec<PathBuf>,

    /// The engines to run, comma-separated. `cbpf`: our interpreter;
    /// `libpcap`: libpcap's bpf_filter on the same instructions.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_values = ["cbpf", "libpcap"])]
    pub engines: Vec<EngineKind>,

    /// Print one JSON object with every result instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Write each packet's verdicts, one JSON object per line and program.
    #[arg(long, value_name = "OUT.ndjson")]
    pub verdicts: Option<PathBuf>,

    /// Treat every packet as this link type (a name such as EN10MB or a
    /// LINKTYPE_ number), whatever the capture's header says.
    #[arg(short = 'y', long = "linktype", value_name = "LINKTYPE")]
    pub linktype: Option<String>,

    /// Print no report; only the exit status (and errors on stderr) tell.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,

    /// Captures to replay (pcap or pcapng); `-` reads standard input.
    #[arg(value_name = "PCAP", required = true)]
    pub captures: Vec<PathBuf>,
}

/// Logs go to stderr, filtered by RUST_LOG (warnings by default).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .try_init();
}

/// Parses `-y`: a LINKTYPE_ number or a libpcap DLT name.
pub fn parse_linktype(s: &str) -> Option<LinkType> {
    if let Ok(n) = s.parse::<u16>() {
        return Some(LinkType(n));
    }
    libpcap::dlt_from_name(s).and_then(LinkType::from_dlt)
}

/// Runs the command; the process exit code follows the outcome.
pub fn run(cli: &Cli) -> ExitCode {
    match execute(cli) {
        Ok(outcome) => outcome.exit_code(),
        Err(message) => {
            eprintln!("pcap-replay: error: {message}");
            ExitCode::from(2)
        }
    }
}

/// How a run ended, before it is turned into an exit code.
#[derive(Debug)]
pub struct Outcome {
    pub results: Vec<FileResult>,
}

impl Outcome {
    pub fn exit_code(&self) -> ExitCode {
        if self.results.iter().any(|r| r.error.is_some()) {
            ExitCode::from(2)
        } else if self.results.iter().any(|r| r.mismatches > 0) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Everything but the exit code. `Err` is a fatal error (bad program,
/// bad arguments, unwritable output), reported before or instead of any
/// result; capture errors are results.
pub fn execute(cli: &Cli) -> Result<Outcome, String> {
    let linktype = match &cli.linktype {
        None => None,
        Some(s) => Some(parse_linktype(s).ok_or_else(|| format!("-y {s}: unknown link type"))?),
    };
    let mut kinds = cli.engines.clone();
    dedup_in_order(&mut kinds);
    let mut programs: Vec<Program> = cli
        .cbpf
        .iter()
        .map(|p| program::load_cbpf(p))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    programs.extend(cli.expression.iter().map(|e| program::from_expression(e, "-e")));
    for f in &cli.expr_file {
        programs.extend(program::load_expr_file(f).map_err(|e| e.to_string())?);
    }
    let mut engines: Vec<Vec<Box<dyn Engine>>> = Vec::new();
    for p in &programs {
        engines.push(
            kinds
                .iter()
                .map(|k| k.build(p))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?,
        );
    }
    let stdin_uses = cli.captures.iter().filter(|c| c.as_os_str() == "-").count() * programs.len();
    if stdin_uses > 1 {
        return Err(
            "standard input (-) can be read only once: give it once, with one program".into(),
        );
    }

    let mut sink: Box<dyn VerdictSink> = match &cli.verdicts {
        None => Box::new(NoVerdicts),
        Some(path) => {
            let f = File::create(path)
                .map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
            Box::new(NdjsonVerdicts::new(BufWriter::new(f)))
        }
    };
    let options = ReplayOptions {
        linktype,
        ..Default::default()
    };
    let mut results = Vec::new();
    for (program, engines) in programs.iter().zip(engines.iter_mut()) {
        // An expression that does not parse gets a result with the error
        // for every capture; the other programs still run.
        if let Some(err) = program.expression.as_deref().and_then(|e| filter_programs::expr::parse(e).err()) {
            let message = format!("{}: {}", program.label, err.render());
            eprintln!("pcap-replay: error: {message}");
            for path in &cli.captures {
                let mut result = FileResult::empty(&path.display().to_string(), program, engines, linktype);
                result.error = Some(message.clone());
                results.push(result);
            }
            continue;
        }
        for path in &cli.captures {
            let result = replay_path(path, program, engines, options, sink.as_mut())
                .map_err(|e| format!("writing verdicts: {e}"))?;
            if let Some(e) = &result.error {
                if cli.json || cli.quiet {
                    eprintln!("pcap-replay: error: {e}");
                }
                tracing::debug!(error = e, "capture stopped early");
            }
            results.push(result);
        }
    }
    sink.finish()
        .map_err(|e| format!("writing verdicts: {e}"))?;
    let outcome = Outcome { results };
    print_report(cli, &outcome).map_err(|e| format!("writing the report: {e}"))?;
    Ok(outcome)
}

fn replay_path(
    path: &Path,
    program: &Program,
    engines: &mut [Box<dyn Engine>],
    options: ReplayOptions,
    sink: &mut dyn VerdictSink,
) -> io::Result<FileResult> {
    let name = path.display().to_string();
    let input: Box<dyn Read> = if name == "-" {
        Box::new(io::stdin().lock())
    } else {
        match File::open(path) {
            Ok(f) => Box::new(f),
            Err(e) => {
                // Report it as a capture that yielded nothing, so the other
                // captures still run and the report names this one.
                let mut result = FileResult::empty(&name, program, engines, options.linktype);
                result.error = Some(format!("{name}: cannot open: {e}"));
                return Ok(result);
            }
        }
    };
    replay(
        &name,
        BufReader::with_capacity(1 << 16, input),
        program,
        engines,
        options,
        sink,
    )
}

fn print_report(cli: &Cli, outcome: &Outcome) -> io::Result<()> {
    if cli.quiet {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    let written = if cli.json {
        serde_json::to_writer(&mut out, &JsonReport::new(&outcome.results))
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
    } else {
        out.write_all(render_table(&outcome.results).as_bytes())
    };
    match written.and_then(|()| out.flush()) {
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn dedup_in_order(kinds: &mut Vec<EngineKind>) {
    let mut seen = Vec::new();
    kinds.retain(|k| {
        let new = !seen.contains(k);
        seen.push(*k);
        new
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{EngineMap, Matched};

    fn result(mismatches: u64, error: bool) -> FileResult {
        FileResult {
            file: "f".into(),
            expression: None,
            program: "p".into(),
            linktype: None,
            packets: 1,
            engines: EngineMap(vec![("cbpf", Matched { matched: 0, skipped: 0 })]),
            mismatches,
            error: error.then(|| "boom".to_string()),
            mismatch_samples: vec![],
        }
    }

    #[test]
    fn errors_outrank_mismatches_in_the_exit_code() {
        let code = |results| Outcome { results }.exit_code();
        assert_eq!(code(vec![result(0, false)]), ExitCode::SUCCESS);
        assert_eq!(
            code(vec![result(0, false), result(3, false)]),
            ExitCode::from(1)
        );
        assert_eq!(
            code(vec![result(3, false), result(0, true)]),
            ExitCode::from(2)
        );
        assert_eq!(code(vec![]), ExitCode::SUCCESS);
    }

    #[test]
    fn linktype_names_and_numbers() {
        assert_eq!(parse_linktype("EN10MB"), Some(LinkType::ETHERNET));
        assert_eq!(parse_linktype("RAW"), Some(LinkType::RAW));
        assert_eq!(parse_linktype("113"), Some(LinkType::LINUX_SLL));
        assert_eq!(parse_linktype("NOSUCH"), None);
    }

    #[test]
    fn engines_keep_their_order_once_each() {
        let mut k = vec![EngineKind::Libpcap, EngineKind::Cbpf, EngineKind::Libpcap];
        dedup_in_order(&mut k);
        assert_eq!(k, [EngineKind::Libpcap, EngineKind::Cbpf]);
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
