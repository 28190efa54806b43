//! What the compiler's benchmarks (filter-programs/benches) and the
//! kernel's (filterd/benches) both need: this thread's CPU time, the
//! corpus's Ethernet packets, and the median of a sample. Each side's own
//! helpers live in its `benches/common`.

use std::time::Duration;

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`). On a
/// machine shared with other jobs, time spent descheduled would otherwise
/// land on whichever side happened to be running.
pub fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Every packet (captured bytes, wire length) of the corpus's Ethernet
/// captures, in file order.
pub fn ethernet_packets() -> Vec<(Vec<u8>, u32)> {
    crate::corpus::captures()
        .into_iter()
        .filter(|c| c.dlt == 1)
        .flat_map(|c| c.packets.into_iter().map(|p| (p.data, p.wirelen)))
        .collect()
}

/// Median of a non-empty sample (sorted in place).
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}
