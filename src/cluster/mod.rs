//! Gateways sharing one camera list through etcd: every camera is pulled by
//! exactly one live node, moves make-before-break when nodes join or
//! drain, and fails over when a node dies (its lease expires).
//!
//! etcd holds, under the `[cluster] prefix`:
//! - `nodes/{node}`: the node's record (URLs, since, limit, draining),
//!   bound to its lease;
//! - `owners/{camera}`: the owning node, created in a transaction only if
//!   absent and bound to the owner's lease, so a dead node's cameras are
//!   freed when its lease expires;
//! - `handover/{camera}`: the node that should own the camera, once it has
//!   the camera playing (make-before-break), bound to that node's lease;
//! - `states/{node}`: the states of the node's cameras, one record per
//!   node, written only when a state changes;
//! - `cameras/{camera}`: cameras added through the API (the JSON body).
//!
//! In steady state nothing is written: the leases' keep-alives are the only
//! traffic, one per node. Which node should own a camera is
//! [`placement::place`], computed by every node from the same view.
//!
//! When etcd cannot be reached, a node keeps playing what it plays and
//! reports itself degraded; it changes nothing until it has a fresh view
//! again.

mod node;
pub mod placement;
mod runner;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::camera::remote::{Locator, RemoteOwner};
use crate::camera::{CameraState, CameraStatus};
use crate::config::CameraConfig;

pub use node::{ApiCameraParser, ClusterNode, HANDOVER_REASONS};
pub use runner::{OutputGates, Runner, RunnerFuture, SupervisorRunner};

/// A node's record in etcd (`nodes/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node id.
    pub id: String,
    /// Its HTTP base URL.
    pub url: String,
    /// Its RTSP server base URL, if it serves RTSP.
    pub rtsp: Option<String>,
    /// When it joined (Unix seconds).
    pub since: f64,
    /// Its camera limit.
    pub max_cameras: Option<usize>,
    /// It is leaving: its cameras move to the others.
    pub draining: bool,
}

/// What a node publishes of one of its cameras (`states/{node}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraSummary {
    /// `playing`, `connecting`, ...
    pub state: String,
    /// Since when (Unix seconds).
    pub since: f64,
    /// The last error, redacted.
    pub last_error: Option<String>,
    /// `tcp` or `udp`.
    pub transport: Option<String>,
    /// Video description.
    pub video: Option<String>,
    /// Audio description.
    pub audio: Option<String>,
    /// Health warnings.
    pub warnings: Vec<String>,
}

impl CameraSummary {
    /// The summary of a local camera's status.
    pub fn of(status: &CameraStatus) -> Self {
        CameraSummary {
            state: status.state.as_str().to_string(),
            since: unix(status.since),
            last_error: status.last_error.clone(),
            transport: status.transport.map(str::to_string),
            video: status.video.clone(),
            audio: status.audio.clone(),
            warnings: status.warnings.clone(),
        }
    }

    /// Back to a status, for the API of a node that does not own the
    /// camera.
    pub fn to_status(&self) -> CameraStatus {
        let mut st = CameraStatus::new(
            CameraState::ALL
                .into_iter()
                .find(|s| s.as_str() == self.state)
                .unwrap_or(CameraState::Connecting),
        );
        st.since = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs_f64(self.since.max(0.0));
        st.last_error = self.last_error.clone();
        st.transport = match self.transport.as_deref() {
            Some("tcp") => Some("tcp"),
            Some("udp") => Some("udp"),
            _ => None,
        };
        st.video = self.video.clone();
        st.audio = self.audio.clone();
        st.warnings = self.warnings.clone();
        st
    }
}

/// Unix seconds of `t`.
pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A camera of the cluster's list.
#[derive(Debug, Clone)]
pub struct ClusterCamera {
    /// Its configuration.
    pub config: CameraConfig,
    /// Added through the API (stored in etcd), not from cameras.toml.
    pub from_api: bool,
}

/// A camera another node (or none yet) owns, as the API lists it.
#[derive(Debug, Clone)]
pub struct RemoteCamera {
    /// The camera.
    pub camera: ClusterCamera,
    /// Its owner, if it has one now.
    pub owner: Option<String>,
    /// What the owner published of it.
    pub summary: Option<CameraSummary>,
}

/// A node as `GET /api/v1/cluster` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub id: String,
    pub url: String,
    pub rtsp: Option<String>,
    pub since: f64,
    pub cameras: usize,
    pub draining: bool,
    pub max_cameras: Option<usize>,
}

/// What the node knows of the cluster, shared with the HTTP API, the RTSP
/// server and the metrics.
#[derive(Debug)]
pub struct ClusterView {
    me: String,
    inner: RwLock<ViewState>,
    etcd_up: AtomicBool,
    /// Handovers by reason, in [`HANDOVER_REASONS`] order.
    handovers: [AtomicU64; 3],
    /// etcd writes (puts, transactions, deletes) this node made.
    writes: AtomicU64,
    /// Cameras this node owns (kept with the view's owners).
    owned: std::sync::atomic::AtomicUsize,
    /// The key prefix.
    prefix: String,
    /// The etcd client while connected (API changes go through it).
    client: EtcdSlot,
}

/// The etcd client while connected.
#[derive(Default)]
struct EtcdSlot(std::sync::Mutex<Option<etcd_client::Client>>);

impl std::fmt::Debug for EtcdSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EtcdSlot")
    }
}

#[derive(Debug, Default)]
struct ViewState {
    nodes: BTreeMap<String, NodeRecord>,
    owners: HashMap<String, String>,
    /// Each node's `states/{node}` record as written (JSON), read only when
    /// the API asks: with thousands of cameras a node would otherwise parse
    /// every other node's record each time a state changes.
    states: HashMap<String, std::sync::Arc<str>>,
    cameras: std::sync::Arc<BTreeMap<String, ClusterCamera>>,
}

impl ClusterView {
    fn new(me: &str, prefix: &str) -> Self {
        ClusterView {
            prefix: prefix.to_string(),
            client: Default::default(),
            me: me.to_string(),
            inner: RwLock::default(),
            etcd_up: AtomicBool::new(false),
            handovers: Default::default(),
            writes: AtomicU64::new(0),
            owned: Default::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ViewState> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ViewState> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.me
    }

    /// etcd answers: the view is fresh.
    pub fn etcd_up(&self) -> bool {
        self.etcd_up.load(Ordering::Relaxed)
    }

    /// The owner of `camera` when it is another node.
    pub fn remote_owner_of(&self, camera: &str) -> Option<NodeRecord> {
        let st = self.read();
        let owner = st.owners.get(camera)?;
        if *owner == self.me {
            return None;
        }
        st.nodes.get(owner).cloned()
    }

    /// True when this node owns `camera`.
    pub fn owns(&self, camera: &str) -> bool {
        self.read()
            .owners
            .get(camera)
            .is_some_and(|o| *o == self.me)
    }

    /// Every camera's owner, as etcd says.
    pub fn owners(&self) -> HashMap<String, String> {
        self.read().owners.clone()
    }

    /// Cameras this node owns.
    pub fn owned(&self) -> usize {
        self.owned.load(Ordering::Relaxed)
    }

    /// Sets every camera's owner at once (a fresh snapshot).
    fn set_owners(&self, owners: HashMap<String, String>) {
        let mine = owners.values().filter(|o| **o == self.me).count();
        let mut st = self.write();
        st.owners = owners;
        self.owned.store(mine, Ordering::Relaxed);
    }

    /// Nodes seen alive.
    pub fn nodes(&self) -> Vec<NodeView> {
        let st = self.read();
        st.nodes
            .values()
            .map(|n| NodeView {
                id: n.id.clone(),
                url: n.url.clone(),
                rtsp: n.rtsp.clone(),
                since: n.since,
                cameras: st.owners.values().filter(|o| **o == n.id).count(),
                draining: n.draining,
                max_cameras: n.max_cameras,
            })
            .collect()
    }

    /// Every camera of the cluster this node does not own, with its owner
    /// and state.
    pub fn remote_cameras(&self) -> Vec<RemoteCamera> {
        let st = self.read();
        let mut parsed: HashMap<&str, BTreeMap<String, CameraSummary>> = HashMap::new();
        st.cameras
            .values()
            .filter(|c| st.owners.get(&c.config.id) != Some(&self.me))
            .map(|c| {
                let owner = st.owners.get(&c.config.id).cloned();
                let summary = st.owners.get(&c.config.id).and_then(|o| {
                    parsed
                        .entry(o.as_str())
                        .or_insert_with(|| {
                            st.states
                                .get(o)
                                .and_then(|t| serde_json::from_str(t).ok())
                                .unwrap_or_default()
                        })
                        .get(&c.config.id)
                        .cloned()
                });
                RemoteCamera {
                    camera: c.clone(),
                    owner,
                    summary,
                }
            })
            .collect()
    }

    /// A camera of the cluster's list.
    pub fn camera(&self, id: &str) -> Option<ClusterCamera> {
        self.read().cameras.get(id).cloned()
    }

    /// Handovers this node took part in, by reason.
    pub fn handovers(&self) -> Vec<(&'static str, u64)> {
        HANDOVER_REASONS
            .iter()
            .zip(&self.handovers)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// etcd writes this node made.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Records `camera`'s owner (`None`: it has none) as etcd now says.
    fn set_owner(&self, camera: &str, owner: Option<&str>) {
        let mut st = self.write();
        let old = match owner {
            Some(o) => st.owners.insert(camera.to_string(), o.to_string()),
            None => st.owners.remove(camera),
        };
        let was = old.is_some_and(|o| o == self.me);
        let is = owner == Some(self.me.as_str());
        if was != is {
            if is {
                self.owned.fetch_add(1, Ordering::Relaxed);
            } else {
                self.owned.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn set_client(&self, client: Option<etcd_client::Client>) {
        *self.client.0.lock().unwrap_or_else(|e| e.into_inner()) = client;
    }

    fn client(&self) -> Result<etcd_client::Client, String> {
        self.client
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                "etcd cannot be reached: cameras cannot be added or removed now".to_string()
            })
    }

    /// Stores a camera added through the API: every node adds it, its owner
    /// plays it.
    pub async fn put_api_camera(&self, id: &str, body: &serde_json::Value) -> Result<(), String> {
        let mut c = self.client()?;
        c.put(
            format!("{}cameras/{id}", self.prefix),
            serde_json::to_vec(body).map_err(|e| e.to_string())?,
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes a camera added through the API, on every node.
    pub async fn delete_api_camera(&self, id: &str) -> Result<(), String> {
        let mut c = self.client()?;
        c.delete(format!("{}cameras/{id}", self.prefix), None)
            .await
            .map_err(|e| e.to_string())?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn count_handover(&self, reason: &str) {
        if let Some(i) = HANDOVER_REASONS.iter().position(|r| *r == reason) {
            self.handovers[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Locator for ClusterView {
    fn remote_owner(&self, camera: &str) -> Option<RemoteOwner> {
        let n = self.remote_owner_of(camera)?;
        Some(RemoteOwner {
            node: n.id,
            http: Url::parse(&n.url).ok()?,
            rtsp: n.rtsp.as_deref().and_then(|u| Url::parse(u).ok()),
        })
    }
}
