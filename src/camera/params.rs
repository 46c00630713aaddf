//! What one RTSP session with a camera is given: how media is carried
//! ([`Carrier`]), the camera's settings for the session ([`SessionParams`]),
//! the shared things it writes to ([`SessionContext`]), and how it ended
//! ([`SessionOutcome`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::error::SessionError;
use super::hub::Hub;
use super::setup::auto_network_cache;
use super::stats::CameraStats;
use super::CameraStatus;
use crate::config::CameraConfig;
use crate::credentials::Credentials;
use crate::h264::repair::OnDamage;
use crate::onvif::OnvifClient;

/// No RTP (or no complete picture) this long while playing ends a session.
pub const MEDIA_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP connect (and TLS handshake) limit.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How media is carried in one session (auto is resolved by the supervisor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// Interleaved in the RTSP connection.
    Tcp,
    /// UDP port pairs.
    Udp,
}

impl Carrier {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Tcp => "tcp",
            Carrier::Udp => "udp",
        }
    }
}

/// What one session needs to know.
#[derive(Clone, Debug)]
pub struct SessionParams {
    /// `rtsp://` URL without credentials.
    pub url: Url,
    /// User name and password.
    pub credentials: Option<Credentials>,
    /// TCP or UDP for media.
    pub carrier: Carrier,
    /// Fail with [`SessionError::NoUdpMedia`] when UDP delivers nothing this
    /// long after PLAY (set in `auto` mode so the supervisor falls back).
    pub udp_probe: Option<Duration>,
    /// No RTP this long while playing means the session is dead.
    pub media_timeout: Duration,
    /// TCP connect limit.
    pub connect_timeout: Duration,
    /// Jitter buffer latency.
    pub network_cache: Duration,
    /// SO_RCVBUF to ask for on the media sockets.
    pub socket_buffer_bytes: usize,
    /// What the repair gate does with damaged pictures.
    pub on_damage: OnDamage,
    /// How long the picture may stay frozen after damage before the session
    /// is restarted; `None`: automatic (see
    /// [`crate::config::refresh_timeout_for`]).
    pub refresh_timeout: Option<Duration>,
    /// ONVIF client for SetSynchronizationPoint, shared across sessions so
    /// its discovery is cached.
    pub onvif: Option<Arc<tokio::sync::Mutex<OnvifClient>>>,
    /// `rtsps://` only: check the camera's certificate (default true).
    pub tls_verify: bool,
}

impl SessionParams {
    /// A camera at `url` with every setting at its configuration default
    /// (`camgate probe`, tests).
    pub fn new(url: Url, credentials: Option<Credentials>, carrier: Carrier) -> Self {
        SessionParams {
            url,
            credentials,
            carrier,
            udp_probe: None,
            media_timeout: MEDIA_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            network_cache: auto_network_cache(carrier),
            socket_buffer_bytes: crate::config::DEFAULT_SOCKET_BUFFER_BYTES,
            on_damage: OnDamage::default(),
            refresh_timeout: None,
            onvif: None,
            tls_verify: true,
        }
    }

    /// Camera `cfg` pulled from `url` (its own, a redirect's or the
    /// simulator's) over `carrier`.
    pub fn for_camera(cfg: &CameraConfig, url: Url, carrier: Carrier) -> Self {
        SessionParams {
            network_cache: cfg.network_cache(carrier == Carrier::Udp),
            socket_buffer_bytes: cfg.socket_buffer_bytes,
            on_damage: cfg.on_damage,
            refresh_timeout: cfg.refresh_timeout,
            tls_verify: cfg.tls_verify,
            ..SessionParams::new(url, cfg.credentials.clone(), carrier)
        }
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// Cancelled; TEARDOWN was sent.
    Stopped,
    /// The camera moved; connect there.
    Redirect(Url),
    /// Failed.
    Failed(SessionError),
}

/// The result of [`run_session`].
#[derive(Debug)]
pub struct SessionOutcome {
    /// How it ended.
    pub end: SessionEnd,
    /// How long media was playing (zero if it never did).
    pub played: Duration,
}

/// Shared things a session writes to.
pub struct SessionContext<'a> {
    /// The camera's fan-out.
    pub hub: &'a Hub,
    /// The camera's counters.
    pub stats: &'a CameraStats,
    /// The camera's visible status.
    pub status: &'a watch::Sender<CameraStatus>,
    /// How many sessions this camera started, this one included: each
    /// session gives consumers a new range of timelines, so they re-anchor
    /// timestamps.
    pub session_number: u64,
    /// Stops the session (TEARDOWN is sent).
    pub cancel: &'a CancellationToken,
}
