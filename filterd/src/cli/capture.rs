//! `filterd capture -i IFACE [-w FILE] [-c COUNT] [-s SNAPLEN]
//! [--vlan-view VIEW] EXPR`: a thin layer over [`crate::capture`].

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use capfile::{Format, LinkType, Writer};
use cli_output::{stop, Output};

use super::{fail, Failure, EXIT_ERROR, EXIT_INVALID};
use crate::capture::{self, Capture, CaptureError, Sink};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    filterd capture -i eth0 tcp port 443\n  \
    filterd capture -i eth0 -c 100 -w web.pcapng 'tcp port 80 or tcp port 443'\n  \
    filterd capture -i eth0 --vlan-view tcpdump ip    # also 802.1Q-tagged IPv4, as tcpdump -i\n\n\
    The filter runs in the kernel as filterd's own eBPF socket program.\n\
    Files ending in .pcapng are written as pcapng, anything else as pcap; -w - writes\n\
    the capture to standard output. A file appears only once complete (it is written\n\
    under a temporary name beside it, then renamed). Ctrl-C (SIGINT) or SIGTERM stops\n\
    the capture: the file then holds every packet so far, and the exit code is 130 or 143.")]
pub struct CaptureArgs {
    /// The interface (Ethernet or loopback).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub iface: String,
    /// Write packets to a file instead of printing summaries (`-`:
    /// standard output). The file appears only once complete.
    #[arg(short = 'w', value_name = "OUT.pcap|OUT.pcapng")]
    pub write: Option<PathBuf>,
    /// Stop after COUNT packets.
    #[arg(short = 'c', value_name = "COUNT")]
    pub count: Option<u64>,
    /// Bytes kept per packet (0: the maximum, 262144), as tcpdump's -s.
    #[arg(short = 's', value_name = "SNAPLEN", default_value_t = capture::MAX_SNAPLEN,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(capture::MAX_SNAPLEN)))]
    pub snaplen: u32,
    /// Do not put the interface into promiscuous mode.
    #[arg(short = 'p', long = "no-promiscuous-mode")]
    pub no_promisc: bool,
    /// Which frame the filter judges on VLAN-tagged packets; files hold
    /// the frame as sent either way.
    #[arg(
        long = "vlan-view",
        value_enum,
        value_name = "VIEW",
        default_value = "sent"
    )]
    pub vlan_view: capture::VlanView,
    /// The filter expression (empty: every packet); words are joined with
    /// spaces, as tcpdump joins them.
    #[arg(value_name = "EXPR", trailing_var_arg = true)]
    pub expression: Vec<String>,
}

fn failure(e: CaptureError) -> Failure {
    let code = match e {
        CaptureError::Compile(_) | CaptureError::Translate(_) => EXIT_INVALID,
        _ => EXIT_ERROR,
    };
    fail(code, e.to_string())
}

pub fn run(a: CaptureArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let opts = capture::Options {
        iface: a.iface.clone(),
        expression: a.expression.join(" "),
        snaplen: a.snaplen,
        count: a.count,
        promisc: !a.no_promisc,
        vlan_view: a.vlan_view,
    };
    stop::install().map_err(|e| fail(EXIT_ERROR, format!("signal handlers: {e}")))?;
    let mut cap = Capture::open(&opts).map_err(failure)?;
    // The packets have no input file here (they come from the ring), so
    // unlike pcap-replay's there is no input for `-w` to be refused as.
    let mut output = None;
    let mut sink = match &a.write {
        Some(path) => {
            let (o, file) = Output::create(path).map_err(|e| fail(EXIT_ERROR, e.to_string()))?;
            output = Some(o);
            let w: Box<dyn Write> = Box::new(file);
            let writer = Writer::new(
                w,
                Format::from_path(path),
                LinkType::ETHERNET,
                cap.snaplen(),
                &a.iface,
            )
            .map_err(|e| fail(EXIT_ERROR, format!("{}: {e}", path.display())))?;
            Sink::File(writer)
        }
        None => Sink::Summary(out),
    };
    // The same line as tcpdump's, at the same moment: after the filter is
    // in place, so a script may start sending once it appears.
    eprintln!(
        "filterd: listening on {}, link-type EN10MB (Ethernet), snapshot length {} bytes",
        a.iface,
        cap.snaplen()
    );
    let result = match cap.run(&mut sink, a.count, &|| stop::requested().is_some()) {
        // What the file holds is incomplete: dropping `output` uncommitted
        // removes it, and an older file of that name stays as it was.
        Err(e @ CaptureError::Write(_)) => return Err(failure(e)),
        other => other,
    };
    // Otherwise what was captured is kept, even when the ring failed part
    // way (an interface removed): finished, then put in place.
    let finished = match sink {
        Sink::File(w) => w.finish().map(drop),
        Sink::Summary(w) => w.flush(),
    };
    finished.map_err(|e| fail(EXIT_ERROR, format!("writing the capture: {e}")))?;
    if let Some(o) = output {
        o.commit(None)
            .map_err(|e| fail(EXIT_ERROR, e.to_string()))?;
    }
    let n = result.map_err(failure)?;
    let stats = cap.stats().unwrap_or_default();
    eprintln!("{n} packets captured");
    eprintln!("{} packets received by filter", stats.packets);
    eprintln!("{} packets dropped by kernel", stats.drops);
    match stop::requested() {
        // As a shell reports a process the signal killed: 130, 143.
        Some(sig) => Err(fail(
            i32::from(stop::exit_code(sig)),
            format!("interrupted by {}", stop::name(sig)),
        )),
        None => Ok(()),
    }
}
