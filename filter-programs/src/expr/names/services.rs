//! `/etc/services`-style tables: port names to TCP/UDP/SCTP port numbers.

use std::collections::HashMap;

/// The ports one service name stands for, per transport. libpcap matches a
/// named port on every transport where the name is defined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortNumbers {
    pub tcp: Option<u16>,
    pub udp: Option<u16>,
    pub sctp: Option<u16>,
}

impl PortNumbers {
    pub fn is_empty(&self) -> bool {
        self.tcp.is_none() && self.udp.is_none() && self.sctp.is_none()
    }
}

/// Name -> ports. Case-sensitive, aliases count as names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Services {
    by_name: HashMap<String, PortNumbers>,
}

impl Services {
    /// Parses `/etc/services` text: `name port/proto [aliases...] [# comment]`.
    /// Lines that do not fit are skipped; per transport the first entry wins.
    pub fn parse(text: &str) -> Services {
        let mut by_name: HashMap<String, PortNumbers> = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let (Some(name), Some(pp)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            for n in std::iter::once(name).chain(fields) {
                let e = by_name.entry(n.to_string()).or_default();
                let slot = match proto {
                    "tcp" => &mut e.tcp,
                    "udp" => &mut e.udp,
                    "sctp" => &mut e.sctp,
                    _ => continue,
                };
                slot.get_or_insert(port);
            }
        }
        by_name.retain(|_, p| !p.is_empty());
        Services { by_name }
    }

    /// The table built in, independent of the machine.
    pub fn builtin() -> Services {
        Services::parse(include_str!("builtin_services.txt"))
    }

    pub fn lookup(&self, name: &str) -> Option<PortNumbers> {
        self.by_name.get(name).copied()
    }

    /// Entries of `self`, falling back to `other` for names `self` lacks.
    pub fn or(mut self, other: &Services) -> Services {
        for (k, v) in &other.by_name {
            self.by_name.entry(k.clone()).or_insert(*v);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn services_and_protocols() {
        let s = Services::parse(
            "http 80/tcp www # web\nhttp 80/udp\nbad line\nx 99999/tcp\nfoo 7/sctp\n",
        );
        assert_eq!(
            s.lookup("www"),
            Some(PortNumbers {
                tcp: Some(80),
                udp: None,
                sctp: None
            })
        );
        assert_eq!(s.lookup("http").and_then(|p| p.udp), Some(80));
        assert_eq!(s.lookup("x"), None);
        assert_eq!(s.lookup("foo").and_then(|p| p.sctp), Some(7));
        let b = Services::builtin();
        assert_eq!(
            b.lookup("domain"),
            Some(PortNumbers {
                tcp: Some(53),
                udp: Some(53),
                sctp: None
            })
        );
        assert_eq!(b.lookup("ssh").and_then(|p| p.tcp), Some(22));
        let p = Protocols::parse("tcp 6 TCP\nudp 17 UDP # c\nbig 300\n");
        assert_eq!(p.lookup("TCP"), Some(6));
        assert_eq!(p.lookup("big"), None);
        let p = Protocols::builtin();
        assert_eq!(
            (p.lookup("icmp"), p.lookup("udp"), p.lookup("ospf")),
            (Some(1), Some(17), Some(89))
        );
        assert_eq!(ethertype("ip6"), Some(0x86dd));
        assert_eq!(llc_sap("stp"), Some(0x42));
        assert_eq!(llc_frame("RNR"), Some(LlcFrame::SSubtype(5)));
        assert_eq!(wlan_type_subtype("beacon"), Some(0x80));
        assert_eq!(wlan_type_subtype("qos-data"), Some(0x88));
        assert_eq!(wlan_subtype(0x04, "ack"), Ok(Some(0xd0)));
        assert_eq!(wlan_subtype(0x0c, "ack"), Err(()));
        assert_eq!(pf_reason("Bad-Offset"), Some(1));
        assert_eq!(pf_action("block"), Some(1));
        assert_eq!(named_number("icmp6-echo"), Some(128));
    }
}
