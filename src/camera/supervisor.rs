//! One supervised task per camera: run a session, and when it ends decide
//! what next (redirect, UDP→TCP fallback, backoff with jitter), keeping the
//! camera's state visible. Consumers (RTP egress) hang off the camera's hub,
//! which outlives sessions, so a reconnect is invisible to them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use url::Url;

use super::session::{
    run_session, Carrier, SessionContext, SessionEnd, SessionError, SessionParams,
};
use super::sessions::{new_session_id, Session, SessionKind, SessionRegistry};
use super::{CameraState, CameraStats, CameraStatus, Hub};
use crate::config::{CameraConfig, TransportMode};
use crate::h264::repair::OnDamage;
use crate::onvif::OnvifClient;
use crate::redact::redact_url;

/// First wait after a failure.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Playing this long resets the backoff to its minimum.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
/// How long UDP may stay silent after PLAY in `auto` mode before TCP.
const AUTO_UDP_PROBE: Duration = Duration::from_secs(3);
/// Redirects followed in a row before giving up.
const MAX_REDIRECTS: u32 = 5;

/// Everything the rest of the gateway may touch of a running camera.
#[derive(Debug, Clone)]
pub struct CameraHandle {
    /// The camera's configuration.
    pub config: Arc<CameraConfig>,
    /// Its fan-out.
    pub hub: Arc<Hub>,
    /// Its counters.
    pub stats: Arc<CameraStats>,
    /// Its visible status.
    pub status: watch::Receiver<CameraStatus>,
    /// Stops this camera's task and its consumers.
    pub cancel: CancellationToken,
    /// Its viewers and RTP consumers.
    pub sessions: Arc<SessionRegistry>,
}

/// Where `sim://` cameras are served.
#[derive(Debug, Clone, Default)]
pub struct SimEndpoints {
    /// Server of sim cameras without credentials.
    pub open: Option<SocketAddr>,
    /// Per-camera servers for sim cameras with credentials, by camera id.
    pub with_auth: BTreeMap<String, SocketAddr>,
}

/// The running cameras.
#[derive(Debug)]
pub struct Supervisor {
    /// By id.
    cameras: BTreeMap<String, CameraHandle>,
    /// Every camera and consumer task.
    tracker: TaskTracker,
}

impl Supervisor {
    /// Starts a task for every enabled camera (and its `rtp_out`
    /// consumers) under `root`.
    pub fn start(
        cameras: &[CameraConfig],
        sims: &SimEndpoints,
        root: &CancellationToken,
    ) -> Supervisor {
        let tracker = TaskTracker::new();
        let mut map = BTreeMap::new();
        for cfg in cameras {
            let cfg = Arc::new(cfg.clone());
            let hub = Arc::new(Hub::new());
            let stats = Arc::new(CameraStats::default());
            let initial = if cfg.enabled {
                CameraState::Connecting
            } else {
                CameraState::Stopped
            };
            let (status_tx, status_rx) = watch::channel(CameraStatus::new(initial));
            let cancel = root.child_token();
            let span = tracing::info_span!("camera", id = %cfg.id);
            let sessions = Arc::new(SessionRegistry::default());
            if cfg.enabled {
                for out in &cfg.rtp_out {
                    let guard = sessions.register(Session::new(
                        new_session_id(),
                        SessionKind::Rtp,
                        cfg.id.clone(),
                        None,
                        cancel.child_token(),
                    ));
                    tracker.spawn(
                        crate::egress::rtp::run_rtp_out(
                            out.clone(),
                            cfg.rtp_payload_size,
                            hub.clone(),
                            stats.clone(),
                            guard,
                        )
                        .instrument(span.clone()),
                    );
                }
                let url = resolve_sim(&cfg, sims);
                tracker.spawn(
                    run_camera(
                        cfg.clone(),
                        url,
                        hub.clone(),
                        stats.clone(),
                        status_tx,
                        cancel.clone(),
                    )
                    .instrument(span),
                );
            }
            map.insert(
                cfg.id.clone(),
                CameraHandle {
                    config: cfg,
                    hub,
                    stats,
                    status: status_rx,
                    cancel,
                    sessions,
                },
            );
        }
        tracker.close();
        Supervisor {
            cameras: map,
            tracker,
        }
    }

    /// A camera by id.
    pub fn camera(&self, id: &str) -> Option<&CameraHandle> {
        self.cameras.get(id)
    }

    /// All cameras, by id.
    pub fn cameras(&self) -> impl Iterator<Item = &CameraHandle> {
        self.cameras.values()
    }

    /// Waits until every camera and consumer task has ended (after the root
    /// token was cancelled).
    pub async fn join(&self) {
        self.tracker.wait().await;
    }
}

/// The `rtsp://` URL a camera is pulled from (`sim://NAME` maps to the
/// in-process simulator).
fn resolve_sim(cfg: &CameraConfig, sims: &SimEndpoints) -> Result<Url, String> {
    if cfg.url.scheme() != "sim" {
        return Ok(cfg.url.clone());
    }
    let addr = sims
        .with_auth
        .get(&cfg.id)
        .copied()
        .or(sims.open)
        .ok_or("the simulator is not running")?;
    let name = cfg.url.host_str().unwrap_or("sim");
    // `[camera.faults]` goes to the simulator as URL query keys, after any
    // written in the URL itself (so the table wins).
    let mut keys: Vec<String> = cfg.url.query().map(str::to_string).into_iter().collect();
    if let Some(faults) = &cfg.faults {
        keys.push(faults.to_query());
    }
    keys.retain(|k| !k.is_empty());
    let query = if keys.is_empty() {
        String::new()
    } else {
        format!("?{}", keys.join("&"))
    };
    Url::parse(&format!("rtsp://{addr}/{name}{query}")).map_err(|e| e.to_string())
}

/// A camera's whole life: sessions until cancelled.
async fn run_camera(
    cfg: Arc<CameraConfig>,
    url: Result<Url, String>,
    hub: Arc<Hub>,
    stats: Arc<CameraStats>,
    status: watch::Sender<CameraStatus>,
    cancel: CancellationToken,
) {
    let mut url = match url {
        Ok(u) => u,
        Err(e) => {
            set_state(&status, CameraState::Stopped, Some(e));
            return;
        }
    };
    let configured = url.clone();
    // Shared by the camera's sessions so ONVIF discovery is done once.
    let onvif = cfg.onvif_url.clone().map(|u| {
        Arc::new(tokio::sync::Mutex::new(OnvifClient::new(
            u,
            cfg.credentials.clone(),
        )))
    });
    // In auto mode: whether UDP failed for this camera (remembered until the
    // gateway restarts).
    let mut udp_failed = false;
    let mut backoff = BACKOFF_MIN;
    let mut redirects = 0;
    let mut generation = 0u64;
    loop {
        let carrier = match cfg.transport {
            TransportMode::Tcp => Carrier::Tcp,
            TransportMode::Udp => Carrier::Udp,
            TransportMode::Auto if udp_failed => Carrier::Tcp,
            TransportMode::Auto => Carrier::Udp,
        };
        let mut params = SessionParams::new(url.clone(), cfg.credentials.clone(), carrier);
        params.network_cache = cfg
            .network_cache_ms
            .map(|ms| Duration::from_millis(u64::from(ms)));
        params.socket_buffer_bytes = cfg.socket_buffer_bytes;
        params.on_damage = match cfg.on_damage {
            crate::config::OnDamage::DropUntilKeyframe => OnDamage::DropUntilKeyframe,
            crate::config::OnDamage::Forward => OnDamage::Forward,
        };
        params.refresh_timeout = cfg.refresh_timeout;
        params.onvif = onvif.clone();
        if cfg.transport == TransportMode::Auto && carrier == Carrier::Udp {
            params.udp_probe = Some(AUTO_UDP_PROBE);
        }
        status.send_modify(|s| {
            if s.state != CameraState::Connecting {
                s.state = CameraState::Connecting;
                s.since = SystemTime::now();
            }
        });
        generation += 1;
        tracing::info!(url = %redact_url(url.as_str()), transport = carrier.as_str(), "connecting");
        let ctx = SessionContext {
            hub: &hub,
            stats: &stats,
            status: &status,
            generation,
            cancel: &cancel,
        };
        let outcome = run_session(&params, ctx).await;
        if outcome.played >= BACKOFF_RESET_AFTER {
            backoff = BACKOFF_MIN;
        }
        match outcome.end {
            SessionEnd::Stopped => break,
            SessionEnd::Redirect(to) => {
                redirects += 1;
                stats.add_reconnect("redirect");
                if redirects <= MAX_REDIRECTS {
                    tracing::info!(to = %redact_url(to.as_str()), "redirected");
                    url = to;
                    continue;
                }
                let msg = format!("more than {MAX_REDIRECTS} redirects in a row");
                set_state(&status, CameraState::Backoff, Some(msg));
                url = configured.clone();
                redirects = 0;
            }
            SessionEnd::Failed(SessionError::NoUdpMedia(secs))
                if cfg.transport == TransportMode::Auto =>
            {
                stats.add_reconnect("no_udp_media");
                tracing::warn!("no media over UDP within {secs} s: switching this camera to TCP");
                udp_failed = true;
                continue;
            }
            SessionEnd::Failed(SessionError::RefreshTimeout(waited)) => {
                // The last resort: a new session starts with a keyframe. The
                // wait before it already bounds the rate.
                stats.add_reconnect("refresh_timeout");
                tracing::warn!(
                    "no clean keyframe {waited:.1} s after damage: restarting the session"
                );
                continue;
            }
            SessionEnd::Failed(e) => {
                stats.add_reconnect(e.reason());
                let msg = redact_url(&e.to_string());
                tracing::warn!(reason = e.reason(), error = %msg, retry_in_ms = backoff.as_millis() as u64, "session ended");
                set_state(&status, e.state(), Some(msg));
                redirects = 0;
                url = configured.clone();
            }
        }
        let wait = jitter(backoff);
        backoff = (backoff * 2).min(BACKOFF_MAX);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    set_state(&status, CameraState::Stopped, None);
}

fn set_state(status: &watch::Sender<CameraStatus>, state: CameraState, error: Option<String>) {
    status.send_modify(|s| {
        if s.state != state {
            s.state = state;
            s.since = SystemTime::now();
        }
        if error.is_some() {
            s.last_error = error;
        }
    });
}

/// `base` ±20 %, so cameras that failed together do not retry together.
fn jitter(base: Duration) -> Duration {
    let factor = 0.8 + rand::random::<f64>() * 0.4;
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..1000 {
            let j = jitter(Duration::from_secs(10));
            assert!(
                j >= Duration::from_secs(8) && j <= Duration::from_secs(12),
                "{j:?}"
            );
        }
    }
}
