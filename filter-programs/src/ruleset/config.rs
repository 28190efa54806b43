//! The rules of a filterd config: TOML, validated whole.
//!
//! ```toml
//! [[interface]]
//! name = "eth0"
//! mode = "skb"                  # skb | drv (default skb)
//! default = "pass"              # pass | drop (default pass)
//!
//! [[rule]]
//! name = "no-ssh"               # unique, not "default"; counters follow it across reloads
//! match = "tcp dst port 22"     # a pcap-filter expression, as tcpdump takes it
//! action = "drop"               # pass | drop | count (count falls through)
//! ```
//!
//! The same file holds the application's own settings in a table of its
//! own (filterd's `[daemon]`: pin path, metrics address), which the
//! compiler does not interpret: [`parse_with`] hands that table to the
//! application's reader, which reports into the same [`Problems`].
//!
//! Every problem is collected before anything is reported, so one run of
//! `filterd check` lists them all; a config with any error is never
//! compiled, let alone loaded.

use std::collections::BTreeSet;
use std::fmt;

pub use toml::Table;
use toml::Value;

use super::{Action, Verdict};
use crate::cbpf::Insn;
use crate::codegen::{self, Dlt};

/// An XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Skb,
    Drv,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Skb => "skb",
            Mode::Drv => "drv",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mode: Mode,
    pub default: Verdict,
}

/// A rule as written, with its compiled classic program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub expr: String,
    pub action: Action,
    pub program: Vec<Insn>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub interfaces: Vec<Interface>,
    pub rules: Vec<Rule>,
}

/// One problem in a config. `rule` names the rule (or `rule #N` when it has
/// no usable name); `detail` may span several lines (a caret diagnostic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub place: String,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.detail)
    }
}

/// Every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct ConfigError(pub Vec<Problem>);

fn render(problems: &[Problem]) -> String {
    let mut s = format!(
        "{} error{} in the config",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str("\n\n");
        s.push_str(&p.to_string());
    }
    s
}

/// The problems found so far, for the rules' reader and the application's.
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn add(&mut self, place: &str, detail: impl Into<String>) {
        self.0.push(Problem {
            place: place.to_string(),
            detail: detail.into(),
        });
    }

    /// A problem for every key of `table` not in `known`.
    pub fn unknown_keys(&mut self, place: &str, table: &Table, known: &[&str]) {
        for key in table.keys().filter(|k| !known.contains(&k.as_str())) {
            self.add(
                place,
                format!(
                    "unknown key `{key}` (expected one of: {})",
                    known.join(", ")
                ),
            );
        }
    }

    /// `table[key]` when it is a string; a problem when it is something else.
    pub fn string(&mut self, place: &str, table: &Table, key: &str) -> Option<String> {
        match table.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                self.add(
                    place,
                    format!("`{key}` must be a string, not {}", v.type_str()),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        place: &str,
        table: &Table,
        key: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(s) = self.string(place, table, key) else {
            return default;
        };
        match options.iter().find(|(n, _)| *n == s) {
            Some((_, v)) => *v,
            None => {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.add(
                    place,
                    format!("`{key}` is {s:?}, expected one of: {}", names.join(", ")),
                );
                default
            }
        }
    }

    fn tables<'t>(&mut self, root: &'t Table, key: &str) -> Vec<&'t Table> {
        match root.get(key) {
            None => vec![],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::Table(t) => Some(t),
                    _ => {
                        self.add(&format!("{key} #{}", i + 1), "must be a table ([[{key}]])");
                        None
                    }
                })
                .collect(),
            Some(_) => {
                self.add(
                    key,
                    format!("must be an array of tables, written [[{key}]]"),
                );
                vec![]
            }
        }
    }
}

/// Parses and validates a config of rules and interfaces only. Expressions
/// are compiled for Ethernet (XDP sees the frame from its MAC header).
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_config(text, None)
}

/// [`parse`] for a config that may also hold the application's own
/// top-level table `key` (filterd's `[daemon]`). When present, that table
/// is handed to `read` after the top-level keys are checked and before
/// the interfaces and rules, so that the problems `read` adds come in the
/// same order as the others.
pub fn parse_with(
    text: &str,
    key: &str,
    read: impl FnOnce(&Table, &mut Problems),
) -> Result<Config, ConfigError> {
    parse_config(text, Some((key, Box::new(read))))
}

type AppTable<'a> = (&'a str, Box<dyn FnOnce(&Table, &mut Problems) + 'a>);

fn parse_config(text: &str, app: Option<AppTable<'_>>) -> Result<Config, ConfigError> {
    let root: Table = toml::from_str(text).map_err(|e| {
        ConfigError(vec![Problem {
            place: "syntax".into(),
            detail: e.to_string().trim_end().into(),
        }])
    })?;
    let mut c = Problems(Vec::new());
    let known: Vec<&str> = app
        .iter()
        .map(|(key, _)| *key)
        .chain(["interface", "rule"])
        .collect();
    c.unknown_keys("config", &root, &known);
    if let Some((key, read)) = app {
        match root.get(key) {
            None => {}
            Some(Value::Table(t)) => read(t, &mut c),
            Some(_) => c.add(key, format!("must be a table ([{key}])")),
        }
    }
    let interfaces = interfaces(&root, &mut c);
    let rules = rules(&root, &mut c);
    if c.0.is_empty() && interfaces.is_empty() && rules.is_empty() {
        c.add("config", "no [[interface]] and no [[rule]]: nothing to do");
    }
    if c.0.is_empty() {
        Ok(Config { interfaces, rules })
    } else {
        Err(ConfigError(c.0))
    }
}

fn interfaces(root: &Table, c: &mut Problems) -> Vec<Interface> {
    let mut interfaces = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, t) in c.tables(root, "interface").into_iter().enumerate() {
        let place = format!("interface #{}", i + 1);
        c.unknown_keys(&place, t, &["name", "mode", "default"]);
        let Some(name) = c.string(&place, t, "name") else {
            if !t.contains_key("name") {
                c.add(&place, "missing `name`");
            }
            continue;
        };
        let place = format!("interface {name:?}");
        if name.is_empty() || name.len() >= 16 || name.contains(['/', ' ', '\0']) {
            c.add(&place, "not a valid interface name");
        }
        if !seen.insert(name.clone()) {
            c.add(&place, "listed twice");
        }
        let mode = c.choice(
            &place,
            t,
            "mode",
            &[("skb", Mode::Skb), ("drv", Mode::Drv)],
            Mode::Skb,
        );
        let default = c.choice(
            &place,
            t,
            "default",
            &[("pass", Verdict::Pass), ("drop", Verdict::Drop)],
            Verdict::Pass,
        );
        interfaces.push(Interface {
            name,
            mode,
            default,
        });
    }
    interfaces
}

fn rules(root: &Table, c: &mut Problems) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut names = BTreeSet::new();
    for (i, t) in c.tables(root, "rule").into_iter().enumerate() {
        let numbered = format!("rule #{}", i + 1);
        let name = c.string(&numbered, t, "name");
        let place = match &name {
            Some(n) if !n.is_empty() => format!("rule {n:?}"),
            _ => numbered.clone(),
        };
        c.unknown_keys(&place, t, &["name", "match", "action"]);
        match &name {
            None if !t.contains_key("name") => c.add(&place, "missing `name`"),
            Some(n) if n.is_empty() => c.add(&place, "`name` is empty"),
            Some(n) if n == super::compile::DEFAULT_COUNTER => c.add(
                &place,
                "the name `default` is reserved for the counter of packets no rule decides",
            ),
            Some(n) if !names.insert(n.clone()) => c.add(&place, "duplicate rule name"),
            _ => {}
        }
        let action = action(&place, t, c);
        let expr = c.string(&place, t, "match");
        let program = program(&place, t, expr.as_deref(), c);
        if let (Some(name), Some(action), Some(expr), Some(program)) = (name, action, expr, program)
        {
            rules.push(Rule {
                name,
                expr,
                action,
                program,
            });
        }
    }
    rules
}

/// The rule's action, `None` when it is missing or not one of the three.
fn action(place: &str, t: &Table, c: &mut Problems) -> Option<Action> {
    if !t.contains_key("action") {
        c.add(place, "missing `action` (pass, drop or count)");
        return None;
    }
    let before = c.0.len();
    let actions = [
        ("pass", Action::Pass),
        ("drop", Action::Drop),
        ("count", Action::Count),
    ];
    let a = c.choice(place, t, "action", &actions, Action::Count);
    (c.0.len() == before).then_some(a)
}

/// The rule's `match` (`expr`, when it is a string) compiled.
fn program(place: &str, t: &Table, expr: Option<&str>, c: &mut Problems) -> Option<Vec<Insn>> {
    match expr {
        None if !t.contains_key("match") => {
            c.add(place, "missing `match` (a pcap-filter expression)");
            None
        }
        None => None,
        Some(e) if e.trim().is_empty() => {
            // tcpdump takes an empty expression as "everything"; in a
            // firewall rule that is far more likely a mistake.
            c.add(
                place,
                "`match` is empty (write `match = \"ip or not ip\"` to match everything)",
            );
            None
        }
        Some(e) => match codegen::compile(e, &codegen::Options::new(Dlt::En10mb)) {
            Ok(p) => Some(p),
            Err(err) => {
                c.add(
                    place,
                    format!("`match` does not compile:\n{}", err.render().trim_end()),
                );
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[interface]]
name = "eth0"
mode = "skb"
default = "pass"

[[rule]]
name = "admin-ssh"
match = "tcp dst port 22 and src net 10.0.0.0/8"
action = "pass"

[[rule]]
name = "no-ssh"
match = "tcp dst port 22"
action = "drop"
"#;

    #[test]
    fn the_example_parses() {
        let c = parse(EXAMPLE).unwrap();
        assert_eq!(
            c.interfaces,
            vec![Interface {
                name: "eth0".into(),
                mode: Mode::Skb,
                default: Verdict::Pass
            }]
        );
        assert_eq!(c.rules.len(), 2);
        assert_eq!(c.rules[1].action, Action::Drop);
    }

    #[test]
    fn every_error_is_reported_with_its_rule() {
        let text = r#"
colour = "blue"
[[interface]]
name = "eth0"
mode = "turbo"
[[rule]]
name = "a"
match = "tcp dst port 22"
action = "drop"
[[rule]]
name = "a"
match = "tcp port"
action = "drop"
[[rule]]
name = "empty"
match = "  "
action = "pass"
[[rule]]
name = "typo"
match = "udp"
actoin = "pass"
"#;
        let e = parse(text).unwrap_err();
        let all = e.to_string();
        assert!(all.starts_with("7 errors in the config"), "{all}");
        let places: Vec<&str> = e.0.iter().map(|p| p.place.as_str()).collect();
        assert_eq!(
            places,
            [
                "config",
                "interface \"eth0\"",
                "rule \"a\"",
                "rule \"a\"",
                "rule \"empty\"",
                "rule \"typo\"",
                "rule \"typo\""
            ]
        );
        assert!(all.contains("unknown key `colour`"));
        assert!(all.contains("`mode` is \"turbo\""));
        assert!(all.contains("duplicate rule name"));
        // `default` names the default's counter (and its metrics series).
        let reserved = "[[interface]]\nname = \"lo\"\n[[rule]]\nname = \"default\"\nmatch = \"tcp\"\naction = \"drop\"\n";
        let refused = parse(reserved).unwrap_err().to_string();
        assert!(refused.contains("`default` is reserved"), "{refused}");
        // The expression's caret diagnostic comes along.
        let bad = &e.0[3].detail;
        assert!(
            bad.contains("1 | tcp port") && bad.contains("found the end of the expression"),
            "{bad}"
        );
        assert!(all.contains("`match` is empty"));
        assert!(all.contains("unknown key `actoin`"));
        assert!(all.contains("missing `action`"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse("[[rule]\nname = 1").unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(e.0[0].detail.contains("line 1"), "{}", e.0[0].detail);
    }

    #[test]
    fn an_application_table_is_handed_over_in_order() {
        let text = "colour = 1\n[app]\nx = 1\n[[rule]]\nname = \"r\"\nmatch = \"tcp port\"\naction = \"drop\"\n";
        let mut seen = None;
        let e = parse_with(text, "app", |t, c| {
            seen = Some(t.clone());
            c.add("[app]", "read");
        })
        .unwrap_err();
        assert!(seen.is_some_and(|t| t.contains_key("x")));
        let places: Vec<&str> = e.0.iter().map(|p| p.place.as_str()).collect();
        assert_eq!(places, ["config", "[app]", "rule \"r\""]);
        assert!(
            e.0[0]
                .detail
                .contains("expected one of: app, interface, rule"),
            "{e}"
        );
        let e = parse(text).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown key `app` (expected one of: interface, rule)"),
            "{e}"
        );
        let e = parse_with(
            "app = 1\n[[rule]]\nname = \"r\"\nmatch = \"udp\"\naction = \"drop\"\n",
            "app",
            |_, _| {},
        )
        .unwrap_err();
        assert_eq!(e.0[0].to_string(), "app: must be a table ([app])");
    }

    #[test]
    fn nothing_at_all_is_an_error() {
        assert!(parse("").is_err());
    }
}
