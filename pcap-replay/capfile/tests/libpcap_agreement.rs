//! Every capture we can find reads as libpcap 1.10 reads it (through the
//! `pcap` crate): the same packets (count, captured length, wire length,
//! timestamp, bytes), or the same error after the same packets (issue 16).
//!
//! Always over the shared corpus (`../shared/corpus/pcaps/**`, the invalid
//! savefiles included); also over every `tests/*.pcap*` of tcpdump's test
//! suite when a copy is present: `TCPDUMP_TESTS_DIR` names its `tests`
//! directory, else a git mirror of the-tcpdump-group/tcpdump under
//! `/work/.mirror/` is unpacked into a temporary directory. Nothing of
//! tcpdump's is committed here.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// What a reader made of a file: its packets as (caplen, wire length,
/// timestamp in ns, bytes), and whether it ended in an error.
#[derive(Debug, PartialEq)]
struct Reading {
    packets: Vec<(u32, u32, i128, Vec<u8>)>,
    error: Option<String>,
}

fn ours(path: &Path) -> Reading {
    let mut reading = Reading {
        packets: vec![],
        error: None,
    };
    let file = BufReader::new(File::open(path).unwrap());
    let reader = match capfile::open(path.display().to_string(), file) {
        Ok(r) => r,
        Err(e) => {
            reading.error = Some(e.to_string());
            return reading;
        }
    };
    for item in reader {
        match item {
            Ok(p) => {
                reading
                    .packets
                    .push((p.data.len() as u32, p.wire_len, i128::from(p.ts_ns), p.data))
            }
            Err(e) => {
                reading.error = Some(e.to_string());
                break;
            }
        }
    }
    reading
}

fn libpcap(path: &Path) -> Reading {
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
fn signed_fields(d: i128) -> bool {
    let wrap = 1i128 << 32;
    // The seconds field wraps by 2^32 s; the fraction by 2^32 ns in a
    // nanosecond file, or 2^32 us in a microsecond one.
    [0, wrap * 1_000_000_000]
        .into_iter()
        .flat_map(|sec| [0, wrap, wrap * 1_000].map(|frac| sec + frac))
        .any(|k| k != 0 && k == d)
}

/// How our reading of a file differs from libpcap's, if it does.
fn difference(ours: &Reading, theirs: &Reading) -> Option<String> {
    let n = ours.packets.len().min(theirs.packets.len());
    for i in 0..n {
        let (a, b) = (&ours.packets[i], &theirs.packets[i]);
        if a.0 != b.0 || a.1 != b.1 {
            return Some(format!(
                "packet {i}: caplen/len {}/{} vs libpcap's {}/{}",
                a.0, a.1, b.0, b.1
            ));
        }
        if a.2 != b.2 && !signed_fields(a.2 - b.2) {
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

fn captures_under(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            captures_under(&path, into);
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".pcap") || n.ends_with(".cap"))
        {
            into.push(path);
        }
    }
}

#[test]
fn every_capture_reads_as_libpcap_reads_it() {
    let mut files = vec![];
    captures_under(&e2e::corpus_dir().join("pcaps"), &mut files);
    let corpus = files.len();
    let tcpdump = e2e::tcpdump_tests();
    if let Some(dir) = &tcpdump {
        captures_under(dir, &mut files);
    }
    files.sort();
    let mut differ = vec![];
    let mut errors_alike = 0;
    let mut signed_ts = vec![];
    for path in &files {
        let (a, b) = (ours(path), libpcap(path));
        if a.error.is_some() && b.error.is_some() {
            errors_alike += 1;
            eprintln!(
                "both end in an error after {} packets: {}: ours {:?}; libpcap {:?}",
                a.packets.len(),
                path.display(),
                a.error,
                b.error
            );
        }
        let signed = a
            .packets
            .iter()
            .zip(&b.packets)
            .filter(|(x, y)| x.2 != y.2 && signed_fields(x.2 - y.2))
            .count();
        if signed > 0 {
            signed_ts.push(format!("{} ({signed} packets)", path.display()));
        }
        if let Some(why) = difference(&a, &b) {
            differ.push((path.clone(), why));
        }
    }
    eprintln!(
        "{} captures ({corpus} from the corpus, {} from tcpdump's tests); \
         {errors_alike} end in an error in both; {} differ; {} have timestamps \
         libpcap 1.10 reads as signed 32-bit fields:\n  {}",
        files.len(),
        files.len() - corpus,
        differ.len(),
        signed_ts.len(),
        signed_ts.join("\n  ")
    );
    let unexplained: Vec<_> = differ
        .iter()
        .map(|(p, why)| format!("{}: {why}", p.display()))
        .collect();
    if let Some(dir) = &tcpdump {
        e2e::remove_tcpdump_tests(dir);
    }
    assert!(corpus >= 80, "only {corpus} corpus captures");
    assert!(
        unexplained.is_empty(),
        "{} captures read otherwise than libpcap reads them:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
}
