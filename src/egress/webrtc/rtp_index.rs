//! The RTP header fields camgate sends to viewers and each stream's packet
//! index (sequence number and rollover counter). The `webrtc` crate's SRTP
//! session protects the packets (see `viewer::Wire`).

/// The RTP header fields camgate writes (no CSRC, no extension).
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// A stream's packet index (RFC 3711 3.3.1): the sequence number extended
/// with the rollover counter, counted here as packets are sent in order.
#[derive(Debug, Clone, Copy)]
pub(super) struct PacketIndex(u64);

impl PacketIndex {
    /// Starts at sequence number `seq` with rollover counter 0.
    pub fn new(seq: u16) -> Self {
        PacketIndex(u64::from(seq))
    }

    /// The next packet's sequence number and rollover counter; advances.
    pub fn next(&mut self) -> (u16, u32) {
        let i = self.0;
        self.0 += 1;
        Self::split(i)
    }

    /// The sequence number and rollover counter of index `i`.
    pub fn split(i: u64) -> (u16, u32) {
        (i as u16, (i >> 16) as u32)
    }

    /// The index the next packet will have.
    pub fn peek(&self) -> u64 {
        self.0
    }
}
