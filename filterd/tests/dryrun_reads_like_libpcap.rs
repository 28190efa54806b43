//! `filterd test` reads captures with capfile. Before, it read them with
//! libpcap (the `pcap` crate); this keeps that reader as the oracle and
//! requires the same dry run from both on every capture of the shared
//! corpus: the same verdicts, counters and packet counts, and a refusal
//! wherever there was one.

use std::path::{Path, PathBuf};

use capfile::LinkType;
use filter_programs::ruleset::{compile, Verdict};
use filterd::dryrun::{run_file, run_frames, DryRunFailure, Each, FileReport};

/// libpcap's reading, as `filterd test` did it before capfile.
fn libpcap_frames(
    path: &Path,
    file: &str,
    each: &mut Each<'_>,
) -> Result<Option<String>, DryRunFailure> {
    let mut cap = match pcap::Capture::from_file(path) {
        Ok(cap) => cap,
        Err(e) => return Ok(Some(format!("{file}: {e}"))),
    };
    let dlt = cap.get_datalink();
    if dlt.0 != LinkType::ETHERNET.to_dlt() {
        let name = dlt.get_name().unwrap_or_else(|_| dlt.0.to_string());
        return Ok(Some(format!(
            "{file}: link type {name} is not Ethernet; XDP programs see Ethernet frames"
        )));
    }
    let mut n = 0;
    loop {
        match cap.next_packet() {
            Ok(p) => each(p.data, p.header.len)?,
            Err(pcap::Error::NoMorePackets) => return Ok(None),
            Err(e) => return Ok(Some(format!("{file}: after packet {n}: {e}"))),
        }
        n += 1;
    }
}

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            captures(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng")
        {
            out.push(path);
        }
    }
}

/// Everything but the error's wording.
fn outcome(r: &FileReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("report");
    v["error"] = serde_json::Value::Bool(r.error.is_some());
    v
}

#[test]
fn the_dry_run_is_the_same_over_capfile_and_libpcap() {
    let config = filterd::cli::rules::load_config(&e2e::repo_root().join("configs/example.toml"))
        .unwrap_or_else(|_| panic!("configs/example.toml"));
    let default = config
        .interfaces
        .first()
        .map_or(Verdict::Pass, |i| i.default);
    let compiled = compile(&config.rules, default).expect("compiles");
    let mut files = Vec::new();
    captures(&e2e::corpus_dir().join("pcaps"), &mut files);
    files.sort();
    assert!(files.len() >= 90, "only {} captures", files.len());
    let (mut ran, mut refused) = (0, 0);
    let mut refused_whole = Vec::new();
    for path in &files {
        let file = path.display().to_string();
        let ours = run_file(path, &compiled, &config.rules, default, None).expect("dry run");
        let theirs = run_frames(
            &file,
            |each| libpcap_frames(path, &file, each),
            &compiled,
            &config.rules,
            default,
            None,
        )
        .expect("dry run over libpcap");
        assert_eq!(
            outcome(&ours),
            outcome(&theirs),
            "{file}: {:?} vs {:?}",
            ours.error,
            theirs.error
        );
        // Both name a link type that is not Ethernet the same way, but for
        // the file whose link type field has reserved bits set: libpcap
        // 1.10.3 names the whole field, capfile the link type in its low
        // 16 bits (the upper bits are the FCS length and flags).
        if let (Some(a), Some(b)) = (&ours.error, &theirs.error) {
            let reserved_bits = file.ends_with("linktype-reserved-field-not-zero.pcap");
            match (a.contains("is not Ethernet"), b.contains("is not Ethernet")) {
                (true, true) if reserved_bits => {}
                (true, _) => assert_eq!(a, b),
                (false, true) => refused_whole.push(path.file_name().expect("name").to_owned()),
                (false, false) => {}
            }
        }
        ran += usize::from(ours.packets > 0);
        refused += usize::from(ours.error.is_some());
    }
    // Every capture libpcap reads and finds not Ethernet, capfile reads
    // and finds not Ethernet too (none is refused whole instead).
    assert!(refused_whole.is_empty(), "{refused_whole:?}");
    // Most of the corpus is Ethernet; the rest is refused.
    assert!(ran >= 50 && refused >= 20, "{ran} run, {refused} refused");
}
