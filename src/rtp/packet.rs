//! A parsed view of one RTP packet (RFC 3550 section 5.1) over shared bytes.
//!
//! A view rather than webrtc-rs's `rtp::packet::Packet`: unmarshalling that
//! builds an owned header (CSRC and extension vectors) for every packet,
//! and the payload here stays a slice of the buffer it was read into.

use bytes::Bytes;

/// Length of the fixed RTP header, without CSRCs or extension.
pub const FIXED_HEADER_LEN: usize = 12;

/// Why bytes are not an RTP packet.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtpError {
    /// Fewer bytes than the fixed header, CSRCs, extension or padding need.
    #[error("RTP packet truncated: {0} bytes")]
    Truncated(usize),
    /// The version field is not 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// The padding count is zero or larger than the payload.
    #[error("RTP padding length {0} is invalid")]
    BadPadding(u8),
}

/// One RTP packet. Cloning is cheap: the bytes are reference counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket {
    /// The whole packet as received.
    pub raw: Bytes,
    /// The M bit: for H.264, the last packet of an access unit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// RTP timestamp in the stream's clock rate.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Payload range within `raw` (after CSRCs, extension; before padding).
    payload: std::ops::Range<usize>,
}

impl RtpPacket {
    /// Parses `raw`; never panics on any input.
    ///
    /// CSRCs and the header extension are skipped (their bytes stay in
    /// `raw`); padding is removed from the payload. An empty payload is
    /// valid (some senders use it as keep-alive).
    pub fn parse(raw: Bytes) -> Result<Self, RtpError> {
        let len = raw.len();
        if len < FIXED_HEADER_LEN {
            return Err(RtpError::Truncated(len));
        }
        let b0 = raw[0];
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = usize::from(b0 & 0x0f);
        let mut start = FIXED_HEADER_LEN + 4 * csrc_count;
        if has_extension {
            // 16-bit profile-defined id, 16-bit length in 32-bit words.
            let ext = raw.get(start..start + 4).ok_or(RtpError::Truncated(len))?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            start += 4 + 4 * words;
        }
        if start > len {
            return Err(RtpError::Truncated(len));
        }
        let mut end = len;
        if has_padding {
            let pad = raw[len - 1];
            if pad == 0 || usize::from(pad) > len - start {
                return Err(RtpError::BadPadding(pad));
            }
            end -= usize::from(pad);
        }
        Ok(RtpPacket {
            marker: raw[1] & 0x80 != 0,
            payload_type: raw[1] & 0x7f,
            sequence: u16::from_be_bytes([raw[2], raw[3]]),
            timestamp: u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]),
            ssrc: u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]),
            payload: start..end,
            raw,
        })
    }

    /// The payload, sharing `raw`'s buffer.
    pub fn payload(&self) -> Bytes {
        self.raw.slice(self.payload.clone())
    }

    /// The payload as a borrowed slice (no reference-count traffic).
    pub fn payload_slice(&self) -> &[u8] {
        &self.raw[self.payload.clone()]
    }

    /// Writes a 12-byte RTP header (no CSRC, no extension) followed by
    /// `payload` into `out`. Only the low 7 bits of `payload_type` are used.
    pub fn write(
        out: &mut Vec<u8>,
        marker: bool,
        payload_type: u8,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        payload: &[u8],
    ) {
        out.reserve(FIXED_HEADER_LEN + payload.len());
        out.push(0x80);
        out.push((u8::from(marker) << 7) | (payload_type & 0x7f));
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&ssrc.to_be_bytes());
        out.extend_from_slice(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<RtpPacket, RtpError> {
        RtpPacket::parse(Bytes::copy_from_slice(b))
    }

    #[test]
    fn write_then_parse() {
        let mut out = Vec::new();
        RtpPacket::write(&mut out, true, 97, 0xfffe, 0x0102_0304, 0xdead_beef, b"abc");
        assert_eq!(
            out,
            [0x80, 0xe1, 0xff, 0xfe, 1, 2, 3, 4, 0xde, 0xad, 0xbe, 0xef, b'a', b'b', b'c']
        );
        let p = parse(&out).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 97);
        assert_eq!(p.sequence, 0xfffe);
        assert_eq!(p.timestamp, 0x0102_0304);
        assert_eq!(p.ssrc, 0xdead_beef);
        assert_eq!(&p.payload()[..], b"abc");
        assert_eq!(p.payload_slice(), b"abc");
    }

    #[test]
    fn csrc_extension_padding() {
        // V=2 P=1 X=1 CC=2, PT=96, then 2 CSRCs, a 1-word extension,
        // payload "hi" and 3 bytes of padding.
        let mut b = vec![0xb2, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 10]); // CSRCs
        b.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension
        b.extend_from_slice(b"hi");
        b.extend_from_slice(&[0, 0, 3]);
        let p = parse(&b).unwrap();
        assert!(!p.marker);
        assert_eq!(&p.payload()[..], b"hi");
    }

    #[test]
    fn errors() {
        assert_eq!(parse(&[0x80; 11]), Err(RtpError::Truncated(11)));
        assert_eq!(parse(&[0x40; 12]), Err(RtpError::BadVersion(1)));
        // CSRC count 1 but no room.
        assert_eq!(
            parse(&[0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::Truncated(12))
        );
        // Extension header missing.
        assert_eq!(
            parse(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::Truncated(14))
        );
        // Extension length beyond the packet.
        assert_eq!(
            parse(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(RtpError::Truncated(16))
        );
        // Padding count 0, and padding larger than the payload.
        let mut b = vec![0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(parse(&b), Err(RtpError::BadPadding(0)));
        *b.last_mut().unwrap() = 3;
        assert_eq!(parse(&b), Err(RtpError::BadPadding(3)));
        *b.last_mut().unwrap() = 2;
        assert_eq!(parse(&b).unwrap().payload().len(), 0);
    }

    #[test]
    fn empty_payload_ok() {
        let p = parse(&[0x80, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert!(p.payload().is_empty());
    }
}
