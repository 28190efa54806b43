//! Why a capture could not be read, and where.

use std::fmt;
use std::io;

/// A capture that could not be read: what went wrong, in which file, and
/// at which byte offset (from the start of the file) the bad field starts.
#[derive(Debug, thiserror::Error)]
#[error("{file}: byte {offset}: {kind}")]
pub struct CaptureError {
    pub file: String,
    pub offset: u64,
    #[source]
    pub kind: ErrorKind,
}

/// Which rule of the format the bytes broke.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("empty file (no capture header)")]
    Empty,
    #[error("unknown file magic {0:#010x} (neither pcap nor pcapng)")]
    BadMagic(u32),
    #[error("truncated {what}: need {need} bytes, file ends after {got}")]
    Truncated { what: Part, need: u64, got: u64 },
    #[error("unsupported {format} version {major}.{minor}")]
    UnsupportedVersion {
        format: &'static str,
        major: u16,
        minor: u16,
    },
    #[error("captured length {caplen} is over the {limit}-byte limit")]
    CaplenTooLarge { caplen: u32, limit: u32 },
    #[error("captured length {caplen} is over the snap length {snaplen}")]
    CaplenOverSnaplen { caplen: u32, snaplen: u32 },
    #[error("unknown link type {0} (libpcap has no name for it; -y LINKTYPE overrides it)")]
    UnknownLinkType(u16),
    #[error("pcapng section's byte order differs from the first section's (libpcap refuses this)")]
    SectionByteOrderChanged,
    #[error("pcapng file has no interface description block")]
    NoInterfaces,
    /// libpcap 1.10 compares a later interface's LINKTYPE with the DLT it
    /// mapped the first interface's to, so for the few link types whose two
    /// numbers differ (LINKTYPE_RAW 101 is DLT_RAW 12) even a second
    /// interface of the same type ends the file.
    #[error("an interface has link type {this}, which libpcap takes as different from the first interface's (DLT {first_dlt}; libpcap reads one link type per file)")]
    InterfaceLinkTypeDiffers { first_dlt: i32, this: u16 },
    #[error("an interface has snap length {this}, different from the first interface's {first} (libpcap reads one snap length per file)")]
    InterfaceSnaplenDiffers { first: u32, this: u32 },
    #[error("pcapng interface option {code}: {why}")]
    BadInterfaceOption { code: u16, why: &'static str },
    #[error("unknown pcapng byte-order magic {0:#010x}")]
    BadByteOrderMagic(u32),
    #[error("pcapng block length {0} is not a multiple of 4 in 12..={max}", max = super::pcapng::MAX_BLOCK_LEN)]
    BadBlockLength(u32),
    #[error("pcapng block total length in header {header} and trailer {trailer} don't match")]
    BlockLengthMismatch { header: u32, trailer: u32 },
    #[error("pcapng {block} block is too short: {len} bytes of body, needs {need}")]
    BlockTooShort {
        block: &'static str,
        len: usize,
        need: usize,
    },
    #[error(
        "pcapng {block} block: captured length {caplen} runs past the block's {room} data bytes"
    )]
    CaplenPastBlock {
        block: &'static str,
        caplen: u32,
        room: usize,
    },
    #[error("pcapng option {code} of length {len} runs past the end of its block")]
    OptionPastBlock { code: u16, len: u16 },
    #[error("pcapng packet names interface {id}, but the section has {count} interfaces")]
    UnknownInterface { id: u32, count: usize },
    #[error("pcapng if_tsresol {0:#04x} is finer than 2^-63 or 10^-19 s")]
    BadTsResol(u8),
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

/// The part of a capture a truncation cut through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    FileHeader,
    RecordHeader,
    PacketData,
    BlockHeader,
    BlockBody,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::FileHeader => "file header",
            Part::RecordHeader => "record header",
            Part::PacketData => "packet data",
            Part::BlockHeader => "pcapng block header",
            Part::BlockBody => "pcapng block",
        })
    }
}
