//! RTP to access units (RFC 6184 section 5.6-5.8: single NAL, STAP-A, FU-A).

use super::{AccessUnit, ParameterSets};
use crate::rtp::RtpPacket;

/// Turns RTP packets of one H.264 stream, in sequence order, into access
/// units. Call [`Depacketizer::push`] for each packet as it is released in
/// order, then drain [`Depacketizer::pull`] until it returns `None`.
#[derive(Debug, Default)]
pub struct Depacketizer {}

impl Depacketizer {
    /// A new depacketizer; `params` are the SDP's parameter sets, if any.
    pub fn new(params: Option<ParameterSets>) -> Self {
        let _ = params;
        todo!("h264 helper")
    }

    /// Feeds the next packet in sequence order. A sequence gap since the
    /// previous packet marks the access unit in progress damaged (or the next
    /// one `loss_before`). Never panics on any payload.
    pub fn push(&mut self, pkt: &RtpPacket) {
        let _ = pkt;
        todo!("h264 helper")
    }

    /// The next complete access unit, if any.
    pub fn pull(&mut self) -> Option<AccessUnit> {
        todo!("h264 helper")
    }

    /// Parameter sets most recently seen (SDP or in band).
    pub fn parameter_sets(&self) -> Option<&ParameterSets> {
        todo!("h264 helper")
    }
}
