//! The VM's address space. A pointer is a 64-bit virtual address whose top
//! bits name a region, so pointer arithmetic and comparisons in the program
//! behave as in the kernel, while every access is checked against the
//! region's real bounds and can never touch host memory outside it.
//!
//! ```text
//!  63      40 39    32 31                 0
//! +----------+--------+--------------------+
//! |  region  | index  |       offset       |
//! +----------+--------+--------------------+
//!  region: 1 context, 2 packet, 3 stack, 4 map value (index = map),
//!          7 kernel object (a tracepoint's socket buffer)
//!  map values: offset = entry * value_size + byte
//! ```

pub const REGION_SHIFT: u32 = 40;
pub const INDEX_SHIFT: u32 = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    Ctx,
    Packet,
    Stack,
    MapValue(u8),
    /// The kernel object a tracepoint's first argument points to: the
    /// synthetic `struct sk_buff` of a trace input.
    Kernel,
}

impl Region {
    pub fn base(self) -> u64 {
        match self {
            Region::Ctx => 1 << REGION_SHIFT,
            Region::Packet => 2 << REGION_SHIFT,
            Region::Stack => 3 << REGION_SHIFT,
            Region::MapValue(i) => (4 << REGION_SHIFT) | ((i as u64) << INDEX_SHIFT),
            Region::Kernel => 7 << REGION_SHIFT,
        }
    }

    /// Splits an address into its region and offset.
    pub fn of(addr: u64) -> Option<(Region, u64)> {
        let off = addr & 0xffff_ffff;
        let index = ((addr >> INDEX_SHIFT) & 0xff) as u8;
        let region = match addr >> REGION_SHIFT {
            1 if index == 0 => Region::Ctx,
            2 if index == 0 => Region::Packet,
            3 if index == 0 => Region::Stack,
            4 => Region::MapValue(index),
            7 if index == 0 => Region::Kernel,
            _ => return None,
        };
        Some((region, off))
    }
}

/// Reads `size` bytes (1, 2, 4 or 8) little-endian from `bytes[off..]`.
pub fn read_le(bytes: &[u8], off: u64, size: usize) -> Option<u64> {
    let start = usize::try_from(off).ok()?;
    let src = bytes.get(start..start.checked_add(size)?)?;
    // Fixed-size reads for the four access sizes: a copy of run-time length
    // would be a call to memcpy on every load.
    Some(match *src {
        [a] => a as u64,
        [a, b] => u16::from_le_bytes([a, b]) as u64,
        [a, b, c, d] => u32::from_le_bytes([a, b, c, d]) as u64,
        [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(src);
            u64::from_le_bytes(b)
        }
    })
}

/// Writes the low `size` bytes of `v` little-endian at `bytes[off..]`.
pub fn write_le(bytes: &mut [u8], off: u64, size: usize, v: u64) -> Option<()> {
    let start = usize::try_from(off).ok()?;
    let dst = bytes.get_mut(start..start.checked_add(size)?)?;
    dst.copy_from_slice(&v.to_le_bytes()[..size]);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_back_into_regions() {
        assert_eq!(
            Region::of(Region::Packet.base() + 14),
            Some((Region::Packet, 14))
        );
        assert_eq!(
            Region::of(Region::MapValue(3).base() + 8),
            Some((Region::MapValue(3), 8))
        );
        assert_eq!(Region::of(0), None);
        assert_eq!(Region::of(Region::Ctx.base() | (1 << 32)), None);
    }

    #[test]
    fn reads_and_writes_are_bounded() {
        let mut b = [1u8, 2, 3, 4];
        assert_eq!(read_le(&b, 0, 4), Some(0x0403_0201));
        assert_eq!(read_le(&b, 1, 4), None);
        assert_eq!(read_le(&b, u64::MAX, 1), None);
        assert_eq!(write_le(&mut b, 2, 2, 0xaabb), Some(()));
        assert_eq!(b, [1, 2, 0xbb, 0xaa]);
        assert_eq!(write_le(&mut b, 3, 2, 0), None);
    }
}
