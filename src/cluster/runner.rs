//! What the cluster asks of the local gateway: start a camera (with or
//! without its RTP outputs), turn its outputs on once the camera is owned,
//! stop it. [`SupervisorRunner`] does it with the camera supervisor; the
//! scale test runs many nodes in one process with a runner of its own.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::CameraSummary;
use crate::camera::supervisor::{CameraTaskFuture, OutputStarter};
use crate::camera::{CameraHandle, CameraState, Supervisor};
use crate::config::CameraConfig;

/// A boxed future of the runner.
pub type RunnerFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// The local side of the cluster.
pub trait Runner: Send + Sync {
    /// Camera ids running here, owned or warming up.
    fn running(&self) -> Vec<String>;
    /// True when the camera runs here with its outputs on (it was owned).
    fn outputs_on(&self, id: &str) -> bool;
    /// True when the camera runs here and plays.
    fn is_playing(&self, id: &str) -> bool;
    /// Starts `cfg` here; its RTP outputs wait for [`Runner::enable_outputs`]
    /// unless `outputs` is true.
    fn start(&self, cfg: CameraConfig, outputs: bool) -> RunnerFuture<'_>;
    /// Turns the outputs of a running camera on.
    fn enable_outputs(&self, id: &str);
    /// Stops the camera here: its outputs end at once, its session with
    /// TEARDOWN.
    fn stop(&self, id: &str) -> RunnerFuture<'_>;
    /// The states of the cameras running here with outputs on.
    fn summaries(&self) -> BTreeMap<String, CameraSummary>;
}

/// The gates of the cameras' RTP outputs: an output of a camera that is
/// warming up (not owned yet) waits for its gate to open.
#[derive(Debug, Default, Clone)]
pub struct OutputGates(Arc<Mutex<HashMap<String, watch::Sender<bool>>>>);

impl OutputGates {
    fn set(&self, id: &str, open: bool) {
        let mut gates = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match gates.get(id) {
            Some(tx) => {
                tx.send_replace(open);
            }
            None => {
                gates.insert(id.to_string(), watch::channel(open).0);
            }
        }
    }

    fn is_open(&self, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .is_some_and(|tx| *tx.borrow())
    }

    fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// `inner`, with each output future held until the camera's gate
    /// opens (a camera without a gate is not clustered: at once).
    pub fn wrap(&self, inner: OutputStarter) -> OutputStarter {
        let gates = self.clone();
        Arc::new(move |camera: &CameraHandle| {
            let rx = gates
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&camera.config.id)
                .map(|tx| tx.subscribe());
            inner(camera)
                .into_iter()
                .map(|fut| match rx.clone() {
                    None => fut,
                    Some(mut rx) => {
                        let cancel = camera.cancel.clone();
                        Box::pin(async move {
                            let open = tokio::select! {
                                _ = cancel.cancelled() => false,
                                r = rx.wait_for(|open| *open) => r.is_ok(),
                            };
                            if open {
                                fut.await;
                            }
                        }) as CameraTaskFuture
                    }
                })
                .collect()
        })
    }
}

/// Runs cameras with the gateway's supervisor.
#[derive(Debug)]
pub struct SupervisorRunner {
    supervisor: Arc<Supervisor>,
    gates: OutputGates,
}

impl SupervisorRunner {
    /// Runs cameras on `supervisor`, whose output starter was wrapped by
    /// `gates` ([`OutputGates::wrap`]).
    pub fn new(supervisor: Arc<Supervisor>, gates: OutputGates) -> Self {
        SupervisorRunner { supervisor, gates }
    }
}

impl Runner for SupervisorRunner {
    fn running(&self) -> Vec<String> {
        self.supervisor
            .cameras()
            .iter()
            .map(|c| c.config.id.clone())
            .collect()
    }

    fn outputs_on(&self, id: &str) -> bool {
        self.supervisor.camera(id).is_some() && self.gates.is_open(id)
    }

    fn is_playing(&self, id: &str) -> bool {
        self.supervisor.camera(id).is_some_and(|c| {
            let st = c.status.borrow();
            st.state == CameraState::Playing || st.state == CameraState::Idle
        })
    }

    fn start(&self, cfg: CameraConfig, outputs: bool) -> RunnerFuture<'_> {
        Box::pin(async move {
            let id = cfg.id.clone();
            if self.supervisor.camera(&id).is_some() {
                return;
            }
            self.gates.set(&id, outputs);
            if let Err(e) = self.supervisor.add(cfg).await {
                tracing::error!(camera = %id, error = %e, "cluster: cannot start the camera");
                self.gates.forget(&id);
            }
        })
    }

    fn enable_outputs(&self, id: &str) {
        self.gates.set(id, true);
    }

    fn stop(&self, id: &str) -> RunnerFuture<'_> {
        let id = id.to_string();
        Box::pin(async move {
            self.gates.forget(&id);
            // Outputs and viewers end now; the TEARDOWN goes on behind.
            if let Some(cam) = self.supervisor.camera(&id) {
                cam.cancel.cancel();
            }
            let supervisor = self.supervisor.clone();
            tokio::spawn(async move {
                let _ = supervisor.remove(&id).await;
            });
        })
    }

    fn summaries(&self) -> BTreeMap<String, CameraSummary> {
        self.supervisor
            .cameras()
            .iter()
            .filter(|c| self.gates.is_open(&c.config.id))
            .map(|c| (c.config.id.clone(), CameraSummary::of(&c.status.borrow())))
            .collect()
    }
}
