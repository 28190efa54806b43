//! `filterd run`: enforce a config with one XDP program per interface.
//!
//! ```text
//!  start    parse + compile + load (verifier) everything   any error: exit 1,
//!           bind the metrics socket                        nothing touched
//!           per interface: adopt the pinned link of a previous run (swap
//!           through it if the config changed) or attach and pin a new one
//!  loop     SIGHUP, or the config file changed  -> reload
//!           every tick: fold counters of replaced programs into the base
//!  reload   parse + compile + load every interface's program first; any
//!           failure: log it, count it, keep everything running. Then swap
//!           each through its link (BPF_LINK_UPDATE: no packet unfiltered)
//!  stop     SIGTERM/SIGINT: detach and unpin; with --keep leave it all
//!           attached and pinned for the next `filterd run` to adopt
//! ```
//!
//! Pins live under the config's `[daemon] pin` (see [`iface`]); the state
//! that gives them meaning (rule names, carried totals) under `/run/filterd`
//! (see [`state`]).

pub mod config;
pub mod events;
pub mod generation;
pub mod iface;
pub mod journal;
pub mod metrics;
pub mod notify;
pub mod outcome;
pub mod state;
pub mod stats;
pub mod swap;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use filter_programs::ruleset::compile;

use config::Config;

use events::{Event, Events};
use generation::Candidate;
use iface::{Enforced, Start};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config, its rules or the verifier refused: the input's fault.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    System(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub config: PathBuf,
    pub keep: bool,
    /// Overrides `[daemon] metrics`; `Some("")` turns metrics off.
    pub metrics: Option<String>,
    pub state_dir: PathBuf,
    pub log_format: LogFormat,
}

/// What the main loop and the metrics thread share.
#[derive(Default)]
pub struct Shared {
    pub interfaces: Vec<Enforced>,
    pub reloads: u64,
    pub failures: u64,
    /// The last reload's result and its time (seconds since the epoch).
    pub last_reload: Option<(bool, f64)>,
}

/// The daemon's logger: RUST_LOG when set, else `info`; to journald when
/// stderr is the journal ([`journal`]), else to stderr in `format`. It is
/// installed per thread because the binary already set a global one for
/// the CLI.
pub fn dispatch(format: LogFormat) -> tracing::Dispatch {
    use tracing_subscriber::layer::SubscriberExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if let Some(journald) = journal::layer() {
        return tracing::Dispatch::new(tracing_subscriber::registry().with(filter).with(journald));
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => tracing::Dispatch::new(builder.finish()),
        LogFormat::Json => tracing::Dispatch::new(builder.json().flatten_event(true).finish()),
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads, validates and compiles the config, and loads each interface's
/// program through the verifier. Nothing is attached.
fn prepare(path: &Path) -> Result<(Config, Vec<Candidate>), DaemonError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DaemonError::System(format!("{}: {e}", path.display())))?;
    let config = config::parse(&text)
        .map_err(|e| DaemonError::Invalid(format!("{}: {e}", path.display())))?;
    if config.interfaces.is_empty() {
        return Err(DaemonError::Invalid(format!(
            "{}: no [[interface]] to enforce the rules on",
            path.display()
        )));
    }
    let missing: Vec<String> = config
        .interfaces
        .iter()
        .filter(|i| bpf_kernel::iface::index(&i.name).is_none())
        .map(|i| format!("interface {:?}: no such interface on this host", i.name))
        .collect();
    if !missing.is_empty() {
        return Err(DaemonError::Invalid(format!(
            "{}: {}",
            path.display(),
            missing.join("\n")
        )));
    }
    let mut candidates = Vec::new();
    for i in &config.interfaces {
        let compiled =
            compile(&config.rules, i.default).map_err(|e| DaemonError::Invalid(e.to_string()))?;
        candidates.push(Candidate::load(&compiled, &config.rules, i.default)?);
    }
    Ok((config, candidates))
}

pub fn run(opts: Options) -> Result<(), DaemonError> {
    let dispatch = dispatch(opts.log_format);
    let _log = tracing::dispatcher::set_default(&dispatch);
    // Before anything else: a SIGHUP during startup must not kill us.
    let events = Events::new(&opts.config).map_err(|e| DaemonError::System(e.to_string()))?;
    let (config, candidates) = prepare(&opts.config)?;
    let pin_root = PathBuf::from(&config.daemon.pin);
    let addr = match &opts.metrics {
        Some(a) => (!a.is_empty()).then(|| a.clone()),
        None => config.daemon.metrics.clone(),
    };
    let listener = match &addr {
        Some(a) => Some(
            TcpListener::bind(a)
                .map_err(|e| DaemonError::System(format!("metrics endpoint {a}: {e}")))?,
        ),
        None => None,
    };
    let mut started: Vec<(Enforced, Start)> = Vec::new();
    for (iface, candidate) in config.interfaces.iter().zip(candidates) {
        match Enforced::start(iface, candidate, &pin_root, &opts.state_dir) {
            Ok((e, how)) => {
                log_start(&e, how);
                started.push((e, how));
            }
            Err(err) => {
                // Undo only what this run attached; adopted programs were
                // running before and keep running.
                for (e, how) in started {
                    if how == Start::Attached {
                        let _ = e.detach();
                    } else {
                        e.keep();
                    }
                }
                return Err(err);
            }
        }
    }
    let shared = Arc::new(Mutex::new(Shared {
        interfaces: started.into_iter().map(|(e, _)| e).collect(),
        ..Shared::default()
    }));
    if let Some(l) = listener {
        tracing::info!(addr = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving metrics");
        metrics::spawn(l, shared.clone(), dispatch.clone());
    }
    tracing::info!(config = %opts.config.display(), interfaces = config.interfaces.len(), rules = config.rules.len(), "enforcing");
    let notifier = notify::Notifier::from_env();
    let status = |rules: usize, interfaces: usize| {
        format!("enforcing {rules} rules on {interfaces} interfaces")
    };
    if let Some(n) = &notifier {
        n.ready(&status(config.rules.len(), config.interfaces.len()));
    }
    // The rules the running programs enforce, for the status line.
    let mut enforced_rules = config.rules.len();
    let mut last_text = std::fs::read_to_string(&opts.config).ok();
    let stop = loop {
        let happened = events
            .wait(Duration::from_millis(100))
            .map_err(|e| DaemonError::System(e.to_string()))?;
        let mut reload = None;
        let mut stop = None;
        for ev in happened {
            match ev {
                Event::Reload => reload = Some("SIGHUP"),
                Event::Stop(s) => stop = Some(s),
                Event::ConfigChanged if reload.is_none() => {
                    // Reload only for new content: our own reads, or a
                    // save of the same text, are no reason to swap.
                    let now = std::fs::read_to_string(&opts.config).ok();
                    if now.is_some() && now != last_text {
                        reload = Some("config file changed");
                    }
                }
                Event::ConfigChanged => {}
            }
        }
        if let Some(s) = stop {
            break s;
        }
        if let Some(why) = reload {
            last_text = std::fs::read_to_string(&opts.config).ok();
            if let Some(n) = &notifier {
                n.reloading(&format!("reloading ({why})"));
            }
            let result = reload_all(&opts.config, &pin_root, &opts.state_dir, &shared, why);
            if let Ok(n) = result {
                enforced_rules = n;
            }
            if let Some(n) = &notifier {
                let now = status(enforced_rules, lock(&shared).interfaces.len());
                match result {
                    Ok(_) => n.ready(&format!("{now}; last reload ({why}) swapped in")),
                    Err(e) => n.ready(&format!("{now}; last reload ({why}) refused: {e}")),
                }
            }
        }
        let now = Instant::now();
        for e in lock(&shared).interfaces.iter_mut() {
            if let Err(err) = e.fold(now) {
                tracing::error!(interface = %e.ifname, error = %err, "folding counters");
            }
        }
    };
    if let Some(n) = &notifier {
        n.stopping(&format!("stopping ({stop})"));
    }
    let interfaces = std::mem::take(&mut lock(&shared).interfaces);
    for e in interfaces {
        let name = e.ifname.clone();
        if opts.keep {
            tracing::info!(signal = stop, interface = %name, prog_id = e.prog_id, "exiting; the program stays attached and pinned (--keep)");
            e.keep();
        } else {
            match e.detach() {
                Ok(()) => tracing::info!(signal = stop, interface = %name, "detached and unpinned"),
                Err(err) => tracing::error!(interface = %name, error = %err, "detaching"),
            }
        }
    }
    Ok(())
}

fn log_start(e: &Enforced, how: Start) {
    let mode = e.running_mode().unwrap_or(e.mode.name());
    match how {
        Start::Attached => {
            tracing::info!(interface = %e.ifname, prog_id = e.prog_id, mode, "attached")
        }
        Start::Adopted => {
            tracing::info!(interface = %e.ifname, prog_id = e.prog_id, mode, "adopted the running program")
        }
        Start::AdoptedReplaced { old_prog_id } => tracing::info!(
            interface = %e.ifname, old_prog_id, prog_id = e.prog_id, mode,
            "adopted the running program and replaced it (the config changed)"
        ),
    }
}

/// A reload; its failure is logged, counted and recorded (see
/// [`outcome`]), never fatal. Returns the rule count, or the error's text.
fn reload_all(
    path: &Path,
    pin_root: &Path,
    state_dir: &Path,
    shared: &Mutex<Shared>,
    why: &str,
) -> Result<usize, String> {
    let t = Instant::now();
    let result = reload(path, pin_root, state_dir, shared);
    let mut s = lock(shared);
    let unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let (rules, message) = match &result {
        Ok(n) => {
            s.reloads += 1;
            let ids: Vec<String> = s
                .interfaces
                .iter()
                .map(|e| format!("{}={}", e.ifname, e.prog_id))
                .collect();
            tracing::info!(trigger = why, rules = n, programs = %ids.join(","), ms = t.elapsed().as_millis() as u64, "reloaded");
            (Some(*n), format!("{n} rules; programs {}", ids.join(",")))
        }
        Err(e) => {
            s.failures += 1;
            tracing::error!(trigger = why, error = %e, "reload failed; the running program stays");
            (None, e.to_string())
        }
    };
    let ok = rules.is_some();
    s.last_reload = Some((ok, unix_time));
    let o = outcome::Outcome {
        seq: s.reloads + s.failures,
        ok,
        trigger: why.to_string(),
        message: message.clone(),
        unix_time,
    };
    if let Err(e) = outcome::write(state_dir, &o) {
        tracing::warn!(error = %e, "recording the reload's outcome for `filterd reload`");
    }
    rules.ok_or(message)
}

fn reload(
    path: &Path,
    pin_root: &Path,
    state_dir: &Path,
    shared: &Mutex<Shared>,
) -> Result<usize, DaemonError> {
    let (config, candidates) = prepare(path)?;
    if Path::new(&config.daemon.pin) != pin_root {
        tracing::warn!(pin = %config.daemon.pin, "a new [daemon] pin takes effect at the next start");
    }
    let mut s = lock(shared);
    // Every check before the first swap, so a refused reload changes nothing.
    for i in &config.interfaces {
        if let Some(e) = s.interfaces.iter().find(|e| e.ifname == i.name) {
            if e.mode != i.mode {
                return Err(DaemonError::Invalid(format!(
                    "interface {:?}: mode {} -> {} needs a detach (a link update keeps the mode); stop filterd without --keep and start it again",
                    i.name,
                    e.mode.name(),
                    i.mode.name()
                )));
            }
        }
    }
    transact(&mut s, &config, candidates, pin_root, state_dir)?;
    let mut errors = Vec::new();
    let (kept, gone): (Vec<Enforced>, Vec<Enforced>) = s
        .interfaces
        .drain(..)
        .partition(|e| config.interfaces.iter().any(|i| i.name == e.ifname));
    s.interfaces = kept;
    for e in gone {
        let name = e.ifname.clone();
        match e.detach() {
            Ok(()) => tracing::info!(interface = %name, "no longer in the config: detached"),
            Err(err) => errors.push(format!("interface {name:?}: {err}")),
        }
    }
    if errors.is_empty() {
        Ok(config.rules.len())
    } else {
        Err(DaemonError::System(errors.join("\n")))
    }
}

/// Puts every interface of `config` on its candidate, or none: the
/// running interfaces are all staged before the first link update, a
/// failed update or start puts back the programs already replaced, and
/// detaches the interfaces this reload attached.
fn transact(
    s: &mut Shared,
    config: &Config,
    candidates: Vec<Candidate>,
    pin_root: &Path,
    state_dir: &Path,
) -> Result<(), DaemonError> {
    let mut staged = Vec::new();
    let mut fresh = Vec::new();
    let mut failure = None;
    for (i, candidate) in config.interfaces.iter().zip(candidates) {
        match s.interfaces.iter().position(|e| e.ifname == i.name) {
            Some(at) if failure.is_none() => match s.interfaces[at].stage(candidate) {
                Ok(st) => staged.push((at, st)),
                Err(e) => failure = Some(format!("interface {:?}: {e}", i.name)),
            },
            Some(_) => {}
            None => fresh.push((i, candidate)),
        }
    }
    let mut committed = Vec::new();
    for (at, st) in staged {
        let e = &mut s.interfaces[at];
        if failure.is_some() {
            e.abandon(st);
            continue;
        }
        match e.commit(st) {
            Ok(undo) => committed.push((at, undo)),
            Err(err) => failure = Some(format!("interface {:?}: {err}", e.ifname)),
        }
    }
    let before = s.interfaces.len();
    if failure.is_none() {
        for (i, candidate) in fresh {
            match Enforced::start(i, candidate, pin_root, state_dir) {
                Ok((e, how)) => {
                    log_start(&e, how);
                    s.interfaces.push(e);
                }
                Err(err) => {
                    failure = Some(format!("interface {:?}: {err}", i.name));
                    break;
                }
            }
        }
    }
    let Some(failure) = failure else {
        return Ok(());
    };
    let mut report = vec![failure];
    for e in s.interfaces.drain(before..).collect::<Vec<_>>() {
        let name = e.ifname.clone();
        match e.detach() {
            Ok(()) => {
                tracing::warn!(interface = %name, "attached by the failed reload: detached again")
            }
            Err(err) => report.push(format!(
                "interface {name:?}: detaching after the failed reload: {err}"
            )),
        }
    }
    for (at, undo) in committed.into_iter().rev() {
        let e = &mut s.interfaces[at];
        match e.revert(undo) {
            Ok(()) => {
                tracing::warn!(interface = %e.ifname, prog_id = e.prog_id, "the failed reload had replaced this program: put back")
            }
            Err(err) => report.push(format!("interface {:?}: {err}", e.ifname)),
        }
    }
    Err(DaemonError::System(report.join("\n")))
}
