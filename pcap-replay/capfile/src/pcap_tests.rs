use super::*;
use crate::{open, open_with, CaptureReader};

/// A little-endian microsecond header: version 2.4, snaplen 65535, EN10MB.
const LE_HEADER: [u8; 24] = [
    0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, //
    0xff, 0xff, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
];

/// The same header big-endian, nanosecond magic, with a 4-byte FCS flag.
const BE_NANO_FCS_HEADER: [u8; 24] = [
    0xa1, 0xb2, 0x3c, 0x4d, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, //
    0x00, 0x00, 0xff, 0xff, 0x24, 0x00, 0x00, 0x01,
];

fn record_le(ts_sec: u32, ts_frac: u32, data: &[u8], orig: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [ts_sec, ts_frac, data.len() as u32, orig] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn read_all(bytes: &[u8]) -> (Vec<Packet>, Option<CaptureError>) {
    let reader = match open("t.pcap", bytes) {
        Ok(r) => r,
        Err(e) => return (vec![], Some(e)),
    };
    let mut packets = vec![];
    for item in reader {
        match item {
            Ok(p) => packets.push(p),
            Err(e) => return (packets, Some(e)),
        }
    }
    (packets, None)
}

#[test]
fn parses_little_endian_micro_header() {
    let view = FileHeader::new_checked(&LE_HEADER[..]).unwrap();
    let repr = FileHeaderRepr::parse(&view).unwrap();
    assert_eq!(
        repr,
        FileHeaderRepr {
            order: ByteOrder::Little,
            resolution: TsResolution::Micro,
            version_major: 2,
            version_minor: 4,
            thiszone: 0,
            sigfigs: 0,
            snaplen: 65535,
            linktype: LinkTypeField {
                linktype: LinkType::ETHERNET,
                fcs_len: None
            },
        }
    );
}

#[test]
fn parses_big_endian_nano_header_with_fcs_bits() {
    let view = FileHeader::new_checked(&BE_NANO_FCS_HEADER[..]).unwrap();
    let repr = FileHeaderRepr::parse(&view).unwrap();
    assert_eq!(repr.order, ByteOrder::Big);
    assert_eq!(repr.resolution, TsResolution::Nano);
    assert_eq!(repr.snaplen, 65535);
    assert_eq!(
        repr.linktype,
        LinkTypeField {
            linktype: LinkType::ETHERNET,
            fcs_len: Some(4)
        }
    );
}

#[test]
fn header_emit_round_trips_exact_bytes() {
    for bytes in [LE_HEADER, BE_NANO_FCS_HEADER] {
        let repr = FileHeaderRepr::parse(&FileHeader::new_checked(&bytes[..]).unwrap()).unwrap();
        let mut out = [0u8; 24];
        repr.emit(&mut FileHeader::new_for_writing(&mut out[..], repr.order).unwrap());
        assert_eq!(out, bytes);
    }
}

#[test]
fn record_header_exact_bytes() {
    let bytes = [
        1, 0, 0, 0, 0x40, 0x42, 0x0f, 0, 60, 0, 0, 0, 0xea, 0x05, 0, 0,
    ];
    let rec = RecordRepr::parse(&bytes, ByteOrder::Little);
    assert_eq!(
        rec,
        RecordRepr {
            ts_sec: 1,
            ts_frac: 1_000_000,
            caplen: 60,
            orig_len: 1514
        }
    );
    let mut out = [0u8; 16];
    rec.emit(&mut out, ByteOrder::Little);
    assert_eq!(out, bytes);
    assert_eq!(rec.ts_ns(TsResolution::Micro), 2_000_000_000);
    assert_eq!(rec.ts_ns(TsResolution::Nano), 1_001_000_000);
}

#[test]
fn reads_records_in_order() {
    let mut file = LE_HEADER.to_vec();
    file.extend(record_le(10, 5, &[1, 2, 3], 3));
    file.extend(record_le(11, 0, &[4; 14], 1514));
    let (packets, err) = read_all(&file);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets.len(), 2);
    assert_eq!(packets[0].index, 0);
    assert_eq!(packets[0].offset, 24);
    assert_eq!(packets[0].ts_ns, 10_000_005_000);
    assert_eq!(packets[0].data, [1, 2, 3]);
    assert_eq!(packets[1].offset, 24 + 16 + 3);
    assert_eq!(packets[1].wire_len, 1514);
    assert_eq!(packets[1].linktype, LinkType::ETHERNET);
}

#[test]
fn big_endian_records() {
    let mut file = BE_NANO_FCS_HEADER.to_vec();
    for x in [7u32, 9, 2, 64] {
        file.extend_from_slice(&x.to_be_bytes());
    }
    file.extend_from_slice(&[0xaa, 0xbb]);
    let (packets, err) = read_all(&file);
    assert!(err.is_none());
    assert_eq!(packets[0].ts_ns, 7_000_000_009);
    assert_eq!(
        (packets[0].data.as_slice(), packets[0].wire_len),
        (&[0xaa, 0xbb][..], 64)
    );
}

fn expect_err(bytes: &[u8], packets: usize, offset: u64, check: impl Fn(&ErrorKind) -> bool) {
    let (got, err) = read_all(bytes);
    let err = err.expect("an error");
    assert_eq!(got.len(), packets, "{err}");
    assert_eq!(err.offset, offset, "{err}");
    assert!(check(&err.kind), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("t.pcap: byte {offset}: ")),
        "{err}"
    );
}

#[test]
fn errors_carry_offsets() {
    expect_err(&[], 0, 0, |k| matches!(k, ErrorKind::Empty));
    expect_err(b"GIF89a..", 0, 0, |k| {
        matches!(k, ErrorKind::BadMagic(0x4749_4638))
    });
    expect_err(&LE_HEADER[..10], 0, 0, |k| {
        matches!(
            k,
            ErrorKind::Truncated {
                what: Part::FileHeader,
                need: 24,
                got: 10
            }
        )
    });
    let mut v = LE_HEADER;
    v[6] = 5;
    expect_err(&v, 0, 4, |k| {
        matches!(
            k,
            ErrorKind::UnsupportedVersion {
                major: 2,
                minor: 5,
                ..
            }
        )
    });
    // Reserved link type bits are no error: libpcap ignores them (and 90
    // of tcpdump's test captures set the FCS bits).
    let mut v = LE_HEADER;
    v[22] = 0x30;
    let reader = open("t.pcap", &v[..]).unwrap();
    assert_eq!(reader.linktype(), Some(LinkType::ETHERNET));

    let mut file = LE_HEADER.to_vec();
    file.extend(record_le(1, 0, &[1, 2, 3], 3));
    let mut cut_header = file.clone();
    cut_header.extend_from_slice(&[0; 7]);
    expect_err(&cut_header, 1, 43, |k| {
        matches!(
            k,
            ErrorKind::Truncated {
                what: Part::RecordHeader,
                need: 16,
                got: 7
            }
        )
    });
    let mut cut_data = file.clone();
    cut_data.extend(record_le(2, 0, &[9; 40], 40));
    cut_data.truncate(cut_data.len() - 30);
    expect_err(&cut_data, 1, 59, |k| {
        matches!(
            k,
            ErrorKind::Truncated {
                what: Part::PacketData,
                need: 40,
                got: 10
            }
        )
    });
    let mut huge = file.clone();
    huge.extend_from_slice(&[0; 8]);
    huge.extend_from_slice(&0x1000_0000u32.to_le_bytes());
    huge.extend_from_slice(&[0; 4]);
    expect_err(&huge, 1, 51, |k| {
        matches!(
            k,
            ErrorKind::CaplenTooLarge {
                caplen: 0x1000_0000,
                ..
            }
        )
    });
}

#[test]
fn caplen_over_snaplen_is_cut_like_libpcap_or_refused_when_strict() {
    let mut file = LE_HEADER.to_vec();
    file[16..20].copy_from_slice(&4u32.to_le_bytes());
    file.extend(record_le(1, 0, &[1, 2, 3, 4, 5, 6], 6));
    file.extend(record_le(1, 0, &[7], 1));
    let (packets, err) = read_all(&file);
    assert!(err.is_none());
    assert_eq!(packets[0].data, [1, 2, 3, 4]);
    assert_eq!(packets[0].wire_len, 6);
    assert_eq!(packets[1].data, [7]);

    let strict = Options {
        strict_snaplen: true,
        ..Options::default()
    };
    let mut reader = open_with("s.pcap", &file[..], strict).unwrap();
    let err = reader.next().unwrap().unwrap_err();
    assert_eq!(err.offset, 32);
    assert!(matches!(
        err.kind,
        ErrorKind::CaplenOverSnaplen {
            caplen: 6,
            snaplen: 4
        }
    ));
    assert!(reader.next().is_none(), "iteration ends after an error");
}

/// libpcap's rules for the snap length: 0, or one over `i32::MAX`, is the
/// link type's maximum; a captured length over the maximum is an error
/// whatever the snap length; one over the snap length (but within the
/// maximum) is cut to it; and the maximum is larger for a few link types.
#[test]
fn snap_length_and_maximum_follow_libpcap() {
    let big = vec![0xabu8; 300_000];
    let header = |snaplen: u32, linktype: u32| {
        let mut h = LE_HEADER.to_vec();
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&linktype.to_le_bytes());
        h
    };
    for snaplen in [0, 0x8000_0000, u32::MAX] {
        let mut file = header(snaplen, 1);
        file.extend(record_le(1, 0, &big[..70_000], 70_000));
        let (packets, err) = read_all(&file);
        assert!(err.is_none(), "snaplen {snaplen}: {err:?}");
        assert_eq!(packets[0].data.len(), 70_000);
    }
    // Over the maximum (but a valid int): kept, and it cuts nothing, but
    // a record over 256 KiB is still refused, after the ones before it.
    let mut file = header(1 << 20, 1);
    file.extend(record_le(1, 0, &big[..100], 100));
    file.extend(record_le(1, 0, &big, 300_000));
    let (packets, err) = read_all(&file);
    assert_eq!(packets.len(), 1);
    let err = err.expect("over the maximum");
    assert!(matches!(
        err.kind,
        ErrorKind::CaplenTooLarge {
            caplen: 300_000,
            limit: 262_144
        }
    ));
    // D-Bus (231) allows 128 MiB: 300,000 bytes read whole.
    let mut file = header(0, 231);
    file.extend(record_le(1, 0, &big, 300_000));
    let (packets, err) = read_all(&file);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets[0].data.len(), 300_000);
    // ... and cut to a D-Bus snap length over 256 KiB.
    let mut file = header(280_000, 231);
    file.extend(record_le(1, 0, &big, 300_000));
    let (packets, _) = read_all(&file);
    assert_eq!(
        (packets[0].data.len(), packets[0].wire_len),
        (280_000, 300_000)
    );
}

/// Version 2.3 is libpcap's MAYBE_SWAPPED: the lengths are swapped only
/// when the captured one is the larger; DG/UX's 543.0 is always swapped.
#[test]
fn version_2_3_swaps_only_when_caplen_is_larger_and_dgux_always() {
    let mut file = LE_HEADER.to_vec();
    file[6] = 3;
    file.extend(record_le(1, 0, &[1, 2], 9)); // caplen 2 <= len 9: as is
    for x in [2u32, 0, 60, 3] {
        file.extend_from_slice(&x.to_le_bytes()); // caplen 60 > len 3: swapped
    }
    file.extend_from_slice(&[5, 6, 7]);
    let (packets, err) = read_all(&file);
    assert!(err.is_none(), "{err:?}");
    assert_eq!((packets[0].data.len(), packets[0].wire_len), (2, 9));
    assert_eq!((packets[1].data.len(), packets[1].wire_len), (3, 60));

    let mut file = LE_HEADER.to_vec();
    file[4..6].copy_from_slice(&543u16.to_le_bytes());
    file[6] = 0;
    for x in [1u32, 0, 100, 2] {
        file.extend_from_slice(&x.to_le_bytes());
    }
    file.extend_from_slice(&[5, 6]);
    let (packets, err) = read_all(&file);
    assert!(err.is_none(), "{err:?}");
    assert_eq!((packets[0].data.len(), packets[0].wire_len), (2, 100));
    file[4..6].copy_from_slice(&543u16.to_le_bytes());
    file[6] = 1;
    expect_err(&file, 0, 4, |k| {
        matches!(
            k,
            ErrorKind::UnsupportedVersion {
                major: 543,
                minor: 1,
                ..
            }
        )
    });
}

#[test]
fn old_versions_swap_lengths() {
    let mut file = LE_HEADER.to_vec();
    file[6] = 2; // version 2.2: orig_len was written where caplen is now
    for x in [1u32, 0, 100, 2] {
        file.extend_from_slice(&x.to_le_bytes());
    }
    file.extend_from_slice(&[5, 6]);
    let (packets, err) = read_all(&file);
    assert!(err.is_none(), "{err:?}");
    assert_eq!((packets[0].data.len(), packets[0].wire_len), (2, 100));
}

#[test]
fn format_and_linktype_are_known_after_open() {
    let reader = open("t.pcap", &LE_HEADER[..]).unwrap();
    assert!(matches!(reader, CaptureReader::Pcap(_)));
    assert_eq!(reader.linktype(), Some(LinkType::ETHERNET));
    assert_eq!(reader.count(), 0);
}

#[test]
fn unknown_linktypes_are_refused_only_when_asked() {
    let mut file = LE_HEADER.to_vec();
    file[20..24].copy_from_slice(&60_000u32.to_le_bytes());
    file.extend(record_le(1, 0, &[1, 2], 2));
    let (packets, err) = read_all(&file);
    assert!(err.is_none() && packets.len() == 1);
    let known = Options {
        known_linktypes_only: true,
        ..Options::default()
    };
    let Err(err) = open_with("u.pcap", &file[..], known) else {
        panic!("an unknown link type opens")
    };
    assert_eq!(err.offset, 20);
    assert!(matches!(err.kind, ErrorKind::UnknownLinkType(60_000)));
    assert!(open_with("e.pcap", &LE_HEADER[..], known).is_ok());
}

/// A lent packet copied out.
fn owned(view: PacketView<'_>) -> Packet {
    let mut p = Packet {
        index: 0,
        offset: 0,
        ts_ns: 0,
        data: vec![],
        wire_len: 0,
        linktype: LinkType(0),
    };
    view.copy_into(&mut p);
    p
}

/// Every packet and error through `next_view`, with the input buffered in
/// `capacity`-byte reads, so that records land whole in the buffer or
/// straddle its edge.
fn read_all_views(bytes: &[u8], capacity: usize) -> (Vec<Packet>, Option<CaptureError>) {
    let buffered = std::io::BufReader::with_capacity(capacity, bytes);
    let mut reader = match crate::open_buffered("t.pcap", buffered, Options::default()) {
        Ok(r) => r,
        Err(e) => return (vec![], Some(e)),
    };
    let mut packets = vec![];
    while let Some(item) = reader.next_view() {
        match item {
            Ok(view) => packets.push(owned(view)),
            Err(e) => return (packets, Some(e)),
        }
    }
    assert!(
        reader.next_view().is_none(),
        "iteration ends after the end or an error"
    );
    (packets, None)
}

/// [`read_all_views`] through `for_each_view` (many records per look at
/// the buffer), stopping once after `stop_at` packets to check that a stop
/// resumes where it left off.
fn read_all_batched(
    bytes: &[u8],
    capacity: usize,
    stop_at: usize,
) -> (Vec<Packet>, Option<CaptureError>) {
    let buffered = std::io::BufReader::with_capacity(capacity, bytes);
    let mut reader = match crate::open_buffered("t.pcap", buffered, Options::default()) {
        Ok(r) => r,
        Err(e) => return (vec![], Some(e)),
    };
    let mut packets: Vec<Packet> = vec![];
    let mut stopped = false;
    loop {
        let f = |view: PacketView<'_>| {
            packets.push(owned(view));
            stopped || packets.len() != stop_at
        };
        match reader.for_each_view(f) {
            Ok(true) => break,
            Ok(false) => stopped = true,
            Err(e) => {
                assert!(matches!(
                    reader.for_each_view(|_: PacketView<'_>| true),
                    Ok(true)
                ));
                return (packets, Some(e));
            }
        }
    }
    assert!(reader.next_view().is_none(), "nothing after the end");
    (packets, None)
}

#[test]
fn lent_packets_match_copied_ones_wherever_the_buffer_ends() {
    let mut file = LE_HEADER.to_vec();
    for i in 0..40u32 {
        let data: Vec<u8> = (0..(i * 7) % 97).map(|b| (b + i) as u8).collect();
        file.extend(record_le(i, i * 3, &data, data.len() as u32 + 4));
    }
    // Whole, cut inside a record header, cut inside packet data, and with
    // a record whose captured length is past any limit.
    let header_cut = file.len() - 3;
    let data_cut = file.len() - (((39 * 7) % 97) as usize / 2);
    let mut bad = file.clone();
    let at = 24
        + (0..25u32)
            .map(|i| 16 + ((i * 7) % 97) as usize)
            .sum::<usize>();
    bad[at + 8..at + 12].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    for bytes in [&file[..], &file[..header_cut], &file[..data_cut], &bad[..]] {
        let (want, want_err) = read_all(bytes);
        assert!(want.len() >= 25);
        for capacity in [24, 29, 40, 64, 100, 1 << 16] {
            let want_err = want_err.as_ref().map(|e| e.to_string());
            let (got, got_err) = read_all_views(bytes, capacity);
            assert_eq!(got, want, "capacity {capacity}");
            assert_eq!(
                got_err.map(|e| e.to_string()),
                want_err,
                "capacity {capacity}"
            );
            for stop_at in [1, 7, 30] {
                let (got, got_err) = read_all_batched(bytes, capacity, stop_at);
                assert_eq!(got, want, "batched, capacity {capacity}, stop at {stop_at}");
                let got_err = got_err.map(|e| e.to_string());
                assert_eq!(got_err, want_err, "batched, capacity {capacity}");
            }
        }
    }
}

/// Kuznetsov's patched libpcap (magic a1b2cd34): 24-byte record headers,
/// read as libpcap reads them, with 14 bytes more snap length for
/// Ethernet (libpcap assumes a cooked capture with a made-up header).
#[test]
fn kuznetsov_files_have_longer_record_headers() {
    let mut file = LE_HEADER.to_vec();
    file[..4].copy_from_slice(&MAGIC_KUZNETZOV.to_le_bytes());
    file[16..20].copy_from_slice(&60u32.to_le_bytes());
    let patched = |data: &[u8]| {
        let mut r = Vec::new();
        for x in [7u32, 5, data.len() as u32, data.len() as u32] {
            r.extend_from_slice(&x.to_le_bytes());
        }
        r.extend_from_slice(&[0xee; 8]); // ifindex, protocol, pkt_type, pad
        r.extend_from_slice(data);
        r
    };
    file.extend(patched(&[1; 74]));
    file.extend(patched(&[2; 80]));
    let (packets, err) = read_all(&file);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets.len(), 2);
    assert_eq!(packets[0].data, [1; 74]);
    assert_eq!(packets[0].ts_ns, 7_000_005_000);
    assert_eq!((packets[1].data.len(), packets[1].wire_len), (74, 80));
    assert_eq!(packets[1].offset, 24 + 24 + 74);
    // libpcap reads the same.
    let path = std::env::temp_dir().join(format!("kuznetsov-{}.pcap", std::process::id()));
    std::fs::write(&path, &file).unwrap();
    let mut cap =
        ::pcap::Capture::from_file_with_precision(&path, ::pcap::Precision::Nano).unwrap();
    for p in &packets {
        let lp = cap.next_packet().unwrap();
        assert_eq!((lp.data, lp.header.len), (&p.data[..], p.wire_len));
        assert_eq!(lp.header.ts.tv_usec as u64, p.ts_ns % 1_000_000_000);
    }
    assert!(cap.next_packet().is_err());
    drop(cap);
    let _ = std::fs::remove_file(&path);
    // Cut inside the 8 extra header bytes.
    let mut cut = file[..24 + 24 + 74 + 20].to_vec();
    cut.truncate(24 + 24 + 74 + 20);
    expect_err(&cut, 1, 24 + 24 + 74, |k| {
        matches!(
            k,
            ErrorKind::Truncated {
                what: Part::RecordHeader,
                need: 24,
                got: 20
            }
        )
    });
}
