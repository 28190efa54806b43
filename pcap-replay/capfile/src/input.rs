//! A buffered reader that counts the bytes it has given out, so errors
//! carry offsets. Over any `BufRead`: a `BufReader` for streams, a sliding
//! file mapping for regular files. A record that lies whole in the buffer
//! is lent out in place ([`Input::available`], [`Input::buffered`]); one
//! that straddles the buffer's end is copied into the packet's own buffer:
//! no zero-fill, no per-record allocation once that buffer has grown.

use std::io::{self, BufRead};

use super::{CaptureError, ErrorKind};

/// Most bytes reserved for one record before any of it is read: every
/// ordinary packet fits, and a corrupt length cannot claim more.
const PREALLOC: usize = 1 << 16;

/// Read size for streams: large reads keep the system-call count low on
/// big files, and 64 KiB stays in the cache (256 KiB measured slower).
pub(crate) const BUFFER: usize = 1 << 16;

pub(crate) struct Input<R> {
    name: String,
    inner: R,
    offset: u64,
}

impl<R: BufRead> Input<R> {
    pub fn new(name: String, inner: R) -> Input<R> {
        Input {
            name,
            inner,
            offset: 0,
        }
    }

    /// The first `N` buffered bytes and how many the buffer holds from the
    /// cursor on (refilling it when empty), without consuming them; `None`
    /// when fewer than `N` are buffered (near the buffer's end or the
    /// input's: the caller then reads the slow way, which tells them apart).
    #[inline]
    pub fn peek<const N: usize>(&mut self) -> Result<Option<([u8; N], usize)>, CaptureError> {
        let avail = self.available()?;
        Ok(avail.first_chunk::<N>().map(|head| (*head, avail.len())))
    }

    /// The buffered bytes from the cursor on (refilling the buffer when
    /// empty; empty only at the end of the input), without consuming them.
    #[inline]
    pub fn available(&mut self) -> Result<&[u8], CaptureError> {
        loop {
            match self.inner.fill_buf() {
                // A slice cannot leave a loop that may call again (the
                // borrow checker's limit), so it is asked for once more
                // below, now without I/O.
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(CaptureError {
                        file: self.name.clone(),
                        offset: self.offset,
                        kind: ErrorKind::Io(e),
                    })
                }
            }
        }
        let Input {
            name,
            inner,
            offset,
        } = self;
        inner.fill_buf().map_err(|e| CaptureError {
            file: name.clone(),
            offset: *offset,
            kind: ErrorKind::Io(e),
        })
    }

    /// Bytes `range` of the buffer, from the cursor, which
    /// [`Input::peek`] must have counted since the last consume.
    #[inline]
    pub fn buffered(&mut self, range: std::ops::Range<usize>) -> Result<&[u8], CaptureError> {
        // `fill_buf` on a non-empty buffer returns it without I/O; a reader
        // that broke that promise gets an error, not stale bytes.
        let Input {
            name,
            inner,
            offset,
        } = self;
        match inner.fill_buf().map(|b| b.get(range)) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err(CaptureError {
                file: name.clone(),
                offset: *offset,
                kind: ErrorKind::Io(io::Error::other("the read buffer shrank")),
            }),
            Err(e) => Err(CaptureError {
                file: name.clone(),
                offset: *offset,
                kind: ErrorKind::Io(e),
            }),
        }
    }

    /// Moves the cursor past `n` buffered bytes (at most what
    /// [`Input::peek`] counted).
    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        self.offset += n as u64;
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes consumed so far: the offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn error_at(&self, offset: u64, kind: ErrorKind) -> CaptureError {
        CaptureError {
            file: self.name.clone(),
            offset,
            kind,
        }
    }

    /// Hands up to `want` buffered bytes (refilling the buffer when empty)
    /// to `sink` and consumes them; returns how many. 0 only at the end of
    /// the input.
    fn pass(&mut self, want: usize, sink: &mut impl FnMut(&[u8])) -> Result<usize, CaptureError> {
        let n = loop {
            match self.inner.fill_buf() {
                Ok(avail) => {
                    let n = avail.len().min(want);
                    sink(&avail[..n]);
                    break n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(CaptureError {
                        file: self.name.clone(),
                        offset: self.offset,
                        kind: ErrorKind::Io(e),
                    })
                }
            }
        };
        self.inner.consume(n);
        self.offset += n as u64;
        Ok(n)
    }

    /// Fills `buf` as far as the input allows. Returns how many bytes were
    /// read: fewer than `buf.len()` only at the end of the input, which
    /// callers turn into a clean end (0) or a truncation error.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<usize, CaptureError> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.pass(buf.len() - done, &mut |b| {
                buf[done..done + b.len()].copy_from_slice(b)
            })?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    /// Discards up to `len` bytes without keeping them; returns how many.
    pub fn skip(&mut self, len: u64) -> Result<u64, CaptureError> {
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(BUFFER as u64) as usize;
            let n = self.pass(want, &mut |_| {})?;
            if n == 0 {
                break;
            }
            done += n as u64;
        }
        Ok(done)
    }

    /// Reads exactly `len` bytes into `buf` (replacing what it held),
    /// reusing its allocation: what a reader that yields many packets into
    /// one buffer needs. On a short input `buf` holds the bytes read and
    /// their count is returned. `len` came from the file, so at most
    /// [`PREALLOC`] bytes are reserved before the bytes arrive.
    pub fn take_into(
        &mut self,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Result<Result<(), usize>, CaptureError> {
        buf.clear();
        buf.reserve(len.min(PREALLOC));
        while buf.len() < len {
            let n = self.pass(len - buf.len(), &mut |b| buf.extend_from_slice(b))?;
            if n == 0 {
                return Ok(Err(buf.len()));
            }
        }
        Ok(Ok(()))
    }

    /// Reads exactly `len` bytes into a fresh buffer; the count actually
    /// read on a short input.
    pub fn take(&mut self, len: usize) -> Result<Result<Vec<u8>, usize>, CaptureError> {
        let mut buf = Vec::new();
        Ok(self.take_into(len, &mut buf)?.map(|()| buf))
    }
}
