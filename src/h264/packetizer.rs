//! Access units to RTP payloads (RFC 6184, packetization-mode=1): single NAL
//! units, FU-A fragments, and SPS/PPS as a STAP-A before each IDR.

use super::{AccessUnit, ParameterSets};
use bytes::Bytes;

/// Default largest RTP payload: fits a 1500-byte MTU with IP/UDP/RTP and
/// SRTP/TURN overhead.
pub const DEFAULT_MAX_PAYLOAD: usize = 1200;

/// One RTP payload produced for an access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// RTP payload bytes (NAL unit, FU-A fragment or STAP-A).
    pub data: Bytes,
    /// Set on the last payload of the access unit.
    pub marker: bool,
}

/// Packetizes access units into payloads no larger than `max_payload`.
#[derive(Debug, Clone)]
pub struct Packetizer {}

impl Packetizer {
    /// `max_payload` is clamped to at least 100 bytes.
    pub fn new(max_payload: usize) -> Self {
        let _ = max_payload;
        todo!("h264 helper")
    }

    /// Appends the payloads of `au` to `out`. Before an IDR, SPS and PPS are
    /// sent as one STAP-A: the access unit's own if it carries them, else
    /// `params`. AUD NAL units are dropped.
    pub fn packetize(&mut self, au: &AccessUnit, params: Option<&ParameterSets>, out: &mut Vec<Payload>) {
        let _ = (au, params, out);
        todo!("h264 helper")
    }
}
