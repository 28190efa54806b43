//! Random and mutated bytes never panic a reader, and a reader never
//! yields more than one error.

use proptest::prelude::*;

use capfile::{open, pcap, MAX_CAPLEN};

fn drain(bytes: &[u8]) -> usize {
    let Ok(reader) = open("fuzz", bytes) else {
        return 0;
    };
    let mut errors = 0;
    let mut packets = 0;
    for item in reader {
        match item {
            Ok(p) => {
                assert!(p.data.len() <= MAX_CAPLEN as usize);
                packets += 1;
            }
            Err(e) => {
                errors += 1;
                assert!(e.offset <= bytes.len() as u64, "{e}");
            }
        }
    }
    assert!(errors <= 1);
    packets
}

/// A valid pcap file and a valid pcapng file to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut pcap_file = vec![
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0,
    ];
    for len in [14u32, 3, 60] {
        for x in [1u32, 2, len, len] {
            pcap_file.extend(x.to_le_bytes());
        }
        pcap_file.extend(vec![0xab; len as usize]);
    }
    let mut ng = vec![
        0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, //
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0, //
        1, 0, 0, 0, 28, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 9, 0, 0, 0, 28, 0, 0, 0,
    ];
    ng.extend([
        6, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0,
    ]);
    ng.extend([1, 2, 3, 4, 36, 0, 0, 0]);
    ng.extend([3, 0, 0, 0, 20, 0, 0, 0, 2, 0, 0, 0, 7, 7, 0, 0, 20, 0, 0, 0]);
    vec![pcap_file, ng]
}

#[test]
fn seeds_are_valid() {
    assert_eq!(drain(&seeds()[0]), 3);
    assert_eq!(drain(&seeds()[1]), 2);
    assert!(pcap::magic_kind([0xd4, 0xc3, 0xb2, 0xa1]).is_some());
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        drain(&bytes);
    }

    #[test]
    fn random_bytes_after_a_magic_never_panic(
        which in 0usize..2,
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = seeds()[which][..4].to_vec();
        bytes.extend(tail);
        drain(&bytes);
    }

    #[test]
    fn mutated_files_never_panic(
        which in 0usize..2,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = seeds()[which].clone();
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        drain(&bytes);
        let keep = cut.index(bytes.len() + 1);
        drain(&bytes[..keep]);
    }
}
