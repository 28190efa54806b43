//! A regular file read with `pread` into one reusable buffer, lent to
//! capfile's readers as any other `BufRead` is.
//!
//! Why not a memory map (what this replaced): a file cut shorter while it
//! is mapped raises SIGBUS on the first touch of a page past its new end,
//! which kills the process, and the page holding the new end reads as
//! zeros past it without any fault, so no check of the mapped bytes could
//! tell a cut record from a real one. A `read` returns bytes the file held
//! at that moment or comes up short, so a file that shrinks becomes an
//! error at the byte where its data stops, every packet before it replayed.
//!
//! Records are still lent in place, never copied one by one: the buffer
//! keeps at least [`KEEP`] bytes ahead of the cursor (or the rest of the
//! file), so an ordinary record never straddles its edge. When fewer
//! remain, that tail moves to the room in front of the chunk and the next
//! chunk is read behind it. A larger record at the edge is copied by
//! capfile, at most once per chunk.
//!
//! The copy a `read` makes costs the replay about a fifth of its time on
//! small packets. When a core would otherwise sit idle, a read-ahead
//! thread makes it instead ([`ahead`]), overlapped with the replay.
//!
//! The file's length is taken when it is opened: bytes appended later are
//! not read. Standard input and pipes keep a plain `BufReader`.

mod ahead;
mod prefetch;

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use ahead::ReadAhead;
use prefetch::Prefetcher;

/// Bytes read at a time: 1 MiB measured no slower than 256 KiB or 4 MiB
/// (docs/PERFORMANCE.md), and keeps the system calls to one per MiB.
const CHUNK: usize = 1 << 20;

/// The next chunk is read once fewer bytes than this remain ahead of the
/// cursor: more than any ordinary frame (64 KiB GSO and jumbo frames
/// included) with its record header. It is also the room in front of each
/// chunk that such a tail moves to, so the tail is never more than a small
/// copy.
const KEEP: usize = (64 << 10) + 64;

/// Files up to this many chunks are read without a thread: starting one
/// costs more than it saves there.
const AHEAD_MIN_CHUNKS: u64 = 8;

/// A regular file as a `BufRead`.
pub struct FileReader {
    /// The file's length when it was opened.
    len: u64,
    /// `KEEP` bytes of room, then a chunk; the unread bytes are
    /// `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    supply: Supply,
    prefetch: Prefetcher,
}

/// Where the next chunk comes from.
enum Supply {
    /// Read here, at this offset.
    Inline { file: File, next: u64 },
    /// Read by a thread of its own.
    Ahead(ReadAhead),
    /// No more chunks: `Ok` at the end of the file as opened, else the
    /// error that ended it early, given once the bytes before it are
    /// consumed.
    Ended(io::Result<()>),
}

/// A chunk as read: `len` bytes at `buf[KEEP..]`. `last` is set when no
/// chunk follows it, with what [`Supply::Ended`] holds.
struct Chunk {
    buf: Vec<u8>,
    len: usize,
    last: Option<io::Result<()>>,
}

impl FileReader {
    /// `Err` gives `file` back when it is not a regular file (a pipe, a
    /// terminal, a device) or cannot be examined: it is then read through
    /// a `BufReader`. With `spare_core` (a core would otherwise sit idle
    /// beside this replay), a large file is read ahead on a thread, which
    /// takes the kernel's copy off the replay's core.
    pub fn new(file: File, spare_core: bool) -> Result<FileReader, File> {
        let len = match file.metadata() {
            Ok(meta) if meta.is_file() => meta.len(),
            _ => return Err(file),
        };
        // A hint that a cold file is read once, front to back, so that the
        // kernel reads ahead from disk in larger steps. Failing to give it
        // costs speed, not data.
        // SAFETY: posix_fadvise only reads its arguments; a bad one is an
        // error code.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
        }
        let (supply, buf) = if len == 0 {
            (Supply::Ended(Ok(())), vec![0; KEEP])
        } else if spare_core && len > AHEAD_MIN_CHUNKS * CHUNK as u64 {
            match ReadAhead::spawn(file, len, chunk_buffer) {
                Ok(ahead) => (Supply::Ahead(ahead), chunk_buffer()),
                Err((file, e)) => {
                    tracing::debug!("no read-ahead thread ({e}): reading on this one");
                    (Supply::Inline { file, next: 0 }, chunk_buffer())
                }
            }
        } else {
            // A small file gets a buffer its size.
            let chunk = usize::try_from(len).map_or(CHUNK, |n| n.min(CHUNK));
            (Supply::Inline { file, next: 0 }, vec![0; KEEP + chunk])
        };
        Ok(FileReader {
            len,
            buf,
            start: KEEP,
            end: KEEP,
            supply,
            prefetch: Prefetcher::default(),
        })
    }

    /// The file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Brings in the next chunk behind the unread tail (under `KEEP`
    /// bytes), or records why there is none. Called once per chunk, so
    /// kept out of the per-record path.
    #[cold]
    #[inline(never)]
    fn refill(&mut self) {
        let tail = self.end - self.start;
        let chunk = match &mut self.supply {
            Supply::Ended(_) => return,
            Supply::Inline { file, next } => {
                // The tail moves within the buffer, in front of the chunk.
                self.buf.copy_within(self.start..self.end, KEEP - tail);
                let chunk = read_chunk(file, *next, self.len, std::mem::take(&mut self.buf));
                *next += chunk.len as u64;
                chunk
            }
            Supply::Ahead(ahead) => {
                let mut chunk = ahead.next();
                chunk.buf[KEEP - tail..KEEP].copy_from_slice(&self.buf[self.start..self.end]);
                ahead.give_back(std::mem::take(&mut self.buf));
                chunk
            }
        };
        self.buf = chunk.buf;
        self.start = KEEP - tail;
        self.end = KEEP + chunk.len;
        if let Some(last) = chunk.last {
            // Ends the thread, if any, which has stopped reading.
            self.supply = Supply::Ended(last);
        }
    }
}

/// A buffer for a whole chunk and the room in front of it.
fn chunk_buffer() -> Vec<u8> {
    vec![0; KEEP + CHUNK]
}

/// Reads the file's chunk at `at` into `buf[KEEP..]`, as much as fits. A
/// read that comes up short of `len` (the file's length when opened) ends
/// the file with the error that says so; a failed one with its error.
fn read_chunk(file: &File, at: u64, len: u64, mut buf: Vec<u8>) -> Chunk {
    let room = buf.len() - KEEP;
    let want = usize::try_from(len.saturating_sub(at)).map_or(room, |n| n.min(room));
    let mut got = 0;
    let mut last = None;
    while got < want {
        match file.read_at(&mut buf[KEEP + got..KEEP + want], at + got as u64) {
            Ok(0) => {
                last = Some(Err(shrank(file, len)));
                break;
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                last = Some(Err(e));
                break;
            }
        }
    }
    if last.is_none() && at + got as u64 >= len {
        last = Some(Ok(()));
    }
    Chunk {
        buf,
        len: got,
        last,
    }
}

/// The error for a file whose data stopped short of the `len` bytes it had
/// when opened (capfile adds the name and the offset where it stopped).
fn shrank(file: &File, len: u64) -> io::Error {
    let now = match file.metadata() {
        Ok(m) => format!("{} now", m.len()),
        Err(_) => "fewer now".to_string(),
    };
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the file shrank while it was read: {len} bytes when opened, {now}"),
    )
}

impl BufRead for FileReader {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.end - self.start < KEEP && !matches!(self.supply, Supply::Ended(_)) {
            self.refill();
        }
        if self.start == self.end && matches!(self.supply, Supply::Ended(Err(_))) {
            if let Supply::Ended(Err(e)) =
                std::mem::replace(&mut self.supply, Supply::Ended(Ok(())))
            {
                return Err(e);
            }
        }
        let avail = &self.buf[self.start..self.end];
        // The readers lend records from here: keep the lines ahead coming.
        if !avail.is_empty() {
            self.prefetch.ahead(avail);
        }
        Ok(avail)
    }

    #[inline]
    fn consume(&mut self, amt: usize) {
        self.start += amt.min(self.end - self.start);
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
