//! RTCP (RFC 3550 section 6): sender report parsing, receiver report and
//! BYE writing, and the receiver statistics a report carries.

/// Receiver-side statistics of one RTP stream, as RFC 3550 appendix A.3 and
/// A.8 compute them. Fed with each packet's sequence number, RTP timestamp
/// and arrival time in clock-rate units.
#[derive(Debug, Clone, Default)]
pub struct ReceiverStats {
    // fields are the rtp helper's
}
