//! A `Read` that counts the bytes it has given out, so errors carry offsets.

use std::io::{self, Read};

use super::{CaptureError, ErrorKind};

pub(crate) struct Input<R> {
    name: String,
    inner: R,
    offset: u64,
}

impl<R: Read> Input<R> {
    pub fn new(name: String, inner: R) -> Input<R> {
        Input {
            name,
            inner,
            offset: 0,
        }
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

    /// Fills `buf` as far as the input allows. Returns how many bytes were
    /// read: fewer than `buf.len()` only at the end of the input, which
    /// callers turn into a clean end (0) or a truncation error.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<usize, CaptureError> {
        let mut done = 0;
        while done < buf.len() {
            match self.inner.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => {
                    done += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error_at(self.offset, ErrorKind::Io(e))),
            }
        }
        Ok(done)
    }

    /// Discards up to `len` bytes without buffering them; returns how many.
    pub fn skip(&mut self, len: u64) -> Result<u64, CaptureError> {
        let mut scratch = [0u8; 8192];
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(scratch.len() as u64) as usize;
            let n = self.fill(&mut scratch[..want])?;
            done += n as u64;
            if n < want {
                break;
            }
        }
        Ok(done)
    }

    /// Reads exactly `len` bytes into a fresh buffer; the count actually
    /// read on a short input. Grows the buffer as bytes arrive rather than
    /// trusting `len`, which came from the file.
    pub fn take(&mut self, len: usize) -> Result<Result<Vec<u8>, usize>, CaptureError> {
        let mut buf = Vec::new();
        let start = self.offset;
        let n = (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut buf)
            .map_err(|e| self.error_at(start, ErrorKind::Io(e)))?;
        self.offset += n as u64;
        Ok(if n == len { Ok(buf) } else { Err(n) })
    }
}
