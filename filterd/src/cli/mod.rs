//! The `filterd` command line. The binary only parses arguments and calls
//! [`run`]; everything here is a library function so tests and other tools
//! can call it.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use filter_programs::cbpf::{text, validate};

pub mod attach;
pub mod attach_socket;
pub mod capture;
pub mod check_report;
pub mod compile;
pub mod daemon;
pub mod rules;
pub mod trace;

/// Exit codes scripts rely on.
pub const EXIT_OK: i32 = 0;
/// The program is invalid or cannot be translated: the input's fault.
pub const EXIT_INVALID: i32 = 1;
/// Usage, I/O or system errors.
pub const EXIT_ERROR: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "filterd",
    version,
    about = "Compile, check and load packet filters written for tcpdump",
    long_about = "Compile, check and load packet filters written for tcpdump.\n\n\
        Classic BPF programs are given in any of tcpdump's dump formats (-d, -dd, -ddd),\n\
        for example from `tcpdump -ddd 'tcp port 80' > web.ddd`.",
    after_help = "Examples:\n  \
        filterd validate web.ddd                      # kernel rules, as SO_ATTACH_FILTER checks them\n  \
        filterd validate --rules libpcap web.ddd      # libpcap's bpf_validate\n  \
        filterd compile 'tcp port 80'                 # classic BPF, as tcpdump -d prints it\n  \
        filterd compile --target xdp -o web.o 'tcp port 80'    # ELF for ip/bpftool/aya\n  \
        filterd compile --cbpf web.ddd --target socket --format asm\n\n\
        Exit codes: 0 success, 1 invalid program, 2 usage or system error;\n\
        130 or 143: stopped by SIGINT or SIGTERM (capture).\n\
        Logs: warnings and errors on stderr; -v info, -vv debug, -vvv trace; -q errors only,\n\
        -qq none; RUST_LOG (e.g. RUST_LOG=filterd=debug) overrides them."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log lines on stderr: -v info, -vv debug, -vvv trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Fewer: -q errors only, -qq none.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
}

impl Cli {
    /// The log level `-v`/`-q` ask for (warnings when neither is given).
    pub fn log_level(&self) -> tracing_subscriber::filter::LevelFilter {
        use tracing_subscriber::filter::LevelFilter;
        match (self.verbose, self.quiet) {
            (0, 0) => LevelFilter::WARN,
            (1, _) => LevelFilter::INFO,
            (2, _) => LevelFilter::DEBUG,
            (3.., _) => LevelFilter::TRACE,
            (_, 1) => LevelFilter::ERROR,
            (_, _) => LevelFilter::OFF,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a classic BPF program under the kernel's or libpcap's rules.
    ///
    /// Prints "ok" and the instruction count, or the first rule broken with
    /// the instruction's index (0-based, as tcpdump -d numbers them).
    Validate {
        /// Which validator to apply.
        #[arg(long, value_enum, default_value_t = Rules::Kernel)]
        rules: Rules,
        /// The program: tcpdump -d, -dd or -ddd output ("-" for stdin).
        file: PathBuf,
    },
    /// Compile a filter expression (or translate a classic program).
    ///
    /// With no --target, prints the classic BPF as tcpdump -d (-dd, -ddd)
    /// would. With --target, translates it to eBPF for that hook and writes
    /// a relocatable BPF ELF object (-o; section `socket`, `xdp` or
    /// `classifier`, program symbol `filter`) that aya, `ip link ... obj`
    /// and `bpftool prog loadall` load, or prints the eBPF in bpftool's
    /// syntax (--format asm).
    Compile(compile::CompileArgs),
    /// Attach a filter to a socket of a running process, an XDP hook or tc.
    #[command(subcommand)]
    Attach(AttachCommand),
    /// Detach what `filterd attach` attached.
    #[command(subcommand)]
    Detach(DetachCommand),
    /// List the XDP and tc programs attached, and filterd's pins.
    Status(attach::StatusArgs),
    /// Capture packets with our own eBPF socket filter (AF_PACKET ring).
    Capture(capture::CaptureArgs),
    /// Validate a firewall config (TOML) whole, reporting every error.
    Check(rules::CheckArgs),
    /// Dry run: a config's rules over pcaps, per-rule hits and each packet's action.
    Test(rules::TestArgs),
    /// The daemon: enforce a config with one XDP program, reload on change.
    Run(daemon::RunArgs),
    /// Read the pinned per-rule counters of a running `filterd run`.
    Stats(daemon::StatsArgs),
    /// Follow the packets an expression selects through the kernel's skb
    /// tracepoints: where they go, and where and why they are dropped.
    Trace(trace::TraceArgs),
    /// Reload a running `filterd run` and wait for the outcome (systemd's ExecReload).
    Reload(daemon::ReloadArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:\n  \
        filterd completions bash > /usr/share/bash-completion/completions/filterd\n  \
        filterd completions zsh > /usr/local/share/zsh/site-functions/_filterd\n  \
        filterd completions fish > ~/.config/fish/completions/filterd.fish\n  \
        source <(filterd completions bash)      # this shell only\n\n\
        ./x install puts them where each shell looks.")]
    Completions {
        #[arg(value_enum)]
        shell: cli_output::docs::Shell,
    },
    /// Write the man pages (filterd.1 and filterd-COMMAND.1 for each command) into DIR.
    #[command(after_help = "Examples:\n  \
        filterd man /usr/local/share/man/man1 && mandb -q\n  \
        filterd man /tmp/man && man -l /tmp/man/filterd-run.1\n\n\
        The pages are made from the same definitions as --help. ./x man and ./x install call this.")]
    Man {
        /// The directory (made when missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum AttachCommand {
    /// Attach to a socket of a running process (taken with pidfd_getfd).
    Socket(attach_socket::SocketArgs),
    /// Attach an XDP program to an interface.
    Xdp(attach::XdpArgs),
    /// Attach a tc (clsact, direct-action) program to an interface.
    Tc(attach::TcArgs),
}

#[derive(Subcommand, Debug)]
pub enum DetachCommand {
    /// Remove filterd's XDP program from an interface.
    Xdp(attach::DetachXdpArgs),
    /// Remove filterd's tc program from an interface.
    Tc(attach::DetachTcArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Rules {
    Kernel,
    Libpcap,
}

/// tcpdump's `-O` (no optimizer) takes no value; ours takes a level
/// (`-O0`, `-O1`, `-O 1`). A bare `-O`, alone or ending a cluster of flags
/// (`-dO`), means tcpdump's: `-O0`. clap has no optional value that must be
/// attached, so this rewrites the arguments before parsing; after `--`
/// nothing is touched.
pub fn tcpdump_args<I: IntoIterator<Item = std::ffi::OsString>>(
    args: I,
) -> Vec<std::ffi::OsString> {
    let args: Vec<_> = args.into_iter().collect();
    let mut out = Vec::with_capacity(args.len());
    let mut options = true;
    for (i, a) in args.iter().enumerate() {
        options &= a != "--";
        let bare_o = a.to_str().is_some_and(|s| {
            s.len() >= 2
                && s.starts_with('-')
                && s.ends_with('O')
                && s[1..s.len() - 1]
                    .chars()
                    .all(|c| matches!(c, 'd' | 'v' | 'q'))
        });
        let level_follows = args.get(i + 1).is_some_and(|n| n == "0" || n == "1");
        if options && bare_o && !level_follows {
            let mut a = a.clone();
            a.push("0");
            out.push(a);
        } else {
            out.push(a.clone());
        }
    }
    out
}

pub fn read_input(path: &PathBuf) -> Result<String, String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("stdin: {e}"))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

pub fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

pub fn load_cbpf(path: &PathBuf) -> Result<Vec<filter_programs::cbpf::Insn>, Failure> {
    let src = read_input(path).map_err(|e| fail(EXIT_ERROR, e))?;
    text::parse(&src).map_err(|e| fail(EXIT_INVALID, format!("{}: {e}", path.display())))
}

/// Runs a parsed command line, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Failure> {
    match cli.command {
        Command::Attach(AttachCommand::Socket(a)) => attach_socket::run(a, out),
        Command::Attach(AttachCommand::Xdp(a)) => attach::run_xdp(a, out),
        Command::Attach(AttachCommand::Tc(a)) => attach::run_tc(a, out),
        Command::Detach(DetachCommand::Xdp(a)) => attach::detach_xdp(a, out),
        Command::Detach(DetachCommand::Tc(a)) => attach::detach_tc(a, out),
        Command::Status(a) => attach::status(a, out),
        Command::Capture(a) => capture::run(a, out),
        Command::Trace(a) => trace::run(a, out),
        Command::Check(a) => rules::check(a, out),
        Command::Test(a) => rules::test(a, out),
        Command::Run(a) => daemon::run(a, out),
        Command::Stats(a) => daemon::stats(a, out),
        Command::Reload(a) => daemon::reload(a, out),
        Command::Completions { shell } => {
            cli_output::docs::completions(shell, <Cli as clap::CommandFactory>::command(), out);
            Ok(())
        }
        Command::Man { dir } => {
            let failed = |e: cli_output::OutputError| fail(EXIT_ERROR, e.to_string());
            cli_output::docs::make_dir(&dir).map_err(failed)?;
            let pages = cli_output::docs::man_pages(<Cli as clap::CommandFactory>::command(), &dir)
                .map_err(failed)?;
            let _ = writeln!(out, "{} man pages in {}", pages.len(), dir.display());
            Ok(())
        }
        Command::Validate { rules, file } => {
            let prog = load_cbpf(&file)?;
            let set = match rules {
                Rules::Kernel => validate::RuleSet::Kernel,
                Rules::Libpcap => validate::RuleSet::Libpcap,
            };
            validate::validate(&prog, set)
                .map_err(|e| fail(EXIT_INVALID, format!("{}: {e}", file.display())))?;
            let _ = writeln!(out, "ok: {} instructions", prog.len());
            Ok(())
        }
        Command::Compile(a) => compile::run(a, out),
    }
}

#[cfg(test)]
mod log_level_tests {
    use super::*;
    use clap::CommandFactory;
    use tracing_subscriber::filter::LevelFilter;

    /// Global -v/-q clash with no subcommand's flags, and set the level.
    #[test]
    fn verbosity_flags_set_the_level() {
        Cli::command().debug_assert();
        let level = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.log_level());
        assert_eq!(
            level(&["filterd", "compile", "tcp"]).unwrap(),
            LevelFilter::WARN
        );
        assert_eq!(
            level(&["filterd", "-v", "compile", "tcp"]).unwrap(),
            LevelFilter::INFO
        );
        assert_eq!(
            level(&["filterd", "compile", "-vv", "tcp"]).unwrap(),
            LevelFilter::DEBUG
        );
        assert_eq!(
            level(&["filterd", "-q", "compile", "tcp"]).unwrap(),
            LevelFilter::ERROR
        );
        assert_eq!(
            level(&["filterd", "-qq", "stats"]).unwrap(),
            LevelFilter::OFF
        );
        assert!(level(&["filterd", "-v", "-q", "stats"]).is_err());
    }

    /// `filterd run` with no config reads the installed one.
    #[test]
    fn run_defaults_to_the_installed_config() {
        match Cli::try_parse_from(["filterd", "run"]).unwrap().command {
            Command::Run(r) => assert_eq!(r.config, PathBuf::from("/etc/filterd/filterd.toml")),
            other => panic!("{other:?}"),
        }
    }

    /// `-O` alone is tcpdump's (optimizer off); levels still parse, and an
    /// expression after `--` is left as it is.
    #[test]
    fn bare_o_turns_the_optimizer_off() {
        let level = |args: &[&str]| {
            let cli = Cli::try_parse_from(tcpdump_args(args.iter().map(Into::into))).unwrap();
            match cli.command {
                Command::Compile(c) => (c.opt_level, c.dump, c.expression.join(" ")),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            level(&["filterd", "compile", "-O", "tcp port 80"]),
            (0, 0, "tcp port 80".into())
        );
        assert_eq!(
            level(&["filterd", "compile", "-ddO", "tcp"]),
            (0, 2, "tcp".into())
        );
        assert_eq!(
            level(&["filterd", "compile", "-O1", "tcp"]),
            (1, 0, "tcp".into())
        );
        assert_eq!(
            level(&["filterd", "compile", "-O", "1", "tcp"]),
            (1, 0, "tcp".into())
        );
        assert_eq!(
            level(&["filterd", "compile", "-O0", "tcp"]),
            (0, 0, "tcp".into())
        );
        assert_eq!(level(&["filterd", "compile", "tcp"]), (1, 0, "tcp".into()));
        assert_eq!(level(&["filterd", "compile", "--", "-O"]).2, "-O");
    }
}
