//! systemd's notification protocol (sd_notify(3)), without libsystemd:
//! one datagram of `KEY=VALUE` lines to the unix socket `$NOTIFY_SOCKET`
//! names (a path, or `@name` in the abstract namespace).
//!
//! ```text
//!  start      READY=1            once every interface is attached
//!  reload     RELOADING=1        MONOTONIC_USEC= the reload's start
//!             READY=1            when it is done, swapped or refused
//!  stop       STOPPING=1
//!  each       STATUS=...         what `systemctl status` shows
//! ```
//!
//! Whether a reload was refused reaches `systemctl reload` through
//! `filterd reload` (see [`super::outcome`]): systemd takes READY=1 after
//! RELOADING=1 as done either way.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for; `None` when unset (not
    /// under systemd) or unusable (logged).
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        Notifier::to(name.to_str().filter(|n| !n.is_empty())?)
    }

    /// A notifier to socket `name` (`@name`: abstract).
    pub fn to(name: &str) -> Option<Notifier> {
        let to = match name.strip_prefix('@') {
            Some(abs) => SocketAddr::from_abstract_name(abs.as_bytes()),
            None => SocketAddr::from_pathname(name),
        };
        match (UnixDatagram::unbound(), to) {
            (Ok(socket), Ok(to)) => Some(Notifier { socket, to }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(socket = name, error = %e, "NOTIFY_SOCKET unusable: systemd will not hear from filterd");
                None
            }
        }
    }

    /// Sends one message; a failure is logged, never fatal.
    pub fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.to) {
            tracing::warn!(error = %e, "sd_notify");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}\n", one_line(status)));
    }

    pub fn reloading(&self, status: &str) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={}\n",
            monotonic_usec(),
            one_line(status)
        ));
    }

    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}\n", one_line(status)));
    }
}

/// A status is one line: systemd reads the message line by line.
fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// CLOCK_MONOTONIC in microseconds, as systemd matches a reload to its
/// `RELOADING=1`.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages arrive as datagrams of the protocol's lines, to a
    /// path and to an abstract name.
    #[test]
    fn messages_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("filterd-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to(path.to_str().unwrap()).unwrap();
        n.reloading("reloading: SIGHUP\nsecond line");
        let mut buf = [0u8; 512];
        let len = rx.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..len]).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "RELOADING=1");
        assert!(
            lines[1]
                .strip_prefix("MONOTONIC_USEC=")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
        assert_eq!(lines[2], "STATUS=reloading: SIGHUP");
        assert_eq!(lines.len(), 3);

        let name = format!("filterd-notify-test-{}", std::process::id());
        let abs =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let n = Notifier::to(&format!("@{name}")).expect("abstract socket");
        n.ready("enforcing");
        let len = abs.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=enforcing\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
