//! The running cameras, one supervised task each: run a session, and when
//! it ends decide what next (redirect, UDP→TCP fallback, backoff with
//! jitter), keeping the camera's state visible. Cameras are added, removed
//! and restarted while the gateway runs (API, hot reload); an on-demand
//! camera is pulled only while a session wants it. Consumers (RTP egress,
//! viewers) hang off the camera's hub, which outlives sessions, so a
//! reconnect is invisible to them.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use url::Url;

use super::session::{
    run_session, Carrier, SessionContext, SessionEnd, SessionError, SessionParams,
};
use super::consumers::{new_consumer_id, Consumer, ConsumerKind, ConsumerRegistry};
use super::{CameraState, CameraStats, CameraStatus, Hub};
use crate::config::{CameraConfig, TransportMode};
use crate::onvif::OnvifClient;
use crate::redact::redact_url;
use crate::reload::ConfigStore;
use crate::sim::{SimOptions, SimServer};

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
/// How long a stopped session may take to send TEARDOWN, and a removed
/// camera's tasks to end, before they are abandoned.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Everything the rest of the gateway may touch of a running camera. Cheap
/// to clone.
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
    /// The camera's token: cancelled when the camera is removed or the
    /// gateway stops. Sessions take child tokens of it, so they end with
    /// the camera.
    pub cancel: CancellationToken,
    /// Its viewers and RTP consumers.
    pub consumers: Arc<ConsumerRegistry>,
}

/// Why a camera could not be added, removed or restarted.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A camera with this id is already running.
    #[error("a camera with id {0:?} already exists")]
    Duplicate(String),
    /// No camera has this id.
    #[error("no camera with id {0:?}")]
    NotFound(String),
    /// The camera is disabled: there is no session to restart.
    #[error("camera {0:?} is disabled")]
    Disabled(String),
    /// The in-process simulator a `sim://` camera needs did not start.
    #[error("camera {id:?}: cannot start the simulator: {error}")]
    Simulator {
        /// The camera.
        id: String,
        /// The socket error.
        error: std::io::Error,
    },
    /// The gateway is stopping.
    #[error("the gateway is stopping")]
    Stopping,
}

/// What the supervisor keeps of a camera beside its handle.
#[derive(Debug)]
struct Entry {
    /// What the rest of the gateway sees.
    handle: CameraHandle,
    /// The camera task and its RTP output tasks (closed once spawned), to
    /// wait for them on removal.
    tasks: TaskTracker,
    /// Asks the camera task for a fresh session.
    restart: Arc<Notify>,
    /// Stops the camera's own simulator (a `sim://` camera with
    /// credentials), after the camera's TEARDOWN.
    sim: Option<CancellationToken>,
}

/// The running cameras. Shared (`Arc`) between the HTTP handlers, the
/// reloader and the gateway; every method takes `&self`.
#[derive(Debug)]
pub struct Supervisor {
    /// Parent of every camera's token; cancelled when the gateway stops.
    root: CancellationToken,
    /// The cameras, in configuration order (file, then API additions).
    cameras: RwLock<Vec<Entry>>,
    /// Every camera, consumer and simulator task, for [`Supervisor::join`].
    tracker: TaskTracker,
    /// The simulator shared by `sim://` cameras without credentials,
    /// started with the first of them.
    open_sim: tokio::sync::Mutex<Option<SocketAddr>>,
    /// The configuration files, when the cameras come from one (API
    /// additions are validated against it and saved beside it).
    store: Option<Arc<ConfigStore>>,
}

impl Supervisor {
    /// A supervisor with no camera, whose cameras stop when `root` is
    /// cancelled.
    pub fn new(root: &CancellationToken) -> Supervisor {
        Supervisor {
            root: root.clone(),
            cameras: RwLock::new(Vec::new()),
            tracker: TaskTracker::new(),
            open_sim: tokio::sync::Mutex::new(None),
            store: None,
        }
    }

    /// Attaches the configuration files the cameras come from.
    pub fn with_store(mut self, store: Arc<ConfigStore>) -> Supervisor {
        self.store = Some(store);
        self
    }

    /// The configuration files, if attached.
    pub fn store(&self) -> Option<&Arc<ConfigStore>> {
        self.store.as_ref()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        self.cameras.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Entry>> {
        self.cameras.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a camera (its task and its `rtp_out` consumers when enabled,
    /// and the simulator a `sim://` camera needs) after the others.
    pub async fn add(&self, cfg: CameraConfig) -> Result<CameraHandle, SupervisorError> {
        self.install(cfg, None).await
    }

    /// Stops camera `cfg.id` as [`Supervisor::remove`] does, and starts it
    /// again with `cfg` in the same place. It stays listed meanwhile
    /// (`stopped` while the old session ends).
    pub async fn replace(&self, cfg: CameraConfig) -> Result<CameraHandle, SupervisorError> {
        let (old_hub, cancel, tasks, sim) = {
            let cameras = self.read();
            let e = cameras
                .iter()
                .find(|e| e.handle.config.id == cfg.id)
                .ok_or_else(|| SupervisorError::NotFound(cfg.id.clone()))?;
            (
                e.handle.hub.clone(),
                e.handle.cancel.clone(),
                e.tasks.clone(),
                e.sim.clone(),
            )
        };
        cancel.cancel();
        if tokio::time::timeout(STOP_GRACE, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(camera = %cfg.id, "the camera's tasks did not stop in time");
        }
        if let Some(sim) = sim {
            sim.cancel();
        }
        self.install(cfg, Some(old_hub)).await
    }

    /// Starts a camera: after the others, or in the place of the camera
    /// whose hub is `replacing` (stopped already).
    async fn install(
        &self,
        cfg: CameraConfig,
        replacing: Option<Arc<Hub>>,
    ) -> Result<CameraHandle, SupervisorError> {
        if self.root.is_cancelled() {
            return Err(SupervisorError::Stopping);
        }
        if replacing.is_none() && self.camera(&cfg.id).is_some() {
            return Err(SupervisorError::Duplicate(cfg.id));
        }
        let (url, sim) = if cfg.enabled {
            let (url, sim) = self.source(&cfg).await?;
            (Some(url), sim)
        } else {
            (None, None)
        };
        let cfg = Arc::new(cfg);
        let hub = Arc::new(Hub::new());
        let stats = Arc::new(CameraStats::default());
        let initial = match (cfg.enabled, cfg.on_demand) {
            (false, _) => CameraState::Stopped,
            (true, true) => CameraState::Idle,
            (true, false) => CameraState::Connecting,
        };
        let (status_tx, status_rx) = watch::channel(CameraStatus::new(initial));
        let cancel = self.root.child_token();
        let consumers = Arc::new(ConsumerRegistry::default());
        let restart = Arc::new(Notify::new());
        let handle = CameraHandle {
            config: cfg.clone(),
            hub: hub.clone(),
            stats: stats.clone(),
            status: status_rx,
            cancel: cancel.clone(),
            consumers: consumers.clone(),
        };
        let tasks = TaskTracker::new();

        let mut cameras = self.write();
        let place = replacing.and_then(|old| {
            cameras
                .iter()
                .position(|e| Arc::ptr_eq(&e.handle.hub, &old))
        });
        if place.is_none() && cameras.iter().any(|e| e.handle.config.id == cfg.id) {
            // Another add of the same id won the race.
            if let Some(sim) = sim {
                sim.cancel();
            }
            return Err(SupervisorError::Duplicate(cfg.id.clone()));
        }
        if let Some(url) = url {
            let span = tracing::info_span!("camera", id = %cfg.id);
            for out in &cfg.rtp_out {
                let guard = consumers.register(Consumer::new(
                    new_consumer_id(),
                    ConsumerKind::Rtp,
                    cfg.id.clone(),
                    None,
                    cancel.child_token(),
                ));
                let task = crate::egress::rtp::run_rtp_out(
                    out.clone(),
                    cfg.rtp_payload_size,
                    hub.clone(),
                    stats.clone(),
                    guard,
                );
                self.tracker
                    .spawn(tasks.track_future(task.instrument(span.clone())));
            }
            let task = run_camera(CameraTask {
                cfg: cfg.clone(),
                url,
                hub,
                stats,
                status: status_tx,
                consumers,
                restart: restart.clone(),
                cancel,
            });
            self.tracker
                .spawn(tasks.track_future(task.instrument(span)));
        }
        tasks.close();
        let entry = Entry {
            handle: handle.clone(),
            tasks,
            restart,
            sim,
        };
        match place {
            Some(i) => cameras[i] = entry,
            None => cameras.push(entry),
        }
        Ok(handle)
    }

    /// The `rtsp://` URL camera `cfg` is pulled from: its own, or for
    /// `sim://NAME` the in-process simulator's (started now if needed;
    /// the token stops a simulator of this camera alone).
    async fn source(
        &self,
        cfg: &CameraConfig,
    ) -> Result<(Url, Option<CancellationToken>), SupervisorError> {
        if cfg.url.scheme() != "sim" {
            return Ok((cfg.url.clone(), None));
        }
        let sim_error = |error| SupervisorError::Simulator {
            id: cfg.id.clone(),
            error,
        };
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (addr, token) = if cfg.credentials.is_some() {
            // A camera with credentials gets a simulator that demands them.
            let options = SimOptions {
                credentials: cfg.credentials.clone(),
                ..Default::default()
            };
            let server = SimServer::bind(loopback, options)
                .await
                .map_err(sim_error)?;
            let addr = server.local_addr();
            let token = self.root.child_token();
            self.tracker.spawn(server.run(token.clone()));
            (addr, Some(token))
        } else {
            let mut open = self.open_sim.lock().await;
            let addr = match *open {
                Some(addr) => addr,
                None => {
                    let server = SimServer::bind(loopback, SimOptions::default())
                        .await
                        .map_err(sim_error)?;
                    let addr = server.local_addr();
                    self.tracker.spawn(server.run(self.root.clone()));
                    *open = Some(addr);
                    addr
                }
            };
            (addr, None)
        };
        let url = sim_url(cfg, addr)
            .map_err(|e| sim_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        Ok((url, token))
    }

    /// Stops and forgets a camera: its session ends with TEARDOWN, its RTP
    /// outputs and viewers end. Returns once its tasks ended (at most a
    /// couple of seconds).
    pub async fn remove(&self, id: &str) -> Result<(), SupervisorError> {
        let entry = {
            let mut cameras = self.write();
            let i = cameras
                .iter()
                .position(|e| e.handle.config.id == id)
                .ok_or_else(|| SupervisorError::NotFound(id.to_string()))?;
            cameras.remove(i)
        };
        entry.handle.cancel.cancel();
        if tokio::time::timeout(STOP_GRACE, entry.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(camera = id, "the camera's tasks did not stop in time");
        }
        if let Some(sim) = entry.sim {
            sim.cancel();
        }
        tracing::info!(camera = id, "camera removed");
        Ok(())
    }

    /// Ends the camera's session (TEARDOWN) and starts a fresh one at once,
    /// forgetting the backoff and the UDP→TCP fallback. Its consumers and
    /// viewers stay. An idle on-demand camera stays idle.
    pub fn restart(&self, id: &str) -> Result<(), SupervisorError> {
        let cameras = self.read();
        let entry = cameras
            .iter()
            .find(|e| e.handle.config.id == id)
            .ok_or_else(|| SupervisorError::NotFound(id.to_string()))?;
        if !entry.handle.config.enabled {
            return Err(SupervisorError::Disabled(id.to_string()));
        }
        entry.restart.notify_one();
        Ok(())
    }

    /// Puts the cameras named in `ids` first, in that order; the others
    /// keep their order after them.
    pub fn reorder(&self, ids: &[&str]) {
        let mut cameras = self.write();
        cameras.sort_by_key(|e| {
            ids.iter()
                .position(|id| *id == e.handle.config.id)
                .unwrap_or(usize::MAX)
        });
    }

    /// A camera by id.
    pub fn camera(&self, id: &str) -> Option<CameraHandle> {
        self.read()
            .iter()
            .find(|e| e.handle.config.id == id)
            .map(|e| e.handle.clone())
    }

    /// All cameras, in configuration order.
    pub fn cameras(&self) -> Vec<CameraHandle> {
        self.read().iter().map(|e| e.handle.clone()).collect()
    }

    /// Waits until every camera, consumer and simulator task has ended
    /// (after the root token was cancelled).
    pub async fn join(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// The simulator URL of a `sim://NAME` camera served at `addr`.
fn sim_url(cfg: &CameraConfig, addr: SocketAddr) -> Result<Url, String> {
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

/// What a camera task owns.
struct CameraTask {
    cfg: Arc<CameraConfig>,
    /// Where to pull from (the simulator's URL for `sim://`).
    url: Url,
    hub: Arc<Hub>,
    stats: Arc<CameraStats>,
    status: watch::Sender<CameraStatus>,
    /// Watched for demand (on-demand cameras).
    consumers: Arc<ConsumerRegistry>,
    /// Restart requests.
    restart: Arc<Notify>,
    /// The camera's token.
    cancel: CancellationToken,
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

/// Whether anyone wants an on-demand camera: its session count, and since
/// when it has been zero.
struct Demand {
    /// Session count; `None` for a camera that is always pulled.
    count: Option<watch::Receiver<usize>>,
    idle_timeout: Duration,
    /// When the count last dropped to zero; kept across sessions and
    /// backoff waits so the idle timeout runs from the last departure.
    zero_since: Option<Instant>,
}

impl Demand {
    fn new(cfg: &CameraConfig, consumers: &ConsumerRegistry) -> Demand {
        Demand {
            count: cfg.on_demand.then(|| consumers.watch_count()),
            idle_timeout: cfg.idle_timeout,
            zero_since: None,
        }
    }

    /// Resolves once at least one session wants the camera (at once for a
    /// camera that is always pulled).
    async fn wanted(&mut self) {
        let Some(count) = &mut self.count else {
            return;
        };
        loop {
            if *count.borrow_and_update() > 0 {
                self.zero_since = None;
                return;
            }
            if count.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Resolves once no session has wanted the camera for `idle_timeout`
    /// (never for a camera that is always pulled). Cancel-safe.
    async fn lost(&mut self) {
        let Some(count) = &mut self.count else {
            return std::future::pending().await;
        };
        loop {
            let changed = if *count.borrow_and_update() > 0 {
                self.zero_since = None;
                count.changed().await
            } else {
                let since = *self.zero_since.get_or_insert_with(Instant::now);
                tokio::select! {
                    _ = tokio::time::sleep_until(since + self.idle_timeout) => return,
                    changed = count.changed() => changed,
                }
            };
            if changed.is_err() {
                return std::future::pending().await;
            }
        }
    }
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
async fn run_camera(task: CameraTask) {
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
    let mut generation = 0u64;
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
        // In auto mode: whether UDP failed for this camera (remembered
        // until the gateway restarts, the camera is restarted or goes idle).
        let mut udp_failed = false;
        let mut backoff = BACKOFF_MIN;
        let mut redirects = 0;
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
            params.on_damage = cfg.on_damage;
            params.refresh_timeout = cfg.refresh_timeout;
            params.onvif = onvif.clone();
            params.tls_verify = cfg.tls_verify;
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
            // The session's own token, so a restart or going idle ends this
            // session without stopping the camera.
            let attempt = cancel.child_token();
            let ctx = SessionContext {
                hub: &hub,
                stats: &stats,
                status: &status,
                generation,
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
                            udp_failed = false;
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
                        udp_failed = false;
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

    fn on_demand_config(idle_timeout: Duration) -> CameraConfig {
        let mut cfg = crate::config::Config::parse(
            "[[camera]]\nid = \"od\"\nurl = \"rtsp://127.0.0.1:9/x\"\non_demand = true\n",
            "test.toml",
        )
        .expect("valid")
        .cameras
        .remove(0);
        cfg.idle_timeout = idle_timeout;
        cfg
    }

    fn viewer() -> Consumer {
        Consumer::new(
            new_consumer_id(),
            ConsumerKind::Viewer,
            "od".into(),
            None,
            CancellationToken::new(),
        )
    }

    /// Whether `f` is still pending after `wait`.
    async fn pending_for<F: std::future::Future>(wait: Duration, f: F) -> bool {
        tokio::time::timeout(wait, f).await.is_err()
    }

    #[tokio::test]
    async fn demand_waits_for_a_session_and_times_out_after_the_last() {
        let idle = Duration::from_millis(300);
        let reg = Arc::new(ConsumerRegistry::default());
        let mut demand = Demand::new(&on_demand_config(idle), &reg);
        // Nobody: not wanted.
        assert!(pending_for(Duration::from_millis(200), demand.wanted()).await);
        let guard = reg.register(viewer());
        tokio::time::timeout(Duration::from_secs(5), demand.wanted())
            .await
            .expect("wanted once a session registered");
        // Watched: never lost.
        assert!(pending_for(Duration::from_millis(600), demand.lost()).await);
        drop(guard);
        let left = Instant::now();
        // An interrupted wait keeps the time of the departure.
        assert!(pending_for(Duration::from_millis(100), demand.lost()).await);
        demand.lost().await;
        assert!(left.elapsed() >= idle, "{:?}", left.elapsed());
        // A session that comes back within the timeout resets it.
        let guard = reg.register(viewer());
        assert!(pending_for(Duration::from_millis(600), demand.lost()).await);
        drop(guard);
        let left = Instant::now();
        demand.lost().await;
        assert!(left.elapsed() >= idle, "{:?}", left.elapsed());
    }

    #[tokio::test]
    async fn always_pulled_camera_is_always_wanted() {
        let reg = Arc::new(ConsumerRegistry::default());
        let mut cfg = on_demand_config(Duration::from_millis(100));
        cfg.on_demand = false;
        let mut demand = Demand::new(&cfg, &reg);
        demand.wanted().await;
        assert!(pending_for(Duration::from_millis(500), demand.lost()).await);
    }
}
