//! A camera's fan-out point: the session publishes frames, every consumer
//! subscribes. Publishing never waits: a consumer that falls behind loses
//! frames (tokio broadcast lag) and must resume at the next keyframe.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use super::codec::{VideoCodec, VideoParams};
use crate::h264::AccessUnit;

/// How many media events a consumer may be behind before it lags. At 25 fps
/// with audio every 20 ms this is several seconds.
const CAPACITY: usize = 1024;

/// One video picture from the camera.
#[derive(Debug)]
pub struct VideoFrame {
    /// The access unit, payloads shared with every consumer.
    pub au: AccessUnit,
    /// Its codec.
    pub codec: VideoCodec,
    /// The picture is a keyframe (an IDR picture; for H.265 an IRAP
    /// picture): a consumer may start decoding here.
    pub keyframe: bool,
    /// The timeline the timestamp belongs to: each camera session has its
    /// own range of timeline numbers, and a discontinuity within a session
    /// (SSRC change, timestamp jump) moves to the next, so consumers
    /// re-anchor their timestamps when it changes.
    pub timeline: u64,
    /// When the last packet of the frame arrived.
    pub received: Instant,
}

/// One audio RTP payload, passed through unchanged.
#[derive(Debug)]
pub struct AudioPacket {
    /// RTP payload.
    pub payload: Bytes,
    /// RTP timestamp at the audio clock rate.
    pub timestamp: u32,
    /// The camera's marker bit.
    pub marker: bool,
    /// The timeline the timestamp belongs to, as for video.
    pub timeline: u64,
    /// Arrival time.
    pub received: Instant,
}

/// What the hub carries.
#[derive(Clone, Debug)]
pub enum MediaEvent {
    Video(Arc<VideoFrame>),
    Audio(Arc<AudioPacket>),
}

/// The streams of the current session, for writing consumer SDPs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamInfo {
    /// The video codec.
    pub video_codec: VideoCodec,
    /// Video parameter sets, from the SDP or the stream.
    pub video_params: Option<VideoParams>,
    /// Audio, when the camera sends a stream that can be passed through.
    pub audio: Option<AudioInfo>,
}

/// An audio stream as the camera describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioInfo {
    /// Encoding name (`PCMU`, `PCMA`, `OPUS`, `MPEG4-GENERIC`, ...).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels, if given.
    pub channels: Option<u16>,
    /// The camera's payload type; static types keep their number.
    pub payload_type: u8,
    /// `a=fmtp` parameters, if any.
    pub fmtp: Option<String>,
}

/// Most pictures the GOP cache holds; a longer GOP is not cached (viewers
/// then wait for the next keyframe).
const GOP_MAX_FRAMES: usize = 600;
/// Most bytes the GOP cache holds.
const GOP_MAX_BYTES: usize = 16 << 20;

/// The pictures from the last keyframe on, for fast start: a new viewer
/// decodes from this keyframe at once instead of waiting for the next.
#[derive(Debug, Default)]
struct Gop {
    frames: Vec<Arc<VideoFrame>>,
    bytes: usize,
}

impl Gop {
    fn push(&mut self, frame: &Arc<VideoFrame>) {
        if frame.keyframe {
            self.frames.clear();
            self.bytes = 0;
        } else if self.frames.is_empty() {
            // No keyframe to start from.
            return;
        } else if frame.timeline != self.frames[0].timeline
            || self.frames.len() >= GOP_MAX_FRAMES
            || self.bytes + frame.au.len_bytes() > GOP_MAX_BYTES
        {
            // A new camera session, or a GOP too long to keep.
            self.frames.clear();
            self.bytes = 0;
            return;
        }
        self.bytes += frame.au.len_bytes();
        self.frames.push(frame.clone());
    }
}

/// The fan-out of one camera.
#[derive(Debug)]
pub struct Hub {
    /// Media for consumers.
    tx: broadcast::Sender<MediaEvent>,
    /// Stream descriptions of the current session.
    info: watch::Sender<StreamInfo>,
    /// The current GOP. Publishing video takes this lock (uncontended but
    /// for a subscriber joining) so a subscriber gets the cached pictures
    /// and the live ones with no gap and no overlap.
    gop: std::sync::Mutex<Gop>,
    /// Keyframe requests from viewers for the camera session.
    keyframe: tokio::sync::Notify,
    /// When a viewer's request was last forwarded.
    last_keyframe_request: std::sync::Mutex<Option<Instant>>,
    /// The camera's latest sender report per track (0 video, 1 audio).
    clocks: std::sync::Mutex<[Option<ClockReport>; 2]>,
}

/// What a camera's sender report (RFC 3550 6.4.1) says its RTP clock means
/// in wall-clock time, so consumers' own sender reports can carry the same
/// NTP-to-RTP mapping (recorders line up audio and video with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockReport {
    /// NTP timestamp (32.32 fixed point) of the report.
    pub ntp: u64,
    /// The camera's RTP timestamp at that instant.
    pub rtp: u32,
    /// The camera session whose timeline `rtp` belongs to (the
    /// `VideoFrame`/`AudioPacket` session number).
    pub timeline: u64,
}

impl ClockReport {
    /// The NTP time of the camera's RTP timestamp `ts` at `clock_rate`
    /// (within about 6 hours of the report at 90 kHz).
    pub fn ntp_at(&self, ts: u32, clock_rate: u32) -> u64 {
        let ticks = i64::from(ts.wrapping_sub(self.rtp) as i32);
        let delta = (ticks as i128 * (1i128 << 32)) / i128::from(clock_rate.max(1));
        (i128::from(self.ntp) + delta) as u64
    }
}

/// Viewers' keyframe requests reach the camera at most this often.
pub const KEYFRAME_REQUEST_GAP: std::time::Duration = std::time::Duration::from_secs(2);

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        let (info, _) = watch::channel(StreamInfo::default());
        Hub {
            tx,
            info,
            gop: Default::default(),
            keyframe: tokio::sync::Notify::new(),
            last_keyframe_request: Default::default(),
            clocks: Default::default(),
        }
    }

    /// A viewer asks the camera for a keyframe. Forwarded at most once per
    /// [`KEYFRAME_REQUEST_GAP`]; returns whether this one was.
    pub fn request_keyframe(&self) -> bool {
        let now = Instant::now();
        let mut last = self
            .last_keyframe_request
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_GAP) {
            return false;
        }
        *last = Some(now);
        self.keyframe.notify_one();
        true
    }

    /// Resolves when a viewer asked for a keyframe (for the camera session).
    pub async fn keyframe_requested(&self) {
        self.keyframe.notified().await
    }

    fn gop(&self) -> std::sync::MutexGuard<'_, Gop> {
        self.gop.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes to whoever listens; never waits.
    pub fn publish(&self, event: MediaEvent) {
        // No receivers is not an error: the camera may have no consumer yet.
        match &event {
            MediaEvent::Video(frame) => {
                let mut gop = self.gop();
                gop.push(frame);
                let _ = self.tx.send(event);
            }
            MediaEvent::Audio(_) => {
                let _ = self.tx.send(event);
            }
        }
    }

    /// A new consumer that starts with the current GOP: the pictures from
    /// the last keyframe up to now (empty when there is none), then every
    /// event published after them.
    pub fn subscribe_with_gop(&self) -> (Vec<Arc<VideoFrame>>, broadcast::Receiver<MediaEvent>) {
        let gop = self.gop();
        (gop.frames.clone(), self.tx.subscribe())
    }

    /// The current GOP (for answering a viewer's keyframe request).
    pub fn gop_frames(&self) -> Vec<Arc<VideoFrame>> {
        self.gop().frames.clone()
    }

    /// Forgets the GOP (the camera session ended: its pictures must not
    /// start a viewer on the next session).
    pub fn clear_gop(&self) {
        *self.gop() = Gop::default();
    }

    /// A new consumer, receiving from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<MediaEvent> {
        self.tx.subscribe()
    }

    /// Number of consumers.
    pub fn consumers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Replaces the stream description (on a new session or new SPS/PPS).
    pub fn set_info(&self, info: StreamInfo) {
        self.info.send_if_modified(|old| {
            if *old == info {
                false
            } else {
                *old = info;
                true
            }
        });
    }

    /// The current stream description.
    pub fn info(&self) -> StreamInfo {
        self.info.borrow().clone()
    }

    /// Records the camera's sender report for `track` (0 video, 1 audio).
    pub fn set_clock(&self, track: usize, report: ClockReport) {
        if let Some(slot) = self
            .clocks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(track)
        {
            *slot = Some(report);
        }
    }

    /// The camera's latest sender report for `track`, if it sent one.
    pub fn clock(&self, track: usize) -> Option<ClockReport> {
        self.clocks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(track)
            .copied()
            .flatten()
    }

    /// Watches the stream description.
    pub fn watch_info(&self) -> watch::Receiver<StreamInfo> {
        self.info.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_report_maps_rtp_time_to_ntp() {
        let r = ClockReport {
            ntp: 100 << 32,
            rtp: 90_000,
            timeline: 1,
        };
        assert_eq!(r.ntp_at(90_000, 90_000), 100 << 32);
        assert_eq!(r.ntp_at(180_000, 90_000), 101 << 32);
        assert_eq!(r.ntp_at(45_000, 90_000), (99 << 32) + (1 << 31));
        // Across the 32-bit wrap.
        let w = ClockReport {
            ntp: 100 << 32,
            rtp: u32::MAX - 44_999,
            timeline: 1,
        };
        assert_eq!(w.ntp_at(45_000, 90_000), 101 << 32);
        let hub = Hub::new();
        assert_eq!(hub.clock(0), None);
        hub.set_clock(1, r);
        hub.set_clock(7, r);
        assert_eq!((hub.clock(0), hub.clock(1)), (None, Some(r)));
    }

    fn frame(idr: bool, timeline: u64, ts: u32) -> Arc<VideoFrame> {
        let nal = if idr { 0x65u8 } else { 0x41 };
        Arc::new(VideoFrame {
            au: AccessUnit {
                timestamp: ts,
                nals: vec![Bytes::from(vec![nal, 0x88, 0x84])],
                damaged: false,
                loss_before: false,
            },
            codec: VideoCodec::H264,
            keyframe: idr,
            timeline,
            received: Instant::now(),
        })
    }

    #[test]
    fn gop_starts_at_the_last_keyframe_and_joins_live_without_gap() {
        let hub = Hub::new();
        hub.publish(MediaEvent::Video(frame(false, 1, 0)));
        assert!(hub.gop_frames().is_empty(), "no keyframe yet");
        hub.publish(MediaEvent::Video(frame(true, 1, 3000)));
        hub.publish(MediaEvent::Video(frame(false, 1, 6000)));
        let (gop, mut rx) = hub.subscribe_with_gop();
        assert_eq!(
            gop.iter().map(|f| f.au.timestamp).collect::<Vec<_>>(),
            [3000, 6000]
        );
        hub.publish(MediaEvent::Video(frame(false, 1, 9000)));
        match rx.try_recv() {
            Ok(MediaEvent::Video(f)) => assert_eq!(f.au.timestamp, 9000),
            other => panic!("{other:?}"),
        }
        // A new keyframe restarts the cache.
        hub.publish(MediaEvent::Video(frame(true, 1, 12000)));
        assert_eq!(hub.gop_frames().len(), 1);
        // A new session's non-keyframe drops the old GOP.
        hub.publish(MediaEvent::Video(frame(false, 2, 0)));
        assert!(hub.gop_frames().is_empty());
        hub.publish(MediaEvent::Video(frame(true, 2, 100)));
        hub.clear_gop();
        assert!(hub.gop_frames().is_empty());
    }
}
