//! libpcap master's expected `-d` text for its whole accept suite (every
//! link type, in `accept_expected.jsonl`) parses, and prints back the same
//! apart from what master prints differently from 1.10.3: no trailing
//! blanks, `ldx #pktlen` (1.10.3: `unimp 0x81`), and filtertest's
//! `; 0x<code>` comments.

use filter_programs::cbpf::text::{self, Format};

/// The JSON string value of `key` in a one-line object; `None` for null.
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = line.get(start..)?;
    let body = rest.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

fn normalize_master(line: &str) -> String {
    let line = line.split(';').next().unwrap_or(line).trim_end();
    line.replace("ldx      #pktlen", "unimp    0x81")
}

#[test]
fn master_suite_dumps_parse_and_print_back() {
    let path = e2e::corpus_dir().join("expressions/accept_expected.jsonl");
    let data = std::fs::read_to_string(&path).expect("accept_expected.jsonl");
    let mut dumps = 0;
    let mut failures = Vec::new();
    for (i, line) in data.lines().enumerate() {
        for key in ["opt", "unopt"] {
            let Some(dump) = json_string(line, key) else {
                continue;
            };
            dumps += 1;
            let where_ = format!("line {} {key}", i + 1);
            let prog = match text::parse(&dump) {
                Ok(p) => p,
                Err(e) => {
                    failures.push(format!("{where_}: {e}"));
                    continue;
                }
            };
            let ours = text::print(&prog, Format::Asm);
            let ours: Vec<&str> = ours.lines().map(str::trim_end).collect();
            let theirs: Vec<String> = dump.lines().map(normalize_master).collect();
            if ours != theirs {
                failures.push(format!("{where_}:\nours   {ours:?}\nmaster {theirs:?}"));
            }
        }
    }
    eprintln!("{dumps} libpcap master dumps parsed and printed back");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        dumps > 1700,
        "only {dumps} dumps read from {}",
        path.display()
    );
}
