//! Cameras as supervised tasks: the session driver around the sans-IO RTSP
//! client (connection, stream setup, UDP ingest, deadlines), the camera
//! task with backoff, the supervisor's registry, the hub that fans media
//! out, and each camera's visible state and counters.

pub mod codec;
mod connect;
pub mod consumers;
mod demand;
mod error;
pub mod hub;
mod ingest;
mod media;
mod params;
pub mod remote;
pub mod session;
mod setup;
pub mod stats;
pub mod supervisor;
mod task;
mod udp;
pub mod watchdog;

use std::time::SystemTime;

use serde::Serialize;

pub use consumers::{Consumer, ConsumerGuard, ConsumerKind, ConsumerRegistry};
pub use hub::{AudioPacket, Hub, MediaEvent, StreamInfo, VideoFrame};
pub use stats::CameraStats;
pub use supervisor::{CameraHandle, Supervisor};

/// What a camera is doing now, as shown by the API, logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// Connecting or negotiating the RTSP session.
    Connecting,
    /// Media is flowing.
    Playing,
    /// Waiting before the next attempt after a failure.
    Backoff,
    /// The camera refused the credentials; retried with backoff.
    Unauthorized,
    /// The camera has no stream at the configured path.
    NotFound,
    /// The camera's address did not accept a connection.
    Unreachable,
    /// The camera sends no codec camgate can republish (e.g. MJPEG only).
    UnsupportedCodec,
    /// Disabled in the configuration, or the gateway is stopping.
    Stopped,
    /// An on-demand camera that nobody watches: not connected until a
    /// viewer or consumer wants it.
    Idle,
}

impl CameraState {
    /// Every state, in a fixed order (the metrics' state label set).
    pub const ALL: [CameraState; 9] = [
        CameraState::Connecting,
        CameraState::Playing,
        CameraState::Backoff,
        CameraState::Unauthorized,
        CameraState::NotFound,
        CameraState::Unreachable,
        CameraState::UnsupportedCodec,
        CameraState::Stopped,
        CameraState::Idle,
    ];

    /// The snake_case name used in the API and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CameraState::Connecting => "connecting",
            CameraState::Playing => "playing",
            CameraState::Backoff => "backoff",
            CameraState::Unauthorized => "unauthorized",
            CameraState::NotFound => "not_found",
            CameraState::Unreachable => "unreachable",
            CameraState::UnsupportedCodec => "unsupported_codec",
            CameraState::Stopped => "stopped",
            CameraState::Idle => "idle",
        }
    }
}

/// A camera's visible status, published by its task through a watch channel.
#[derive(Clone, Debug, Serialize)]
pub struct CameraStatus {
    /// Current state.
    pub state: CameraState,
    /// When the state was entered.
    #[serde(with = "unix_seconds")]
    pub since: SystemTime,
    /// The last error as a sentence (credentials redacted), if any.
    pub last_error: Option<String>,
    /// The transport of the current or last session (`tcp` or `udp`).
    pub transport: Option<&'static str>,
    /// Video codec and resolution once known, e.g. `H264 640x360`.
    pub video: Option<String>,
    /// Audio codec if the camera sends one, e.g. `PCMU/8000`.
    pub audio: Option<String>,
    /// The `Server` header or SDP tool name of the camera.
    pub server: Option<String>,
    /// The SDP the camera sent, with credentials redacted.
    pub sdp: Option<String>,
    /// Health warnings about how the camera is set up, as sentences (e.g.
    /// B-frames), each once.
    pub warnings: Vec<String>,
}

impl CameraStatus {
    /// Adds a health warning unless it is already there.
    pub fn warn(&mut self, warning: &str) {
        if !self.warnings.iter().any(|w| w == warning) {
            self.warnings.push(warning.to_string());
        }
    }

    /// A fresh status in `state`.
    pub fn new(state: CameraState) -> Self {
        CameraStatus {
            state,
            since: SystemTime::now(),
            last_error: None,
            transport: None,
            video: None,
            audio: None,
            server: None,
            sdp: None,
            warnings: Vec::new(),
        }
    }
}

pub(crate) mod unix_seconds {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        s.serialize_f64((secs * 1000.0).round() / 1000.0)
    }
}
