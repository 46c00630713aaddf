//! The registry of running cameras, one supervised task each (see
//! [`super::task`]): cameras are added, removed and restarted while the
//! gateway runs (API, hot reload). Consumers (RTP outputs, viewers) hang
//! off the camera's hub, which outlives sessions, so a reconnect is
//! invisible to them. What a camera feeds and where `sim://` cameras come
//! from are handed in by the layer above ([`OutputStarter`],
//! [`SourceResolver`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use url::Url;

use super::consumers::ConsumerRegistry;
use super::task::{run_camera, CameraTask};
use super::{CameraState, CameraStats, CameraStatus, Hub};
use crate::config::CameraConfig;

/// How long a stopped session may take to send TEARDOWN, and a removed
/// camera's tasks to end, before they are abandoned.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(2);

/// A task that runs beside a camera's session (an RTP output), ending when
/// the camera's token is cancelled.
pub type CameraTaskFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Starts the outputs a camera feeds from its hub (RTP egress) when the
/// camera starts; the layer above supplies it. They outlive sessions, so
/// an output keeps its SSRC and sequence across reconnects.
pub type OutputStarter = Arc<dyn Fn(&CameraHandle) -> Vec<CameraTaskFuture> + Send + Sync>;

/// Where a camera is pulled from when its URL is not `rtsp://` or
/// `rtsps://` (the layer above resolves `sim://` to a simulator).
#[derive(Debug)]
pub struct Source {
    /// The `rtsp://` URL to pull.
    pub url: Url,
    /// Cancelled after the camera is removed (and its TEARDOWN sent): stops
    /// what served this camera alone.
    pub stop: Option<CancellationToken>,
}

/// Resolves camera URLs of schemes the camera layer does not pull itself.
pub trait SourceResolver: Send + Sync {
    /// The source of `cfg`. Long-lived tasks it starts go to `tracker` and
    /// end with `root` (the gateway's token) or the returned `stop`.
    fn resolve<'a>(
        &'a self,
        cfg: &'a CameraConfig,
        root: &'a CancellationToken,
        tracker: &'a TaskTracker,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Source>> + Send + 'a>>;
}

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
    /// The source of a camera whose URL is not `rtsp://`/`rtsps://` could
    /// not be resolved (e.g. the in-process simulator of a `sim://` camera
    /// did not start), or there is no resolver for its scheme.
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
pub struct Supervisor {
    /// Parent of every camera's token; cancelled when the gateway stops.
    root: CancellationToken,
    /// The cameras, in configuration order (file, then API additions).
    cameras: RwLock<Vec<Entry>>,
    /// Every camera, consumer and simulator task, for [`Supervisor::join`].
    tracker: TaskTracker,
    /// Starts each camera's outputs; none without.
    outputs: Option<OutputStarter>,
    /// Resolves URLs other than `rtsp://`/`rtsps://`; none without.
    sources: Option<Arc<dyn SourceResolver>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("cameras", &self.read().len())
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor with no camera, whose cameras stop when `root` is
    /// cancelled.
    pub fn new(root: &CancellationToken) -> Supervisor {
        Supervisor {
            root: root.clone(),
            cameras: RwLock::new(Vec::new()),
            tracker: TaskTracker::new(),
            outputs: None,
            sources: None,
        }
    }

    /// Starts `outputs` for every camera that starts.
    pub fn with_outputs(mut self, outputs: OutputStarter) -> Supervisor {
        self.outputs = Some(outputs);
        self
    }

    /// Resolves camera URLs other than `rtsp://`/`rtsps://` with `sources`.
    pub fn with_sources(mut self, sources: Arc<dyn SourceResolver>) -> Supervisor {
        self.sources = Some(sources);
        self
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        self.cameras.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Entry>> {
        self.cameras.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a camera (its task and its outputs when enabled, and the
    /// source a `sim://` camera needs) after the others.
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
            if let Some(outputs) = &self.outputs {
                for task in outputs(&handle) {
                    self.tracker
                        .spawn(tasks.track_future(task.instrument(span.clone())));
                }
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

    /// The `rtsp://` URL camera `cfg` is pulled from: its own, or the one
    /// the resolver gives (the token stops a source of this camera alone).
    async fn source(
        &self,
        cfg: &CameraConfig,
    ) -> Result<(Url, Option<CancellationToken>), SupervisorError> {
        if matches!(cfg.url.scheme(), "rtsp" | "rtsps") {
            return Ok((cfg.url.clone(), None));
        }
        let error = |error| SupervisorError::Simulator {
            id: cfg.id.clone(),
            error,
        };
        let Some(sources) = &self.sources else {
            return Err(error(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("no source for {}:// URLs here", cfg.url.scheme()),
            )));
        };
        let source = sources
            .resolve(cfg, &self.root, &self.tracker)
            .await
            .map_err(error)?;
        Ok((source.url, source.stop))
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
