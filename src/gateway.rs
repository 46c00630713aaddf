//! The whole gateway: the camera supervisor (handed its RTP outputs and the
//! simulators `sim://` cameras need, which the camera layer does not know),
//! the configuration reloader and the HTTP listener, stopped by one
//! cancellation token.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

use crate::camera::consumers::{new_consumer_id, Consumer, ConsumerKind};
use crate::camera::supervisor::{CameraTaskFuture, OutputStarter, Source, SourceResolver};
use crate::camera::{CameraHandle, Supervisor};
use crate::config::{CameraConfig, Config};
use crate::http::{self, AppState};
use crate::reload::ConfigStore;
use crate::sim::{SimOptions, SimServer};

/// How long stopping may take before tasks are abandoned.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long a node of a cluster may take to hand its cameras over when
/// asked to stop.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// Runs the gateway until `shutdown` is cancelled, then stops cameras (with
/// TEARDOWN) and waits for them, at most [`SHUTDOWN_GRACE`].
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), String> {
    run_with_store(config, None, shutdown).await
}

/// [`run`], with the configuration files `config` was read from (see
/// [`ConfigStore::open`]): reloaded on SIGHUP and when the file changes,
/// and where cameras added through the API are saved.
pub async fn run_with_store(
    config: Config,
    store: Option<Arc<ConfigStore>>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let listener = http::bind(config.server.listen).await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Reads the TLS files: a bad certificate stops the gateway here.
    let listener_setup = http::ListenerSetup::load(&config)?;

    let tasks = TaskTracker::new();
    // Cameras stop with their own token: a node of a cluster hands its
    // cameras over before they stop.
    let cameras_root = CancellationToken::new();
    let mut cluster = None;
    let supervisor = match &config.cluster {
        None => start_cameras(&config, &cameras_root).await?,
        Some(cluster_cfg) => {
            let gates = crate::cluster::OutputGates::default();
            let supervisor = Arc::new(
                Supervisor::new(&cameras_root)
                    .with_outputs(gates.wrap(rtp_outputs()))
                    .with_sources(Arc::new(Simulators::default())),
            );
            let runner = Arc::new(crate::cluster::SupervisorRunner::new(
                supervisor.clone(),
                gates,
            ));
            let (file_tx, file_rx) = tokio::sync::watch::channel(config.cameras.clone());
            let check_store = store
                .clone()
                .unwrap_or_else(|| Arc::new(ConfigStore::in_memory()));
            if let Some(store) = &store {
                store.set_clustered();
                store.on_reload(move |c| {
                    file_tx.send_replace(c.cameras.clone());
                });
            }
            let parse_api: crate::cluster::ApiCameraParser = Arc::new(move |body| {
                check_store
                    .check_camera(body, |_| false)
                    .map(|(cfg, _)| cfg)
                    .map_err(|e| e.to_string())
            });
            let node =
                crate::cluster::ClusterNode::new(cluster_cfg.clone(), runner, file_rx, parse_api);
            let view = node.view();
            let node_stop = CancellationToken::new();
            let drain = CancellationToken::new();
            let drained = CancellationToken::new();
            tasks.spawn(node.run(node_stop.clone(), drain.clone(), drained.clone()));
            cluster = Some((view, node_stop, drain, drained));
            supervisor
        }
    };
    if let Some(store) = &store {
        tasks.spawn(crate::reload::watch(
            store.clone(),
            supervisor.clone(),
            shutdown.clone(),
        ));
    }
    // Without its UDP port the gateway still pulls cameras and sends RTP;
    // WHEP then answers 503 with the reason.
    let webrtc = match crate::egress::webrtc::WebrtcEgress::bind(&config.webrtc).await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!("WebRTC viewers are off: {e}; set [webrtc] udp_listen");
            None
        }
    };
    // Like WebRTC: without its port the gateway still runs; the log says
    // why recorders cannot pull.
    let rtsp_tls = listener_setup.tls.as_ref().map(|t| t.acceptor());
    let rtsp_auth = listener_setup.auth.clone();
    if config.rtsp_server.enabled {
        match crate::egress::rtsp::RtspServer::bind(
            &config.rtsp_server,
            rtsp_tls,
            supervisor.clone(),
            rtsp_auth,
            cluster
                .as_ref()
                .map(|(view, ..)| view.clone() as Arc<dyn crate::camera::remote::Locator>),
        )
        .await
        {
            Ok(server) => {
                tasks.spawn(server.run(shutdown.clone()));
            }
            Err(e) => tracing::error!(
                listen = %config.rtsp_server.listen,
                "the RTSP server is off: {e}; set [rtsp_server] listen, or enabled = false"
            ),
        }
    }
    let mut state = AppState::new(supervisor.clone(), listener_setup);
    if let Some((view, ..)) = &cluster {
        state = state.with_cluster(view.clone());
    }
    if let Some(w) = &webrtc {
        state = state.with_webrtc(w.clone());
    }
    if let Some(store) = store {
        // A reload replaces the HTTP credentials too.
        let auth = state.auth.clone();
        store.on_reload(move |config| auth.set_config(&config.auth));
        state = state.with_store(store);
    }
    tasks.spawn(crate::health::sample(
        state.health.clone(),
        supervisor.clone(),
        shutdown.clone(),
    ));
    // HTTP serves (and redirects) while a node drains.
    let http_shutdown = cameras_root.clone();
    tasks.spawn(async move {
        if let Err(e) = http::serve(listener, state, http_shutdown).await {
            tracing::error!(error = %e, "http listener failed");
        }
    });
    tasks.close();
    tracing::info!(listen = %addr, cameras = config.cameras.len(), "camgate is running");
    let probe = supervisor.clone();
    crate::service::started(&shutdown, move || drop(probe.cameras()));

    shutdown.cancelled().await;
    if let Some((_, node_stop, drain, drained)) = &cluster {
        tracing::info!("stopping: handing this node's cameras over to the others");
        drain.cancel();
        if tokio::time::timeout(DRAIN_LIMIT, drained.cancelled())
            .await
            .is_err()
        {
            tracing::warn!(
                "not every camera was handed over within {} s; stopping anyway (the others take them when this node's lease ends)",
                DRAIN_LIMIT.as_secs()
            );
        }
        node_stop.cancel();
    }
    cameras_root.cancel();
    tracing::info!("stopping: tearing down camera sessions");
    let all = async {
        supervisor.join().await;
        tasks.wait().await;
        // Viewer sessions are children of their cameras: ended by now.
        if let Some(w) = &webrtc {
            w.shutdown().await;
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
        tracing::warn!(
            "some tasks did not stop within {} s",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}

/// The supervisor with every camera of `config` started (`sim://` cameras
/// start the in-process simulator they need).
async fn start_cameras(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<Arc<Supervisor>, String> {
    let supervisor = supervisor(shutdown);
    for cam in &config.cameras {
        supervisor
            .add(cam.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(supervisor))
}

/// A supervisor whose cameras stop with `root`, start their `rtp_out`
/// outputs, and pull `sim://` cameras from in-process simulators.
pub fn supervisor(root: &CancellationToken) -> Supervisor {
    Supervisor::new(root)
        .with_outputs(rtp_outputs())
        .with_sources(Arc::new(Simulators::default()))
}

/// Starts a camera's `[[camera.rtp_out]]` consumers: each registered as a
/// consumer of the camera, ending with it.
fn rtp_outputs() -> OutputStarter {
    Arc::new(|camera: &CameraHandle| {
        let cfg = &camera.config;
        cfg.rtp_out
            .iter()
            .map(|out| {
                let guard = camera.consumers.register(Consumer::new(
                    new_consumer_id(),
                    ConsumerKind::Rtp,
                    cfg.id.clone(),
                    None,
                    camera.cancel.child_token(),
                ));
                let task = crate::egress::rtp::run_rtp_out(
                    out.clone(),
                    cfg.rtp_payload_size,
                    camera.hub.clone(),
                    camera.stats.clone(),
                    guard,
                );
                Box::pin(task) as CameraTaskFuture
            })
            .collect()
    })
}

/// The in-process simulators of `sim://` cameras: one shared by cameras
/// without credentials (started with the first of them), one of its own
/// for each camera with credentials (it demands them).
#[derive(Default)]
struct Simulators {
    /// The shared simulator's address, once started.
    open: tokio::sync::Mutex<Option<SocketAddr>>,
}

impl SourceResolver for Simulators {
    fn resolve<'a>(
        &'a self,
        cfg: &'a CameraConfig,
        root: &'a CancellationToken,
        tracker: &'a TaskTracker,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Source>> + Send + 'a>> {
        Box::pin(async move {
            if cfg.url.scheme() != "sim" {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    format!("{}:// is not a simulator URL", cfg.url.scheme()),
                ));
            }
            let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
            let (addr, stop) = if cfg.credentials.is_some() {
                let options = SimOptions {
                    credentials: cfg.credentials.clone(),
                    ..Default::default()
                };
                let server = SimServer::bind(loopback, options).await?;
                let addr = server.local_addr();
                let token = root.child_token();
                tracker.spawn(server.run(token.clone()));
                (addr, Some(token))
            } else {
                let mut open = self.open.lock().await;
                let addr = match *open {
                    Some(addr) => addr,
                    None => {
                        let server = SimServer::bind(loopback, SimOptions::default()).await?;
                        let addr = server.local_addr();
                        tracker.spawn(server.run(root.clone()));
                        *open = Some(addr);
                        addr
                    }
                };
                (addr, None)
            };
            let url = sim_url(cfg, addr)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            Ok(Source { url, stop })
        })
    }
}

/// The simulator URL of a `sim://NAME` camera served at `addr`.
pub fn sim_url(cfg: &CameraConfig, addr: SocketAddr) -> Result<Url, String> {
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
