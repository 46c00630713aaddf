//! Facts about a video stream read from its SPS with h264-reader, for
//! status pages and `probe`; and the one reader of SDP `a=fmtp` parameter
//! lists, which every codec's description uses.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::BitReader;

/// The value of `key` in an `a=fmtp` parameter list (`a=b; c=d`, without
/// the payload type): keys compared without case (RFC 3640 4.1, RFC 7798
/// 7.1), key and value trimmed.
pub fn fmtp_param<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// What the SPS says about the picture.
#[derive(Clone, Debug, PartialEq)]
pub struct SpsInfo {
    /// Width in pixels (after cropping).
    pub width: u32,
    /// Height in pixels (after cropping).
    pub height: u32,
    /// Profile name, e.g. `Main`.
    pub profile: String,
    /// Level, e.g. `3.0`.
    pub level: String,
    /// Frame rate from the VUI timing info, if the camera sets it.
    pub fps: Option<f64>,
}

/// Parses an SPS NAL unit (with its 1-byte header). `None` if it is not a
/// valid SPS.
pub fn parse_sps(nal: &[u8]) -> Option<SpsInfo> {
    let rbsp = h264_reader::rbsp::decode_nal(nal).ok()?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    let (width, height) = sps.pixel_dimensions().ok()?;
    let level_idc = sps.level().level_idc();
    Some(SpsInfo {
        width,
        height,
        profile: format!("{:?}", sps.profile()),
        level: format!("{}.{}", level_idc / 10, level_idc % 10),
        fps: sps.fps(),
    })
}

/// The `slice_type` of a coded slice NAL unit (types 1 and 5), reduced
/// modulo 5: 0 P, 1 B, 2 I, 3 SP, 4 SI. `None` for other NAL units or a
/// header too short to read.
pub fn slice_type(nal: &[u8]) -> Option<u32> {
    let nal_type = nal.first()? & 0x1f;
    if nal_type != 1 && nal_type != 5 {
        return None;
    }
    // The two values needed sit in the first bytes; unescape a few only.
    let head = &nal[..nal.len().min(32)];
    let rbsp = h264_reader::rbsp::decode_nal(head).ok()?;
    let mut bits = BitCursor {
        data: &rbsp,
        pos: 0,
    };
    let _first_mb_in_slice = bits.ue()?;
    Some(bits.ue()? % 5)
}

/// Reads Exp-Golomb codes (H.264 9.1).
struct BitCursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitCursor<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let mut value = 0u32;
        for _ in 0..zeros {
            value = (value << 1) | self.bit()?;
        }
        Some((1u32 << zeros) - 1 + value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_slice_types() {
        // first_mb_in_slice = 0 ("1"), slice_type = 7 (I, "0001000"): 1000 1000 ...
        assert_eq!(slice_type(&[0x65, 0b1000_1000, 0x80]), Some(2));
        // slice_type = 5 (P): "00110" after "1": 1001 1000
        assert_eq!(slice_type(&[0x41, 0b1001_1000]), Some(0));
        // slice_type = 6 (B): "00111": 1001 1100
        assert_eq!(slice_type(&[0x01, 0b1001_1100]), Some(1));
        assert_eq!(slice_type(&[0x67, 0xff]), None);
        assert_eq!(slice_type(&[0x41]), None);
        assert_eq!(slice_type(&[]), None);
    }
}
