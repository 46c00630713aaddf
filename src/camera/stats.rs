//! Per-camera counters, shared lock-free between the camera task (writer)
//! and the HTTP API (reader).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Counters of one camera since the gateway started. Monotonic except where
/// noted.
#[derive(Debug, Default)]
pub struct CameraStats {
    /// Bytes of RTP/RTCP received from the camera.
    pub bytes_received: AtomicU64,
    /// RTP packets received (all streams).
    pub rtp_packets_received: AtomicU64,
    /// RTP packets missing from sequence numbers (video and audio).
    pub rtp_packets_lost: AtomicU64,
    /// Video access units received.
    pub frames_received: AtomicU64,
    /// Video access units holding an IDR.
    pub keyframes_received: AtomicU64,
    /// Access units marked damaged by the depacketizer.
    pub frames_damaged: AtomicU64,
    /// Sessions started after the first (any reason).
    pub reconnects: AtomicU64,
    /// RTP packets sent to `rtp_out` consumers.
    pub egress_packets: AtomicU64,
    /// RTP bytes sent to `rtp_out` consumers.
    pub egress_bytes: AtomicU64,
    /// Frames a consumer skipped because it fell behind.
    pub consumer_frames_skipped: AtomicU64,
}

/// A plain copy of [`CameraStats`] for JSON.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub bytes_received: u64,
    pub rtp_packets_received: u64,
    pub rtp_packets_lost: u64,
    pub frames_received: u64,
    pub keyframes_received: u64,
    pub frames_damaged: u64,
    pub reconnects: u64,
    pub egress_packets: u64,
    pub egress_bytes: u64,
    pub consumer_frames_skipped: u64,
}

impl CameraStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            bytes_received: self.bytes_received.load(Relaxed),
            rtp_packets_received: self.rtp_packets_received.load(Relaxed),
            rtp_packets_lost: self.rtp_packets_lost.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
            keyframes_received: self.keyframes_received.load(Relaxed),
            frames_damaged: self.frames_damaged.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            egress_packets: self.egress_packets.load(Relaxed),
            egress_bytes: self.egress_bytes.load(Relaxed),
            consumer_frames_skipped: self.consumer_frames_skipped.load(Relaxed),
        }
    }
}
