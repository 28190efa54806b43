//! `filterd compile`: an expression (or a classic program) to classic BPF
//! text as tcpdump prints it, or translated for a hook to eBPF text or a
//! BPF ELF object.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};
use filter_programs::cbpf::{self, text};
use filter_programs::codegen::{self, Dlt};
use filter_programs::ebpf::disasm::disassemble;
use filter_programs::ebpf::insn::Insn as EbpfInsn;
use filter_programs::elf::{self, Object};
use filter_programs::translate::{self, Loops, Target};
use filter_programs::Hook;

use super::{fail, load_cbpf, Failure, EXIT_ERROR, EXIT_INVALID};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    filterd compile tcp port 80 and not src net 10.0.0.0/8\n  \
    filterd compile -dd -y RAW 'udp dst port 53'\n  \
    filterd compile --target xdp -o web.o 'tcp dst port 443'\n  \
    filterd compile --target socket --format asm --cbpf web.ddd")]
pub struct CompileArgs {
    /// The link type the program reads, as tcpdump -y names it.
    #[arg(
        short = 'y',
        long = "linktype",
        default_value = "EN10MB",
        value_name = "LINKTYPE"
    )]
    pub linktype: String,
    /// Output format of the classic program, as tcpdump's: -d (the
    /// default) instructions, -dd C array lines, -ddd decimal numbers.
    #[arg(short = 'd', action = clap::ArgAction::Count, conflicts_with = "target")]
    pub dump: u8,
    /// Optimization: -O (as tcpdump's) or -O0 turns the optimizer off,
    /// -O1 is the default.
    #[arg(short = 'O', value_name = "LEVEL", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub opt_level: u8,
    /// The network mask for `ip broadcast` (dotted quad).
    #[arg(long, value_name = "MASK")]
    pub netmask: Option<std::net::Ipv4Addr>,
    /// The snap length an accepting program returns.
    #[arg(short = 's', long, default_value_t = 262_144)]
    pub snaplen: u32,
    /// Translate a classic program (tcpdump -d, -dd or -ddd output; "-"
    /// for stdin) instead of compiling an expression.
    #[arg(long, value_name = "FILE", conflicts_with = "expression")]
    pub cbpf: Option<PathBuf>,
    /// The attach point: socket (SO_ATTACH_BPF), xdp or tc (cls_bpf, direct action).
    #[arg(long, value_parser = hook_parser())]
    pub target: Option<Hook>,
    /// What to write for --target: an ELF object (-o) or eBPF text.
    #[arg(long, value_enum, default_value_t = OutFormat::Elf, requires = "target")]
    pub format: OutFormat,
    /// Output file for --format elf.
    #[arg(short = 'o', value_name = "OUT.o", requires = "target")]
    pub output: Option<PathBuf>,
    /// How `protochain`'s loop is bounded for the verifier: may-goto
    /// (Linux 6.9+; walks every header) or counted (older kernels; at most
    /// 100 turns on socket, 40 on tc, 32 on xdp, and a packet that needs
    /// more does not match).
    #[arg(long, value_enum, default_value_t = LoopsArg::MayGoto, requires = "target")]
    pub loops: LoopsArg,
    /// The filter expression; its words are joined with spaces, as
    /// tcpdump joins them.
    #[arg(value_name = "EXPR", trailing_var_arg = true)]
    pub expression: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LoopsArg {
    MayGoto,
    Counted,
}

impl From<LoopsArg> for Loops {
    fn from(l: LoopsArg) -> Loops {
        match l {
            LoopsArg::MayGoto => Loops::MayGoto,
            LoopsArg::Counted => Loops::Counted,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    Elf,
    Asm,
}

/// `--target`'s values: the hooks by name.
pub fn hook_parser() -> impl TypedValueParser<Value = Hook> {
    PossibleValuesParser::new(Hook::ALL.map(Hook::name)).map(|name| {
        name.parse::<Hook>()
            .expect("the parser accepts only the hooks' names")
    })
}

pub fn run(args: CompileArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let prog = classic(&args)?;
    let Some(hook) = args.target else {
        let fmt = match args.dump {
            0 | 1 => text::Format::Asm,
            2 => text::Format::C,
            _ => text::Format::Decimal,
        };
        let _ = out.write_all(text::print(&prog, fmt).as_bytes());
        return Ok(());
    };
    let insns = translate::translate(&prog, Target::new(hook).with_loops(args.loops.into()))
        .map_err(|e| fail(EXIT_INVALID, e.to_string()))?;
    tracing::debug!(
        classic = prog.len(),
        ebpf = insns.len(),
        target = hook.name(),
        "translated"
    );
    match args.format {
        OutFormat::Asm => {
            let text = disassemble(&insns).map_err(|e| fail(EXIT_ERROR, e.to_string()))?;
            let _ = out.write_all(text.as_bytes());
            Ok(())
        }
        OutFormat::Elf => {
            let Some(path) = args.output else {
                return Err(fail(
                    EXIT_ERROR,
                    "--format elf needs -o OUT.o (or use --format asm)",
                ));
            };
            write_object(hook, insns, &path)?;
            let _ = writeln!(
                out,
                "wrote {} (section {}, program filter)",
                path.display(),
                hook.section()
            );
            Ok(())
        }
    }
}

/// The classic program: `--cbpf`'s, or the expression compiled.
fn classic(args: &CompileArgs) -> Result<Vec<cbpf::Insn>, Failure> {
    if let Some(path) = &args.cbpf {
        return load_cbpf(path);
    }
    let expr = args.expression.join(" ");
    let linktype = &args.linktype;
    let lt = Dlt::from_name(linktype).ok_or_else(|| {
        fail(
            EXIT_ERROR,
            format!("-y {linktype}: unknown or unsupported link type"),
        )
    })?;
    let opts = codegen::Options {
        linktype: lt,
        snaplen: args.snaplen,
        netmask: args.netmask.map(u32::from),
        optimize: args.opt_level > 0,
        ..codegen::Options::new(lt)
    };
    codegen::compile(&expr, &opts).map_err(|e| fail(EXIT_INVALID, e.render()))
}

/// Writes the program as an ELF object with one program, `filter`.
fn write_object(hook: Hook, insns: Vec<EbpfInsn>, path: &Path) -> Result<(), Failure> {
    let obj = Object {
        hook,
        name: "filter".into(),
        insns,
        maps: vec![],
        map_refs: vec![],
        license: "GPL".into(),
    };
    let bytes = elf::write(&obj).map_err(|e| fail(EXIT_ERROR, e.to_string()))?;
    std::fs::write(path, bytes).map_err(|e| fail(EXIT_ERROR, format!("{}: {e}", path.display())))
}
