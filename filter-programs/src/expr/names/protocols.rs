//! `/etc/protocols`-style tables: IP protocol names to numbers.

use std::collections::HashMap;

/// Name -> IP protocol number. Lookups are case-sensitive, like
/// getprotobyname(3); aliases count as names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Protocols {
    by_name: HashMap<String, u8>,
}

impl Protocols {
    /// Parses `/etc/protocols` text: `name number [aliases...] [# comment]`.
    /// Malformed lines and numbers over 255 are skipped, as the C library
    /// does; the first entry for a name wins.
    pub fn parse(text: &str) -> Protocols {
        let mut by_name = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let (Some(name), Some(num)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(num) = num.parse::<u8>() else { continue };
            for n in std::iter::once(name).chain(fields) {
                by_name.entry(n.to_string()).or_insert(num);
            }
        }
        Protocols { by_name }
    }

    /// The table built in, independent of the machine.
    pub fn builtin() -> Protocols {
        Protocols::parse(include_str!("builtin_protocols.txt"))
    }

    pub fn lookup(&self, name: &str) -> Option<u8> {
        self.by_name.get(name).copied()
    }

    /// Entries of `self`, falling back to `other` for names `self` lacks.
    pub fn or(mut self, other: &Protocols) -> Protocols {
        for (k, v) in &other.by_name {
            self.by_name.entry(k.clone()).or_insert(*v);
        }
        self
    }
}
