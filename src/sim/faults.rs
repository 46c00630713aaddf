//! Faults a simulated camera can inject, seeded so runs repeat: the
//! firmware and network failures camgate exists to survive.

/// Which faults a sim camera injects. All probabilities are 0.0..=1.0; all
/// periods are seconds, 0 meaning never. Default: no fault, PLI honoured.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Seed of the fault generator (per camera session: seed ^ hash(name)).
    pub seed: u64,
    /// TCP: probability that an interleaved RTP packet is cut short, the
    /// rest of it silently lost (the old live555 partial-write bug), biased
    /// toward large packets and keyframe bursts.
    pub truncate: f64,
    /// TCP: probability that a packet is cut short and then sent again whole.
    pub truncate_resend: f64,
    /// TCP: probability of garbage bytes between two frames.
    pub garbage: f64,
    /// Every this many seconds, stop sending for `stall_ms`, then send what
    /// was held back in a burst.
    pub stall_every_s: f64,
    /// Length of a stall.
    pub stall_ms: u64,
    /// UDP: probability a packet is lost.
    pub udp_loss: f64,
    /// UDP: probability a packet is delayed behind the next few.
    pub udp_reorder: f64,
    /// UDP: probability a packet is sent twice.
    pub udp_duplicate: f64,
    /// Every this many seconds, the video SSRC changes (and sequence numbers
    /// restart), as when a camera's encoder restarts.
    pub ssrc_change_every_s: f64,
    /// Every this many seconds, the RTP timestamp jumps forward by 10 s.
    pub timestamp_jump_every_s: f64,
    /// Every this many seconds, the camera drops the connection (reboot).
    pub reboot_every_s: f64,
    /// SPS and PPS only in the SDP, never in band.
    pub sprop_only: bool,
    /// Honour RTCP PLI/FIR (and ONVIF SetSynchronizationPoint) by jumping to
    /// the clip's next IDR at once.
    pub honour_pli: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 1,
            truncate: 0.0,
            truncate_resend: 0.0,
            garbage: 0.0,
            stall_every_s: 0.0,
            stall_ms: 0,
            udp_loss: 0.0,
            udp_reorder: 0.0,
            udp_duplicate: 0.0,
            ssrc_change_every_s: 0.0,
            timestamp_jump_every_s: 0.0,
            reboot_every_s: 0.0,
            sprop_only: false,
            honour_pli: true,
        }
    }
}
