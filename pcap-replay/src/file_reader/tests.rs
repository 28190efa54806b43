use super::*;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

/// A file of `bytes` in a fresh path, removed on drop.
struct Temp(PathBuf);

impl Temp {
    fn new(tag: &str, bytes: &[u8]) -> Temp {
        let path = std::env::temp_dir().join(format!(
            "pcap-replay-file-reader-{tag}-{}",
            std::process::id()
        ));
        File::create(&path).unwrap().write_all(bytes).unwrap();
        Temp(path)
    }

    /// Read on this thread.
    fn open(&self) -> FileReader {
        self.open_with(false)
    }

    /// Read ahead on a thread too, when the file is large enough.
    fn open_with(&self, spare_core: bool) -> FileReader {
        FileReader::new(File::open(&self.0).unwrap(), spare_core)
            .ok()
            .unwrap()
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A pattern that shows any misplaced byte.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Reads everything in odd steps; the bytes, and the error that ended it.
fn drain(r: &mut FileReader) -> (Vec<u8>, Option<io::Error>) {
    let mut got = Vec::new();
    loop {
        match r.fill_buf() {
            Ok([]) => return (got, None),
            Ok(avail) => {
                // Odd steps, so that the cursor lands anywhere in a chunk.
                let n = avail.len().min(100_003);
                got.extend_from_slice(&avail[..n]);
                r.consume(n);
            }
            Err(e) => return (got, Some(e)),
        }
    }
}

#[test]
fn reads_across_chunk_edges_like_read() {
    // Large enough to be read ahead on a thread when a core is spare.
    let bytes = pattern(CHUNK * (AHEAD_MIN_CHUNKS as usize + 2) + 12_345);
    let t = Temp::new("edges", &bytes);
    for spare_core in [false, true] {
        let mut r = t.open_with(spare_core);
        assert_eq!(
            matches!(r.supply, Supply::Ahead(_)),
            spare_core,
            "read ahead"
        );
        reads_like_read(&mut r, &bytes);
    }
}

fn reads_like_read(r: &mut FileReader, bytes: &[u8]) {
    assert_eq!(r.len(), bytes.len() as u64);
    let mut got = Vec::new();
    loop {
        let avail = r.fill_buf().unwrap();
        if avail.is_empty() {
            break;
        }
        // Away from the file's end, the buffer always keeps KEEP ahead.
        if bytes.len() - got.len() >= KEEP {
            assert!(avail.len() >= KEEP, "at {}: {}", got.len(), avail.len());
        }
        let n = avail.len().min(100_003);
        got.extend_from_slice(&avail[..n]);
        r.consume(n);
    }
    assert!(got == bytes, "bytes differ from the file");
}

#[test]
fn empty_and_small_files() {
    let t = Temp::new("empty", b"");
    let mut r = t.open();
    assert!(r.is_empty());
    assert_eq!(r.fill_buf().unwrap(), b"");
    let t = Temp::new("small", b"0123456789");
    let mut r = t.open();
    let mut s = Vec::new();
    r.read_to_end(&mut s).unwrap();
    assert_eq!(s, b"0123456789");
}

#[test]
fn a_file_that_shrinks_is_an_error_after_the_bytes_it_still_had() {
    let bytes = pattern(CHUNK * 4);
    let t = Temp::new("shrinks", &bytes);
    let mut r = t.open();
    // The first chunk is read, then the file is cut in the third.
    let first = r.fill_buf().unwrap().len();
    assert!(first >= KEEP);
    let cut = CHUNK * 2 + 777;
    shrinks_to(&t, cut);
    let (got, err) = drain(&mut r);
    assert!(
        got[..] == bytes[..cut],
        "{} bytes, not the {cut} before the cut",
        got.len()
    );
    shrank_from(err, bytes.len(), cut);
    // Given once: then the reader is at its end.
    assert_eq!(r.fill_buf().unwrap(), b"");
}

/// Read ahead, the bytes are those the file held when the thread read
/// them: a prefix of the file as it was, at least up to the cut.
#[test]
fn a_file_that_shrinks_while_read_ahead_is_an_error_too() {
    let bytes = pattern(CHUNK * (AHEAD_MIN_CHUNKS as usize + 4));
    let t = Temp::new("shrinks-ahead", &bytes);
    let mut r = t.open_with(true);
    assert!(r.fill_buf().unwrap().len() >= KEEP);
    // Past what the thread can hold before it waits for a buffer back.
    let cut = CHUNK * 5 + 777;
    shrinks_to(&t, cut);
    let (got, err) = drain(&mut r);
    assert!(
        got.len() >= cut && got[..] == bytes[..got.len()],
        "{}",
        got.len()
    );
    shrank_from(err, bytes.len(), cut);
    assert_eq!(r.fill_buf().unwrap(), b"");
}

fn shrinks_to(t: &Temp, len: usize) {
    OpenOptions::new()
        .write(true)
        .open(&t.0)
        .unwrap()
        .set_len(len as u64)
        .unwrap();
}

/// `err` says the file shrank from `len` bytes to `now`.
fn shrank_from(err: Option<io::Error>, len: usize, now: usize) {
    let err = err.expect("an error, not a clean end");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    let text = err.to_string();
    assert!(
        text.contains("shrank") && text.contains(&format!("{len} bytes when opened")),
        "{text}"
    );
    assert!(text.contains(&format!("{now} now")), "{text}");
}

#[test]
fn bytes_appended_after_opening_are_not_read() {
    let t = Temp::new("grows", b"abc");
    let mut r = t.open();
    OpenOptions::new()
        .append(true)
        .open(&t.0)
        .unwrap()
        .write_all(b"def")
        .unwrap();
    let (got, err) = drain(&mut r);
    assert_eq!(got, b"abc");
    assert!(err.is_none());
}

#[test]
fn pipes_are_given_back() {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array it is given.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are fresh and owned here.
    let (rd, _wr) = unsafe {
        use std::os::fd::FromRawFd;
        (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1]))
    };
    assert!(FileReader::new(rd, true).is_err());
}
