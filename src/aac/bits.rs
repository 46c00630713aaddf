//! A most-significant-bit-first reader over bytes, for the bit-packed
//! structures of MPEG-4 Audio (ISO/IEC 14496-3) and RFC 3640 AU headers.
//! Every read is checked: running past the end is `None`, never a panic.

/// Reads bits from a byte slice, most significant first.
#[derive(Debug, Clone)]
pub(crate) struct Bits<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> Bits<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bits { data, pos: 0 }
    }

    /// Bits read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bits not read yet.
    pub fn left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// The next `n` (at most 32) bits as an unsigned number.
    pub fn read(&mut self, n: u32) -> Option<u32> {
        if n > 32 || self.left() < n as usize {
            return None;
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            let byte = self.data[self.pos / 8];
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | u64::from(bit);
            self.pos += 1;
        }
        Some(v as u32)
    }

    pub fn bool(&mut self) -> Option<bool> {
        self.read(1).map(|b| b == 1)
    }

    /// Skips `n` bits.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        if self.left() < n {
            return None;
        }
        self.pos += n;
        Some(())
    }

    /// Moves to the next byte boundary (no-op when on one).
    pub fn align(&mut self) {
        self.pos = self.pos.div_ceil(8) * 8;
    }

    /// Whether the position is on a byte boundary.
    pub fn aligned(&self) -> bool {
        self.pos % 8 == 0
    }

    /// The byte offset of an aligned position.
    pub fn byte_position(&self) -> usize {
        self.pos / 8
    }

    /// Bits `start..start + len` of the underlying data, left-aligned into
    /// bytes (the last byte padded with zeros): re-reads a structure that
    /// did not start on a byte boundary as a byte string.
    pub fn copy(&self, start: usize, len: usize) -> Option<Vec<u8>> {
        let mut r = Bits {
            data: self.data,
            pos: start,
        };
        let mut out = Vec::with_capacity(len.div_ceil(8));
        let mut left = len;
        while left > 0 {
            let n = left.min(8) as u32;
            let v = r.read(n)? as u8;
            out.push(v << (8 - n));
            left -= n as usize;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_bytes_and_stops_at_the_end() {
        let mut b = Bits::new(&[0b1010_1100, 0b0101_0011]);
        assert_eq!(b.read(3), Some(0b101));
        assert_eq!(b.read(7), Some(0b011_0001));
        assert!(!b.aligned());
        assert_eq!(b.left(), 6);
        assert_eq!(b.read(7), None, "past the end");
        assert_eq!(b.read(6), Some(0b01_0011));
        assert_eq!(b.read(0), Some(0));
        assert_eq!(b.bool(), None);
        let b = Bits::new(&[0b1010_1100, 0b0101_0011]);
        assert_eq!(b.copy(3, 10), Some(vec![0b0110_0010, 0b1000_0000]));
        assert_eq!(b.copy(10, 7), None);
        let mut b = Bits::new(&[0xff; 5]);
        assert_eq!(b.read(33), None);
        assert_eq!(b.read(32), Some(u32::MAX));
        b.align();
        assert_eq!(b.byte_position(), 4);
    }
}
