//! Why an RTSP session with a camera ended other than by request, with the
//! camera state and the bounded metrics reason each failure maps to.

use std::net::SocketAddr;

use super::watchdog::Expired;
use super::CameraState;
use crate::rtsp::ClientError;

/// Why a session ended other than by request.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The host name did not resolve.
    #[error("cannot resolve camera host {host}: {reason}")]
    Resolve { host: String, reason: String },
    /// The TCP connection was refused or timed out.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    /// The TLS handshake of an `rtsps://` camera failed (the message names
    /// a certificate problem).
    #[error("{0}")]
    Tls(String),
    /// The RTSP exchange failed.
    #[error(transparent)]
    Rtsp(#[from] ClientError),
    /// The camera offers no H.264 video.
    #[error("camera sends no H.264 or H.265 video (it offers: {0}); camgate republishes H.264 and H.265")]
    UnsupportedCodec(String),
    /// The camera's video is of a codec camgate takes, in a form it does
    /// not (an H.265 stream with DONL).
    #[error("camera's video cannot be received: {0}")]
    UnsupportedStream(String),
    /// Playing, but no RTP arrived for a while.
    #[error("no RTP received for {0} s while playing")]
    MediaTimeout(u64),
    /// RTP arrives but no video picture completes (payloads that are not
    /// H.264 as described, or a flood of fragments).
    #[error("RTP arrives but no complete video picture for {0} s: the camera's video cannot be depacketized")]
    NoPictures(u64),
    /// UDP was negotiated but no packet arrived (firewall or NAT).
    #[error("no media arrived over UDP within {0} s (firewall or NAT?)")]
    NoUdpMedia(u64),
    /// The camera closed the connection.
    #[error("the camera closed the connection")]
    Closed,
    /// Damaged video and no clean keyframe for too long, despite refresh
    /// requests: a new session starts with a keyframe.
    #[error("no clean keyframe within {0:.1} s of damage despite refresh requests; restarting the session")]
    RefreshTimeout(f64),
    /// Reading or writing the connection failed.
    #[error("connection error: {0}")]
    Io(String),
}

impl From<Expired> for SessionError {
    fn from(e: Expired) -> Self {
        match e {
            Expired::NoMedia(t) => SessionError::MediaTimeout(t.as_secs()),
            Expired::NoPictures(t) => SessionError::NoPictures(t.as_secs()),
            Expired::NoUdpMedia(t) => SessionError::NoUdpMedia(t.as_secs()),
            Expired::RefreshTimeout(waited) => SessionError::RefreshTimeout(waited.as_secs_f64()),
        }
    }
}

impl SessionError {
    /// The visible state this failure puts the camera in.
    pub fn state(&self) -> CameraState {
        match self {
            SessionError::Resolve { .. } | SessionError::Connect { .. } => CameraState::Unreachable,
            SessionError::Rtsp(ClientError::Unauthorized { .. }) => CameraState::Unauthorized,
            SessionError::Rtsp(ClientError::NotFound { .. }) => CameraState::NotFound,
            SessionError::UnsupportedCodec(_) | SessionError::UnsupportedStream(_) => {
                CameraState::UnsupportedCodec
            }
            _ => CameraState::Backoff,
        }
    }

    /// A short fixed name for metrics labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SessionError::Resolve { .. } | SessionError::Connect { .. } => "unreachable",
            SessionError::Tls(_) => "tls_error",
            SessionError::Rtsp(ClientError::Unauthorized { .. }) => "unauthorized",
            SessionError::Rtsp(ClientError::NotFound { .. }) => "not_found",
            SessionError::Rtsp(ClientError::Timeout { .. }) => "rtsp_timeout",
            SessionError::Rtsp(_) => "rtsp_error",
            SessionError::UnsupportedCodec(_) | SessionError::UnsupportedStream(_) => {
                "unsupported_codec"
            }
            SessionError::MediaTimeout(_) | SessionError::NoPictures(_) => "media_timeout",
            SessionError::NoUdpMedia(_) => "no_udp_media",
            SessionError::Closed => "closed",
            SessionError::RefreshTimeout(_) => "refresh_timeout",
            SessionError::Io(_) => "io_error",
        }
    }
}
