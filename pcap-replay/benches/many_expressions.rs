//! 100 expressions against one over the shared corpus's captures, whole
//! processes, in pairs (A then B, the ratio per pair; the median is the
//! figure): issue 19's "100 expressions take at most 3x one".
//!
//! ```text
//! cargo bench -p pcap-replay --bench many_expressions          # 15 pairs
//! PAIRS=30 cargo bench -p pcap-replay --bench many_expressions
//! PCAP_REPLAY=/path/to/older/pcap-replay cargo bench -p pcap-replay --bench many_expressions
//! ```
//!
//! Both runs take `--engines cbpf --count` over every capture under
//! `../shared/corpus/pcaps/{tcpdump,libpcap}`, the expressions the first
//! 100 (1) lines of `../shared/corpus/expressions/common.txt`; their
//! output goes to /dev/null, no shell in between. Exit code 2 on both
//! sides (some expressions do not compile for some link types).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn shared() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    assert!(
        root.is_dir(),
        "{} is missing: the bench reads the shared corpus",
        root.display()
    );
    root
}

fn captures(corpus: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["tcpdump", "libpcap"] {
        let d = corpus.join("pcaps").join(dir);
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("a directory entry").path();
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".pcap"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Children's user + system seconds so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// The binary: this build's, or `PCAP_REPLAY` (to compare an older
/// build on the same machine).
fn binary() -> PathBuf {
    std::env::var_os("PCAP_REPLAY")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_pcap-replay").into())
}

/// One run: (wall, cpu) seconds.
fn run(exprs: &Path, captures: &[PathBuf]) -> (f64, f64) {
    let cpu = children_cpu();
    let t = Instant::now();
    let status = Command::new(binary())
        .args(["--engines", "cbpf", "--count", "-F"])
        .arg(exprs)
        .args(captures)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("pcap-replay runs");
    let wall = t.elapsed().as_secs_f64();
    assert!(
        status.code().is_some_and(|c| c <= 2),
        "pcap-replay: {status}"
    );
    (wall, children_cpu() - cpu)
}

fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.3} {:.3} {:.3}", v[0], v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let corpus = shared();
    let caps = captures(&corpus);
    let lines: Vec<String> = std::fs::read_to_string(corpus.join("expressions/common.txt"))
        .expect("common.txt")
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        lines.len() >= 100,
        "common.txt holds {} expressions",
        lines.len()
    );
    let dir = std::env::temp_dir().join(format!("many_expressions.{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let (e100, e1) = (dir.join("e100.txt"), dir.join("e1.txt"));
    std::fs::write(&e100, lines[..100].join("\n") + "\n").expect("e100");
    std::fs::write(&e1, lines[0].clone() + "\n").expect("e1");
    let pairs: usize = std::env::var("PAIRS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(15);
    // A warm-up pair, not counted.
    run(&e100, &caps);
    run(&e1, &caps);
    let (mut a, mut b, mut wall, mut cpu) = (vec![], vec![], vec![], vec![]);
    for _ in 0..pairs {
        let (aw, ac) = run(&e100, &caps);
        let (bw, bc) = run(&e1, &caps);
        a.push(aw * 1e3);
        b.push(bw * 1e3);
        wall.push(aw / bw);
        cpu.push(ac / bc.max(1e-6));
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{} captures, {pairs} pairs; min median max", caps.len());
    println!("100 expressions, wall ms   {}", spread(a));
    println!("1 expression, wall ms      {}", spread(b));
    println!("100 / 1, wall              {}", spread(wall));
    println!("100 / 1, cpu               {}", spread(cpu));
}
