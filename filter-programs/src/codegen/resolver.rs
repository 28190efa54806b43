//! Name lookups code generation needs (host, network, Ethernet host,
//! service and protocol names), behind a trait so this crate stays free
//! of system calls: the caller decides where names come from.

use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;

use crate::expr::names::{Protocols, Services};

/// The transport a service name is looked up for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// Where names come from. Every method answers for one name; `None` (or
/// an empty list) means "no such name", which the generator reports with
/// libpcap's message.
pub trait Resolver: Send + Sync + fmt::Debug {
    /// The addresses of a host name, in the order `getaddrinfo()` gives
    /// them. `Err` is a reason the name cannot be looked up at all.
    fn host(&self, name: &str) -> Result<Vec<IpAddr>, String>;
    /// An IPv4 network number as `getnetbyname()` gives it: `10.20` is
    /// 0x0a14, not left-justified.
    fn net(&self, name: &str) -> Option<u32>;
    /// An Ethernet host name (`/etc/ethers`).
    fn ether(&self, name: &str) -> Option<[u8; 6]>;
    /// A service name's port for one transport (`/etc/services`).
    fn service(&self, name: &str, transport: Transport) -> Option<u16>;
    /// An IP protocol name's number (`/etc/protocols`).
    fn protocol(&self, name: &str) -> Option<u8>;
}

/// The pure resolver: the built-in service and protocol tables (those of
/// a stock Debian system), no host, network or Ethernet names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuiltinResolver;

impl Resolver for BuiltinResolver {
    fn host(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        Err(format!("cannot resolve host name {name}: no resolver"))
    }

    fn net(&self, _name: &str) -> Option<u32> {
        None
    }

    fn ether(&self, _name: &str) -> Option<[u8; 6]> {
        None
    }

    fn service(&self, name: &str, transport: Transport) -> Option<u16> {
        static TABLE: OnceLock<Services> = OnceLock::new();
        let p = TABLE.get_or_init(Services::builtin).lookup(name)?;
        match transport {
            Transport::Tcp => p.tcp,
            Transport::Udp => p.udp,
        }
    }

    fn protocol(&self, name: &str) -> Option<u8> {
        static TABLE: OnceLock<Protocols> = OnceLock::new();
        TABLE.get_or_init(Protocols::builtin).lookup(name)
    }
}
