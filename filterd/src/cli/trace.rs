//! `filterd trace [EXPR] [-i IFACE] [--netns PATH] [--json] [-c COUNT]
//! [--duration SECS] [--points LIST] [--drops-only] [--output-tuple]`:
//! a thin layer over [`crate::trace`].

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use cli_output::stop;
use filter_programs::tracer::{Buffer, Event};

use super::{fail, Failure, EXIT_ERROR, EXIT_INVALID};
use crate::trace::report::{self, Grouped, Names};
use crate::trace::{self, TraceError, Tracer};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    filterd trace udp port 53\n  \
    filterd trace -i eth0 --drops-only 'tcp port 443'\n  \
    filterd trace --json -c 100 --points netif_receive_skb,kfree_skb host 10.0.0.7\n\n\
    Each skb tracepoint the kernel has gets a program that runs the expression on the\n\
    packet (the same compiler and translation pcap-replay proves against libpcap) and\n\
    reports a match with the skb's address, so a packet's path reads line by line:\n\
    where it was received, queued, sent, delivered (skb_copy_datagram_iovec), consumed\n\
    or dropped, and why (kfree_skb's reason). Where a socket buffer has no link-layer\n\
    header, the expression is judged from the network header; one that needs link-layer\n\
    fields matches no such packet. Points this kernel lacks are named on standard error,\n\
    and so are events lost because a buffer was full (with how many).\n\
    Ctrl-C (SIGINT) or SIGTERM stops it and detaches everything (exit code 130, 143);\n\
    nothing is pinned, so several traces can run at once. Needs root (CAP_BPF and\n\
    CAP_PERFMON) and the kernel's BTF.")]
pub struct TraceArgs {
    /// Only packets on this interface (by name in filterd's network
    /// namespace).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub iface: Option<String>,
    /// Only packets in this network namespace (`/run/netns/NAME`,
    /// `/proc/PID/ns/net`).
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
    /// One JSON object per event (NDJSON); field names in the README.
    #[arg(long)]
    pub json: bool,
    /// Stop after COUNT events.
    #[arg(short = 'c', value_name = "COUNT")]
    pub count: Option<u64>,
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// The tracepoints, comma separated (default: every skb tracepoint
    /// filterd knows that this kernel has).
    #[arg(long, value_name = "LIST")]
    pub points: Option<String>,
    /// Only packets freed with a drop reason, each with its path before.
    #[arg(long)]
    pub drops_only: bool,
    /// Print the packet's tuple on every line, not only its first.
    #[arg(long)]
    pub output_tuple: bool,
    /// Where the programs write their events: a BPF ring buffer per point
    /// (Linux 5.8 and later), perf buffers (a buffer per CPU, older
    /// kernels), or whichever this kernel has.
    #[arg(long, value_enum, default_value_t = BufferArg::Auto, value_name = "KIND")]
    pub buffer: BufferArg,
    /// The filter expression (empty: every packet); words are joined with
    /// spaces, as tcpdump joins them.
    #[arg(value_name = "EXPR", trailing_var_arg = true)]
    pub expression: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferArg {
    Auto,
    Ring,
    Perf,
}

fn failure(e: TraceError) -> Failure {
    let code = match e {
        TraceError::Compile(_) | TraceError::UnknownPoint(..) => EXIT_INVALID,
        _ => EXIT_ERROR,
    };
    fail(code, e.to_string())
}

/// Events kept for `--drops-only` per packet until its end, and packets
/// whose end is awaited: past them the oldest packet's path is forgotten
/// (a packet delivered to a socket has no end event at the points).
const HELD_MAX: usize = 4096;
const HELD_PACKETS: usize = 65_536;

pub fn run(a: TraceArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let filters = trace::filters(&a.expression.join(" ")).map_err(failure)?;
    let points = trace::points(a.points.as_deref()).map_err(failure)?;
    let ifindex = match &a.iface {
        Some(name) => Some(
            report::ifindex(name)
                .ok_or_else(|| fail(EXIT_ERROR, format!("{name}: no such interface")))?,
        ),
        None => None,
    };
    let netns = match &a.netns {
        Some(p) => Some(
            std::fs::metadata(p)
                .map_err(|e| fail(EXIT_ERROR, format!("{}: {e}", p.display())))?
                .ino() as u32,
        ),
        None => None,
    };
    stop::install().map_err(|e| fail(EXIT_ERROR, format!("signal handlers: {e}")))?;
    let buffer = match a.buffer {
        BufferArg::Auto => trace::buffer_for_kernel(),
        BufferArg::Ring => Buffer::Ring,
        BufferArg::Perf => Buffer::Perf,
    };
    let mut tracer = Tracer::attach(&filters, &points, buffer).map_err(failure)?;
    // One line per reason: where fentry is refused, it is refused for
    // every function.
    let mut why_not: Vec<(&str, Vec<&str>)> = Vec::new();
    for (p, why) in &tracer.missing {
        match why_not.iter_mut().find(|(w, _)| w == why) {
            Some((_, names)) => names.push(p.name),
            None => why_not.push((why, vec![p.name])),
        }
    }
    for (why, names) in why_not {
        eprintln!("filterd: not attached ({why}): {}", names.join(", "));
    }
    let attached: Vec<&str> = tracer.attached().iter().map(|p| p.name).collect();
    eprintln!(
        "filterd: tracing at {} ({} buffers)",
        attached.join(", "),
        buffer.name()
    );
    let deadline = a
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let reasons = tracer.reasons.clone();
    let reason = move |v: u32| trace::reason_name(&reasons, v);
    let points_all = tracer.points.clone();
    let ifnames = report::IfNames::default();
    let names = Names {
        points: &points_all,
        reason: &reason,
        ifnames: &ifnames,
    };
    let mut grouped = Grouped::default();
    let mut held: HashMap<u64, Vec<Event>> = HashMap::new();
    let mut arrival: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
    let mut printed = 0u64;
    let is_drop = |e: &Event| {
        points_all
            .get(e.point as usize)
            .is_some_and(|p| p.reason_arg.is_some())
    };
    let mut lost = LostEvents::default();
    'run: loop {
        if stop::requested().is_some() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        lost.check(&tracer, false);
        for e in tracer.poll(Duration::from_millis(100)) {
            if ifindex.is_some_and(|i| i != e.ifindex) || netns.is_some_and(|n| n != e.netns) {
                continue;
            }
            let batch = if a.drops_only {
                if !held.contains_key(&e.skb) {
                    // Ended packets leave their place in the queue; pruned
                    // when it is twice the bound (amortized).
                    if arrival.len() >= 2 * HELD_PACKETS {
                        arrival.retain(|s| held.contains_key(s));
                    }
                    arrival.push_back(e.skb);
                    while held.len() >= HELD_PACKETS {
                        let Some(old) = arrival.pop_front() else {
                            break;
                        };
                        held.remove(&old);
                    }
                }
                let path = held.entry(e.skb).or_default();
                let dropped = is_drop(&e) && reason(e.reason) != "NOT_SPECIFIED";
                let end = is_drop(&e)
                    || points_all
                        .get(e.point as usize)
                        .is_some_and(|p| p.name == "consume_skb");
                if path.len() < HELD_MAX {
                    path.push(e.clone());
                }
                if !end {
                    continue;
                }
                let path = held.remove(&e.skb).unwrap_or_default();
                if !dropped {
                    continue;
                }
                path
            } else {
                vec![e]
            };
            for e in &batch {
                let written = if a.json {
                    writeln!(out, "{}", report::json(e, &names))
                } else {
                    grouped.write(out, e, &names, a.output_tuple)
                };
                written.map_err(|err| fail(EXIT_ERROR, format!("writing: {err}")))?;
                printed += 1;
                if a.count.is_some_and(|c| printed >= c) {
                    break 'run;
                }
            }
        }
        out.flush()
            .map_err(|err| fail(EXIT_ERROR, format!("writing: {err}")))?;
    }
    out.flush()
        .map_err(|err| fail(EXIT_ERROR, format!("writing: {err}")))?;
    lost.check(&tracer, true);
    drop(tracer);
    match stop::requested() {
        Some(sig) => Err(fail(
            i32::from(stop::exit_code(sig)),
            format!("interrupted by {}", stop::name(sig)),
        )),
        None => Ok(()),
    }
}

/// Says on standard error, at most once a second and at the end, how many
/// events the buffers had no room for: those packets are missing from
/// the output.
#[derive(Default)]
struct LostEvents {
    said: u64,
    checked: Option<Instant>,
}

impl LostEvents {
    fn check(&mut self, tracer: &Tracer, end: bool) {
        if !end
            && self
                .checked
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.checked = Some(Instant::now());
        let lost = tracer.lost();
        if lost > self.said || (end && lost > 0) {
            eprintln!(
                "filterd: {lost} event(s) lost{}: the {} buffers were full; \
                 a narrower expression or fewer --points keep up",
                if end { "" } else { " so far" },
                tracer.buffer.name()
            );
            self.said = lost;
        }
    }
}
