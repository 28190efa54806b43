use super::wire::TsResol;
use super::*;
use crate::{open, CaptureReader, Format};

/// Builds blocks in either byte order, padding bodies to 4 bytes.
struct Builder {
    order: ByteOrder,
    out: Vec<u8>,
}

impl Builder {
    fn new(order: ByteOrder) -> Builder {
        let mut b = Builder {
            order,
            out: Vec::new(),
        };
        b.shb(1, 0);
        b
    }
    fn u16(&self, v: u16) -> [u8; 2] {
        let mut b = [0; 2];
        self.order.put_u16(&mut b, v);
        b
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        let mut b = [0; 4];
        self.order.put_u32(&mut b, v);
        b
    }
    fn block(&mut self, kind: u32, body: &[u8]) -> &mut Builder {
        let mut body = body.to_vec();
        body.resize((body.len() + 3) & !3, 0);
        let len = body.len() as u32 + 12;
        let (k, l) = (self.u32(kind), self.u32(len));
        self.out.extend(k.iter().chain(&l).chain(&body).chain(&l));
        self
    }
    fn shb(&mut self, major: u16, minor: u16) -> &mut Builder {
        let mut body = self.u32(wire::BYTE_ORDER_MAGIC).to_vec();
        body.extend(self.u16(major));
        body.extend(self.u16(minor));
        body.extend([0xff; 8]);
        self.block(SHB_TYPE, &body)
    }
    fn idb(&mut self, linktype: u16, snaplen: u32, options: &[(u16, &[u8])]) -> &mut Builder {
        let mut body = self.u16(linktype).to_vec();
        body.extend([0, 0]);
        body.extend(self.u32(snaplen));
        for (code, value) in options {
            body.extend(self.u16(*code));
            body.extend(self.u16(value.len() as u16));
            body.extend(*value);
            body.resize((body.len() + 3) & !3, 0);
        }
        if !options.is_empty() {
            body.extend([0; 4]);
        }
        self.block(wire::IDB_TYPE, &body)
    }
    fn epb(&mut self, iface: u32, ts: u64, data: &[u8], orig: u32) -> &mut Builder {
        let mut body = self.u32(iface).to_vec();
        body.extend(self.u32((ts >> 32) as u32));
        body.extend(self.u32(ts as u32));
        body.extend(self.u32(data.len() as u32));
        body.extend(self.u32(orig));
        body.extend(data);
        self.block(wire::EPB_TYPE, &body)
    }
}

fn read_all(bytes: &[u8]) -> (Vec<Packet>, Option<CaptureError>) {
    let reader = match open("t.pcapng", bytes) {
        Ok(r) => r,
        Err(e) => return (vec![], Some(e)),
    };
    assert_eq!(reader.format(), Format::PcapNg);
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
fn section_header_exact_bytes_little_endian() {
    let b = Builder::new(ByteOrder::Little);
    assert_eq!(
        b.out,
        [
            0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, //
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0
        ]
    );
    let body = Body {
        bytes: &b.out[8..24],
        order: ByteOrder::Little,
    };
    let repr = SectionHeaderRepr::parse(body).unwrap();
    assert_eq!(
        repr,
        SectionHeaderRepr {
            order: ByteOrder::Little,
            major: 1,
            minor: 0,
            section_len: -1
        }
    );
}

#[test]
fn interface_options_exact_bytes() {
    // linktype 113, snaplen 1500, if_tsresol 9 (ns), if_fcslen 4, if_tsoffset 10 s.
    let body: &[u8] = &[
        113, 0, 0, 0, 0xdc, 0x05, 0, 0, //
        9, 0, 1, 0, 9, 0, 0, 0, //
        13, 0, 1, 0, 4, 0, 0, 0, //
        14, 0, 8, 0, 10, 0, 0, 0, 0, 0, 0, 0, //
        0, 0, 0, 0,
    ];
    let repr = InterfaceRepr::parse(Body {
        bytes: body,
        order: ByteOrder::Little,
    })
    .unwrap();
    assert_eq!(
        repr,
        InterfaceRepr {
            linktype: LinkType::LINUX_SLL,
            snaplen: 1500,
            tsresol: TsResol::Pow10(9),
            tsoffset: 10,
            fcs_len: Some(4),
        }
    );
    assert_eq!(repr.ts_ns(5), 10_000_000_005);
}

#[test]
fn tsresol_units() {
    assert_eq!(TsResol::parse(6).unwrap().to_ns(1_500_000), 1_500_000_000);
    assert_eq!(TsResol::parse(3).unwrap().to_ns(2), 2_000_000);
    assert_eq!(TsResol::parse(12).unwrap().to_ns(5_000), 5);
    assert_eq!(TsResol::parse(0x8a).unwrap().to_ns(1024), 1_000_000_000);
    // 2^-51 s units: libpcap 1.10's 64-bit `frac * 1e9` wraps; so do we.
    assert_eq!(
        TsResol::parse(0xb3).unwrap().to_ns(1_386_259_199_430_926),
        2144
    );
    assert_eq!(TsResol::parse(0xb3).unwrap().to_ns(3 << 51), 3_000_000_000);
    assert!(TsResol::parse(0xff).is_err());
    assert!(TsResol::parse(20).is_err());
}

#[test]
fn reads_several_interfaces_in_both_byte_orders() {
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let mut b = Builder::new(order);
        b.idb(1, 0, &[]).idb(1, 0, &[(9, &[9])]);
        b.block(0xdead, &[1, 2, 3]); // unknown: skipped
        b.epb(0, 3_000_000, &[1, 2, 3], 60)
            .epb(1, 7, &[0x45; 20], 20);
        let (packets, err) = read_all(&b.out);
        assert!(err.is_none(), "{order:?}: {err:?}");
        assert_eq!(packets.len(), 2);
        assert_eq!(
            (packets[0].linktype, packets[0].ts_ns, packets[0].wire_len),
            (LinkType(1), 3_000_000_000, 60)
        );
        assert_eq!(packets[0].data, [1, 2, 3]);
        assert_eq!(
            (packets[1].linktype, packets[1].ts_ns, packets[1].index),
            (LinkType(1), 7, 1)
        );
        assert_eq!(packets[1].offset, b.out.len() as u64 - 52);
    }
}

/// libpcap 1.10 reads one link type and snap length per file: an interface
/// with others ends the file there, the packets before it kept.
#[test]
fn an_interface_unlike_the_first_ends_the_file() {
    for (linktype, snaplen, want) in [(101, 0, "link type 101"), (1, 100, "snap length 100")] {
        let mut b = Builder::new(ByteOrder::Little);
        b.idb(1, 0, &[]).epb(0, 1, &[1, 2, 3], 3);
        let second = b.out.len() as u64;
        b.idb(linktype, snaplen, &[]).epb(1, 2, &[4, 5, 6], 3);
        let (packets, err) = read_all(&b.out);
        let err = err.expect("an error at the second interface");
        assert_eq!(packets.len(), 1);
        assert_eq!(err.offset, second + 8, "{err}");
        assert!(err.to_string().contains(want), "{err}");
    }
    // A snap length of 0 is the link type's maximum, as libpcap adjusts it.
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 0, &[]).idb(1, LinkType(1).max_snaplen(), &[]);
    b.epb(1, 2, &[4, 5, 6], 3);
    let (packets, err) = read_all(&b.out);
    assert_eq!((packets.len(), err.map(|e| e.to_string())), (1, None));
    // libpcap holds the first interface's DLT against a later one's
    // LINKTYPE: a second LINKTYPE_RAW (101, DLT_RAW 12) interface ends the
    // file, a second Ethernet one does not. (`capture_read` fuzz finding.)
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(101, 0, &[]).epb(0, 1, &[0x45; 20], 20);
    b.idb(101, 0, &[]).epb(1, 2, &[0x45; 20], 20);
    let (packets, err) = read_all(&b.out);
    assert_eq!(packets.len(), 1);
    assert!(err.expect("an error").to_string().contains("DLT 12"));
}

#[test]
fn simple_and_obsolete_packet_blocks() {
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 4, &[]);
    // SPB: original length 6, data cut to the snap length 4.
    b.block(wire::SPB_TYPE, &[6, 0, 0, 0, 9, 8, 7, 6, 5, 4]);
    // SPB shorter than its padding: original length 2.
    b.block(wire::SPB_TYPE, &[2, 0, 0, 0, 1, 2]);
    // PB: interface 0, drops 0, ts 0:1000000, caplen 3, len 3.
    b.block(
        wire::PB_TYPE,
        &[
            0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x42, 0x0f, 0, 3, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3,
        ],
    );
    let (packets, err) = read_all(&b.out);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets[0].data, [9, 8, 7, 6]);
    assert_eq!(packets[0].wire_len, 6);
    assert_eq!(packets[1].data, [1, 2]);
    assert_eq!(
        (packets[2].data.as_slice(), packets[2].ts_ns),
        (&[1, 2, 3][..], 1_000_000_000)
    );
}

#[test]
fn new_section_resets_interfaces_but_may_not_change_byte_order() {
    // A new section in the same byte order forgets the interfaces.
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 0, &[]).epb(0, 0, &[1], 1);
    b.shb(1, 0).epb(0, 0, &[2], 1);
    let (packets, err) = read_all(&b.out);
    assert_eq!(packets.len(), 1);
    let err = err.unwrap();
    assert!(
        matches!(err.kind, ErrorKind::UnknownInterface { id: 0, count: 0 }),
        "{err}"
    );
    // One in the other byte order is refused, as libpcap refuses it.
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 0, &[]).epb(0, 0, &[1], 1);
    let at = b.out.len() as u64;
    let mut second = Builder::new(ByteOrder::Big);
    second.idb(1, 0, &[]).epb(0, 0, &[2], 1);
    b.out.extend(second.out);
    let (packets, err) = read_all(&b.out);
    assert_eq!(packets.len(), 1);
    let err = err.unwrap();
    assert_eq!(err.offset, at + 8);
    assert!(
        matches!(err.kind, ErrorKind::SectionByteOrderChanged),
        "{err}"
    );
    // A later section's minor version is not checked (libpcap checks only
    // the major one there); its options are never read.
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 0, &[]).epb(0, 0, &[1], 1);
    b.shb(1, 7).idb(1, 0, &[]).epb(0, 0, &[2], 1);
    let (packets, err) = read_all(&b.out);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets.len(), 2);
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 0, &[]).epb(0, 0, &[1], 1).shb(2, 0);
    let (packets, err) = read_all(&b.out);
    assert_eq!(packets.len(), 1);
    assert!(matches!(
        err.unwrap().kind,
        ErrorKind::UnsupportedVersion { major: 2, .. }
    ));
    // Before the first interface libpcap skips section headers unread
    // (`pcap_ng_check_header` looks only for an interface), so one of a
    // version it would refuse later is no error there.
    let mut b = Builder::new(ByteOrder::Little);
    b.shb(129, 0).shb(2, 0).idb(1, 0, &[]).epb(0, 0, &[1], 1);
    let (packets, err) = read_all(&b.out);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets.len(), 1);
}

/// libpcap 1.10's pcapng rules: a packet over its interface's snap length
/// is an error (not cut, unlike classic pcap); a snap length of 0 is the
/// link type's maximum; an SPB's captured length is its wire length cut to
/// the snap length, and the block must hold it.
#[test]
fn pcapng_snap_length_rules_follow_libpcap() {
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 4, &[]).epb(0, 0, &[1, 2, 3, 4], 9);
    let epb_at = b.out.len() as u64;
    b.epb(0, 0, &[1, 2, 3, 4, 5], 9);
    let (packets, err) = read_all(&b.out);
    assert_eq!(packets.len(), 1);
    let err = err.unwrap();
    assert_eq!(err.offset, epb_at + 8 + 12);
    assert!(
        matches!(
            err.kind,
            ErrorKind::CaplenOverSnaplen {
                caplen: 5,
                snaplen: 4
            }
        ),
        "{err}"
    );
    // Snap length 0 means the link type's maximum: a 300,000-byte D-Bus
    // message (maximum 128 MiB) reads; an Ethernet one (256 KiB) does not.
    let big = vec![7u8; 300_000];
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(231, 0, &[]).epb(0, 0, &big, 300_000);
    let (packets, err) = read_all(&b.out);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets[0].data.len(), 300_000);
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 0, &[]).epb(0, 0, &big, 300_000);
    let (packets, err) = read_all(&b.out);
    assert!(packets.is_empty());
    assert!(matches!(
        err.unwrap().kind,
        ErrorKind::CaplenOverSnaplen {
            caplen: 300_000,
            snaplen: 262_144
        }
    ));
    // A snap length over the maximum is kept, as libpcap keeps it.
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 1 << 20, &[]).epb(0, 0, &big, 300_000);
    let (packets, err) = read_all(&b.out);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets[0].data.len(), 300_000);
    // An SPB whose wire length (cut to the snap length) the block cannot
    // hold is an error.
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 0, &[]);
    b.block(wire::SPB_TYPE, &[9, 0, 0, 0, 1, 2, 3, 4]);
    let (packets, err) = read_all(&b.out);
    assert!(packets.is_empty());
    assert!(matches!(
        err.unwrap().kind,
        ErrorKind::CaplenPastBlock {
            caplen: 9,
            room: 4,
            ..
        }
    ));
}

/// A D-Bus interface raises the block size limit, as libpcap raises it:
/// a 20 MiB message reads; the same block under Ethernet is refused.
#[test]
fn block_limit_grows_with_the_link_types_maximum() {
    let big = vec![1u8; 20 << 20];
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(231, 0, &[]).epb(0, 0, &big, 20 << 20);
    let (packets, err) = read_all(&b.out);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets[0].data.len(), 20 << 20);
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 1 << 30, &[]).epb(0, 0, &big, 20 << 20);
    let (_, err) = read_all(&b.out);
    assert!(matches!(err.unwrap().kind, ErrorKind::BadBlockLength(_)));
}

/// Interface options as libpcap reads them: unknown ones skipped, the
/// list ends at opt_endofopt (whatever follows), and if_tsresol and
/// if_tsoffset must have their sizes and come once.
#[test]
fn interface_options_follow_libpcap() {
    let read = |options: &[(u16, &[u8])]| {
        let mut b = Builder::new(ByteOrder::Little);
        b.idb(1, 0, options).epb(0, 1_000, &[1], 1);
        read_all(&b.out)
    };
    let (packets, err) = read(&[(0x7777, &[1, 2, 3]), (9, &[3])]);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets[0].ts_ns, 1_000_000_000);
    // After opt_endofopt nothing is read, not even a bad option.
    let (packets, err) = read(&[(0, &[]), (9, &[1, 2])]);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets[0].ts_ns, 1_000_000);
    for (options, why) in [
        (&[(9u16, &[3u8, 3][..])][..], "if_tsresol is not 1 byte"),
        (
            &[(9, &[3][..]), (9, &[3][..])][..],
            "if_tsresol comes twice",
        ),
        (&[(14, &[0; 4][..])][..], "if_tsoffset is not 8 bytes"),
        (
            &[(14, &[0; 8][..]), (14, &[0; 8][..])][..],
            "if_tsoffset comes twice",
        ),
        (&[(0, &[1][..])][..], "opt_endofopt has a length"),
    ] {
        let (packets, err) = read(options);
        assert!(packets.is_empty());
        let err = err.unwrap();
        assert!(
            matches!(err.kind, ErrorKind::BadInterfaceOption { why: w, .. } if w == why),
            "{err}"
        );
    }
    // An option running past the block (its padded value included).
    let mut b = Builder::new(ByteOrder::Little);
    b.block(
        wire::IDB_TYPE,
        &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 5, 0, 1, 2, 3, 4],
    );
    b.epb(0, 0, &[1], 1);
    let (packets, err) = read_all(&b.out);
    assert!(packets.is_empty());
    assert!(matches!(
        err.unwrap().kind,
        ErrorKind::OptionPastBlock { code: 2, len: 5 }
    ));
    // Section header options are never read: junk there is no error.
    let mut b = Builder {
        order: ByteOrder::Little,
        out: vec![],
    };
    let mut shb = wire::BYTE_ORDER_MAGIC.to_le_bytes().to_vec();
    shb.extend([1, 0, 0, 0]);
    shb.extend([0xff; 8]);
    shb.extend([3, 0, 200, 0, 1, 2, 3, 4]);
    b.block(SHB_TYPE, &shb).idb(1, 0, &[]).epb(0, 0, &[1], 1);
    let (packets, err) = read_all(&b.out);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(packets.len(), 1);
}

/// libpcap cannot open a pcapng file without an interface: the end of
/// such a file is an error, not an empty capture.
#[test]
fn a_file_without_interfaces_is_an_error() {
    let b = Builder::new(ByteOrder::Little);
    let (packets, err) = read_all(&b.out);
    assert!(packets.is_empty());
    let err = err.unwrap();
    assert_eq!(err.offset, b.out.len() as u64);
    assert!(matches!(err.kind, ErrorKind::NoInterfaces), "{err}");
}

/// As libpcap 1.10: only the first section header's trailer goes
/// unchecked (it has its own reading path there); a later one's is checked.
#[test]
fn the_first_section_headers_trailer_is_not_checked() {
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 0, &[]).epb(0, 0, &[1, 2, 3, 4], 4);
    let mut first = b.out.clone();
    first[24] = 0xbe; // the SHB's trailer (its total length is 28)
    let (p, e) = read_all(&first);
    assert_eq!((p.len(), e.map(|e| e.to_string())), (1, None));

    let mut two = b.out.clone();
    let mut second = b.out[..28].to_vec();
    second[24] = 0xbe;
    two.extend(second);
    let (p, e) = read_all(&two);
    let e = e.expect("a later section header's trailer is checked");
    assert_eq!((p.len(), e.offset), (1, b.out.len() as u64 + 24));
}

#[test]
fn block_errors_have_offsets() {
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(1, 0, &[]).epb(0, 0, &[1, 2, 3, 4], 4);
    let good = b.out.clone();
    let epb_start = 28 + 20;

    let mut bad_trailer = good.clone();
    let n = bad_trailer.len();
    bad_trailer[n - 4] = 99;
    let (p, e) = read_all(&bad_trailer);
    let e = e.unwrap();
    assert_eq!((p.len(), e.offset), (0, n as u64 - 4));
    assert!(
        matches!(
            e.kind,
            ErrorKind::BlockLengthMismatch {
                header: 36,
                trailer: 99
            }
        ),
        "{e}"
    );

    let (p, e) = read_all(&good[..good.len() - 6]);
    let e = e.unwrap();
    assert_eq!((p.len(), e.offset), (0, epb_start as u64));
    assert!(
        matches!(
            e.kind,
            ErrorKind::Truncated {
                what: Part::BlockBody,
                need: 36,
                got: 30
            }
        ),
        "{e}"
    );

    let mut cut = good.clone();
    cut.extend([6, 0, 0]);
    let (p, e) = read_all(&cut);
    let e = e.unwrap();
    assert_eq!((p.len(), e.offset), (1, good.len() as u64));
    assert!(
        matches!(
            e.kind,
            ErrorKind::Truncated {
                what: Part::BlockHeader,
                ..
            }
        ),
        "{e}"
    );

    let mut odd_len = good.clone();
    odd_len[epb_start + 4] = 37;
    let (_, e) = read_all(&odd_len);
    let e = e.unwrap();
    assert_eq!(e.offset, epb_start as u64 + 4);
    assert!(matches!(e.kind, ErrorKind::BadBlockLength(37)), "{e}");

    let mut big_caplen = good.clone();
    big_caplen[epb_start + 20] = 5;
    let (_, e) = read_all(&big_caplen);
    assert!(matches!(
        e.unwrap().kind,
        ErrorKind::CaplenPastBlock {
            caplen: 5,
            room: 4,
            ..
        }
    ));

    let mut bom = good.clone();
    bom[8] = 0;
    let (_, e) = read_all(&bom);
    let e = e.unwrap();
    assert_eq!(e.offset, 8);
    assert!(matches!(e.kind, ErrorKind::BadByteOrderMagic(_)), "{e}");
}

#[test]
fn unsupported_versions_are_refused() {
    let mut b = Builder {
        order: ByteOrder::Little,
        out: vec![],
    };
    b.shb(1, 1);
    let (_, e) = read_all(&b.out);
    let e = e.unwrap();
    assert_eq!(e.offset, 8);
    assert!(
        matches!(
            e.kind,
            ErrorKind::UnsupportedVersion {
                major: 1,
                minor: 1,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn linktype_is_known_once_an_interface_is_read() {
    let mut b = Builder::new(ByteOrder::Little);
    b.idb(113, 0, &[]).epb(0, 0, &[0; 16], 16);
    let mut reader = open("x", &b.out[..]).unwrap();
    assert!(matches!(reader, CaptureReader::PcapNg(_)));
    assert_eq!(reader.linktype(), None);
    assert!(reader.next().unwrap().is_ok());
    assert_eq!(reader.linktype(), Some(LinkType::LINUX_SLL));
}
