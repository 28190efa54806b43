//! pcap-replay with every engine: our interpreter, libpcap, the three eBPF
//! translations in our VM and (as root) in the kernel, over every common
//! expression and every Ethernet capture of the corpus. All must agree.

use std::process::Command;

fn engines() -> &'static str {
    if e2e::kernel_available("pcap_replay_engines") {
        "cbpf,libpcap,ebpf-socket,ebpf-xdp,ebpf-tc,kernel-socket,kernel-xdp,kernel-tc"
    } else {
        "cbpf,libpcap,ebpf-socket,ebpf-xdp,ebpf-tc"
    }
}

#[test]
fn every_engine_agrees_on_the_common_expressions() {
    let corpus = e2e::corpus_dir();
    let dir = std::env::temp_dir().join(format!("pcap-replay-engines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exprs = std::fs::read_to_string(corpus.join("expressions/common.txt")).unwrap();
    let mut args = vec![
        "--engines".to_string(),
        engines().to_string(),
        "--json".to_string(),
    ];
    for (i, e) in exprs.lines().enumerate() {
        let out = Command::new("tcpdump")
            .args(["-ddd", "-y", "EN10MB", e])
            .output()
            .expect("tcpdump runs");
        assert!(out.status.success(), "tcpdump -ddd {e:?}");
        let f = dir.join(format!("{i}.ddd"));
        std::fs::write(&f, out.stdout).unwrap();
        args.push("--cbpf".into());
        args.push(f.display().to_string());
    }
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
    let _ = std::fs::remove_dir_all(&dir);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let results = json["results"].as_array().unwrap();
    let mut packets = 0u64;
    let mut skipped = 0u64;
    let mut bad = Vec::new();
    for r in results {
        packets += r["packets"].as_u64().unwrap();
        for (_, e) in r["engines"].as_object().unwrap() {
            skipped += e.get("skipped").and_then(|s| s.as_u64()).unwrap_or(0);
        }
        if r["mismatches"].as_u64() != Some(0) || !r["error"].is_null() {
            bad.push(format!(
                "{} {}: {} {}",
                r["program"], r["file"], r["mismatches"], r["error"]
            ));
        }
    }
    println!(
        "{} results, {packets} packets x {} engines, {skipped} engine-packets skipped",
        results.len(),
        engines().split(',').count()
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert_eq!(json["agree"], true);
    assert_eq!(out.status.code(), Some(0));
    assert!(results.len() >= 166 * 40, "{} results", results.len());
    // Skips are rare: frames too big for a test run, or truncated ones that read `len`.
    assert!(skipped < packets / 50, "{skipped} skipped of {packets}");
}
