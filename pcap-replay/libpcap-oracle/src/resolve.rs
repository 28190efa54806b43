//! The system's names for the filter compiler: host names through the C
//! library's resolver (`getaddrinfo`, as libpcap uses), and the
//! services, protocols, ethers and networks databases read from `/etc`.
//! The compiler itself does no I/O; it asks a
//! [`Resolver`](filter_programs::codegen::Resolver).
//!
//! It lives beside the oracle because a comparison with libpcap means
//! something only when both compilers resolve the same names the same way.
//!
//! ```no_run
//! use std::sync::Arc;
//! use filter_programs::codegen::{compile, Dlt, Options};
//! use libpcap_oracle::resolve::SystemResolver;
//! let opts = Options {
//!     resolver: Arc::new(SystemResolver::new()),
//!     ..Options::new(Dlt::En10mb)
//! };
//! let prog = compile("host localhost", &opts).unwrap();
//! # let _ = prog;
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;

use filter_programs::codegen::{Resolver, Transport};
use filter_programs::expr::names::{Protocols, Services};

/// Names from this machine. The databases are read once, when built.
#[derive(Clone, Debug)]
pub struct SystemResolver {
    services: Services,
    protocols: Protocols,
    ethers: HashMap<String, [u8; 6]>,
    networks: HashMap<String, u32>,
}

impl Default for SystemResolver {
    fn default() -> Self {
        SystemResolver::new()
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(path)).ok()
}

impl SystemResolver {
    /// Reads `/etc/services`, `/etc/protocols`, `/etc/ethers` and
    /// `/etc/networks`. A missing services or protocols file falls back to
    /// the compiler's built-in table; missing ethers or networks files
    /// mean no such names.
    pub fn new() -> SystemResolver {
        SystemResolver::from_texts(
            read("/etc/services").as_deref(),
            read("/etc/protocols").as_deref(),
            read("/etc/ethers").as_deref(),
            read("/etc/networks").as_deref(),
        )
    }

    /// The same from file contents (`None`: the file is absent).
    pub fn from_texts(
        services: Option<&str>,
        protocols: Option<&str>,
        ethers: Option<&str>,
        networks: Option<&str>,
    ) -> SystemResolver {
        SystemResolver {
            services: services.map_or_else(Services::builtin, Services::parse),
            protocols: protocols.map_or_else(Protocols::builtin, Protocols::parse),
            ethers: ethers.map(parse_ethers).unwrap_or_default(),
            networks: networks.map(parse_networks).unwrap_or_default(),
        }
    }
}

impl Resolver for SystemResolver {
    fn host(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        // getaddrinfo() for a stream socket, libpcap's hints: one entry
        // per address, in the resolver's order. Failure is "no such host".
        Ok(match (name, 0u16).to_socket_addrs() {
            Ok(addrs) => addrs.map(|a| a.ip()).collect(),
            Err(_) => Vec::new(),
        })
    }

    fn net(&self, name: &str) -> Option<u32> {
        self.networks.get(name).copied()
    }

    fn ether(&self, name: &str) -> Option<[u8; 6]> {
        self.ethers.get(name).copied()
    }

    fn service(&self, name: &str, transport: Transport) -> Option<u16> {
        let p = self.services.lookup(name)?;
        match transport {
            Transport::Tcp => p.tcp,
            Transport::Udp => p.udp,
        }
    }

    fn protocol(&self, name: &str) -> Option<u8> {
        self.protocols.lookup(name)
    }
}

/// Strips a `#` comment.
fn content(line: &str) -> &str {
    line.split('#').next().unwrap_or("")
}

/// `/etc/ethers`: `MAC NAME` per line, MAC as six hex bytes separated by
/// `:` (one or two digits each). The first entry for a name wins.
fn parse_ethers(text: &str) -> HashMap<String, [u8; 6]> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut f = content(line).split_whitespace();
        let (Some(mac), Some(name)) = (f.next(), f.next()) else {
            continue;
        };
        if let Some(m) = parse_mac(mac) {
            out.entry(name.to_string()).or_insert(m);
        }
    }
    out
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// `/etc/networks`: `NAME NUMBER [ALIASES]`, the number in dotted form
/// with 1 to 4 parts (`10.20` is 0x0a14, as `inet_network()` reads it).
fn parse_networks(text: &str) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut f = content(line).split_whitespace();
        let (Some(name), Some(num)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(n) = parse_netnum(num) else { continue };
        for alias in std::iter::once(name).chain(f) {
            out.entry(alias.to_string()).or_insert(n);
        }
    }
    out
}

fn parse_netnum(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    parts.iter().try_fold(0u32, |acc, p| {
        let v: u8 = p.parse().ok()?;
        Some((acc << 8) | u32::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_parse() {
        let r = SystemResolver::from_texts(
            Some("http 80/tcp www\nhttp 80/udp\ndomain 53/udp\n"),
            Some("tcp 6 TCP\n# comment\nudp 17 UDP\n"),
            Some("0:1:2:3:4:5 box # a comment\nzz:1:2:3:4:5 bad\n"),
            Some("loopback 127.0.0.0\nten 10.20 tens\n"),
        );
        assert_eq!(r.service("www", Transport::Tcp), Some(80));
        assert_eq!(r.service("domain", Transport::Tcp), None);
        assert_eq!(r.protocol("UDP"), Some(17));
        assert_eq!(r.ether("box"), Some([0, 1, 2, 3, 4, 5]));
        assert_eq!(r.ether("bad"), None);
        assert_eq!(r.net("loopback"), Some(0x7f00_0000));
        assert_eq!(r.net("tens"), Some(0x0a14));
        assert_eq!(r.net("nowhere"), None);
    }

    #[test]
    fn localhost_resolves_to_loopback() {
        let r = SystemResolver::from_texts(None, None, None, None);
        let addrs = r.host("localhost").expect("resolver runs");
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.is_loopback()),
            "{addrs:?}"
        );
        assert_eq!(r.host("no-such-host.invalid"), Ok(vec![]));
    }
}
