//! The allocator's settings for one short run.
//!
//! glibc's malloc gives memory back to the kernel as soon as the top of a
//! heap is free (128 KiB by default) and grows a thread's heap a few pages
//! at a time, each step an `mprotect` and each fresh page a fault; large
//! buffers get a fresh `mmap` each, faulted in page by page. A replay
//! allocates and frees per program and capture (compiled programs,
//! results, report lines) from two threads, so with many programs the
//! kernel's share of the run was a sixth, most of it that churn
//! (docs/PERFORMANCE.md, issue 19). A replay is short and its peak is its
//! footprint, so it keeps what it took until it exits.

/// Heaps grow 64 MiB at a time and are not trimmed below 256 MiB free;
/// buffers below 32 MiB (glibc's largest threshold) come from the heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_memory() {
    const PAD: libc::c_int = 64 << 20;
    const TRIM: libc::c_int = 256 << 20;
    const MMAP: libc::c_int = 32 << 20;
    // SAFETY: mallopt only sets allocator parameters; it runs before any
    // other thread exists. A refused setting leaves the default.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, PAD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP);
    }
}

/// Other C libraries keep their defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_memory() {}
