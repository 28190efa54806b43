//! The rtnetlink wire format as typed views over bytes, with named field
//! offsets: the message header (`nlmsghdr`), its error payload
//! (`nlmsgerr`), attributes (`rtattr`), and the two family headers used
//! here (`ifinfomsg`, `tcmsg`). Netlink is host-endian; messages and
//! attributes start 4-aligned.

use std::ops::Range;

type Field = Range<usize>;

/// `struct nlmsghdr`.
mod header {
    use super::Field;
    pub const LENGTH: Field = 0..4;
    pub const TYPE: Field = 4..6;
    pub const FLAGS: Field = 6..8;
    pub const SEQ: Field = 8..12;
    pub const PID: Field = 12..16;
    pub const LEN: usize = 16;
}

/// `struct nlmsgerr`, the payload of `NLMSG_ERROR`: a negative errno, or
/// 0 for an acknowledgement.
mod error {
    use super::Field;
    pub const ERROR: Field = 0..4;
}

/// `struct rtattr`: a length that counts the header, then the type.
mod attr {
    use super::Field;
    pub const LENGTH: Field = 0..2;
    pub const TYPE: Field = 2..4;
    pub const LEN: usize = 4;
    /// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`, which some kernels set.
    pub const FLAG_BITS: u16 = 0xc000;
}

/// `struct ifinfomsg`.
pub(super) mod ifinfo {
    use super::Field;
    pub const INDEX: Field = 4..8;
    pub const LEN: usize = 16;
}

/// `struct tcmsg`.
pub(super) mod tc {
    use super::Field;
    pub const IFINDEX: Field = 4..8;
    pub const HANDLE: Field = 8..12;
    pub const PARENT: Field = 12..16;
    /// Priority in the high 16 bits, protocol in the low.
    pub const INFO: Field = 16..20;
    pub const LEN: usize = 20;
}

pub(super) const fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], f: Field) -> u16 {
    u16::from_ne_bytes([b[f.start], b[f.start + 1]])
}

pub(super) fn u32_at(b: &[u8], f: Field) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(f)?.try_into().ok()?))
}

fn put(b: &mut [u8], f: Field, v: &[u8]) {
    b[f].copy_from_slice(v);
}

/// A message the kernel sent, checked to fit its buffer.
pub(super) struct Message<'a> {
    buffer: &'a [u8],
}

/// A message whose length field does not fit what was received.
#[derive(Debug)]
pub(super) struct Malformed;

impl<'a> Message<'a> {
    /// The first message of `buf` and the (aligned) rest; `None` when
    /// `buf` holds no further message header.
    pub fn split(buf: &'a [u8]) -> Option<Result<(Message<'a>, &'a [u8]), Malformed>> {
        if buf.len() < header::LEN {
            return None;
        }
        let len = u32_at(buf, header::LENGTH)? as usize;
        if len < header::LEN || len > buf.len() {
            return Some(Err(Malformed));
        }
        let rest = &buf[align(len).min(buf.len())..];
        Some(Ok((
            Message {
                buffer: &buf[..len],
            },
            rest,
        )))
    }

    /// `nlmsg_type`.
    pub fn kind(&self) -> u16 {
        u16_at(self.buffer, header::TYPE)
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[header::LEN..]
    }

    /// The errno of an `NLMSG_ERROR` message (0: an acknowledgement).
    pub fn errno(&self) -> i32 {
        u32_at(self.payload(), error::ERROR).map_or(0, |e| (e as i32).wrapping_neg())
    }
}

/// A request to send: the header's fields; the kernel fills the pid.
pub(super) struct Request {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
}

impl Request {
    /// The whole message: header, then `body`.
    pub fn emit(&self, body: &[u8]) -> Vec<u8> {
        let mut msg = vec![0u8; header::LEN];
        put(
            &mut msg,
            header::LENGTH,
            &((header::LEN + body.len()) as u32).to_ne_bytes(),
        );
        put(&mut msg, header::TYPE, &self.kind.to_ne_bytes());
        put(&mut msg, header::FLAGS, &self.flags.to_ne_bytes());
        put(&mut msg, header::SEQ, &self.seq.to_ne_bytes());
        put(&mut msg, header::PID, &0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        msg
    }
}

/// The attributes in `b`, as (type without flag bits, payload); stops at
/// the first one that does not fit.
pub(super) fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < attr::LEN {
            return None;
        }
        let len = u16_at(b, attr::LENGTH) as usize;
        let ty = u16_at(b, attr::TYPE) & !attr::FLAG_BITS;
        if len < attr::LEN || len > b.len() {
            return None;
        }
        let value = &b[attr::LEN..len];
        b = &b[align(len).min(b.len())..];
        Some((ty, value))
    })
}

/// Appends attribute `ty` holding `value`, padded to alignment.
pub(super) fn push_attribute(out: &mut Vec<u8>, ty: u16, value: &[u8]) {
    let start = out.len();
    out.resize(start + align(attr::LEN + value.len()), 0);
    let a = &mut out[start..];
    put(
        a,
        attr::LENGTH,
        &((attr::LEN + value.len()) as u16).to_ne_bytes(),
    );
    put(a, attr::TYPE, &ty.to_ne_bytes());
    a[attr::LEN..attr::LEN + value.len()].copy_from_slice(value);
}

/// A NUL-terminated string attribute's text.
pub(super) fn string(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A `tcmsg` addressing `handle` under `parent` of `ifindex`.
pub(super) fn tcmsg(ifindex: u32, handle: u32, parent: u32) -> Vec<u8> {
    let mut b = vec![0u8; tc::LEN];
    put(&mut b, tc::IFINDEX, &ifindex.to_ne_bytes());
    put(&mut b, tc::HANDLE, &handle.to_ne_bytes());
    put(&mut b, tc::PARENT, &parent.to_ne_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_as_a_message() {
        let mut body = tcmsg(7, 0xffff_0000, 0xffff_fff1);
        push_attribute(&mut body, 1, b"clsact\0");
        assert_eq!(body.len(), 32, "tcmsg, then 4 + 7 bytes padded to 12");
        let msg = Request {
            kind: 37,
            flags: 5,
            seq: 1,
        }
        .emit(&body);
        let (m, rest) = Message::split(&msg).unwrap().unwrap();
        assert!(rest.is_empty());
        assert_eq!(m.kind(), 37);
        assert_eq!(u32_at(m.payload(), tc::IFINDEX), Some(7));
        let attrs: Vec<_> = attributes(&m.payload()[tc::LEN..]).collect();
        assert_eq!(attrs, vec![(1, &b"clsact\0"[..])]);
        assert_eq!(string(attrs[0].1), "clsact");
    }

    #[test]
    fn lengths_that_do_not_fit_are_refused() {
        let mut msg = Request {
            kind: 2,
            flags: 0,
            seq: 1,
        }
        .emit(&(-1i32).to_ne_bytes());
        let (m, _) = Message::split(&msg).unwrap().unwrap();
        assert_eq!(m.errno(), 1);
        msg[0] = 200;
        assert!(matches!(Message::split(&msg), Some(Err(Malformed))));
        assert!(Message::split(&msg[..8]).is_none());
        // An attribute longer than its buffer ends the walk.
        assert_eq!(attributes(&[8, 0, 1, 0, 0]).count(), 0);
        // Flag bits are not part of the type.
        assert_eq!(attributes(&[4, 0, 43, 0x80]).next(), Some((43, &[][..])));
    }
}
