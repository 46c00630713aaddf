//! A camera's fan-out point: the session publishes frames, every consumer
//! subscribes. Publishing never waits: a consumer that falls behind loses
//! frames (tokio broadcast lag) and must resume at the next keyframe.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{broadcast, watch};

use crate::h264::{AccessUnit, ParameterSets};

/// How many media events a consumer may be behind before it lags. At 25 fps
/// with audio every 20 ms this is several seconds.
const CAPACITY: usize = 1024;

/// One video picture from the camera.
#[derive(Debug)]
pub struct VideoFrame {
    /// The access unit, payloads shared with every consumer.
    pub au: AccessUnit,
    /// Session number: changes when the camera session restarts, so consumers
    /// re-anchor their timestamps.
    pub generation: u64,
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
    /// Session number, as for video.
    pub generation: u64,
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
    /// Video parameter sets, from the SDP or the stream.
    pub video_params: Option<ParameterSets>,
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

/// The fan-out of one camera.
#[derive(Debug)]
pub struct Hub {
    /// Media for consumers.
    tx: broadcast::Sender<MediaEvent>,
    /// Stream descriptions of the current session.
    info: watch::Sender<StreamInfo>,
}

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
        Hub { tx, info }
    }

    /// Publishes to whoever listens; never waits.
    pub fn publish(&self, event: MediaEvent) {
        // No receivers is not an error: the camera may have no consumer yet.
        let _ = self.tx.send(event);
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

    /// Watches the stream description.
    pub fn watch_info(&self) -> watch::Receiver<StreamInfo> {
        self.info.subscribe()
    }
}
