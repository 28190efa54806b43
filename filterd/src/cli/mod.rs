//! The `filterd` command line. The binary only parses arguments and calls
//! [`run`]; everything here is a library function so tests and other tools
//! can call it.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use filter_programs::cbpf::{text, validate};
use filter_programs::codegen::{self, LinkType};
use filter_programs::ebpf::disasm::disassemble;
use filter_programs::elf::{self, Object, Section};
use filter_programs::translate::{self, Target};

pub mod attach;
pub mod attach_socket;
pub mod capture;
pub mod daemon;
pub mod rules;

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
        Exit codes: 0 success, 1 invalid program, 2 usage or system error.\n\
        Logs: RUST_LOG=debug filterd ..."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    #[command(after_help = "Examples:\n  \
        filterd compile tcp port 80 and not src net 10.0.0.0/8\n  \
        filterd compile -dd -y RAW 'udp dst port 53'\n  \
        filterd compile --target xdp -o web.o 'tcp dst port 443'\n  \
        filterd compile --target socket --format asm --cbpf web.ddd")]
    Compile {
        /// The link type the program reads, as tcpdump -y names it.
        #[arg(short = 'y', long = "linktype", default_value = "EN10MB", value_name = "LINKTYPE")]
        linktype: String,
        /// Output format of the classic program, as tcpdump's: -d (the
        /// default) instructions, -dd C array lines, -ddd decimal numbers.
        #[arg(short = 'd', action = clap::ArgAction::Count, conflicts_with = "target")]
        dump: u8,
        /// Optimization: -O0 turns the optimizer off (tcpdump's -O), -O1 is
        /// the default.
        #[arg(short = 'O', value_name = "LEVEL", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
        opt_level: u8,
        /// The network mask for `ip broadcast` (dotted quad).
        #[arg(long, value_name = "MASK")]
        netmask: Option<std::net::Ipv4Addr>,
        /// The snap length an accepting program returns.
        #[arg(short = 's', long, default_value_t = 262_144)]
        snaplen: u32,
        /// Translate a classic program (tcpdump -d, -dd or -ddd output; "-"
        /// for stdin) instead of compiling an expression.
        #[arg(long, value_name = "FILE", conflicts_with = "expression")]
        cbpf: Option<PathBuf>,
        /// The attach point: socket (SO_ATTACH_BPF), xdp or tc (cls_bpf, direct action).
        #[arg(long, value_enum)]
        target: Option<TargetArg>,
        /// What to write for --target: an ELF object (-o) or eBPF text.
        #[arg(long, value_enum, default_value_t = OutFormat::Elf, requires = "target")]
        format: OutFormat,
        /// Output file for --format elf.
        #[arg(short = 'o', value_name = "OUT.o", requires = "target")]
        output: Option<PathBuf>,
        /// The filter expression; its words are joined with spaces, as
        /// tcpdump joins them.
        #[arg(value_name = "EXPR", trailing_var_arg = true)]
        expression: Vec<String>,
    },
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    Socket,
    Xdp,
    Tc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    Elf,
    Asm,
}

pub fn read_input(path: &PathBuf) -> Result<String, String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| format!("stdin: {e}"))?;
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
    Failure { code, message: message.into() }
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
        Command::Check(a) => rules::check(a, out),
        Command::Test(a) => rules::test(a, out),
        Command::Run(a) => daemon::run(a, out),
        Command::Stats(a) => daemon::stats(a, out),
        Command::Validate { rules, file } => {
            let prog = load_cbpf(&file)?;
            let set = match rules {
                Rules::Kernel => validate::RuleSet::Kernel,
                Rules::Libpcap => validate::RuleSet::Libpcap,
            };
            validate::validate(&prog, set).map_err(|e| fail(EXIT_INVALID, format!("{}: {e}", file.display())))?;
            let _ = writeln!(out, "ok: {} instructions", prog.len());
            Ok(())
        }
        Command::Compile {
            linktype,
            dump,
            opt_level,
            netmask,
            snaplen,
            cbpf,
            target,
            format,
            output,
            expression,
        } => {
            let prog = match cbpf {
                Some(path) => load_cbpf(&path)?,
                None => {
                    let expr = expression.join(" ");
                    let lt = LinkType::from_name(&linktype)
                        .ok_or_else(|| fail(EXIT_ERROR, format!("-y {linktype}: unknown or unsupported link type")))?;
                    let opts = codegen::Options {
                        linktype: lt,
                        snaplen,
                        netmask: netmask.map(u32::from),
                        optimize: opt_level > 0,
                        ..codegen::Options::new(lt)
                    };
                    codegen::compile(&expr, &opts).map_err(|e| fail(EXIT_INVALID, e.render()))?
                }
            };
            let Some(target) = target else {
                let fmt = match dump {
                    0 | 1 => text::Format::Asm,
                    2 => text::Format::C,
                    _ => text::Format::Decimal,
                };
                let _ = out.write_all(text::print(&prog, fmt).as_bytes());
                return Ok(());
            };
            let (t, section) = match target {
                TargetArg::Socket => (Target::Socket, Section::Socket),
                TargetArg::Xdp => (Target::xdp(), Section::Xdp),
                TargetArg::Tc => (Target::tc(), Section::Classifier),
            };
            let insns = translate::translate(&prog, t).map_err(|e| fail(EXIT_INVALID, e.to_string()))?;
            tracing::debug!(classic = prog.len(), ebpf = insns.len(), target = t.name(), "translated");
            match format {
                OutFormat::Asm => {
                    let text = disassemble(&insns).map_err(|e| fail(EXIT_ERROR, e.to_string()))?;
                    let _ = out.write_all(text.as_bytes());
                    Ok(())
                }
                OutFormat::Elf => {
                    let Some(path) = output else {
                        return Err(fail(EXIT_ERROR, "--format elf needs -o OUT.o (or use --format asm)"));
                    };
                    let obj = Object {
                        section,
                        name: "filter".into(),
                        insns,
                        maps: vec![],
                        map_refs: vec![],
                        license: "GPL".into(),
                    };
                    let bytes = elf::write(&obj).map_err(|e| fail(EXIT_ERROR, e.to_string()))?;
                    std::fs::write(&path, bytes).map_err(|e| fail(EXIT_ERROR, format!("{}: {e}", path.display())))?;
                    let _ = writeln!(out, "wrote {} (section {}, program filter)", path.display(), section.name());
                    Ok(())
                }
            }
        }
    }
}
