//! The receive path of one RTP stream in a session: jitter buffer →
//! depacketizer → analyzer → repair gate → the camera's hub, with every
//! outcome counted in the camera's stats. No sockets here: the session
//! driver feeds packets and time, and sends what this asks for (refresh).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::codec::{VideoCodec, VideoParams, VideoPipeline};
use super::hub::{AudioPacket, Hub, MediaEvent, VideoFrame};
use super::stats::CameraStats;
use super::CameraStatus;
use crate::h264::repair::{DropReason, OnDamage};
use crate::rtp::jitter::{JitterBuffer, JitterConfig, JitterStats, Pushed, Released};
use crate::rtp::RtpPacket;

/// Where a stream's results go.
pub(super) struct MediaSink<'a> {
    /// The camera's fan-out.
    pub hub: &'a Hub,
    /// The camera's counters.
    pub stats: &'a CameraStats,
    /// The camera's visible status (video description).
    pub status: &'a watch::Sender<CameraStatus>,
}

/// What the session should do after feeding a stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Actions {
    /// Ask the camera for a keyframe (PLI/FIR, ONVIF).
    pub refresh: bool,
    /// Video pictures (access units) that completed, damaged or not: the
    /// session's watchdog wants pictures, not just packets.
    pub pictures: u64,
}

/// The video-only part of the path.
pub(super) struct VideoPath {
    /// Depacketizer, analyzer and repair gate of the camera's codec.
    pipeline: VideoPipeline,
    /// Parameter sets last published to the hub.
    published_params: Option<VideoParams>,
    /// RTP timestamp of the last keyframe, for the GOP duration.
    last_idr_ts: Option<u32>,
    /// Measured keyframe interval.
    gop: Option<Duration>,
    /// Since when the gate waits for a keyframe after damage.
    damaged_since: Option<Instant>,
    /// The B-frame warning was given for this session.
    warned_b_frames: bool,
}

/// The health warning for cameras that send B-frames.
pub const B_FRAMES_WARNING: &str = "the camera sends B-frames (B-slices), which play unsmoothly in browsers over WebRTC: \
     turn them off in the camera's encoder settings (often \"B-frames: 0\", \"GOP structure: IP\" or a baseline profile)";

/// Video or audio handling.
pub(super) enum Kind {
    Video(Box<VideoPath>),
    Audio,
}

/// One RTP stream's receive path.
pub(super) struct MediaPath {
    jitter: JitterBuffer,
    /// The jitter buffer's counters already added to the camera's stats.
    jitter_counted: JitterStats,
    kind: Kind,
    clock_rate: u32,
    /// The timeline number given to consumers with each frame; bumped on
    /// every discontinuity so they re-anchor timestamps.
    timeline: u64,
}

impl MediaPath {
    /// The camera's sender report for this stream: published on the hub
    /// with the current timeline, for consumers' own sender reports.
    pub fn on_sender_report(&self, sr: &crate::rtp::rtcp::SenderReport, hub: &Hub) {
        let track = match self.kind {
            Kind::Video(_) => 0,
            Kind::Audio => 1,
        };
        hub.set_clock(
            track,
            super::hub::ClockReport {
                ntp: sr.ntp_timestamp,
                rtp: sr.rtp_timestamp,
                timeline: self.timeline,
            },
        );
    }

    /// A video path. `timeline` is the session's first timeline number.
    pub fn video(
        latency: Duration,
        codec: VideoCodec,
        params: Option<VideoParams>,
        policy: OnDamage,
        timeline: u64,
    ) -> Self {
        let video = VideoPath {
            pipeline: VideoPipeline::new(codec, params.clone(), policy),
            published_params: params,
            last_idr_ts: None,
            gop: None,
            damaged_since: None,
            warned_b_frames: false,
        };
        Self::new(latency, Kind::Video(Box::new(video)), 90_000, timeline)
    }

    /// An audio path (payloads passed through).
    pub fn audio(latency: Duration, clock_rate: u32, timeline: u64) -> Self {
        Self::new(latency, Kind::Audio, clock_rate, timeline)
    }

    fn new(latency: Duration, kind: Kind, clock_rate: u32, timeline: u64) -> Self {
        let config = JitterConfig {
            latency,
            ..Default::default()
        };
        MediaPath {
            jitter: JitterBuffer::new(config, clock_rate.max(1)),
            jitter_counted: JitterStats::default(),
            kind,
            clock_rate: clock_rate.max(1),
            timeline,
        }
    }

    /// Feeds one received packet, then releases what is in order.
    pub fn on_packet(&mut self, pkt: RtpPacket, now: Instant, sink: &MediaSink<'_>) -> Actions {
        if self.jitter.push(pkt, now) == Pushed::Discontinuity {
            tracing::info!("RTP stream restarted (new SSRC or sequence jump)");
        }
        self.drain(now, sink)
    }

    /// Releases what the jitter buffer gives up at `now`.
    pub fn on_timeout(&mut self, now: Instant, sink: &MediaSink<'_>) -> Actions {
        self.drain(now, sink)
    }

    /// When [`MediaPath::on_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.jitter.poll_timeout()
    }

    /// The measured keyframe interval, once two keyframes were seen.
    pub fn gop(&self) -> Option<Duration> {
        match &self.kind {
            Kind::Video(v) => v.gop,
            Kind::Audio => None,
        }
    }

    /// Since when the picture has been frozen waiting for a keyframe after
    /// damage.
    pub fn damaged_since(&self) -> Option<Instant> {
        match &self.kind {
            Kind::Video(v) => v.damaged_since,
            Kind::Audio => None,
        }
    }

    /// The stream's RFC 3550 A.8 interarrival jitter in clock-rate units,
    /// as its jitter buffer estimates it (the one estimator: receiver
    /// reports and stats both take it from here).
    pub fn jitter(&self) -> f64 {
        self.jitter.stats().jitter
    }

    /// True for the video path.
    pub fn is_video(&self) -> bool {
        matches!(self.kind, Kind::Video(_))
    }

    fn drain(&mut self, now: Instant, sink: &MediaSink<'_>) -> Actions {
        let mut actions = Actions::default();
        while let Some(released) = self.jitter.poll(now) {
            match released {
                Released::Packet(pkt) => {
                    let a = self.on_ordered(pkt, now, sink);
                    actions.refresh |= a.refresh;
                    actions.pictures += a.pictures;
                }
                // The depacketizer sees the gap in sequence numbers itself.
                Released::Lost { .. } => {}
                Released::Discontinuity => {
                    CameraStats::add(&sink.stats.rtp_discontinuities, 1);
                    self.timeline += 1;
                }
            }
        }
        self.count_jitter(sink.stats);
        actions
    }

    /// Adds what the jitter buffer counted since last time.
    fn count_jitter(&mut self, stats: &CameraStats) {
        let now = self.jitter.stats().clone();
        let was = &self.jitter_counted;
        CameraStats::add(&stats.rtp_packets_lost, now.lost - was.lost);
        CameraStats::add(&stats.rtp_packets_reordered, now.reordered - was.reordered);
        CameraStats::add(&stats.rtp_packets_late, now.late - was.late);
        CameraStats::add(
            &stats.rtp_packets_duplicate,
            now.duplicates - was.duplicates,
        );
        CameraStats::add(&stats.jitter_buffer_overflows, now.overflow - was.overflow);
        if self.is_video() {
            let us = now.jitter / f64::from(self.clock_rate) * 1e6;
            CameraStats::set(&stats.jitter_us, us as u64);
        }
        self.jitter_counted = now;
    }

    fn on_ordered(&mut self, pkt: RtpPacket, now: Instant, sink: &MediaSink<'_>) -> Actions {
        let timeline = &mut self.timeline;
        match &mut self.kind {
            Kind::Audio => {
                sink.hub.publish(MediaEvent::Audio(Arc::new(AudioPacket {
                    payload: pkt.payload(),
                    timestamp: pkt.timestamp,
                    marker: pkt.marker,
                    timeline: *timeline,
                    received: now,
                })));
                Actions::default()
            }
            Kind::Video(v) => v.on_packet(&pkt, now, sink, timeline),
        }
    }
}

impl VideoPath {
    fn on_packet(
        &mut self,
        pkt: &RtpPacket,
        now: Instant,
        sink: &MediaSink<'_>,
        timeline: &mut u64,
    ) -> Actions {
        let stats = sink.stats;
        let mut actions = Actions::default();
        let codec = self.pipeline.codec();
        self.pipeline.push(pkt);
        while let Some(checked) = self.pipeline.pull() {
            CameraStats::add(&stats.frames_received, 1);
            actions.pictures += 1;
            if checked.keyframe {
                CameraStats::add(&stats.keyframes_received, 1);
                if let Some(prev) = self.last_idr_ts {
                    let ticks = checked.timestamp.wrapping_sub(prev);
                    if ticks > 0 && ticks < 60 * 90_000 {
                        let gop = Duration::from_secs_f64(f64::from(ticks) / 90_000.0);
                        CameraStats::set(&stats.keyframe_interval_us, gop.as_micros() as u64);
                        self.gop = Some(gop);
                    }
                }
                self.last_idr_ts = Some(checked.timestamp);
            }
            stats.note_frame(checked.keyframe);
            if !checked.damage.is_empty() {
                CameraStats::add(&stats.frames_damaged, 1);
                for d in &checked.damage {
                    stats.add_damage(d.as_str());
                }
                tracing::debug!(damage = ?checked.damage, ts = checked.timestamp, "damaged frame");
            }
            if checked.b_frame {
                CameraStats::add(&stats.b_frames, 1);
                if !self.warned_b_frames {
                    self.warned_b_frames = true;
                    tracing::warn!("{B_FRAMES_WARNING}");
                    sink.status.send_modify(|st| st.warn(B_FRAMES_WARNING));
                }
            }
            CameraStats::add(&stats.sps_pps_inserted, checked.params_inserted);
            let out = checked.out;
            match out.dropped {
                Some(DropReason::Damaged) => CameraStats::add(&stats.frames_dropped_damaged, 1),
                Some(DropReason::WaitingForKeyframe) => {
                    CameraStats::add(&stats.frames_dropped_waiting_keyframe, 1)
                }
                None => {}
            }
            // A keyframe that arrives damaged (often the answer to the last
            // request) is a failed refresh: ask again now, not on the timer.
            let failed_refresh = checked.keyframe && out.dropped == Some(DropReason::Damaged);
            actions.refresh |= out.request_refresh || failed_refresh;
            if out.request_refresh && self.damaged_since.is_none() {
                self.damaged_since = Some(now);
            }
            if let Some(au) = out.forward {
                let keyframe = codec.is_keyframe(&au);
                if keyframe {
                    self.damaged_since = None;
                }
                if out.discontinuity {
                    *timeline += 1;
                }
                sink.hub.publish(MediaEvent::Video(Arc::new(VideoFrame {
                    au,
                    codec,
                    keyframe,
                    timeline: *timeline,
                    received: now,
                })));
            }
        }
        // New parameter sets (in band): publish for consumer SDPs.
        if let Some(params) = self
            .pipeline
            .new_parameter_sets(self.published_params.as_ref())
        {
            sink.status
                .send_modify(|st| st.video = Some(params.describe()));
            self.published_params = Some(params.clone());
            let mut info = sink.hub.info();
            info.video_codec = codec;
            info.video_params = Some(params);
            sink.hub.set_info(info);
        }
        actions
    }
}
