//! `filterd run` and `filterd stats`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{fail, Failure, EXIT_ERROR, EXIT_INVALID};
use crate::daemon::{self, state::DEFAULT_STATE_DIR, stats, DaemonError, LogFormat, Options};

/// Where `filterd run` reads its config when given none (`./x install`
/// puts the example there when it is absent).
pub const DEFAULT_CONFIG: &str = "/etc/filterd/filterd.toml";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    filterd run                        # /etc/filterd/filterd.toml\n  \
    filterd run --keep --log-format json --metrics 127.0.0.1:9977 filterd.toml\n  \
    kill -HUP $(pidof filterd)        # reload (so does saving the file)\n\n\
    The whole config is checked, compiled and loaded through the verifier before anything\n\
    is attached; a reload swaps programs through the XDP link (BPF_LINK_UPDATE), so no\n\
    packet is ever unfiltered, and a refused reload keeps the running program. A start that\n\
    finds the pinned link of a previous run (stopped with --keep) adopts its program.\n\n\
    Exit codes: 0 stopped by SIGTERM/SIGINT, 1 the config or its program is invalid, 2 system error.\n\
    Logs: info by default, RUST_LOG=debug for more; under systemd (JOURNAL_STREAM names stderr)\n\
    they go to journald with their levels as priorities, elsewhere to stderr (--log-format).")]
pub struct RunArgs {
    /// On SIGTERM/SIGINT leave the program attached and pinned (the next
    /// `filterd run` adopts it) instead of detaching it.
    #[arg(long)]
    pub keep: bool,
    /// Log lines on stderr as text or as JSON objects (one per line);
    /// under systemd's journal, journald's own fields instead.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
    /// Serve Prometheus metrics on ADDR (overrides `[daemon] metrics`;
    /// "" turns them off).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Where the state files (rule names, carried counters) go.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// The config (TOML; see `filterd check`).
    #[arg(default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    filterd stats\n  \
    filterd stats --json | jq '.interfaces[].rules[] | select(.packets > 0)'\n  \
    filterd stats --config /etc/filterd/filterd.toml    # its [daemon] pin\n\n\
    Packets and bytes are totals since the program was first attached, across reloads and\n\
    --keep restarts. Exit codes: 0 done (also when nothing is running), 2 system error.")]
pub struct StatsArgs {
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The daemon's pin directory (`[daemon] pin`).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/sys/fs/bpf/filterd",
        conflicts_with = "config"
    )]
    pub pin: PathBuf,
    /// Take the pin directory from this config instead.
    #[arg(long, value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    filterd reload --pid $(pidof filterd)\n  \
    ExecReload=/usr/local/bin/filterd reload --pid $MAINPID      # the systemd unit\n\n\
    Sends SIGHUP to the daemon and waits for the reload's outcome, which the daemon records\n\
    in the state directory: so `systemctl reload filterd` fails when the new config was\n\
    refused (the running program stays). Exit codes: 0 reloaded, 1 refused (the reason on\n\
    stderr), 2 no such daemon, or no outcome within --timeout.")]
pub struct ReloadArgs {
    /// The daemon's process id (systemd's $MAINPID).
    #[arg(long)]
    pub pid: i32,
    /// The daemon's state directory (its --state-dir).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Seconds to wait for the outcome.
    #[arg(long, value_name = "SECONDS", default_value_t = 90)]
    pub timeout: u64,
}

fn failure(e: DaemonError) -> Failure {
    match e {
        DaemonError::Invalid(m) => fail(EXIT_INVALID, m),
        DaemonError::System(m) => fail(EXIT_ERROR, m),
    }
}

pub fn run(args: RunArgs, _out: &mut dyn Write) -> Result<(), Failure> {
    let opts = Options {
        config: args.config,
        keep: args.keep,
        metrics: args.metrics,
        state_dir: args.state_dir,
        log_format: match args.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
    };
    daemon::run(opts).map_err(failure)
}

pub fn reload(args: ReloadArgs, out: &mut dyn Write) -> Result<(), Failure> {
    use crate::daemon::outcome;
    let before = outcome::read(&args.state_dir).map_or(0, |o| o.seq);
    // SAFETY: kill(2) with a pid and a signal number; no memory involved.
    if unsafe { libc::kill(args.pid, libc::SIGHUP) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(fail(
            EXIT_ERROR,
            format!("signalling filterd (pid {}): {e}", args.pid),
        ));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.timeout);
    loop {
        if let Some(o) = outcome::read(&args.state_dir).filter(|o| o.seq > before) {
            if o.ok {
                let _ = writeln!(out, "reloaded: {}", o.message);
                return Ok(());
            }
            return Err(fail(
                EXIT_INVALID,
                format!("reload refused, the running program stays: {}", o.message),
            ));
        }
        if std::time::Instant::now() > deadline {
            return Err(fail(
                EXIT_ERROR,
                format!(
                    "no reload outcome in {} within {} s (is {} the daemon's --state-dir?)",
                    outcome::path(&args.state_dir).display(),
                    args.timeout,
                    args.state_dir.display()
                ),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn stats(args: StatsArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let pin = match &args.config {
        Some(path) => PathBuf::from(super::rules::load_config(path)?.daemon.pin),
        None => args.pin.clone(),
    };
    let all = stats::read_all(&pin, &args.state_dir).map_err(failure)?;
    if args.json {
        let doc = serde_json::json!({ "pin": pin.display().to_string(), "interfaces": all });
        let _ = writeln!(out, "{doc}");
        return Ok(());
    }
    if all.is_empty() {
        let _ = writeln!(out, "no filterd program pinned under {}", pin.display());
        return Ok(());
    }
    for i in &all {
        let _ = writeln!(
            out,
            "{} ({} mode, program {}, generation {})",
            i.interface, i.mode, i.prog_id, i.generation
        );
        let width = i
            .rules
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "  {:<width$}  {:<6} {:>12} {:>14}",
            "rule", "action", "packets", "bytes"
        );
        for r in &i.rules {
            let _ = writeln!(
                out,
                "  {:<width$}  {:<6} {:>12} {:>14}",
                r.name, r.action, r.packets, r.bytes
            );
        }
    }
    Ok(())
}
