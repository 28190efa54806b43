//! The command line: arguments (clap), the run, and the exit code.

mod exec;
mod heap;
pub use heap::keep_memory;
pub mod progress;

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::engine::EngineKind;
use crate::replay::FileResult;
use capfile::LinkType;
use cli_output::stop;

pub use exec::execute;

const EXAMPLES: &str = "\
Examples:
  pcap-replay -e 'tcp port 80' capture.pcap
  pcap-replay -F filters.txt -r a.pcap -r b.pcapng
  pcap-replay --expr-file filters.txt --json captures/*.pcap
  tcpdump -ddd -r capture.pcap 'tcp port 80' > web.ddd
  pcap-replay --cbpf web.ddd capture.pcap
  pcap-replay --cbpf web.ddd --json --verdicts verdicts.ndjson a.pcap b.pcapng
  cat capture.pcap | pcap-replay --cbpf web.ddd -
  pcap-replay -e 'tcp port 80' -w web.pcap capture.pcap
  pcap-replay -e 'udp' --count capture.pcap
  filterd compile --target xdp -o f.o 'tcp port 80'
  pcap-replay --ebpf f.o capture.pcap

Exit status: 0 when every engine agrees on every packet, 1 when some
packet gets different verdicts, 2 on any error (unreadable program or
capture; a corrupt capture's packets before the fault are still replayed).
By default every engine that can run here runs; the report names the
engines left out and why.
Set RUST_LOG (e.g. RUST_LOG=pcap_replay=debug) for logs on stderr.";

/// Replay captures through several filter engines and check that they
/// give every packet the same verdict.
#[derive(Debug, Parser)]
#[command(name = "pcap-replay", version, after_help = EXAMPLES)]
pub struct Cli {
    /// A classic BPF program in any tcpdump dump format (`tcpdump -d`,
    /// `-dd` or `-ddd`). May be given more than once.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["expression", "expr_file", "ebpf"])]
    pub cbpf: Vec<PathBuf>,

    /// A relocatable BPF ELF object (ours from `filterd compile -o`, or
    /// clang's). Its section name gives the hook (socket*, xdp*,
    /// classifier* or tc*); our VM and the kernel run it for that hook.
    #[arg(long, value_name = "FILE.o")]
    pub ebpf: Option<PathBuf>,

    /// The section of the `--ebpf` object to run, when it has several.
    #[arg(long, value_name = "S", requires = "ebpf")]
    pub section: Option<String>,

    /// A pcap-filter expression, as tcpdump takes it. Our engines run what
    /// our compiler makes of it; the libpcap engine compiles it with
    /// libpcap. May be given more than once.
    #[arg(short = 'e', long = "expr", value_name = "EXPR")]
    pub expression: Vec<String>,

    /// A file of expressions, one per line (`#` starts a comment line);
    /// one result per (capture, expression). `-F FILE` as tcpdump's.
    #[arg(short = 'F', long, value_name = "FILE")]
    pub expr_file: Vec<PathBuf>,

    /// The engines to run, comma-separated. `cbpf`: our interpreter;
    /// `libpcap`: libpcap's bpf_filter on the same instructions; `ebpf-*`:
    /// the eBPF translation for each hook in our VM; `kernel-*`: the same
    /// in the kernel (root). Default: every engine that can run here.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub engines: Option<Vec<EngineKind>>,

    /// Write the packets that match (libpcap's verdict, else our
    /// interpreter's) to a pcap file, as `tcpdump -w` does. Takes one
    /// program and one capture, never the capture itself. The file appears
    /// only once complete (written under a temporary name, then renamed);
    /// `-` writes it to standard output, and the report goes to stderr.
    #[arg(short = 'w', value_name = "OUT.pcap")]
    pub write: Option<PathBuf>,

    /// Print only the number of matching packets (one line per program
    /// and capture), for scripts.
    #[arg(long, conflicts_with_all = ["json", "quiet"])]
    pub count: bool,

    /// How many disagreeing packets to explain per capture.
    #[arg(long, value_name = "N", default_value_t = crate::replay::MISMATCH_SAMPLES)]
    pub max_mismatches: usize,

    /// Add our cBPF interpreter's instruction trace to each explained
    /// mismatch.
    #[arg(long)]
    pub trace: bool,

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

    /// A capture to replay, as tcpdump's `-r`; may be given more than
    /// once, beside the positional captures (these come first).
    #[arg(short = 'r', value_name = "FILE")]
    pub read: Vec<PathBuf>,

    /// Print a shell completion script (bash, zsh, fish, elvish or
    /// powershell) and exit: `source <(pcap-replay --completions bash)`.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<cli_output::docs::Shell>,

    /// Write the man page, pcap-replay.1, into DIR and exit.
    #[arg(long, value_name = "DIR", exclusive = true)]
    pub man: Option<PathBuf>,

    /// Captures to replay (pcap or pcapng); `-` reads standard input.
    #[arg(value_name = "PCAP", required_unless_present = "read")]
    pub captures: Vec<PathBuf>,
}

impl Cli {
    /// The captures in order: the positional ones, then each `-r`.
    pub fn with_reads_as_captures(mut self) -> Cli {
        let read = std::mem::take(&mut self.read);
        self.captures.extend(read);
        self
    }
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
    libpcap_oracle::dlt_from_name(s).and_then(LinkType::from_dlt)
}

/// Runs the command; the process exit code follows the outcome.
/// SIGINT and SIGTERM stop the run between packets; its outputs are
/// finished and the exit code is 130 or 143 (see [`cli_output::stop`]).
pub fn run(cli: &Cli) -> ExitCode {
    if let Some(shell) = cli.completions {
        cli_output::docs::completions(
            shell,
            <Cli as clap::CommandFactory>::command(),
            &mut io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    if let Some(dir) = &cli.man {
        let made = cli_output::docs::make_dir(dir).and_then(|()| {
            cli_output::docs::man_pages(<Cli as clap::CommandFactory>::command(), dir)
        });
        return match made {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pcap-replay: error: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let Err(e) = stop::install() {
        // The run still works; only a clean stop on a signal is lost.
        tracing::warn!("cannot handle SIGINT and SIGTERM: {e}");
    }
    match execute(cli) {
        Ok(outcome) => {
            let code = outcome.exit_code();
            // The process ends here, and its exit frees the results (one
            // per program and capture: 8,700 for 100 expressions over 87
            // captures) at once; freeing them one by one took a tenth of
            // such a run.
            std::mem::forget(outcome);
            code
        }
        Err(message) => {
            eprintln!("pcap-replay: error: {message}");
            match stop::requested() {
                Some(sig) => ExitCode::from(stop::exit_code(sig)),
                None => ExitCode::from(2),
            }
        }
    }
}

/// How a run ended, before it is turned into an exit code.
#[derive(Debug)]
pub struct Outcome {
    pub results: Vec<FileResult>,
    /// The signal (SIGINT, SIGTERM) that stopped the run early.
    pub interrupted: Option<i32>,
}

impl Outcome {
    pub fn exit_code(&self) -> ExitCode {
        if let Some(sig) = self.interrupted {
            // As a shell reports a process the signal killed: 130, 143.
            ExitCode::from(stop::exit_code(sig))
        } else if self.results.iter().any(|r| r.error.is_some()) {
            ExitCode::from(2)
        } else if self.results.iter().any(|r| r.mismatches > 0) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{EngineMap, Matched};
    use exec::dedup_in_order;

    fn result(mismatches: u64, error: bool) -> FileResult {
        FileResult {
            file: "f".into(),
            expression: None,
            program: "p".into(),
            linktype: None,
            packets: 1,
            engines: EngineMap(vec![(
                "cbpf",
                Matched {
                    matched: 0,
                    skipped: 0,
                    ..Default::default()
                },
            )]),
            mismatches,
            error: error.then(|| "boom".to_string()),
            seconds: 0.0,
            left_out: vec![],
            mismatch_samples: vec![],
        }
    }

    #[test]
    fn errors_outrank_mismatches_in_the_exit_code() {
        let code = |results| {
            Outcome {
                results,
                interrupted: None,
            }
            .exit_code()
        };
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
        let stopped = Outcome {
            results: vec![result(0, true)],
            interrupted: Some(libc::SIGINT),
        };
        assert_eq!(stopped.exit_code(), ExitCode::from(130));
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
