//! Reading ahead on a thread of its own: the kernel's copy of the next
//! chunk runs on another core while the replay works through this one.
//!
//! Three buffers go round: one lent to the replay, one waiting filled, one
//! being filled. The thread stops at the end of the file, after the first
//! short or failed read (the last chunk it sends says why), or when the
//! reader is dropped (its channels close).

use std::fs::File;
use std::io;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use super::{read_chunk, Chunk};

/// Buffers besides the one the reader holds.
const IN_FLIGHT: usize = 2;

pub struct ReadAhead {
    /// Makes a buffer: the thread's, and one to go on with if it failed.
    buffer: fn() -> Vec<u8>,
    filled: Option<Receiver<Chunk>>,
    empty: Option<Sender<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts reading `file` (`len` bytes long when opened) into buffers
    /// made by `buffer`. Gives the file back when no thread can start.
    pub fn spawn(
        file: File,
        len: u64,
        buffer: fn() -> Vec<u8>,
    ) -> Result<ReadAhead, (File, io::Error)> {
        let (filled_tx, filled_rx) = mpsc::sync_channel(IN_FLIGHT - 1);
        let (empty_tx, empty_rx) = mpsc::channel();
        for _ in 0..IN_FLIGHT {
            // Cannot fail: the receiver is alive.
            let _ = empty_tx.send(buffer());
        }
        // The thread reads through a descriptor of its own, so that this
        // one can be given back if it cannot start.
        let theirs = match file.try_clone() {
            Ok(f) => f,
            Err(e) => return Err((file, e)),
        };
        let thread = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || fill(&theirs, len, &filled_tx, &empty_rx));
        match thread {
            Ok(thread) => Ok(ReadAhead {
                buffer,
                filled: Some(filled_rx),
                empty: Some(empty_tx),
                thread: Some(thread),
            }),
            Err(e) => Err((file, e)),
        }
    }

    /// The next chunk, waiting for it if need be.
    pub fn next(&mut self) -> Chunk {
        match self.filled.as_ref().map(Receiver::recv) {
            Some(Ok(chunk)) => chunk,
            // The thread ended without a last chunk: it panicked.
            _ => Chunk {
                buf: (self.buffer)(),
                len: 0,
                last: Some(Err(io::Error::other("the read-ahead thread failed"))),
            },
        }
    }

    /// Hands a buffer the reader is done with back to the thread.
    pub fn give_back(&mut self, buf: Vec<u8>) {
        if let Some(empty) = &self.empty {
            // Once the thread has stopped, the buffer is simply freed.
            let _ = empty.send(buf);
        }
    }
}

/// The thread: reads chunk after chunk into the buffers it is given.
fn fill(file: &File, len: u64, filled: &SyncSender<Chunk>, empty: &Receiver<Vec<u8>>) {
    let mut at = 0;
    while let Ok(buf) = empty.recv() {
        let chunk = read_chunk(file, at, len, buf);
        at += chunk.len as u64;
        let last = chunk.last.is_some();
        if filled.send(chunk).is_err() || last {
            return;
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Closing both channels wakes the thread wherever it waits; a read
        // under way finishes first.
        self.filled = None;
        self.empty = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
