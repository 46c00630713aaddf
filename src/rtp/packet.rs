//! A parsed view of one RTP packet (RFC 3550 section 5.1) over shared bytes.

use bytes::Bytes;

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
    pub fn parse(raw: Bytes) -> Result<Self, RtpError> {
        let _ = raw;
        todo!("rtp helper")
    }

    /// The payload, sharing `raw`'s buffer.
    pub fn payload(&self) -> Bytes {
        self.raw.slice(self.payload.clone())
    }

    /// Writes a 12-byte RTP header (no CSRC, no extension) followed by
    /// `payload` into `out`.
    pub fn write(
        out: &mut Vec<u8>,
        marker: bool,
        payload_type: u8,
        sequence: u16,
        timestamp: u32,
        ssrc: u32,
        payload: &[u8],
    ) {
        let _ = (out, marker, payload_type, sequence, timestamp, ssrc, payload);
        todo!("rtp helper")
    }
}
