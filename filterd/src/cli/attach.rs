//! `filterd attach xdp|tc`, `filterd detach xdp|tc`, `filterd status`: a
//! thin layer over [`crate::attach`].

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use filter_programs::Hook;

use super::{fail, load_cbpf, Failure, EXIT_ERROR, EXIT_INVALID};
use crate::attach::{
    self, pin, status, tc, AttachError, Direction, Outcome, Program, Source, TcHook, XdpHook,
    XdpMode,
};

/// The program to attach: an expression, or --cbpf, or --ebpf.
#[derive(Args, Debug)]
pub struct ProgramArgs {
    /// A classic program (tcpdump -d, -dd or -ddd output; "-" for stdin).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ebpf", "expression"])]
    pub cbpf: Option<PathBuf>,
    /// An eBPF ELF object with the program in section `xdp` (or
    /// `classifier` for tc), e.g. from `filterd compile --target xdp -o`.
    #[arg(long, value_name = "FILE.o", conflicts_with = "expression")]
    pub ebpf: Option<PathBuf>,
    /// The filter expression (pcap-filter syntax); matching packets pass,
    /// others are dropped.
    #[arg(value_name = "EXPR", trailing_var_arg = true)]
    pub expression: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Skb,
    Drv,
    Hw,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DirectionArg {
    Ingress,
    Egress,
}

impl From<DirectionArg> for Direction {
    fn from(d: DirectionArg) -> Direction {
        match d {
            DirectionArg::Ingress => Direction::Ingress,
            DirectionArg::Egress => Direction::Egress,
        }
    }
}

#[derive(Args, Debug)]
#[command(
    after_help = "Attaching where filterd's program already runs replaces it atomically (BPF link update).\n\
    Examples:\n  filterd attach xdp -i eth0 'not port 22 and tcp dst port 80'\n  \
    filterd attach xdp -i eth0 --mode skb --ebpf web.o\n\
    Exit codes: 0 attached, 1 invalid program or verifier rejection, 2 other errors."
)]
pub struct XdpArgs {
    /// The interface (in the caller's network namespace).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub iface: String,
    /// skb (generic), drv (native) or hw (offload); default: the kernel's choice.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// bpffs directory for the link and program pins (created; bpffs is
    /// mounted on /sys/fs/bpf if missing). Default: /sys/fs/bpf/filterd/[netns-N/]IFACE/xdp.
    #[arg(long, value_name = "DIR")]
    pub pin: Option<PathBuf>,
    #[command(flatten)]
    pub program: ProgramArgs,
}

#[derive(Args, Debug)]
#[command(
    after_help = "filterd's filter sits under clsact at priority 1, handle 0xfd, in direct-action mode;\n\
    attaching again replaces its program atomically. It adds the clsact qdisc when missing;\n\
    `filterd detach tc` removes the qdisc again once no filter (of anyone) is left under it.\n\
    Example:\n  filterd attach tc -i eth0 --direction egress 'udp port 53'"
)]
pub struct TcArgs {
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub iface: String,
    #[arg(long, value_enum)]
    pub direction: DirectionArg,
    /// bpffs directory for the program pin. Default: /sys/fs/bpf/filterd/[netns-N/]IFACE/tc-DIRECTION.
    #[arg(long, value_name = "DIR")]
    pub pin: Option<PathBuf>,
    #[command(flatten)]
    pub program: ProgramArgs,
}

#[derive(Args, Debug)]
pub struct DetachXdpArgs {
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub iface: String,
    /// The directory given to `attach xdp --pin`.
    #[arg(long, value_name = "DIR")]
    pub pin: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DetachTcArgs {
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub iface: String,
    #[arg(long, value_enum)]
    pub direction: DirectionArg,
    #[arg(long, value_name = "DIR")]
    pub pin: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// One JSON object: {"attached": [{interface, ifindex, hook, mode,
    /// prog_id, name, tag, priority, handle, filterd, pin}]}.
    #[arg(long)]
    pub json: bool,
}

fn failure(e: AttachError) -> Failure {
    let code = if e.is_invalid_program() {
        EXIT_INVALID
    } else {
        EXIT_ERROR
    };
    fail(code, e.to_string())
}

fn build(args: &ProgramArgs, hook: Hook) -> Result<Program, Failure> {
    let source = match (&args.cbpf, &args.ebpf) {
        (Some(path), _) => Source::Cbpf(load_cbpf(path)?),
        (None, Some(path)) => Source::Elf(
            std::fs::read(path)
                .map_err(|e| fail(EXIT_ERROR, format!("{}: {e}", path.display())))?,
        ),
        (None, None) if args.expression.is_empty() => {
            return Err(fail(
                EXIT_ERROR,
                "give a filter expression, --cbpf FILE or --ebpf FILE.o",
            ))
        }
        (None, None) => Source::Expr(args.expression.join(" ")),
    };
    Program::build(&source, hook).map_err(failure)
}

/// The pin directory to use and the default one (where a `--pin` elsewhere
/// is recorded); without `--pin`, what a record at the default names.
fn pin_dirs(
    given: &Option<PathBuf>,
    iface: &str,
    hook: &str,
) -> Result<(PathBuf, PathBuf), Failure> {
    let default = pin::default_dir(iface, hook).map_err(failure)?;
    let dir = given.clone().unwrap_or_else(|| pin::resolve(&default));
    Ok((dir, default))
}

/// A detach that found nothing, with where filterd's program for that hook
/// is pinned when `status` knows, else what to pass.
fn not_found(e: AttachError, given: &Option<PathBuf>, iface: &str, hook: &str) -> Failure {
    if !matches!(e, AttachError::NotAttached(_)) || given.is_some() {
        return failure(e);
    }
    let elsewhere = status::list().ok().and_then(|l| {
        l.into_iter()
            .find(|a| a.ifname == iface && a.hook == hook && a.pinned.is_some())
            .and_then(|a| a.pinned)
    });
    let hint = match elsewhere {
        Some(p) => format!("filterd's program there is pinned in {0}: pass --pin {0}", p.display()),
        None => "if it was attached with --pin DIR, pass the same --pin DIR (`filterd status` lists filterd's pins)".into(),
    };
    fail(EXIT_ERROR, format!("{e}; {hint}"))
}

fn verb(o: Outcome) -> String {
    match o {
        Outcome::Attached => "attached".into(),
        Outcome::Replaced { old_prog_id } => format!("replaced program {old_prog_id} with"),
    }
}

pub fn run_xdp(a: XdpArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let program = build(&a.program, Hook::Xdp)?;
    // The interface is checked before the pin directory is derived from
    // its name, so a typo reads as a missing interface.
    attach::interface_index(&a.iface).map_err(failure)?;
    let (dir, default) = pin_dirs(&a.pin, &a.iface, "xdp")?;
    let mode = match a.mode {
        None => XdpMode::Auto,
        Some(ModeArg::Skb) => XdpMode::Skb,
        Some(ModeArg::Drv) => XdpMode::Drv,
        Some(ModeArg::Hw) => XdpMode::Hw,
    };
    let hook = XdpHook::attach(&a.iface, mode, &program, &dir).map_err(failure)?;
    pin::record(&default, &dir);
    let _ = writeln!(
        out,
        "{} XDP program {} ({}) on {} in {} mode; link and program pinned in {}",
        verb(hook.outcome()),
        hook.prog_id(),
        program.name,
        a.iface,
        hook.mode().unwrap_or("unknown"),
        dir.display()
    );
    Ok(())
}

pub fn run_tc(a: TcArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let program = build(&a.program, Hook::Tc)?;
    let direction = Direction::from(a.direction);
    attach::interface_index(&a.iface).map_err(failure)?;
    let (dir, default) = pin_dirs(&a.pin, &a.iface, direction.hook_name())?;
    let hook = TcHook::attach(&a.iface, direction, &program, &dir).map_err(failure)?;
    pin::record(&default, &dir);
    let _ = writeln!(
        out,
        "{} tc {} program {} ({}) on {} (clsact, direct-action, priority {}, handle {:#x}); program pinned in {}",
        verb(hook.outcome()),
        direction.name(),
        hook.prog_id(),
        program.name,
        a.iface,
        tc::PRIORITY,
        tc::HANDLE,
        dir.display()
    );
    Ok(())
}

pub fn detach_xdp(a: DetachXdpArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let (dir, default) = pin_dirs(&a.pin, &a.iface, "xdp")?;
    let hook = XdpHook::from_pin(&dir).map_err(|e| not_found(e, &a.pin, &a.iface, "xdp"))?;
    if hook.ifname() != a.iface {
        return Err(fail(
            EXIT_ERROR,
            format!(
                "{} holds the XDP link of {}, not {}",
                dir.display(),
                hook.ifname(),
                a.iface
            ),
        ));
    }
    let id = hook.prog_id();
    hook.detach().map_err(failure)?;
    pin::forget(&default, &dir);
    let _ = writeln!(out, "detached XDP program {id} from {}", a.iface);
    Ok(())
}

pub fn detach_tc(a: DetachTcArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let direction = Direction::from(a.direction);
    let (dir, default) = pin_dirs(&a.pin, &a.iface, direction.hook_name())?;
    tc::detach(&a.iface, direction, &dir)
        .map_err(|e| not_found(e, &a.pin, &a.iface, direction.hook_name()))?;
    pin::forget(&default, &dir);
    let _ = writeln!(
        out,
        "detached tc {} program from {}",
        direction.name(),
        a.iface
    );
    Ok(())
}

pub fn status(a: StatusArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let list = status::list().map_err(failure)?;
    let text = if a.json {
        status::to_json(&list) + "\n"
    } else {
        status::to_text(&list)
    };
    let _ = out.write_all(text.as_bytes());
    Ok(())
}
