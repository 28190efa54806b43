//! Progress bars on stderr, one per capture being read.
//!
//! Only on a terminal, never with `--quiet`, `--json` or `--count` (whose
//! readers are scripts), and only for long work: a capture's bar appears
//! once it has been read for [`SHOW_AFTER`], so quick runs print nothing.

use std::io::{self, BufRead, Read};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// How long a capture is read before its bar appears.
pub const SHOW_AFTER: Duration = Duration::from_secs(1);

/// Whether bars may be drawn at all.
pub fn wanted(stderr_is_terminal: bool, quiet: bool, json: bool, count: bool) -> bool {
    stderr_is_terminal && !quiet && !json && !count
}

/// The bars of one run.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            multi: enabled.then(MultiProgress::new),
        }
    }

    /// Wraps a capture's reader; `len` is its size when known.
    pub fn track<R: Read>(&self, name: &str, len: Option<u64>, inner: R) -> Tracked<R> {
        let bar = self.multi.as_ref().map(|m| {
            let bar = ProgressBar::hidden();
            let style = match len {
                Some(n) => {
                    bar.set_length(n);
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                }
                None => ProgressStyle::with_template("{prefix} {spinner} {bytes} {bytes_per_sec}"),
            };
            if let Ok(style) = style {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(name.to_string());
            (bar, m.clone())
        });
        Tracked {
            inner,
            bar,
            shown: false,
            started: Instant::now(),
            read: 0,
        }
    }
}

/// A reader that moves its bar, and shows it once the read is long.
pub struct Tracked<R> {
    inner: R,
    bar: Option<(ProgressBar, MultiProgress)>,
    shown: bool,
    started: Instant,
    read: u64,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Some((bar, multi)) = &self.bar {
            if !self.shown && self.started.elapsed() >= SHOW_AFTER {
                multi.add(bar.clone());
                self.shown = true;
            }
            bar.set_position(self.read);
        }
        Ok(n)
    }
}

impl<R> Tracked<R> {
    #[inline]
    fn advance(&mut self, n: usize) {
        let before = self.read;
        self.read += n as u64;
        if let Some((bar, multi)) = &self.bar {
            // A buffered reader advances once per packet: the bar moves
            // once per step of this many bytes, not per packet.
            const STEP: u64 = 1 << 20;
            if before / STEP == self.read / STEP {
                return;
            }
            if !self.shown && self.started.elapsed() >= SHOW_AFTER {
                multi.add(bar.clone());
                self.shown = true;
            }
            bar.set_position(self.read);
        }
    }
}

/// A buffered reader (a [`crate::file_reader::FileReader`]) moves the bar
/// as it is consumed.
impl<R: BufRead> BufRead for Tracked<R> {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    #[inline]
    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.advance(amt);
    }
}

impl<R> Drop for Tracked<R> {
    fn drop(&mut self) {
        if let Some((bar, multi)) = &self.bar {
            bar.finish_and_clear();
            if self.shown {
                multi.remove(bar);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_only_on_a_terminal_and_never_for_scripts() {
        assert!(wanted(true, false, false, false));
        assert!(!wanted(false, false, false, false));
        assert!(!wanted(true, true, false, false));
        assert!(!wanted(true, false, true, false));
        assert!(!wanted(true, false, false, true));
    }

    #[test]
    fn tracked_reads_pass_through() {
        for enabled in [false, true] {
            let p = Progress::new(enabled);
            let mut r = p.track("x", Some(5), &b"hello"[..]);
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            assert_eq!(s, "hello");
            assert_eq!(r.read, 5);
        }
    }
}
