//! Every capture we can find reads as libpcap 1.10 reads it (through the
//! `pcap` crate): the same packets (count, captured length, wire length,
//! timestamp, bytes), or the same error after the same packets (issue 16).
//!
//! Always over the shared corpus (`../shared/corpus/pcaps/**`, the invalid
//! savefiles included); also over every `tests/*.pcap*` of tcpdump's test
//! suite when a copy is present: `TCPDUMP_TESTS_DIR` names its `tests`
//! directory, else a git mirror of the-tcpdump-group/tcpdump under
//! `/work/.mirror/` is unpacked into a temporary directory. Nothing of
//! tcpdump's is committed here. The comparison itself is
//! `fuzz_checks::capture`'s, which the `capture_read` fuzz target uses.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use fuzz_checks::capture::{difference, libpcap_reading, reading_of, signed_fields, Reading};

fn ours(path: &Path) -> Reading {
    let file = BufReader::new(File::open(path).unwrap());
    reading_of(&path.display().to_string(), file)
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
        let (a, b) = (ours(path), libpcap_reading(path));
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
