//! Streaming: pcap-replay's memory stays flat however large the capture.
//! Generates a capture of more than 1 GB in a scratch directory, replays
//! it with the cbpf and libpcap engines, and asserts that the peak RSS
//! (the child's `ru_maxrss` from `wait4`) stays under 100 MB and that every
//! packet was read and filtered. Packets are full-size Ethernet frames so
//! that the file is large while the packet count (and so the run time of
//! an unoptimized build) stays modest.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use capfile::{Format, LinkType, Record, Writer};

const FRAME: usize = 1514;
const PACKETS: u64 = 720_000;
const LIMIT_KB: i64 = 100 * 1024;

/// A TCP/IPv4 frame to port 80 (even `i`) or 443 (odd): the filter
/// matches half.
fn frame(i: u64) -> Vec<u8> {
    let mut f = vec![0u8; FRAME];
    f[12] = 0x08;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((FRAME - 14) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[34..36].copy_from_slice(&40_000u16.to_be_bytes());
    let port: u16 = if i.is_multiple_of(2) { 80 } else { 443 };
    f[36..38].copy_from_slice(&port.to_be_bytes());
    f[46] = 0x50;
    f
}

struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_capture_over_1_gb_replays_in_under_100_mb() {
    let dir =
        Scratch(std::env::temp_dir().join(format!("pcap-replay-large-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("large.pcap");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&path).unwrap());
    let mut w = Writer::new(&mut out, Format::Pcap, LinkType::ETHERNET, 65_535, "").unwrap();
    let frames = [frame(0), frame(1)];
    for i in 0..PACKETS {
        w.write(&Record {
            ts_ns: i / 1000 * 1_000_000_000 + i % 1000 * 1_000_000,
            wire_len: FRAME as u32,
            data: &frames[(i % 2) as usize],
        })
        .unwrap();
    }
    w.finish().unwrap();
    out.flush().unwrap();
    drop(out);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size >= 1_000_000_000, "{size} bytes");

    // Reaped with wait4 below, for its rusage.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(e2e::bin("pcap-replay"))
        .args(["-e", "tcp port 80", "--engines", "cbpf,libpcap", "--json"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    // Read the pipes on threads so that the child never blocks on them
    // while we wait for it with wait4 (which std's Child does not expose).
    let mut stdout = child.stdout.unwrap();
    let mut stderr = child.stderr.unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut s).map(|_| s)
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut s).map(|_| s)
    });
    let mut status = 0;
    // SAFETY: rusage is plain data, written by the kernel; pid is our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    let stdout = out_thread.join().unwrap().unwrap();
    let stderr = err_thread.join().unwrap().unwrap();
    let exit = std::process::ExitStatus::from_raw(status);
    assert_eq!(exit.code(), Some(0), "{}", String::from_utf8_lossy(&stderr));
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let r = &report["results"][0];
    assert_eq!(r["packets"], PACKETS);
    assert_eq!(r["engines"]["cbpf"]["matched"], PACKETS / 2);
    assert_eq!(r["engines"]["libpcap"]["matched"], PACKETS / 2);
    let max_rss_kb = usage.ru_maxrss;
    println!(
        "{size} bytes, {PACKETS} packets in {}s, peak RSS {max_rss_kb} kB",
        r["seconds"]
    );
    assert!(
        max_rss_kb > 0 && max_rss_kb < LIMIT_KB,
        "peak RSS {max_rss_kb} kB"
    );
    std::fs::remove_file(&path).unwrap();
}
