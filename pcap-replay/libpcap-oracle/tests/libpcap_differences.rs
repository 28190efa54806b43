//! libpcap's optimizer against libpcap itself: every corpus expression
//! (every link type), compiled by libpcap 1.10.3 with and without `-O`,
//! run by libpcap's `bpf_filter` on every corpus packet of its link type.
//!
//! On a complete packet (captured length = wire length) the two must
//! agree; where they do not, the optimizer changed the meaning of the
//! filter, and our code generator follows the unoptimized program. The
//! table of those cases, and the number of disagreements on truncated
//! packets, live in docs/LIBPCAP_DIFFERENCES.md; this test recomputes
//! them and fails if the document says anything else. To rewrite the
//! document's table from the current results:
//!
//! ```text
//! LIBPCAP_DIFFERENCES_WRITE=1 cargo test -p libpcap-oracle --test libpcap_differences
//! ```

use std::collections::BTreeMap;

use e2e::corpus::{captures, expressions};
use libpcap_oracle::{self as libpcap, CompileOptions, DEFAULT_SNAPLEN, NETMASK_UNKNOWN};

const BEGIN: &str = "<!-- complete-packet-differences:begin -->";
const END: &str = "<!-- complete-packet-differences:end -->";
const HEADER: &str = "| link type | expression | file | packet | unoptimized | optimized |\n|---|---|---|---:|---:|---:|";

fn doc_path() -> std::path::PathBuf {
    e2e::repo_root().join("docs/LIBPCAP_DIFFERENCES.md")
}

struct Found {
    /// Table rows, in corpus order.
    rows: Vec<String>,
    truncated: usize,
    /// Expressions with at least one complete-packet difference.
    expressions: usize,
    compared: usize,
    runs: usize,
}

fn find() -> Found {
    let caps = captures();
    let mut rows = Vec::new();
    let mut bad_exprs = BTreeMap::new();
    let (mut truncated, mut compared, mut runs) = (0, 0, 0);
    for e in expressions().into_iter().filter(|e| e.optimize) {
        let Some(dlt) = libpcap::dlt_from_name(&e.dlt) else {
            continue;
        };
        let opts = |optimize| CompileOptions {
            dlt,
            snaplen: e.snaplen.unwrap_or(DEFAULT_SNAPLEN),
            optimize,
            netmask: e.netmask.unwrap_or(NETMASK_UNKNOWN),
        };
        let (Ok(unopt), Ok(opt)) = (
            libpcap::compile(&e.expr, opts(false)),
            libpcap::compile(&e.expr, opts(true)),
        ) else {
            panic!("{} {:?}: libpcap no longer compiles it", e.dlt, e.expr);
        };
        let (Some(unopt), Some(opt)) = (
            libpcap::Validated::new(&unopt),
            libpcap::Validated::new(&opt),
        ) else {
            panic!(
                "{} {:?}: libpcap's program fails bpf_validate",
                e.dlt, e.expr
            );
        };
        compared += 1;
        for cap in caps.iter().filter(|c| c.dlt == dlt) {
            for (i, p) in cap.packets.iter().enumerate() {
                runs += 1;
                let u = unopt.filter(&p.data, p.wirelen);
                let o = opt.filter(&p.data, p.wirelen);
                if u == o {
                    continue;
                }
                if (p.data.len() as u32) < p.wirelen {
                    truncated += 1;
                } else {
                    *bad_exprs
                        .entry((e.dlt.clone(), e.expr.clone()))
                        .or_insert(0) += 1;
                    rows.push(format!(
                        "| {} | `{}` | {} | {i} | {u} | {o} |",
                        e.dlt,
                        e.expr.replace('|', "\\|"),
                        cap.name
                    ));
                }
            }
        }
    }
    Found {
        rows,
        truncated,
        expressions: bad_exprs.len(),
        compared,
        runs,
    }
}

fn render(f: &Found) -> String {
    let mut s = format!("{BEGIN}\n{HEADER}\n");
    for r in &f.rows {
        s.push_str(r);
        s.push('\n');
    }
    s.push_str(&format!(
        "\nComplete-packet differences: {} (in {} expressions). Truncated-packet differences: {}. \
         Compared: {} expressions, {} packet runs.\n{END}",
        f.rows.len(),
        f.expressions,
        f.truncated,
        f.compared,
        f.runs
    ));
    s
}

#[test]
fn document_lists_every_difference() {
    let found = find();
    let want = render(&found);
    let doc = std::fs::read_to_string(doc_path()).expect("docs/LIBPCAP_DIFFERENCES.md");
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/LIBPCAP_DIFFERENCES.md lacks the {BEGIN} ... {END} section");
    };
    let have = &doc[b..e + END.len()];
    if have != want {
        if std::env::var_os("LIBPCAP_DIFFERENCES_WRITE").is_some() {
            let new = format!("{}{}{}", &doc[..b], want, &doc[e + END.len()..]);
            std::fs::write(doc_path(), new).expect("write the document");
            println!("rewrote docs/LIBPCAP_DIFFERENCES.md");
            return;
        }
        println!("{want}");
        panic!("docs/LIBPCAP_DIFFERENCES.md is out of date (the current section is printed above)");
    }
    assert!(found.runs > 100_000, "corpus barely exercised");
}
