//! The shared corpus as data: the expressions libpcap 1.10.3 compiles, and
//! every packet of every capture, read once.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::corpus_dir;

/// One (link type, expression) that libpcap 1.10.3 compiles, with the
/// options the suite compiles it with.
#[derive(Clone, Debug)]
pub struct CorpusExpr {
    /// `accept` or `common`.
    pub source: &'static str,
    pub id: String,
    /// libpcap's DLT name (`EN10MB`, `RAW`, ...).
    pub dlt: String,
    pub expr: String,
    /// `None` is `PCAP_NETMASK_UNKNOWN`.
    pub netmask: Option<u32>,
    pub snaplen: Option<i32>,
    /// False for the suite's `opt_fails` rows, which compile only unoptimized.
    pub optimize: bool,
}

/// The rows of one of the corpus's `expressions/*.tsv` tables, each keyed
/// by its header's column names.
pub fn tsv(name: &str) -> Vec<HashMap<String, String>> {
    let path = corpus_dir().join("expressions").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}

fn ipv4(s: &str) -> Option<u32> {
    let a: std::net::Ipv4Addr = s.parse().ok()?;
    Some(u32::from(a))
}

/// Every accept-suite row and common.txt line that libpcap 1.10.3 compiled
/// on this machine (status `ok` in compile_1.10.3.tsv).
///
/// Expression texts come from accept.tsv and common.txt: compile_1.10.3.tsv
/// doubles backslashes, so it is joined by (source, id, dlt) only.
pub fn expressions() -> Vec<CorpusExpr> {
    let ok: std::collections::HashSet<(String, String, String)> = tsv("compile_1.10.3.tsv")
        .into_iter()
        .filter(|r| r["status"] == "ok")
        .map(|r| (r["source"].clone(), r["id"].clone(), r["dlt"].clone()))
        .collect();
    let mut out = Vec::new();
    for r in tsv("accept.tsv") {
        if !ok.contains(&("accept".into(), r["id"].clone(), r["dlt"].clone())) {
            continue;
        }
        out.push(CorpusExpr {
            source: "accept",
            id: r["id"].clone(),
            dlt: r["dlt"].clone(),
            expr: r["expression"].clone(),
            netmask: ipv4(&r["netmask"]),
            snaplen: r["snaplen"].parse().ok(),
            optimize: !r["flags"].split(',').any(|f| f == "opt_fails"),
        });
    }
    let common =
        std::fs::read_to_string(corpus_dir().join("expressions/common.txt")).expect("common.txt");
    for (n, line) in common.lines().enumerate() {
        let id = format!("common#{}", n + 1);
        if ok.contains(&("common".into(), id.clone(), "EN10MB".into())) {
            out.push(CorpusExpr {
                source: "common",
                id,
                dlt: "EN10MB".into(),
                expr: line.to_string(),
                netmask: None,
                snaplen: None,
                optimize: true,
            });
        }
    }
    assert!(
        out.len() > 1500,
        "only {} corpus expressions compiled: is the corpus complete?",
        out.len()
    );
    out
}

/// One captured packet.
#[derive(Clone, Debug)]
pub struct Packet {
    pub data: Vec<u8>,
    pub wirelen: u32,
}

/// A capture file of the corpus, read whole with libpcap.
#[derive(Clone, Debug)]
pub struct Capture {
    /// Relative to `pcaps/`.
    pub name: String,
    pub path: PathBuf,
    /// The DLT_ value libpcap reports.
    pub dlt: i32,
    pub packets: Vec<Packet>,
}

/// Every capture under `pcaps/` except `invalid/`, sorted by name.
pub fn captures() -> Vec<Capture> {
    let root = corpus_dir().join("pcaps");
    let mut files = Vec::new();
    for sub in ["tcpdump", "libpcap"] {
        for e in std::fs::read_dir(root.join(sub)).expect("pcaps dir") {
            let p = e.expect("dir entry").path();
            if p.is_file() {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let mut cap = pcap::Capture::from_file(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let dlt = cap.get_datalink().0;
            let mut packets = Vec::new();
            loop {
                match cap.next_packet() {
                    Ok(p) => packets.push(Packet {
                        data: p.data.to_vec(),
                        wirelen: p.header.len,
                    }),
                    Err(pcap::Error::NoMorePackets) => break,
                    Err(e) => panic!("{}: {e}", path.display()),
                }
            }
            let name = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            Capture {
                name,
                path,
                dlt,
                packets,
            }
        })
        .collect()
}

/// True when a classic program reads nothing of the packet (no packet or
/// length load), so its verdict is the same for every packet. With a 0
/// verdict on any one packet, it provably matches nothing: the test for
/// filters we refuse as "expression rejects all packets" where libpcap's
/// optimizer does not see it.
pub fn reads_no_packet(prog: &[filter_programs::cbpf::Insn]) -> bool {
    use filter_programs::cbpf::Op;
    prog.iter().all(|i| {
        matches!(
            i.decode(),
            Ok(op) if !matches!(op, Op::LdAbs { .. } | Op::LdInd { .. } | Op::LdxMsh { .. } | Op::LdLen | Op::LdxLen)
        )
    })
}
