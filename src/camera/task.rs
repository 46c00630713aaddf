//! A camera's whole life as one task: sessions one after the other, and
//! when one ends, what next (redirect, UDP→TCP fallback in `auto` mode,
//! backoff with jitter, a restart, going idle when nobody wants an
//! on-demand camera), keeping the camera's state visible.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::consumers::ConsumerRegistry;
use super::demand::Demand;
use super::session::{
    run_session, Carrier, SessionContext, SessionEnd, SessionError, SessionParams,
};
use super::{CameraState, CameraStats, CameraStatus, Hub};
use crate::config::{CameraConfig, TransportMode};
use crate::onvif::OnvifClient;
use crate::redact::redact_url;

/// First wait after a failure.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Playing this long resets the backoff to its minimum.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
/// How long UDP may stay silent after PLAY in `auto` mode before TCP.
pub const AUTO_UDP_PROBE: Duration = Duration::from_secs(3);
/// Redirects followed in a row before giving up.
const MAX_REDIRECTS: u32 = 5;
/// How long a stopped session may take to send TEARDOWN before it is
/// abandoned.
const STOP_GRACE: Duration = super::supervisor::STOP_GRACE;

/// What a camera task owns.
pub(super) struct CameraTask {
    pub cfg: Arc<CameraConfig>,
    /// Where to pull from (the simulator's URL for `sim://`).
    pub url: Url,
    pub hub: Arc<Hub>,
    pub stats: Arc<CameraStats>,
    pub status: watch::Sender<CameraStatus>,
    /// Watched for demand (on-demand cameras).
    pub consumers: Arc<ConsumerRegistry>,
    /// Restart requests.
    pub restart: Arc<Notify>,
    /// The camera's token.
    pub cancel: CancellationToken,
}

/// Why a session (or the wait before the next) is cut short.
enum Interruption {
    /// The camera is removed or the gateway stops.
    Stop,
    /// A restart was asked for.
    Restart,
    /// An on-demand camera nobody watched for `idle_timeout`.
    Idle,
}

/// The first of: the camera stops, a restart is asked for, nobody wants an
/// on-demand camera any more.
async fn interruption(
    cancel: &CancellationToken,
    restart: &Notify,
    demand: &mut Demand,
) -> Interruption {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Interruption::Stop,
        _ = restart.notified() => Interruption::Restart,
        _ = demand.lost() => Interruption::Idle,
    }
}

/// A camera's whole life: sessions until cancelled (for an on-demand
/// camera, while it is wanted, idle in between).
pub(super) async fn run_camera(task: CameraTask) {
    let CameraTask {
        cfg,
        url: configured,
        hub,
        stats,
        status,
        consumers,
        restart,
        cancel,
    } = task;
    // Shared by the camera's sessions so ONVIF discovery is done once.
    let onvif = cfg.onvif_url.clone().map(|u| {
        Arc::new(tokio::sync::Mutex::new(OnvifClient::new(
            u,
            cfg.credentials.clone(),
        )))
    });
    let mut demand = Demand::new(&cfg, &consumers);
    // Sessions started, for their timelines (see SessionContext).
    let mut sessions = 0u64;
    // In auto mode: whether UDP delivered nothing for this camera. Kept for
    // the task's life (restarts, reconnects, idle periods), so the camera
    // goes straight to TCP until the gateway restarts or the camera's
    // configuration changes (which starts a new task).
    let mut udp_failed = false;
    'camera: loop {
        if cfg.on_demand {
            set_state(&status, CameraState::Idle, None);
            tracing::info!("idle until a viewer or consumer wants the camera");
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break 'camera,
                // Idle is already a fresh start.
                _ = restart.notified() => continue 'camera,
                _ = demand.wanted() => {}
            }
            tracing::info!("wanted: pulling the camera");
        }
        let mut url = configured.clone();
        let mut backoff = BACKOFF_MIN;
        let mut redirects = 0;
        loop {
            let carrier = match cfg.transport {
                TransportMode::Tcp => Carrier::Tcp,
                TransportMode::Udp => Carrier::Udp,
                TransportMode::Auto if udp_failed => Carrier::Tcp,
                TransportMode::Auto => Carrier::Udp,
            };
            let mut params = SessionParams::for_camera(&cfg, url.clone(), carrier);
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
            sessions += 1;
            tracing::info!(url = %redact_url(url.as_str()), transport = carrier.as_str(), "connecting");
            // The session's own token, so a restart or going idle ends this
            // session without stopping the camera.
            let attempt = cancel.child_token();
            let ctx = SessionContext {
                hub: &hub,
                stats: &stats,
                status: &status,
                session_number: sessions,
                cancel: &attempt,
            };
            let session = run_session(&params, ctx);
            tokio::pin!(session);
            let ended = tokio::select! {
                outcome = &mut session => Ok(outcome),
                why = interruption(&cancel, &restart, &mut demand) => Err(why),
            };
            let outcome = match ended {
                Ok(outcome) => outcome,
                Err(why) => {
                    attempt.cancel();
                    // A playing session sends TEARDOWN at once; one still
                    // connecting is abandoned after the grace.
                    let _ = tokio::time::timeout(STOP_GRACE, &mut session).await;
                    hub.clear_gop();
                    match why {
                        Interruption::Stop => break 'camera,
                        Interruption::Idle => {
                            tracing::info!(
                                idle_timeout_s = cfg.idle_timeout.as_secs_f64(),
                                "nobody watches: session stopped"
                            );
                            continue 'camera;
                        }
                        Interruption::Restart => {
                            stats.add_reconnect("restart");
                            tracing::info!("restart requested");
                            backoff = BACKOFF_MIN;
                            redirects = 0;
                            url = configured.clone();
                            continue;
                        }
                    }
                }
            };
            // The next session's viewers must not start from this one's GOP.
            hub.clear_gop();
            if outcome.played >= BACKOFF_RESET_AFTER {
                backoff = BACKOFF_MIN;
            }
            match outcome.end {
                SessionEnd::Stopped => break 'camera,
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
                    tracing::warn!(
                        "no media over UDP within {secs} s: switching this camera to TCP"
                    );
                    udp_failed = true;
                    continue;
                }
                SessionEnd::Failed(SessionError::RefreshTimeout(waited)) => {
                    // The last resort: a new session starts with a keyframe.
                    // The wait before it already bounds the rate.
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
                _ = tokio::time::sleep(wait) => {}
                why = interruption(&cancel, &restart, &mut demand) => match why {
                    Interruption::Stop => break 'camera,
                    Interruption::Idle => continue 'camera,
                    Interruption::Restart => {
                        tracing::info!("restart requested");
                        backoff = BACKOFF_MIN;
                        redirects = 0;
                        url = configured.clone();
                    }
                },
            }
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
