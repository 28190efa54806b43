//! The parser against the shared corpus: every expression libpcap accepts
//! must parse; every expression libpcap refuses with a scanner or grammar
//! error must be refused.

use std::fs;

use filter_programs::expr::parse;

/// Rows of a corpus TSV as maps from header name to field.
fn rows(file: &str) -> Vec<std::collections::HashMap<String, String>> {
    let path = e2e::corpus_dir().join("expressions").join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_else(|| panic!("{file} is empty"))
        .split('\t')
        .map(String::from)
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(
                    l.split('\t')
                        .map(String::from)
                        .chain(std::iter::repeat(String::new())),
                )
                .collect()
        })
        .collect()
}

#[test]
fn every_accepted_expression_parses() {
    let mut failures = Vec::new();
    let mut count = 0;
    let mut other_os = 0;
    for row in rows("accept.tsv") {
        let expr = &row["expression"];
        if expr == "_enumerate_bpf_image" {
            continue;
        }
        // PF reason/action names exist only on some BSDs and macOS; the
        // suite skips these rows on Linux, where libpcap refuses them, and
        // so do we. They are all `reason NAME` / `action NAME`.
        let pf_name = expr.starts_with("reason ") || expr.starts_with("action ");
        if is_other_os(&row["skip"]) && pf_name && parse(expr).is_err() {
            other_os += 1;
            continue;
        }
        count += 1;
        if let Err(e) = parse(expr) {
            failures.push(format!(
                "accept.tsv [{}] {expr:?}:\n{}",
                row["id"],
                e.render()
            ));
        }
    }
    let common = fs::read_to_string(e2e::corpus_dir().join("expressions/common.txt"))
        .expect("common.txt is readable");
    let mut common_count = 0;
    for expr in common.lines().filter(|l| !l.trim().is_empty()) {
        common_count += 1;
        if let Err(e) = parse(expr) {
            failures.push(format!("common.txt {expr:?}:\n{}", e.render()));
        }
    }
    println!("skipped {other_os} accept.tsv rows that only apply to other OSes (PF names)");
    println!(
        "parsed {} of {count} accept.tsv expressions and {} of {common_count} common.txt lines",
        count - failures.iter().filter(|f| f.starts_with("accept")).count(),
        common_count - failures.iter().filter(|f| f.starts_with("common")).count(),
    );
    assert!(count > 2000 && common_count > 150, "corpus looks truncated");
    assert!(
        failures.is_empty(),
        "{} expressions failed to parse:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn is_other_os(skip: &str) -> bool {
    skip.starts_with("is not ")
}

/// libpcap errors that come from its scanner or grammar, before any code is
/// generated: the parser alone must refuse these.
fn is_front_end_error(expected: &str) -> bool {
    [
        "syntax error",
        "invalid Ethernet address",
        "invalid IPv6 address",
        "overflows 32 bits",
        "contains non-octal digit",
        "contains non-hex digit",
        "contains non-decimal digit",
        "illegal token",
        "illegal character",
    ]
    .iter()
    .any(|s| expected.contains(s))
}

#[test]
fn reject_rows_with_front_end_errors_are_refused() {
    let mut total = 0;
    let mut refused = 0;
    let mut front_end = 0;
    let mut missed = Vec::new();
    let mut by_kind = std::collections::BTreeMap::<String, usize>::new();
    for row in rows("reject.tsv") {
        total += 1;
        let expr = &row["expression"];
        let expected = &row["expected_error"];
        let result = parse(expr);
        if let Err(e) = &result {
            refused += 1;
            *by_kind.entry(format!("{:?}", e.kind)).or_default() += 1;
            let span = e.span();
            assert!(
                span.end <= expr.len() && span.start <= span.end,
                "bad span for {expr:?}"
            );
        }
        if is_front_end_error(expected) {
            front_end += 1;
            if result.is_ok() {
                missed.push(format!("[{}] {expr:?} (libpcap: {expected})", row["id"]));
            }
        }
    }
    println!(
        "reject.tsv: {total} rows; the parser alone refuses {refused} ({by_kind:?}); \
         {front_end} rows have scanner/grammar errors, {} of them refused",
        front_end - missed.len()
    );
    assert!(
        front_end >= 50,
        "expected the corpus to hold scanner/grammar rejects"
    );
    assert!(
        missed.is_empty(),
        "accepted {} front-end rejects:\n{}",
        missed.len(),
        missed.join("\n")
    );
}
