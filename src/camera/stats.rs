//! Per-camera counters in one structure, shared lock-free between the
//! camera task (writer) and the HTTP API and metrics (readers).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Kinds of frame damage, as the analyzer names them (a bounded metrics
/// label).
pub const DAMAGE_KINDS: [&str; 6] = [
    "packet_loss",
    "missing_slices",
    "frame_num_gap",
    "timestamp_jump",
    "bad_nal_header",
    "no_parameter_sets",
];

/// Why a session ended and another was started (a bounded metrics label).
pub const RECONNECT_REASONS: [&str; 14] = [
    "unreachable",
    "unauthorized",
    "not_found",
    "rtsp_timeout",
    "rtsp_error",
    "unsupported_codec",
    "media_timeout",
    "no_udp_media",
    "closed",
    "io_error",
    "refresh_timeout",
    "redirect",
    "restart",
    "tls_error",
];

/// Counters of one camera since the gateway started. Monotonic unless the
/// doc says gauge.
#[derive(Debug, Default)]
pub struct CameraStats {
    /// Bytes of RTP/RTCP received from the camera.
    pub bytes_received: AtomicU64,
    /// RTP packets received (all streams, duplicates included).
    pub rtp_packets_received: AtomicU64,
    /// UDP datagrams (RTP or RTCP) dropped because they did not come from
    /// the camera's address and SETUP ports.
    pub rtp_packets_rejected: AtomicU64,
    /// RTP packets declared lost by the jitter buffer.
    pub rtp_packets_lost: AtomicU64,
    /// RTP packets that arrived out of order but in time.
    pub rtp_packets_reordered: AtomicU64,
    /// RTP packets that arrived after they were declared lost.
    pub rtp_packets_late: AtomicU64,
    /// RTP packets received twice.
    pub rtp_packets_duplicate: AtomicU64,
    /// Times the jitter buffer was full and released early.
    pub jitter_buffer_overflows: AtomicU64,
    /// SSRC changes and sequence jumps (camera encoder restarts).
    pub rtp_discontinuities: AtomicU64,
    /// Gauge: RFC 3550 interarrival jitter of the video stream, microseconds.
    pub jitter_us: AtomicU64,
    /// Interleaved framing lost and found again (partial writes, garbage).
    pub framing_resyncs: AtomicU64,
    /// Bytes skipped while resyncing the framing.
    pub framing_bytes_skipped: AtomicU64,
    /// Video access units received.
    pub frames_received: AtomicU64,
    /// Video access units holding an IDR.
    pub keyframes_received: AtomicU64,
    /// Gauge: smoothed interval between video frames as they arrive, in
    /// microseconds (0 = unknown); the measured frame rate is its inverse.
    pub frame_interval_us: AtomicU64,
    /// Gauge: the measured keyframe interval (GOP duration), microseconds
    /// (0 = unknown).
    pub keyframe_interval_us: AtomicU64,
    /// When the last video frame arrived, on the [`monotonic_us`] clock
    /// (0 = never).
    pub last_frame_us: AtomicU64,
    /// When the last keyframe arrived, on the [`monotonic_us`] clock (0 =
    /// never).
    pub last_keyframe_us: AtomicU64,
    /// Damaged access units, any kind.
    pub frames_damaged: AtomicU64,
    /// Damaged access units by kind, indexed like [`DAMAGE_KINDS`].
    pub frames_damaged_by_kind: [AtomicU64; DAMAGE_KINDS.len()],
    /// Frames the repair gate dropped because they were damaged.
    pub frames_dropped_damaged: AtomicU64,
    /// Frames the repair gate dropped while waiting for a clean keyframe.
    pub frames_dropped_waiting_keyframe: AtomicU64,
    /// Keyframes the gate completed with SPS/PPS from the SDP or earlier.
    pub sps_pps_inserted: AtomicU64,
    /// Access units with B slices.
    pub b_frames: AtomicU64,
    /// Keyframe requests sent to the camera as RTCP PLI + FIR.
    pub refresh_requests: AtomicU64,
    /// Keyframe requests sent through ONVIF SetSynchronizationPoint.
    pub onvif_refresh_requests: AtomicU64,
    /// ONVIF keyframe requests that failed.
    pub onvif_refresh_errors: AtomicU64,
    /// RTCP packets (receiver reports, keyframe requests) that could not be
    /// sent to the camera.
    pub rtcp_send_errors: AtomicU64,
    /// Sessions started after the first (any reason).
    pub reconnects: AtomicU64,
    /// Reconnects by reason, indexed like [`RECONNECT_REASONS`].
    pub reconnects_by_reason: [AtomicU64; RECONNECT_REASONS.len()],
    /// Gauge: receive buffer camgate asked the kernel for, bytes.
    pub socket_buffer_requested: AtomicU64,
    /// Gauge: receive buffer the kernel granted, bytes.
    pub socket_buffer_granted: AtomicU64,
    /// RTP packets sent to `rtp_out` consumers.
    pub egress_packets: AtomicU64,
    /// RTP bytes sent to `rtp_out` consumers.
    pub egress_bytes: AtomicU64,
    /// Frames a consumer skipped because it fell behind.
    pub consumer_frames_skipped: AtomicU64,
    /// RTP packets sent to RTSP clients.
    pub rtsp_packets: AtomicU64,
    /// RTP bytes sent to RTSP clients (with interleaved framing over TCP).
    pub rtsp_bytes: AtomicU64,
    /// RTP packets sent to WebRTC viewers.
    pub viewer_packets: AtomicU64,
    /// RTP bytes sent to WebRTC viewers (before SRTP).
    pub viewer_bytes: AtomicU64,
    /// PLIs received from viewers.
    pub viewer_plis: AtomicU64,
    /// FIRs received from viewers.
    pub viewer_firs: AtomicU64,
    /// NACK messages received from viewers.
    pub viewer_nacks: AtomicU64,
    /// Packets resent to viewers in answer to NACKs.
    pub viewer_retransmits: AtomicU64,
    /// Viewer refresh requests forwarded to the camera (rate-limited).
    pub viewer_refresh_forwarded: AtomicU64,
    /// Viewer sessions started.
    pub viewer_sessions: AtomicU64,
}

/// A plain copy of [`CameraStats`] for JSON.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StatsSnapshot {
    pub bytes_received: u64,
    pub rtp_packets_received: u64,
    pub rtp_packets_rejected: u64,
    pub rtp_packets_lost: u64,
    pub rtp_packets_reordered: u64,
    pub rtp_packets_late: u64,
    pub rtp_packets_duplicate: u64,
    pub jitter_buffer_overflows: u64,
    pub rtp_discontinuities: u64,
    pub jitter_us: u64,
    pub framing_resyncs: u64,
    pub framing_bytes_skipped: u64,
    pub frames_received: u64,
    pub keyframes_received: u64,
    /// Measured frame rate (frames per second); 0 when no frame arrived
    /// recently.
    pub fps: f64,
    /// Measured keyframe interval, seconds.
    pub keyframe_interval_seconds: Option<f64>,
    /// Time since the last keyframe arrived, seconds.
    pub last_keyframe_age_seconds: Option<f64>,
    pub frames_damaged: u64,
    pub frames_damaged_by_kind: BTreeMap<&'static str, u64>,
    pub frames_dropped_damaged: u64,
    pub frames_dropped_waiting_keyframe: u64,
    pub sps_pps_inserted: u64,
    pub b_frames: u64,
    pub refresh_requests: u64,
    pub onvif_refresh_requests: u64,
    pub onvif_refresh_errors: u64,
    pub rtcp_send_errors: u64,
    pub reconnects: u64,
    pub reconnects_by_reason: BTreeMap<&'static str, u64>,
    pub socket_buffer_requested: u64,
    pub socket_buffer_granted: u64,
    pub egress_packets: u64,
    pub egress_bytes: u64,
    pub consumer_frames_skipped: u64,
    pub rtsp_packets: u64,
    pub rtsp_bytes: u64,
    pub viewer_packets: u64,
    pub viewer_bytes: u64,
    pub viewer_plis: u64,
    pub viewer_firs: u64,
    pub viewer_nacks: u64,
    pub viewer_retransmits: u64,
    pub viewer_refresh_forwarded: u64,
    pub viewer_sessions: u64,
}

/// Microseconds on a monotonic clock that starts (at 1) when first read:
/// for "how long ago" gauges, immune to wall-clock steps.
pub fn monotonic_us() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    epoch.elapsed().as_micros() as u64 + 1
}

/// Longer gaps between frames are outages, not frame intervals.
const MAX_FRAME_INTERVAL_US: u64 = 5_000_000;

impl CameraStats {
    /// Records the arrival of one video frame (after
    /// `frames_received`/`keyframes_received` were counted): the frame-rate
    /// average and the last (key)frame times.
    pub fn note_frame(&self, keyframe: bool) {
        let now = monotonic_us();
        let last = self.last_frame_us.swap(now, Relaxed);
        if last != 0 && now > last && now - last < MAX_FRAME_INTERVAL_US {
            let dt = now - last;
            let prev = self.frame_interval_us.load(Relaxed);
            // An exponential average over about 16 frames: bursts (TCP,
            // jitter buffer releases) average out.
            let next = if prev == 0 { dt } else { (prev * 15 + dt) / 16 };
            self.frame_interval_us.store(next, Relaxed);
        }
        if keyframe {
            self.last_keyframe_us.store(now, Relaxed);
        }
    }

    /// The measured frame rate: 0 when no frame arrived for two seconds (or
    /// three intervals, if longer).
    pub fn fps(&self) -> f64 {
        let interval = self.frame_interval_us.load(Relaxed);
        let last = self.last_frame_us.load(Relaxed);
        if interval == 0 || last == 0 {
            return 0.0;
        }
        let age = monotonic_us().saturating_sub(last);
        if age > (3 * interval).max(2_000_000) {
            return 0.0;
        }
        1e6 / interval as f64
    }

    /// Seconds since the last keyframe arrived, if one did.
    pub fn last_keyframe_age_seconds(&self) -> Option<f64> {
        let last = self.last_keyframe_us.load(Relaxed);
        (last != 0).then(|| monotonic_us().saturating_sub(last) as f64 / 1e6)
    }

    /// The measured keyframe interval, seconds, once known.
    pub fn keyframe_interval_seconds(&self) -> Option<f64> {
        let us = self.keyframe_interval_us.load(Relaxed);
        (us != 0).then(|| us as f64 / 1e6)
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Relaxed);
    }

    /// Counts one damaged frame of `kind` (a [`DAMAGE_KINDS`] name).
    pub fn add_damage(&self, kind: &str) {
        if let Some(i) = DAMAGE_KINDS.iter().position(|k| *k == kind) {
            self.frames_damaged_by_kind[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts one reconnect for `reason` (a [`RECONNECT_REASONS`] name).
    pub fn add_reconnect(&self, reason: &str) {
        self.reconnects.fetch_add(1, Relaxed);
        if let Some(i) = RECONNECT_REASONS.iter().position(|r| *r == reason) {
            self.reconnects_by_reason[i].fetch_add(1, Relaxed);
        }
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let by = |names: &[&'static str], values: &[AtomicU64]| {
            names
                .iter()
                .zip(values)
                .map(|(n, v)| (*n, v.load(Relaxed)))
                .collect()
        };
        StatsSnapshot {
            bytes_received: self.bytes_received.load(Relaxed),
            rtp_packets_received: self.rtp_packets_received.load(Relaxed),
            rtp_packets_rejected: self.rtp_packets_rejected.load(Relaxed),
            rtp_packets_lost: self.rtp_packets_lost.load(Relaxed),
            rtp_packets_reordered: self.rtp_packets_reordered.load(Relaxed),
            rtp_packets_late: self.rtp_packets_late.load(Relaxed),
            rtp_packets_duplicate: self.rtp_packets_duplicate.load(Relaxed),
            jitter_buffer_overflows: self.jitter_buffer_overflows.load(Relaxed),
            rtp_discontinuities: self.rtp_discontinuities.load(Relaxed),
            jitter_us: self.jitter_us.load(Relaxed),
            framing_resyncs: self.framing_resyncs.load(Relaxed),
            framing_bytes_skipped: self.framing_bytes_skipped.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
            keyframes_received: self.keyframes_received.load(Relaxed),
            fps: (self.fps() * 100.0).round() / 100.0,
            keyframe_interval_seconds: self.keyframe_interval_seconds(),
            last_keyframe_age_seconds: self
                .last_keyframe_age_seconds()
                .map(|s| (s * 1000.0).round() / 1000.0),
            frames_damaged: self.frames_damaged.load(Relaxed),
            frames_damaged_by_kind: by(&DAMAGE_KINDS, &self.frames_damaged_by_kind),
            frames_dropped_damaged: self.frames_dropped_damaged.load(Relaxed),
            frames_dropped_waiting_keyframe: self.frames_dropped_waiting_keyframe.load(Relaxed),
            sps_pps_inserted: self.sps_pps_inserted.load(Relaxed),
            b_frames: self.b_frames.load(Relaxed),
            refresh_requests: self.refresh_requests.load(Relaxed),
            onvif_refresh_requests: self.onvif_refresh_requests.load(Relaxed),
            onvif_refresh_errors: self.onvif_refresh_errors.load(Relaxed),
            rtcp_send_errors: self.rtcp_send_errors.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            reconnects_by_reason: by(&RECONNECT_REASONS, &self.reconnects_by_reason),
            socket_buffer_requested: self.socket_buffer_requested.load(Relaxed),
            socket_buffer_granted: self.socket_buffer_granted.load(Relaxed),
            egress_packets: self.egress_packets.load(Relaxed),
            egress_bytes: self.egress_bytes.load(Relaxed),
            consumer_frames_skipped: self.consumer_frames_skipped.load(Relaxed),
            rtsp_packets: self.rtsp_packets.load(Relaxed),
            rtsp_bytes: self.rtsp_bytes.load(Relaxed),
            viewer_packets: self.viewer_packets.load(Relaxed),
            viewer_bytes: self.viewer_bytes.load(Relaxed),
            viewer_plis: self.viewer_plis.load(Relaxed),
            viewer_firs: self.viewer_firs.load(Relaxed),
            viewer_nacks: self.viewer_nacks.load(Relaxed),
            viewer_retransmits: self.viewer_retransmits.load(Relaxed),
            viewer_refresh_forwarded: self.viewer_refresh_forwarded.load(Relaxed),
            viewer_sessions: self.viewer_sessions.load(Relaxed),
        }
    }
}
