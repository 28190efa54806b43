use super::*;
use crate::pcap::{MAGIC_MICRO, MAGIC_NANO};
use crate::pcapng::wire::{BYTE_ORDER_MAGIC, EPB_TYPE, IDB_TYPE, SHB_TYPE};
use crate::{open, Packet};

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn read_back(bytes: &[u8]) -> Vec<Packet> {
    let reader = open("w", bytes).expect("opens");
    reader.map(|p| p.expect("reads")).collect()
}

#[test]
fn format_follows_the_extension() {
    assert_eq!(Format::from_path(Path::new("a.pcapng")), Format::PcapNg);
    assert_eq!(Format::from_path(Path::new("a.PCAPNG")), Format::PcapNg);
    assert_eq!(Format::from_path(Path::new("a.pcap")), Format::Pcap);
    assert_eq!(Format::from_path(Path::new("a")), Format::Pcap);
}

#[test]
fn pcap_layout() {
    let mut w =
        Writer::new(Vec::new(), Format::Pcap, LinkType::ETHERNET, 96, "v1").expect("header");
    w.write(&Record {
        ts_ns: 7_123_456_789,
        wire_len: 60,
        data: &[1, 2, 3],
    })
    .expect("rec");
    let b = w.finish().expect("finish");
    assert_eq!(b.len(), 24 + 16 + 3);
    assert_eq!(u32_at(&b, 0), MAGIC_MICRO);
    assert_eq!((u32_at(&b, 16), u32_at(&b, 20)), (96, 1));
    let rec = [
        u32_at(&b, 24),
        u32_at(&b, 28),
        u32_at(&b, 32),
        u32_at(&b, 36),
    ];
    assert_eq!(rec, [7, 123_456, 3, 60]);
    assert_eq!(&b[40..], &[1, 2, 3]);
}

#[test]
fn pcapng_blocks_are_padded_and_lengths_match() {
    let mut w = Writer::new(
        Vec::new(),
        Format::PcapNg,
        LinkType::ETHERNET,
        262_144,
        "veth0",
    )
    .expect("header");
    w.write(&Record {
        ts_ns: 1_000_000_005,
        wire_len: 64,
        data: &[0xaa; 5],
    })
    .expect("rec");
    let b = w.finish().expect("finish");
    let mut at = 0;
    let mut kinds = Vec::new();
    while at < b.len() {
        let (kind, total) = (u32_at(&b, at), u32_at(&b, at + 4) as usize);
        assert_eq!(total % 4, 0);
        assert_eq!(
            u32_at(&b, at + total - 4) as usize,
            total,
            "trailing length"
        );
        kinds.push(kind);
        if kind == EPB_TYPE {
            let ts = (u64::from(u32_at(&b, at + 12)) << 32) | u64::from(u32_at(&b, at + 16));
            assert_eq!(ts, 1_000_000_005);
            assert_eq!((u32_at(&b, at + 20), u32_at(&b, at + 24)), (5, 64));
            assert_eq!(total, 12 + 20 + 8);
        }
        at += total;
    }
    assert_eq!(at, b.len());
    assert_eq!(kinds, [SHB_TYPE, IDB_TYPE, EPB_TYPE]);
}

#[test]
fn pcapng_exact_bytes() {
    let mut w = Writer::new(
        Vec::new(),
        Format::PcapNg,
        LinkType::ETHERNET,
        262_144,
        "veth0",
    )
    .expect("header");
    w.write(&Record {
        ts_ns: 1_000_000_005,
        wire_len: 64,
        data: &[0xaa; 5],
    })
    .expect("rec");
    let b = w.finish().expect("finish");
    let words = |ws: &[u32]| -> Vec<u8> { ws.iter().flat_map(|w| w.to_ne_bytes()).collect() };
    let mut want = words(&[SHB_TYPE, 28, BYTE_ORDER_MAGIC, 1, u32::MAX, u32::MAX, 28]);
    // version 1.0: the major and minor halves of one word, in host order.
    want[12..16].copy_from_slice(&[1u16.to_ne_bytes(), 0u16.to_ne_bytes()].concat());
    // IDB: linktype, reserved, snaplen; if_name "veth0" (padded to 8),
    // if_tsresol 9 (padded to 4), opt_endofopt.
    let mut idb = words(&[IDB_TYPE, 44]);
    idb.extend([1u16.to_ne_bytes(), 0u16.to_ne_bytes()].concat());
    idb.extend(262_144u32.to_ne_bytes());
    idb.extend([2u16.to_ne_bytes(), 5u16.to_ne_bytes()].concat());
    idb.extend(b"veth0\0\0\0");
    idb.extend([9u16.to_ne_bytes(), 1u16.to_ne_bytes()].concat());
    idb.extend([9, 0, 0, 0]);
    idb.extend([0u8; 4]);
    idb.extend(44u32.to_ne_bytes());
    want.extend(idb);
    want.extend(words(&[EPB_TYPE, 40, 0, 0, 1_000_000_005, 5, 64]));
    want.extend([0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0, 0, 0]);
    want.extend(40u32.to_ne_bytes());
    assert_eq!(b, want);
}

#[test]
fn pcapng_without_a_name_has_only_the_resolution_option() {
    let w = Writer::new(Vec::new(), Format::PcapNg, LinkType::RAW, 96, "").expect("header");
    let b = w.finish().expect("finish");
    // SHB 28, then IDB: 8 + 8 + tsresol 8 + end 4 + trailer 4.
    assert_eq!(b.len(), 28 + 32);
    assert_eq!(u32_at(&b, 28 + 4), 32);
}

#[test]
fn both_formats_read_back_as_written() {
    let packets: [(u64, &[u8], u32); 3] = [
        (1_700_000_000_123_456_789, &[1, 2, 3, 4, 5], 60),
        (1_700_000_001_000_000_001, &[], 0),
        (5, &[9; 70], 1500),
    ];
    for format in [Format::Pcap, Format::PcapNg] {
        let mut w = Writer::new(Vec::new(), format, LinkType::LINUX_SLL, 1000, "eth0").unwrap();
        assert_eq!(w.linktype(), LinkType::LINUX_SLL);
        for (ts_ns, data, wire_len) in packets {
            w.write(&Record {
                ts_ns,
                wire_len,
                data,
            })
            .unwrap();
        }
        let got = read_back(&w.finish().unwrap());
        assert_eq!(got.len(), 3, "{format:?}");
        for (p, (ts_ns, data, wire_len)) in got.iter().zip(packets) {
            let ts_ns = match format {
                Format::Pcap => ts_ns / 1000 * 1000,
                Format::PcapNg => ts_ns,
            };
            assert_eq!((p.ts_ns, &p.data[..], p.wire_len), (ts_ns, data, wire_len));
            assert_eq!(p.linktype, LinkType::LINUX_SLL);
        }
    }
}

#[test]
fn a_given_pcap_header_is_written_back_exactly() {
    let header = FileHeaderRepr {
        order: ByteOrder::Big,
        resolution: TsResolution::Nano,
        version_major: 2,
        version_minor: 4,
        thiszone: 0,
        sigfigs: 0,
        snaplen: 65_535,
        linktype: LinkTypeField {
            linktype: LinkType::ETHERNET,
            fcs_len: None,
        },
    };
    let mut w = Writer::pcap(Vec::new(), header).unwrap();
    w.write(&Record {
        ts_ns: 3_000_000_007,
        wire_len: 2,
        data: &[7, 7],
    })
    .unwrap();
    let b = w.finish().unwrap();
    assert_eq!(b[..4], MAGIC_NANO.to_be_bytes());
    let reader = open("w", &b[..]).unwrap();
    let crate::CaptureReader::Pcap(r) = &reader else {
        panic!("not a pcap")
    };
    assert_eq!(*r.header(), header);
    let got: Vec<Packet> = reader.map(Result::unwrap).collect();
    assert_eq!((got[0].ts_ns, got[0].wire_len), (3_000_000_007, 2));
}

#[test]
fn tsresol_units_round_trip() {
    for (r, ns) in [
        (TsResol::Pow10(9), 1_234_567_891u64),
        (TsResol::Pow10(6), 1_234_567_000),
        (TsResol::Pow10(12), 1_234_567_891),
        (TsResol::Pow2(10), 1_000_000_000),
    ] {
        assert_eq!(r.to_ns(r.from_ns(ns)), u128::from(ns), "{r:?}");
        assert_eq!(TsResol::parse(r.to_byte()).ok(), Some(r));
    }
}
