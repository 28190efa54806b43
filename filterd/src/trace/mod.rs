//! `filterd trace`: the packets an expression selects, followed through
//! the kernel's skb tracepoints (and, where the kernel allows fentry, the
//! entry of some skb functions). One program per point
//! (`filter_programs::tracer`), each attached through aya as a BTF
//! tracepoint (`tp_btf`) or fentry program and writing matches to its own
//! ring buffer (or, on kernels without ring buffers, its perf event
//! array: a buffer per CPU); this module attaches them, says which points
//! it could not, reads the events back in time order and counts those the
//! buffers had no room for. Dropping the [`Tracer`] detaches everything:
//! nothing is pinned, so two tracers can run at once.

pub mod report;

use std::time::Duration;

use aya::maps::perf::{PerfEvent, PerfEventArray, PerfEventArrayBuffer};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, FEntry, ProgramError};
use filter_programs::codegen::{self, Dlt};
use filter_programs::kernel_btf::Btf;
use filter_programs::tracer::{self, Buffer, Event, Filters, Kind, Offsets, Point};

/// Where the running kernel describes its types.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{0}")]
    Compile(String),
    #[error("{VMLINUX_BTF}: {0}")]
    Btf(String),
    #[error("no tracepoint could be attached: {0}")]
    NothingAttached(String),
    #[error("the kernel refused the program: {0}")]
    Load(String),
    #[error("unknown tracepoint {0:?}: expected one of {1}")]
    UnknownPoint(String, String),
}

/// What the running kernel's BTF tells the tracer, read once per process.
struct Kernel {
    offsets: Offsets,
    /// aya's parse of the same file, which loading a tracing program takes.
    btf: aya::Btf,
    /// `enum skb_drop_reason`'s names by value.
    reasons: Vec<(u32, String)>,
}

fn kernel() -> Result<&'static Kernel, TraceError> {
    static KERNEL: std::sync::OnceLock<Result<Kernel, String>> = std::sync::OnceLock::new();
    let read = || -> Result<Kernel, String> {
        let raw = std::fs::read(VMLINUX_BTF).map_err(|e| e.to_string())?;
        let btf = Btf::parse(&raw).map_err(|e| e.to_string())?;
        Ok(Kernel {
            offsets: Offsets::from_btf(&btf).map_err(|e| e.to_string())?,
            btf: aya::Btf::from_sys_fs().map_err(|e| e.to_string())?,
            reasons: btf.enum_values("skb_drop_reason").unwrap_or_default(),
        })
    };
    KERNEL
        .get_or_init(read)
        .as_ref()
        .map_err(|e| TraceError::Btf(e.clone()))
}

/// Compiles `expression` for both views of a socket buffer (see
/// [`Filters`]). An empty expression matches every packet.
pub fn filters(expression: &str) -> Result<Filters, TraceError> {
    let compile = |dlt| codegen::compile(expression, &codegen::Options::new(dlt));
    let l2 = compile(Dlt::En10mb).map_err(|e| TraceError::Compile(e.render()))?;
    Ok(Filters {
        l2,
        l3: compile(Dlt::Raw).ok(),
    })
}

/// The points `--points` names (comma separated), or every one: the
/// tracepoints, then the functions (attached where fentry works).
pub fn points(list: Option<&str>) -> Result<Vec<Point>, TraceError> {
    let Some(list) = list else {
        return Ok(tracer::POINTS
            .into_iter()
            .chain(tracer::FUNCTIONS)
            .collect());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            Point::by_name(name).ok_or_else(|| {
                let all: Vec<&str> = (tracer::POINTS.iter().chain(&tracer::FUNCTIONS))
                    .map(|p| p.name)
                    .collect();
                TraceError::UnknownPoint(name.to_string(), all.join(", "))
            })
        })
        .collect()
}

/// Pages of each CPU's perf buffer (64 KiB with 4 KiB pages): with a
/// program per point, the memory is points x CPUs x this.
const PERF_PAGES: usize = 16;

/// The buffer the running kernel has: a ring buffer where it can make
/// one, else a perf event array.
pub fn buffer_for_kernel() -> Buffer {
    match aya::sys::is_map_supported(aya::maps::MapType::RingBuf) {
        Ok(true) => Buffer::Ring,
        Ok(false) => Buffer::Perf,
        Err(e) => {
            tracing::debug!("probing for ring buffers: {e}; using perf buffers");
            Buffer::Perf
        }
    }
}

/// Where a program's events are read from.
enum Events {
    Ring(RingBuf<MapData>),
    /// A buffer per online CPU.
    Perf(Vec<PerfEventArrayBuffer<MapData>>),
}

struct Attached {
    point: Point,
    /// The program's name in its object.
    name: String,
    events: Events,
    /// Per CPU, the events the buffer had no room for.
    lost: PerCpuArray<MapData, u64>,
    /// Holds the program and its link: dropped, they go.
    ebpf: aya::Ebpf,
}

/// The attached programs.
pub struct Tracer {
    attached: Vec<Attached>,
    /// Points that could not be attached, and why.
    pub missing: Vec<(Point, String)>,
    /// Every point asked for, by event index.
    pub points: Vec<Point>,
    /// `enum skb_drop_reason`'s names by value.
    pub reasons: Vec<(u32, String)>,
    pub buffer: Buffer,
}

impl Tracer {
    /// Loads and attaches the programs of `filters` at `points`, writing
    /// their events to `buffer`.
    pub fn attach(
        filters: &Filters,
        points: &[Point],
        buffer: Buffer,
    ) -> Result<Tracer, TraceError> {
        let k = kernel()?;
        let mut t = Tracer {
            attached: Vec::new(),
            missing: Vec::new(),
            points: points.to_vec(),
            reasons: k.reasons.clone(),
            buffer,
        };
        for (i, p) in points.iter().enumerate() {
            match attach_one(filters, i as u32, p, k, buffer) {
                Ok(a) => t.attached.push(a),
                Err(why) => {
                    tracing::debug!(point = p.name, "not attached: {why}");
                    t.missing.push((*p, why));
                }
            }
        }
        if t.attached.is_empty() {
            let why: Vec<String> = (t.missing.iter())
                .map(|(p, w)| format!("{}: {w}", p.name))
                .collect();
            return Err(TraceError::NothingAttached(why.join("; ")));
        }
        Ok(t)
    }

    /// Per point attached: the kernel's count of the program's runs and
    /// their total time (counted while `aya::sys::enable_stats` holds).
    pub fn run_stats(&self) -> Vec<(Point, u64, Duration)> {
        (self.attached.iter())
            .filter_map(|a| {
                let info = a.ebpf.program(&a.name)?.info().ok()?;
                Some((a.point, info.run_count(), info.run_time()))
            })
            .collect()
    }

    /// Events the buffers had no room for since attaching, summed over
    /// the points and CPUs.
    pub fn lost(&self) -> u64 {
        (self.attached.iter())
            .filter_map(|a| a.lost.get(&0, 0).ok())
            .map(|per_cpu| per_cpu.iter().sum::<u64>())
            .sum()
    }

    /// The points attached.
    pub fn attached(&self) -> Vec<Point> {
        self.attached.iter().map(|a| a.point).collect()
    }

    /// Every event waiting, in time order; waits up to `wait` for the
    /// first.
    pub fn poll(&mut self, wait: Duration) -> Vec<Event> {
        let step = Duration::from_millis(5);
        let mut waited = Duration::ZERO;
        loop {
            let mut out = Vec::new();
            for a in &mut self.attached {
                match &mut a.events {
                    Events::Ring(ring) => {
                        while let Some(item) = ring.next() {
                            out.extend(Event::parse(&item));
                        }
                    }
                    Events::Perf(buffers) => {
                        for b in buffers {
                            b.for_each(|e| match e {
                                // Joined only when it wraps around the buffer.
                                PerfEvent::Sample { head, tail: [] } => {
                                    out.extend(Event::parse(head))
                                }
                                PerfEvent::Sample { head, tail } => {
                                    out.extend(Event::parse(&[head, tail].concat()))
                                }
                                // Also counted by the program, in `lost`.
                                PerfEvent::Lost { count } => {
                                    tracing::debug!(count, "perf buffer lost events")
                                }
                            });
                        }
                    }
                }
            }
            if !out.is_empty() || waited >= wait {
                out.sort_by_key(|e| e.time_ns);
                return out;
            }
            std::thread::sleep(step);
            waited += step;
        }
    }
}

/// The name of drop reason `value` among `reasons` (`enum
/// skb_drop_reason`), without the enum's prefix; the number when unknown.
pub fn reason_name(reasons: &[(u32, String)], value: u32) -> String {
    (reasons.iter())
        .find(|(v, _)| *v == value)
        .map(|(_, n)| n.trim_start_matches("SKB_DROP_REASON_").to_string())
        .unwrap_or_else(|| value.to_string())
}

/// Loads (verifies) the program of `filters` for `point` without
/// attaching it; its instruction count.
pub fn verify(filters: &Filters, point: &Point, buffer: Buffer) -> Result<usize, TraceError> {
    let k = kernel()?;
    let (_, insns) = load_one(filters, 0, point, k, buffer).map_err(TraceError::Load)?;
    Ok(insns)
}

/// The program for `point`, loaded (verified) but not attached, and its
/// instruction count.
fn load_one(
    filters: &Filters,
    index: u32,
    point: &Point,
    k: &Kernel,
    buffer: Buffer,
) -> Result<((aya::Ebpf, String), usize), String> {
    let btf = &k.btf;
    let obj = tracer::program(
        filters,
        index,
        point,
        &k.offsets,
        buffer,
        bpf_kernel::loops(),
    )
    .map_err(|e| e.to_string())?;
    let bytes =
        filter_programs::elf::write_in(&obj, &point.section()).map_err(|e| e.to_string())?;
    let mut ebpf = aya::EbpfLoader::new()
        .btf(Some(btf))
        .load(&bytes)
        .map_err(|e| e.to_string())?;
    let prog = ebpf
        .program_mut(&obj.name)
        .ok_or("the object has no program")?;
    let loaded = match point.kind {
        Kind::Tracepoint => {
            let p: &mut BtfTracePoint = prog.try_into().map_err(|e: ProgramError| e.to_string())?;
            p.load(point.name, btf)
        }
        Kind::Function => {
            let p: &mut FEntry = prog.try_into().map_err(|e: ProgramError| e.to_string())?;
            p.load(point.name, btf)
        }
    };
    loaded.map_err(|e| match point.kind {
        Kind::Function => format!("fentry: {}", verifier_error(&e)),
        Kind::Tracepoint => verifier_error(&e),
    })?;
    Ok(((ebpf, obj.name), obj.insns.len()))
}

fn attach_one(
    filters: &Filters,
    index: u32,
    point: &Point,
    k: &Kernel,
    buffer: Buffer,
) -> Result<Attached, String> {
    let ((mut ebpf, name), _) = load_one(filters, index, point, k, buffer)?;
    let prog = ebpf.program_mut(&name).ok_or("the object has no program")?;
    let attached = match point.kind {
        Kind::Tracepoint => {
            let p: &mut BtfTracePoint = prog.try_into().map_err(|e: ProgramError| e.to_string())?;
            p.attach().map(drop)
        }
        Kind::Function => {
            let p: &mut FEntry = prog.try_into().map_err(|e: ProgramError| e.to_string())?;
            p.attach().map(drop)
        }
    };
    attached.map_err(|e| match point.kind {
        Kind::Function => format!("fentry: {e}"),
        Kind::Tracepoint => e.to_string(),
    })?;
    let map = ebpf
        .take_map(tracer::EVENTS)
        .ok_or("the object has no events map")?;
    let events = match buffer {
        Buffer::Ring => Events::Ring(RingBuf::try_from(map).map_err(|e| e.to_string())?),
        Buffer::Perf => {
            let mut array = PerfEventArray::try_from(map).map_err(|e| e.to_string())?;
            let cpus = aya::util::online_cpus().map_err(|(what, e)| format!("{what}: {e}"))?;
            let buffers = (cpus.into_iter())
                .map(|cpu| array.open(cpu, Some(PERF_PAGES)))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("perf buffer: {e}"))?;
            Events::Perf(buffers)
        }
    };
    let lost = ebpf
        .take_map(tracer::LOST)
        .ok_or("the object has no lost map")?;
    let lost = PerCpuArray::try_from(lost).map_err(|e| e.to_string())?;
    Ok(Attached {
        point: *point,
        name,
        events,
        lost,
        ebpf,
    })
}

/// A load error with the verifier's log's last lines.
fn verifier_error(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = (log.lines())
                .filter(|l| !l.trim().is_empty())
                .rev()
                .take(3)
                .collect();
            if tail.is_empty() {
                return io_error.to_string();
            }
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("{io_error}: {}", tail.join(" | "))
        }
        e => e.to_string(),
    }
}
