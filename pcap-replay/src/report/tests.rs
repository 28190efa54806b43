use crate::engine::Verdict;
use super::*;
use crate::capture::LinkType;
use crate::replay::{FileResult, Mismatch};

fn result(mismatches: u64, error: Option<&str>) -> FileResult {
    FileResult {
        file: "a.pcap".into(),
        expression: None,
        program: "p.ddd".into(),
        linktype: Some(LinkType::ETHERNET),
        packets: 10,
        engines: EngineMap(vec![
            ("cbpf", Matched { matched: 3, skipped: 0 }),
            (
                "libpcap",
                Matched {
                    matched: 3 + mismatches,
                    skipped: 0,
                },
            ),
        ]),
        mismatches,
        error: error.map(str::to_string),
        mismatch_samples: (0..mismatches)
            .map(|i| Mismatch {
                index: i,
                offset: 24,
                rets: EngineMap(vec![("cbpf", 0), ("libpcap", 96)]),
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
        r#"{"results":[{"file":"a.pcap","expression":null,"program":"p.ddd","linktype":1,"packets":10,"engines":{"cbpf":{"matched":3},"libpcap":{"matched":3}},"mismatches":0,"error":null}],"agree":true}"#
    );
    let results = [result(0, None), result(1, Some("boom"))];
    let v: serde_json::Value = serde_json::to_value(JsonReport::new(&results)).unwrap();
    assert_eq!(v["agree"], false);
    assert_eq!(v["results"][1]["error"], "boom");
}

#[test]
fn verdict_lines_are_one_object_per_packet() {
    let mut sink = NdjsonVerdicts::new(Vec::new());
    let r = result(0, None);
    sink.verdict(&r, 0, &[("cbpf", Verdict::classic(262_144)), ("libpcap", Verdict::classic(262_144))])
        .unwrap();
    sink.verdict(&r, 1, &[("cbpf", Verdict::classic(0)), ("libpcap", Verdict::classic(0))]).unwrap();
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
        "  file    linktype  packets  cbpf  libpcap  mismatches  status"
    );
    assert_eq!(
        lines[2],
        "  a.pcap  EN10MB         10     3        3           0  ok"
    );
    assert_eq!(
        lines[3],
        "  a.pcap  EN10MB         10     3        5           2  ERROR"
    );
    assert_eq!(
        lines[4],
        "  total                  20     6        8           2"
    );
    assert!(
        table.contains("  mismatch: a.pcap packet 1 (byte 24): cbpf=0 libpcap=96\n"),
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
