//! `pcap-replay --expr-file` over every common expression and every
//! Ethernet capture, in every engine: our compiler's program in our
//! interpreter, our VM and (as root) the kernel, against libpcap's own
//! compile and interpreter. The end-to-end proof of the compiler.

use std::process::Command;

#[test]
fn our_compiler_agrees_with_libpcap_through_every_engine() {
    let corpus = e2e::corpus_dir();
    let engines = if e2e::kernel_available("pcap_replay_expressions") {
        "cbpf,libpcap,ebpf-socket,ebpf-xdp,ebpf-tc,kernel-socket,kernel-xdp,kernel-tc"
    } else {
        "cbpf,libpcap,ebpf-socket,ebpf-xdp,ebpf-tc"
    };
    let mut args = vec![
        "--engines".to_string(),
        engines.to_string(),
        "--json".to_string(),
        "--expr-file".to_string(),
        corpus.join("expressions/common.txt").display().to_string(),
    ];
    let manifest = std::fs::read_to_string(corpus.join("pcaps/MANIFEST.tsv")).unwrap();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.get(1) == Some(&"1") && cols[0].starts_with("tcpdump/") {
            args.push(corpus.join("pcaps").join(cols[0]).display().to_string());
        }
    }
    let out = Command::new(e2e::bin("pcap-replay"))
        .args(&args)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let results = json["results"].as_array().unwrap();
    let mut unsupported = std::collections::BTreeSet::new();
    let mut bad = Vec::new();
    let mut packets = 0;
    for r in results {
        packets += r["packets"].as_u64().unwrap();
        if r["mismatches"].as_u64() != Some(0) {
            bad.push(format!(
                "{} on {}: {} mismatches",
                r["expression"], r["file"], r["mismatches"]
            ));
        }
        if let Some(e) = r["error"].as_str() {
            if e.contains("not yet supported") {
                unsupported.insert(r["expression"].as_str().unwrap().to_string());
            } else {
                bad.push(format!("{} on {}: {e}", r["expression"], r["file"]));
            }
        }
    }
    println!(
        "{} results, {packets} packets; {} expressions not yet supported by our compiler: {unsupported:?}",
        results.len(),
        unsupported.len()
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert_eq!(results.len(), 166 * 44);
    // Every common expression compiles.
    assert!(unsupported.is_empty(), "{unsupported:?}");
    assert!(packets > 100_000);
}
