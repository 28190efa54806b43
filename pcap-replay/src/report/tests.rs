use super::*;
use crate::engine::Verdict;
use crate::replay::{FileResult, Mismatch};
use capfile::LinkType;

fn result(mismatches: u64, error: Option<&str>) -> FileResult {
    FileResult {
        file: "a.pcap".into(),
        expression: None,
        program: "p.ddd".into(),
        linktype: Some(LinkType::ETHERNET),
        packets: 10,
        engines: EngineMap(vec![
            (
                "cbpf",
                Matched {
                    matched: 3,
                    skipped: 0,
                    ..Default::default()
                },
            ),
            (
                "libpcap",
                Matched {
                    matched: 3 + mismatches,
                    skipped: 0,
                    ..Default::default()
                },
            ),
        ]),
        mismatches,
        error: error.map(str::to_string),
        seconds: 0.25,
        left_out: vec![],
        mismatch_samples: (0..mismatches)
            .map(|i| Mismatch {
                index: i,
                offset: 24,
                ts_ns: 0,
                caplen: 14,
                wire_len: 14,
                decode: "Ethernet".into(),
                rets: EngineMap(vec![("cbpf", 0), ("libpcap", 96)]),
                matched: EngineMap(vec![("cbpf", false), ("libpcap", true)]),
                loads: vec![],
                head: vec![0; 14],
                trace: vec![],
                untraced: None,
            })
            .collect(),
    }
}

#[test]
fn json_report_has_the_documented_shape_and_order() {
    let results = [result(0, None)];
    let json = serde_json::to_string(&JsonReport::new(&results)).unwrap();
    assert_eq!(
        json,
        r#"{"results":[{"file":"a.pcap","expression":null,"program":"p.ddd","linktype":1,"packets":10,"engines":{"cbpf":{"matched":3},"libpcap":{"matched":3}},"mismatches":0,"error":null,"seconds":0.25}],"agree":true}"#
    );
    let results = [result(0, None), result(1, Some("boom"))];
    let v: serde_json::Value = serde_json::to_value(JsonReport::new(&results)).unwrap();
    assert_eq!(v["agree"], false);
    assert_eq!(v["results"][1]["error"], "boom");
}

fn packet(index: u64) -> capfile::Packet {
    capfile::Packet {
        index,
        offset: 0,
        ts_ns: 0,
        data: vec![],
        wire_len: 0,
        linktype: LinkType::ETHERNET,
    }
}

#[test]
fn verdict_lines_are_one_object_per_packet() {
    let mut sink = NdjsonVerdicts::new(Vec::new());
    let r = result(0, None);
    sink.verdict(
        &r,
        &packet(0),
        &[
            ("cbpf", Verdict::classic(262_144)),
            ("libpcap", Verdict::classic(262_144)),
        ],
    )
    .unwrap();
    sink.verdict(
        &r,
        &packet(1),
        &[
            ("cbpf", Verdict::classic(0)),
            ("libpcap", Verdict::classic(0)),
        ],
    )
    .unwrap();
    let text = String::from_utf8(sink.into_inner()).unwrap();
    assert_eq!(
        text,
        concat!(
            r#"{"file":"a.pcap","expression":null,"program":"p.ddd","index":0,"match":{"cbpf":true,"libpcap":true},"ret":{"cbpf":262144,"libpcap":262144}}"#,
            "\n",
            r#"{"file":"a.pcap","expression":null,"program":"p.ddd","index":1,"match":{"cbpf":false,"libpcap":false},"ret":{"cbpf":0,"libpcap":0}}"#,
            "\n"
        )
    );
}

#[test]
fn table_lists_counts_mismatches_and_errors() {
    let table = render_table(&[
        result(0, None),
        result(2, Some("a.pcap: byte 40: truncated")),
    ]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "program p.ddd");
    assert_eq!(
        lines[1],
        "  file    linktype  packets  cbpf  libpcap  mismatches    time  status"
    );
    assert_eq!(
        lines[2],
        "  a.pcap  EN10MB         10     3        3           0  0.250s  ok"
    );
    assert_eq!(
        lines[3],
        "  a.pcap  EN10MB         10     3        5           2  0.250s  ERROR"
    );
    assert_eq!(
        lines[4],
        "  total                  20     6        8           2  0.500s"
    );
    assert!(
        table.contains("  mismatch: a.pcap packet 1 (byte 24): cbpf=0 libpcap=96\n    time 0.000000000  caplen 14  wire 14\n    match: libpcap  no match: cbpf\n    Ethernet\n"),
        "{table}"
    );
    assert!(
        table.contains("  error: a.pcap: byte 40: truncated\n"),
        "{table}"
    );
    assert!(table.ends_with(
        "engines DISAGREE on 2 packets; 1 of 2 captures could not be read to the end\n"
    ));
}

#[test]
fn left_out_engines_are_named_once_per_program() {
    let mut a = result(0, None);
    a.left_out = vec![crate::engine::LeftOut {
        engine: "kernel-xdp",
        reason: "no bpf()".into(),
    }];
    let b = a.clone();
    let table = render_table(&[a, b]);
    assert_eq!(
        table.matches("  left out: kernel-xdp: no bpf()\n").count(),
        1,
        "{table}"
    );
    let v: serde_json::Value = serde_json::to_value(JsonReport::new(&[result(0, None)])).unwrap();
    assert!(
        v["results"][0].get("left_out").is_none(),
        "absent when empty"
    );
    let mut c = result(1, None);
    c.left_out = vec![crate::engine::LeftOut {
        engine: "cbpf",
        reason: "no classic program".into(),
    }];
    let v: serde_json::Value = serde_json::to_value(JsonReport::new(&[c])).unwrap();
    assert_eq!(v["results"][0]["left_out"][0]["engine"], "cbpf");
    assert_eq!(v["results"][0]["mismatch_details"][0]["ret"]["libpcap"], 96);
    assert_eq!(v["results"][0]["mismatch_details"][0]["caplen"], 14);
}

#[test]
fn each_expression_gets_its_own_table() {
    let mut a = result(0, None);
    a.program = "-e".into();
    a.expression = Some("tcp".into());
    let mut b = a.clone();
    b.expression = Some("udp".into());
    let table = render_table(&[a.clone(), a, b]);
    assert_eq!(table.matches("program -e\n").count(), 2, "{table}");
    assert!(table.contains("expression tcp\n") && table.contains("expression udp\n"));
}

/// Skips are counted by reason: JSON `skipped_reasons` (only when some
/// packet was skipped) and the reasons in words on the table's line.
#[test]
fn skipped_packets_carry_their_reasons() {
    let mut r = result(0, None);
    let count = &mut r.engines.0[1].1;
    for why in [Skip::TooLarge, Skip::Runt, Skip::TooLarge] {
        count.skipped += 1;
        count.skipped_reasons.add(why);
    }
    let results = [r];
    let json = serde_json::to_string(&JsonReport::new(&results)).unwrap();
    assert!(
        json.contains(
            r#""libpcap":{"matched":3,"skipped":3,"skipped_reasons":{"runt":1,"too_large":2}}"#
        ),
        "{json}"
    );
    assert!(json.contains(r#""cbpf":{"matched":3}"#), "{json}");
    let table = render_table(&results);
    assert!(
        table.contains(
            "  skipped: a.pcap libpcap: 3 packet(s) it cannot run, left out of the comparison \
             (1 shorter than an Ethernet header, 2 too large for the kernel's test run)\n"
        ),
        "{table}"
    );
}
