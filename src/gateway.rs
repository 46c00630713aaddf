//! The whole gateway: the camera supervisor (with the simulators `sim://`
//! cameras need), the configuration reloader and the HTTP listener,
//! stopped by one cancellation token.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::camera::Supervisor;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::reload::ConfigStore;

/// How long stopping may take before tasks are abandoned.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

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
    let supervisor = start_cameras(&config, store.clone(), &shutdown).await?;
    if let Some(store) = store {
        tasks.spawn(crate::reload::watch(
            store,
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
    let mut state = AppState::new(supervisor.clone(), listener_setup);
    if let Some(w) = &webrtc {
        state = state.with_webrtc(w.clone());
    }
    if let Some(store) = supervisor.store() {
        // A reload replaces the HTTP credentials too.
        let auth = state.auth.clone();
        store.on_reload(move |config| auth.set_config(&config.auth));
    }
    tasks.spawn(crate::health::sample(
        state.health.clone(),
        supervisor.clone(),
        shutdown.clone(),
    ));
    let http_shutdown = shutdown.clone();
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
    store: Option<Arc<ConfigStore>>,
    shutdown: &CancellationToken,
) -> Result<Arc<Supervisor>, String> {
    let mut supervisor = Supervisor::new(shutdown);
    if let Some(store) = store {
        supervisor = supervisor.with_store(store);
    }
    for cam in &config.cameras {
        supervisor
            .add(cam.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(supervisor))
}
