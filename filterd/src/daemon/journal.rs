//! Logging under systemd. systemd sets `JOURNAL_STREAM` to the device and
//! inode of the stream it connects to stdout/stderr; when stderr is that
//! stream, log events go to journald through its native protocol instead,
//! so each keeps its level as the journal's priority (`journalctl -p
//! warning` shows warnings and errors) and its fields as journal fields.
//! Anywhere else, and if journald's socket cannot be opened, they go to
//! stderr as text or JSON lines.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

/// The identifier journald files filterd's entries under.
pub const IDENTIFIER: &str = "filterd";

/// Whether stderr is the journal's stream (see the module comment).
pub fn stderr_is_journal() -> bool {
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = var.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// journald's layer, when stderr is the journal and its socket opens.
pub fn layer() -> Option<tracing_journald::Layer> {
    if !stderr_is_journal() {
        return None;
    }
    match tracing_journald::layer() {
        // No prefix: an event's `rules` is the journal field RULES, as
        // `journalctl RULES=...` reads naturally; filterd's field names
        // clash with none of journald's.
        Ok(l) => Some(
            l.with_syslog_identifier(IDENTIFIER.into())
                .with_field_prefix(None),
        ),
        Err(e) => {
            eprintln!("filterd: journald's socket: {e}; logging to stderr");
            None
        }
    }
}

/// The prefix that gives a line written to stderr the priority `err` in
/// the journal (systemd reads `<N>` prefixes on a service's streams);
/// empty elsewhere.
pub fn error_prefix() -> &'static str {
    if stderr_is_journal() {
        "<3>"
    } else {
        ""
    }
}
