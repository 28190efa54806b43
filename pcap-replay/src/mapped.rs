//! A regular file read through a read-only mapping that slides along it.
//!
//! Reading a large capture with `read()` spends most of its time in the
//! kernel copying page-cache pages into the buffer. Mapping the file lets
//! the readers lend packets straight from the page cache instead. Only a
//! window of the file is mapped at a time and the one behind the cursor is
//! unmapped when the next is mapped, so memory stays flat however large
//! the file is. Each window ends at least [`KEEP_AHEAD`] bytes past the
//! cursor (or at the end of the file), more than any record, so a record
//! is never split by a window's edge.
//!
//! The file's length is taken when it is opened: bytes appended later are
//! not read, and a file cut shorter while it is read would fault (SIGBUS)
//! on the missing pages, as any mapping does. Standard input and pipes
//! cannot be mapped and keep the `read()` path.
//!
//! This is the one piece of capture reading with `unsafe` (the mapping),
//! so it lives in the application and feeds `capfile`'s readers, which
//! are safe, as any other `BufRead` does.

mod prefetch;

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use prefetch::Prefetcher;

/// Bytes mapped at a time: large enough that mapping costs nothing per
/// packet, small enough that the mapped pages (counted in the resident
/// set while mapped) stay far below the 100 MB the large-file test allows.
const WINDOW: usize = 16 << 20;

/// A window is slid once fewer bytes than this remain ahead of the
/// cursor: more than the largest record (a 16-byte header and
/// `MAX_CAPLEN` bytes) and than any pcapng block the readers keep whole,
/// short of `MAX_BLOCK_LEN` ones, which they copy in pieces anyway.
const KEEP_AHEAD: usize = 1 << 20;

/// A regular file as a `BufRead` whose buffer is the mapped window.
pub struct Mapped {
    file: File,
    /// The file's length when it was opened.
    len: u64,
    map: Option<Window>,
    /// Offset in the file of the next byte to hand out.
    pos: u64,
    prefetch: Prefetcher,
}

struct Window {
    ptr: NonNull<libc::c_void>,
    len: usize,
    /// Offset in the file of the window's first byte (page-aligned).
    at: u64,
}

impl Window {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live PROT_READ mapping of `len` bytes, unmapped
        // only when the window is dropped, which the borrow of `self`
        // prevents while the slice lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }

    fn end(&self) -> u64 {
        self.at + self.len as u64
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this window made; no slice of
        // it outlives `self` (see `bytes`).
        unsafe {
            libc::munmap(self.ptr.as_ptr(), self.len);
        }
    }
}

impl Mapped {
    /// `Err` gives `file` back when it is not a regular file (a pipe, a
    /// terminal, a device) or cannot be examined: it is then read with
    /// `read()`.
    pub fn new(file: File) -> Result<Mapped, File> {
        match file.metadata() {
            Ok(meta) if meta.is_file() => Ok(Mapped {
                file,
                len: meta.len(),
                map: None,
                pos: 0,
                prefetch: Prefetcher::default(),
            }),
            _ => Err(file),
        }
    }

    /// The file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maps the window that starts at the page holding `pos`, after
    /// unmapping the current one.
    fn slide(&mut self) -> io::Result<()> {
        self.map = None;
        let page = page_size();
        let at = self.pos - self.pos % page;
        let len = usize::try_from((self.len - at).min(WINDOW as u64)).unwrap_or(WINDOW);
        let offset = libc::off_t::try_from(at)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset out of range"))?;
        // SAFETY: a fresh read-only private mapping of a range inside the
        // file; nothing else aliases it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                self.file.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr).ok_or_else(|| io::Error::other("mmap returned null"))?;
        // Read-ahead hint only: failing to give it costs speed, not data.
        // SAFETY: advises on the mapping just made.
        unsafe {
            libc::madvise(ptr.as_ptr(), len, libc::MADV_SEQUENTIAL);
        }
        self.map = Some(Window { ptr, len, at });
        Ok(())
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

impl BufRead for Mapped {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        // The window serves while it keeps KEEP_AHEAD bytes past the cursor
        // or reaches the end of the file.
        let serves = match &self.map {
            Some(w) => {
                self.pos >= w.at && (self.pos + KEEP_AHEAD as u64 <= w.end() || w.end() >= self.len)
            }
            None => false,
        };
        if !serves {
            if self.pos >= self.len {
                return Ok(&[]);
            }
            self.slide()?;
        }
        let pos = self.pos;
        let avail = match &self.map {
            Some(w) => usize::try_from(pos - w.at)
                .ok()
                .and_then(|from| w.bytes().get(from..))
                .unwrap_or(&[]),
            None => &[],
        };
        // The readers lend records from here: keep the lines ahead coming.
        if !avail.is_empty() {
            self.prefetch.ahead(avail);
        }
        Ok(avail)
    }

    #[inline]
    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt as u64).min(self.len);
    }
}

impl Read for Mapped {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_file(bytes: &[u8]) -> File {
        let path = std::env::temp_dir().join(format!(
            "pcap-replay-mapped-{}-{}",
            std::process::id(),
            bytes.len()
        ));
        let mut f = File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        let f = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn reads_across_window_edges_like_read() {
        // Three and a bit windows of a pattern that shows any misplaced byte.
        let bytes: Vec<u8> = (0..WINDOW * 3 + 12_345).map(|i| (i % 251) as u8).collect();
        let mut m = Mapped::new(temp_file(&bytes)).ok().unwrap();
        assert_eq!(m.len(), bytes.len() as u64);
        let mut got = Vec::new();
        let mut pos = 0usize;
        while let Ok(avail) = m.fill_buf() {
            if avail.is_empty() {
                break;
            }
            // Away from the file's end, a window always keeps KEEP_AHEAD.
            if bytes.len() - pos >= KEEP_AHEAD {
                assert!(avail.len() >= KEEP_AHEAD, "at {pos}: {}", avail.len());
            }
            // Odd step sizes so that the cursor lands off page boundaries.
            let n = avail.len().min(100_003);
            got.extend_from_slice(&avail[..n]);
            m.consume(n);
            pos += n;
        }
        assert!(got == bytes, "mapped bytes differ from the file");
    }

    #[test]
    fn empty_file_reads_nothing() {
        let mut m = Mapped::new(temp_file(b"")).ok().unwrap();
        assert!(m.is_empty());
        assert_eq!(m.fill_buf().unwrap(), b"");
        let mut s = Vec::new();
        m.read_to_end(&mut s).unwrap();
        assert!(s.is_empty());
    }
}
