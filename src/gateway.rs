//! The whole gateway: simulators for `sim://` cameras, the camera
//! supervisor and the HTTP listener, stopped by one cancellation token.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::camera::supervisor::SimEndpoints;
use crate::camera::Supervisor;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::sim::{SimOptions, SimServer};

/// How long stopping may take before tasks are abandoned.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Runs the gateway until `shutdown` is cancelled, then stops cameras (with
/// TEARDOWN) and waits for them, at most [`SHUTDOWN_GRACE`].
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), String> {
    let listener = http::bind(config.server.listen).await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;

    let tasks = TaskTracker::new();
    let sims = start_simulators(&config, &tasks, &shutdown).await?;
    let supervisor = Arc::new(Supervisor::start(&config.cameras, &sims, &shutdown));
    let state = AppState {
        supervisor: supervisor.clone(),
    };
    let http_shutdown = shutdown.clone();
    tasks.spawn(async move {
        if let Err(e) = http::serve(listener, state, http_shutdown).await {
            tracing::error!(error = %e, "http listener failed");
        }
    });
    tasks.close();
    tracing::info!(listen = %addr, cameras = config.cameras.len(), "camgate is running");

    shutdown.cancelled().await;
    tracing::info!("stopping: tearing down camera sessions");
    let all = async {
        supervisor.join().await;
        tasks.wait().await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
        tracing::warn!(
            "some tasks did not stop within {} s",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}

/// Starts the in-process simulators `sim://` cameras need: one shared server
/// for cameras without credentials, one per camera with credentials.
async fn start_simulators(
    config: &Config,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<SimEndpoints, String> {
    let mut sims = SimEndpoints {
        open: None,
        with_auth: BTreeMap::new(),
    };
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    for cam in config
        .cameras
        .iter()
        .filter(|c| c.enabled && c.url.scheme() == "sim")
    {
        let credentials = cam.credentials.clone();
        if credentials.is_none() && sims.open.is_some() {
            continue;
        }
        let options = SimOptions {
            credentials: credentials.clone(),
            ..Default::default()
        };
        let server = SimServer::bind(loopback, options)
            .await
            .map_err(|e| format!("cannot start the simulator: {e}"))?;
        let addr = server.local_addr();
        tasks.spawn(server.run(shutdown.clone()));
        if credentials.is_some() {
            sims.with_auth.insert(cam.id.clone(), addr);
        } else {
            sims.open = Some(addr);
        }
    }
    Ok(sims)
}
