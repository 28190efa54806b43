//! Capture bytes → our pcap/pcapng reader. Never a panic, and the same
//! reading as libpcap 1.10's (through the `pcap` crate): the same packets
//! (count, captured length, wire length, timestamp, bytes), or an error
//! after the same packets where libpcap gives one.
//!
//! `capfile`'s own corpus test (`libpcap_agreement`) compares whole
//! captures with the same [`reading_of`] and [`difference`].

use std::io::{Read, Write};
use std::path::Path;

use crate::Outcome;

/// What a reader made of a file: its packets as (caplen, wire length,
/// timestamp in ns, bytes), and the error it ended in, if it did.
#[derive(Debug, PartialEq)]
pub struct Reading {
    pub packets: Vec<(u32, u32, i128, Vec<u8>)>,
    pub error: Option<String>,
}

/// Our reader's reading of a capture's bytes.
pub fn reading_of(name: &str, file: impl Read) -> Reading {
    let mut reading = Reading {
        packets: vec![],
        error: None,
    };
    let reader = match capfile::open(name.to_string(), file) {
        Ok(r) => r,
        Err(e) => {
            reading.error = Some(e.to_string());
            return reading;
        }
    };
    for item in reader {
        match item {
            Ok(p) => {
                let caplen = p.data.len() as u32;
                reading
                    .packets
                    .push((caplen, p.wire_len, i128::from(p.ts_ns), p.data))
            }
            Err(e) => {
                reading.error = Some(e.to_string());
                break;
            }
        }
    }
    reading
}

/// libpcap's reading of the capture at `path`.
pub fn libpcap_reading(path: &Path) -> Reading {
    let mut reading = Reading {
        packets: vec![],
        error: None,
    };
    let mut cap = match pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano) {
        Ok(c) => c,
        Err(e) => {
            reading.error = Some(e.to_string());
            return reading;
        }
    };
    loop {
        match cap.next_packet() {
            Ok(p) => {
                let ts = i128::from(p.header.ts.tv_sec) * 1_000_000_000
                    + i128::from(p.header.ts.tv_usec);
                reading
                    .packets
                    .push((p.header.caplen, p.header.len, ts, p.data.to_vec()));
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                reading.error = Some(e.to_string());
                break;
            }
        }
    }
    reading
}

/// Whether a timestamp difference (ours less libpcap's) is only libpcap
/// 1.10's reading of a classic pcap record's 32-bit seconds or fraction
/// field as signed (`bpf_int32`): a field with its top bit set reads 2^32
/// units lower there. We read them unsigned, as the format's definition
/// says and later libpcap reads them (tcpdump's `time_2106*.pcap` test
/// exactly that); a `u64` of nanoseconds has no negative times.
pub fn signed_fields(d: i128) -> bool {
    let wrap = 1i128 << 32;
    // The seconds field wraps by 2^32 s; the fraction by 2^32 ns in a
    // nanosecond file, or 2^32 us in a microsecond one.
    [0, wrap * 1_000_000_000]
        .into_iter()
        .flat_map(|sec| [0, wrap, wrap * 1_000].map(|frac| sec + frac))
        .any(|k| k != 0 && k == d)
}

/// Whether both readings are outside what a `u64` of nanoseconds since
/// 1970 holds (years 1970 to 2554), where ours is clamped to an end: a
/// pcapng interface with coarse units or a large offset can name such
/// times, which libpcap computes in 64-bit `tv_sec` arithmetic that may
/// itself wrap (found by the `capture_read` fuzz target;
/// docs/LIBPCAP_DIFFERENCES.md).
pub fn saturated(ours: i128, libpcap: i128) -> bool {
    let max = i128::from(u64::MAX);
    (ours == 0 || ours == max) && !(0..=max).contains(&libpcap)
}

/// How our reading differs from libpcap's, if it does.
pub fn difference(ours: &Reading, theirs: &Reading) -> Option<String> {
    let n = ours.packets.len().min(theirs.packets.len());
    for i in 0..n {
        let (a, b) = (&ours.packets[i], &theirs.packets[i]);
        if a.0 != b.0 || a.1 != b.1 {
            return Some(format!(
                "packet {i}: caplen/len {}/{} vs libpcap's {}/{}",
                a.0, a.1, b.0, b.1
            ));
        }
        if a.2 != b.2 && !signed_fields(a.2 - b.2) && !saturated(a.2, b.2) {
            return Some(format!(
                "packet {i}: timestamp {} vs libpcap's {}",
                a.2, b.2
            ));
        }
        if a.3 != b.3 {
            let at = a.3.iter().zip(&b.3).position(|(x, y)| x != y);
            return Some(format!("packet {i}: bytes differ at {at:?}"));
        }
    }
    if ours.packets.len() != theirs.packets.len() || ours.error.is_some() != theirs.error.is_some()
    {
        return Some(format!(
            "{} packets then {:?}, libpcap: {} packets then {:?}",
            ours.packets.len(),
            ours.error,
            theirs.packets.len(),
            theirs.error
        ));
    }
    None
}

/// libpcap reads only from a path or a `FILE *`: the bytes go to an
/// anonymous in-memory file, opened through `/proc/self/fd`.
fn libpcap_reading_of_bytes(data: &[u8]) -> Reading {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; the fd
    // it returns is owned by the File below and closed when it drops.
    let fd = unsafe { libc::memfd_create(c"fuzz-capture".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    file.write_all(data).expect("write to memfd");
    libpcap_reading(Path::new(&format!("/proc/self/fd/{fd}")))
}

pub fn check(data: &[u8]) -> Outcome {
    let ours = reading_of("input", data);
    let theirs = libpcap_reading_of_bytes(data);
    match difference(&ours, &theirs) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}
