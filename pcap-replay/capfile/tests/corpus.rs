//! Every corpus capture reads exactly as libpcap reads it (through the
//! `pcap` crate): same packets, bytes, lengths and timestamps; the
//! invalid savefiles are refused.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use capfile::{open, ErrorKind};

fn manifest() -> Vec<(String, String)> {
    let dir = e2e::corpus_dir().join("pcaps");
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    text.lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].to_string(), cols[2].to_string())
        })
        .collect()
}

fn compare_with_libpcap(path: &Path) -> usize {
    let file = BufReader::new(File::open(path).unwrap());
    let ours = open(path.display().to_string(), file).unwrap();
    let mut theirs = pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano).unwrap();
    let mut n = 0;
    for packet in ours {
        let packet = packet.unwrap_or_else(|e| panic!("{e}"));
        let lp = theirs
            .next_packet()
            .unwrap_or_else(|e| panic!("{}: libpcap: {e}", path.display()));
        assert_eq!(packet.data, lp.data, "{} #{n}", path.display());
        assert_eq!(packet.wire_len, lp.header.len, "{} #{n}", path.display());
        let ts = lp.header.ts.tv_sec as u64 * 1_000_000_000 + lp.header.ts.tv_usec as u64;
        assert_eq!(packet.ts_ns, ts, "{} #{n}", path.display());
        assert_eq!(
            packet.linktype.to_dlt(),
            theirs.get_datalink().0,
            "{}",
            path.display()
        );
        n += 1;
    }
    assert!(
        theirs.next_packet().is_err(),
        "{}: libpcap has more packets",
        path.display()
    );
    n
}

#[test]
fn corpus_captures_read_like_libpcap() {
    let dir = e2e::corpus_dir().join("pcaps");
    let mut checked = 0;
    for (file, packets) in manifest() {
        if file.contains("invalid/") {
            continue;
        }
        let n = compare_with_libpcap(&dir.join(&file));
        assert_eq!(n.to_string(), packets, "{file}");
        checked += 1;
    }
    assert!(checked >= 80, "only {checked} files");
}

/// The invalid savefiles libpcap refuses are refused, with offsets. (One
/// more, `linktype-reserved-field-not-zero.pcap`, libpcap reads: it
/// ignores the reserved bits, and so do we since issue 16;
/// `libpcap_agreement.rs` checks that we read it as libpcap does.)
#[test]
fn invalid_corpus_savefiles_are_refused_with_offsets() {
    let dir = e2e::corpus_dir().join("pcaps/libpcap/invalid");
    type Check = fn(&ErrorKind) -> bool;
    let expect: &[(&str, u64, Check)] = &[
        ("pcap-invalid-version-1.pcap", 4, |k| {
            matches!(
                k,
                ErrorKind::UnsupportedVersion {
                    major: 1,
                    minor: 4,
                    ..
                }
            )
        }),
        ("pcap-invalid-version-2.pcap", 4, |k| {
            matches!(
                k,
                ErrorKind::UnsupportedVersion {
                    major: 2,
                    minor: 5,
                    ..
                }
            )
        }),
        ("pcapng-invalid-vers-1.pcapng", 8, |k| {
            matches!(
                k,
                ErrorKind::UnsupportedVersion {
                    major: 0,
                    minor: 1,
                    ..
                }
            )
        }),
        ("pcapng-invalid-vers-2.pcapng", 8, |k| {
            matches!(
                k,
                ErrorKind::UnsupportedVersion {
                    major: 1,
                    minor: 1,
                    ..
                }
            )
        }),
        // The section header's own trailer (at 48) disagrees with its
        // length, which libpcap never checks for the first one; it
        // complains about the next block, and so do we.
        ("shb-option-too-long.pcapng", 80, |k| {
            matches!(
                k,
                ErrorKind::BlockLengthMismatch {
                    header: 32,
                    trailer: 808_464_432
                }
            )
        }),
    ];
    for (name, offset, check) in expect {
        let file = BufReader::new(File::open(dir.join(name)).unwrap());
        let result = open(*name, file).and_then(|r| r.collect::<Result<Vec<_>, _>>());
        let err = result.expect_err(name);
        assert_eq!(err.offset, *offset, "{err}");
        assert!(check(&err.kind), "{err}");
    }
}
