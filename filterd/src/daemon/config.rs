//! The filterd config file: the rules and interfaces, which the compiler
//! reads (`filter_programs::ruleset::config`), and the daemon's own
//! settings, which only filterd interprets:
//!
//! ```toml
//! [daemon]                      # optional
//! pin = "/sys/fs/bpf/filterd"   # where programs, links and counters are pinned
//! metrics = "127.0.0.1:9977"    # Prometheus endpoint; "" turns it off
//! ```
//!
//! The file is validated whole: the `[daemon]` table's problems are listed
//! with the rules' ones, in one error.

use filter_programs::ruleset::config::{parse_with, ConfigError, Problems, Table};
use filter_programs::ruleset::{Interface, Rule};

/// The top-level table the daemon's settings live in.
const TABLE: &str = "daemon";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    pub pin: String,
    /// `None`: no metrics endpoint.
    pub metrics: Option<String>,
}

impl Default for Daemon {
    fn default() -> Daemon {
        Daemon {
            pin: "/sys/fs/bpf/filterd".into(),
            metrics: Some("127.0.0.1:9977".into()),
        }
    }
}

/// A whole filterd config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub daemon: Daemon,
    pub interfaces: Vec<Interface>,
    pub rules: Vec<Rule>,
}

/// Parses and validates a config, reporting every problem at once.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let mut daemon = Daemon::default();
    let rules = parse_with(text, TABLE, |t, problems| {
        read_daemon(t, problems, &mut daemon)
    })?;
    Ok(Config {
        daemon,
        interfaces: rules.interfaces,
        rules: rules.rules,
    })
}

fn read_daemon(t: &Table, c: &mut Problems, daemon: &mut Daemon) {
    let place = format!("[{TABLE}]");
    c.unknown_keys(&place, t, &["pin", "metrics"]);
    if let Some(pin) = c.string(&place, t, "pin") {
        if !pin.starts_with('/') {
            c.add(
                &place,
                format!("`pin` must be an absolute path, not {pin:?}"),
            );
        }
        daemon.pin = pin;
    }
    if let Some(m) = c.string(&place, t, "metrics") {
        daemon.metrics = (!m.is_empty()).then_some(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "[[rule]]\nname = \"r\"\nmatch = \"udp\"\naction = \"drop\"\n";

    #[test]
    fn defaults_without_a_daemon_table() {
        let c = parse(RULE).unwrap();
        assert_eq!(c.daemon, Daemon::default());
        assert_eq!(c.rules.len(), 1);
    }

    #[test]
    fn the_daemon_table_is_read() {
        let c = parse(&format!("[daemon]\npin = \"/x\"\nmetrics = \"\"\n{RULE}")).unwrap();
        assert_eq!(
            c.daemon,
            Daemon {
                pin: "/x".into(),
                metrics: None
            }
        );
    }

    #[test]
    fn daemon_problems_come_between_the_top_level_and_the_rules() {
        let text = "colour = 1\n[daemon]\npin = \"rel\"\nport = 9\n[[rule]]\nname = \"r\"\nmatch = \"tcp port\"\naction = \"drop\"\n";
        let e = parse(text).unwrap_err();
        let places: Vec<&str> = e.0.iter().map(|p| p.place.as_str()).collect();
        assert_eq!(places, ["config", "[daemon]", "[daemon]", "rule \"r\""]);
        assert!(
            e.0[0]
                .detail
                .contains("expected one of: daemon, interface, rule"),
            "{e}"
        );
        assert!(e.0[1].detail.contains("unknown key `port`"), "{e}");
        assert!(
            e.0[2].detail.contains("`pin` must be an absolute path"),
            "{e}"
        );
        let e = parse(&format!("daemon = 1\n{RULE}")).unwrap_err();
        assert_eq!(e.0[0].to_string(), "daemon: must be a table ([daemon])");
    }

    #[test]
    fn a_daemon_problem_alone_is_not_nothing_to_do() {
        let e = parse("[daemon]\npin = \"rel\"\n").unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
    }
}
