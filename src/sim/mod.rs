//! Simulated cameras: an RTSP 1.0 server (RFC 2326) on loopback that serves
//! a looping embedded H.264 clip (RFC 6184) or H.265 clip (RFC 7798,
//! `?codec=h265`) and a PCMU beep (RFC 3551) to any path, over TCP
//! interleaved or UDP. The demo, the test fixture and the load generator,
//! so sessions share precomputed payloads and only write RTP headers.

mod auth;
mod clip;
mod conn;
mod control;
mod describe;
mod inject;
pub mod status;
mod stream;
mod udp;

pub use crate::config::faults;
pub mod onvif;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::camera::codec::VideoCodec;

pub use clip::{clip_info, clip_info_of, ClipInfo};
pub use control::{FaultCounts, FaultStats, KeyframeTrigger, LiveSessions};
pub use faults::Faults;

/// Settings of a sim server.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// User name and password every request but OPTIONS must carry (Digest,
    /// realm `camgate-sim`, or Basic). Default: none, no authentication.
    pub credentials: Option<crate::credentials::Credentials>,
    /// How long a UDP session lives without an RTSP request or RTCP packet
    /// from the client; also the `timeout` announced in `Session`.
    /// Default: 60 s, like most cameras.
    pub session_timeout: Duration,
    /// Faults every camera injects unless its URL query overrides them
    /// (`rtsp://host/NAME?truncate=0.02&seed=7`, keys as the fields of
    /// [`Faults`]). Default: none, PLI honoured.
    pub faults: Faults,
    /// The video codec every camera sends unless its URL query says
    /// otherwise (`rtsp://host/NAME?codec=h265`). Default: H.264.
    pub codec: VideoCodec,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            credentials: None,
            session_timeout: Duration::from_secs(60),
            faults: Faults::default(),
            codec: VideoCodec::default(),
        }
    }
}

/// Why a sim connection or session ended early. Logged, never returned to
/// the caller of [`SimServer::run`].
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Reading from or writing to the client failed.
    #[error("client {peer}: {source}")]
    Io {
        /// The client's address.
        peer: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The client sent a request larger than the 64 KiB limit.
    #[error("client {peer}: request larger than {limit} bytes")]
    RequestTooLarge {
        /// The client's address.
        peer: SocketAddr,
        /// The limit in bytes.
        limit: usize,
    },
    /// The client sent bytes that are neither an RTSP request nor a `$` frame.
    #[error("client {peer}: unparsable RTSP message")]
    BadRequest {
        /// The client's address.
        peer: SocketAddr,
    },
    /// The client did not take a frame's data within the write deadline.
    #[error("client {peer}: socket did not drain for {timeout:?}, dropping a slow reader")]
    SlowReader {
        /// The client's address.
        peer: SocketAddr,
        /// The write deadline.
        timeout: Duration,
    },
}

/// State shared by the server's connections and sessions.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The settings the server was bound with.
    options: SimOptions,
    /// Credential checker when `options.credentials` is set.
    auth: Option<auth::Authenticator>,
    /// UDP sessions by id: they outlive the RTSP connection that made them,
    /// so any connection can PLAY or TEARDOWN them.
    udp_sessions: Mutex<HashMap<String, Arc<udp::UdpHandle>>>,
    /// Every connection and session task, so `run` can wait for them.
    tracker: TaskTracker,
    /// Cancelled when the server stops.
    shutdown: CancellationToken,
    /// Origin of the millisecond liveness clocks of UDP sessions.
    epoch: Instant,
    /// Live sessions by camera, for the keyframe trigger.
    registry: Arc<control::Registry>,
    /// Counters of injected faults.
    stats: FaultStats,
}

impl Shared {
    /// Milliseconds since `epoch`, for liveness stamps.
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The UDP session `id`, if it exists.
    fn udp_session(&self, id: &str) -> Option<Arc<udp::UdpHandle>> {
        self.udp_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

/// An RTSP server of simulated cameras. Every path `/NAME` is a camera;
/// `?audio=0` leaves out the audio track, `?codec=h265` sends H.265.
#[derive(Debug)]
pub struct SimServer {
    /// The listening socket.
    listener: TcpListener,
    /// Its address (port resolved when bound to port 0).
    local_addr: SocketAddr,
    /// Settings, passed to connections at `run`.
    options: SimOptions,
    /// Live sessions by camera; made at bind so handles exist before `run`.
    registry: Arc<control::Registry>,
    /// Counters of injected faults; made at bind for the same reason.
    stats: FaultStats,
}

impl SimServer {
    /// Binds the RTSP listener. UDP media ports are bound per SETUP on the
    /// address the client connected to.
    pub async fn bind(addr: SocketAddr, options: SimOptions) -> std::io::Result<SimServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(SimServer {
            listener,
            local_addr,
            options,
            registry: Arc::default(),
            stats: FaultStats::default(),
        })
    }

    /// A handle that asks the live sessions of a camera for a keyframe;
    /// valid before and during [`SimServer::run`].
    pub fn keyframe_trigger(&self) -> KeyframeTrigger {
        KeyframeTrigger::new(self.registry.clone())
    }

    /// The live sessions of each camera of this server; a shared handle,
    /// valid before, during and after [`SimServer::run`].
    pub fn live_sessions(&self) -> LiveSessions {
        LiveSessions::new(self.registry.clone())
    }

    /// The counters of faults injected by this server's sessions; a shared
    /// handle, valid before, during and after [`SimServer::run`].
    pub fn fault_stats(&self) -> FaultStats {
        self.stats.clone()
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` is cancelled, then closes every connection
    /// and session and returns once their tasks have ended.
    pub async fn run(self, shutdown: CancellationToken) {
        // Parse the default clip before the first client waits on it.
        let _ = clip::clip(self.options.codec);
        let auth = self
            .options
            .credentials
            .clone()
            .map(|c| auth::Authenticator::new(c.username, c.password));
        let shared = Arc::new(Shared {
            options: self.options,
            auth,
            udp_sessions: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            shutdown: shutdown.clone(),
            epoch: Instant::now(),
            registry: self.registry,
            stats: self.stats,
        });
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        debug!(%peer, "sim: connection");
                        let shared2 = shared.clone();
                        shared.tracker.spawn(conn::serve(shared2, stream, peer));
                    }
                    Err(e) => {
                        // EMFILE and the like: back off instead of spinning.
                        warn!("sim: accept failed: {e}");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                },
            }
        }
        drop(self.listener);
        shared.tracker.close();
        shared.tracker.wait().await;
        shared
            .udp_sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
