//! One node of the cluster: its lease and record in etcd, the watch that
//! keeps its view of the cluster fresh, and the loop that runs the
//! reconciliation ([`reconcile`]), which starts, hands over and stops
//! cameras so that each has exactly one owner.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::placement::{place, Candidate};
use super::runner::Runner;
use super::{unix, CameraSummary, ClusterCamera, ClusterView, NodeRecord};
use crate::config::{CameraConfig, ClusterConfig};

mod reconcile;

/// Why a camera changed owner: `failover` (its owner died), `rebalance` (a
/// node joined or the spread changed), `drain` (its owner is leaving).
pub const HANDOVER_REASONS: [&str; 3] = ["failover", "rebalance", "drain"];

/// How often the node reconciles without news.
const RECONCILE_EVERY: Duration = Duration::from_millis(250);
/// How often the node's camera states may be written.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Turns API camera bodies (stored in etcd) into cameras.
pub type ApiCameraParser =
    Arc<dyn Fn(&serde_json::Value) -> Result<CameraConfig, String> + Send + Sync>;

/// One node.
pub struct ClusterNode {
    cfg: ClusterConfig,
    view: Arc<ClusterView>,
    runner: Arc<dyn Runner>,
    /// The cameras of cameras.toml (replaced on reload).
    file_cameras: watch::Receiver<Vec<CameraConfig>>,
    parse_api: ApiCameraParser,
    /// When this node joined.
    since: f64,
}

/// What the node reads from etcd.
#[derive(Default)]
struct Known {
    nodes: BTreeMap<String, NodeRecord>,
    owners: HashMap<String, String>,
    handovers: HashMap<String, String>,
    /// Each node's states record, as written (parsed only by the API).
    states: HashMap<String, Arc<str>>,
    api_cameras: BTreeMap<String, serde_json::Value>,
    /// The owner a camera had before its owner key went.
    last_owner: HashMap<String, String>,
    /// Something changed since the view was last published.
    changed: bool,
    /// The camera list must be built again (API cameras or the file
    /// changed).
    cameras_dirty: bool,
    /// The camera list, built when it changes.
    cameras: Arc<BTreeMap<String, ClusterCamera>>,
    /// The nodes the placement was computed for, and the placement.
    placed_for: Option<Vec<Candidate>>,
    desired: BTreeMap<String, String>,
    /// The cameras placement gives this node.
    desired_here: Vec<String>,
    /// The cameras this node owns (kept with `owners`).
    owned_here: HashSet<String>,
    /// When the view was last published.
    published_at: Option<Instant>,
}

/// Why the connected phase ended.
enum End {
    /// The gateway stops.
    Shutdown,
    /// etcd failed; reconnect, keeping the lease if it still lives.
    Lost(String),
    /// The lease expired: grant a new one.
    LeaseGone,
}

impl ClusterNode {
    /// A node of `cfg`'s cluster; `file_cameras` is the camera list of
    /// cameras.toml, `parse_api` checks cameras added through the API.
    pub fn new(
        cfg: ClusterConfig,
        runner: Arc<dyn Runner>,
        file_cameras: watch::Receiver<Vec<CameraConfig>>,
        parse_api: ApiCameraParser,
    ) -> Self {
        let view = Arc::new(ClusterView::new(&cfg.node_id, &cfg.prefix));
        ClusterNode {
            cfg,
            view,
            runner,
            file_cameras,
            parse_api,
            since: unix(std::time::SystemTime::now()),
        }
    }

    /// The node's view, for the API, redirects and metrics.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.clone()
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}/{name}", self.cfg.prefix)
    }

    async fn connect(&self) -> Result<Client, String> {
        connect(&self.cfg).await
    }

    fn record(&self, draining: bool) -> NodeRecord {
        NodeRecord {
            id: self.cfg.node_id.clone(),
            url: self
                .cfg
                .advertise_url
                .as_str()
                .trim_end_matches('/')
                .to_string(),
            rtsp: self
                .cfg
                .advertise_rtsp
                .as_ref()
                .map(|u| u.as_str().trim_end_matches('/').to_string()),
            since: self.since,
            max_cameras: self.cfg.max_cameras,
            draining,
        }
    }

    /// Runs until `shutdown`. When `drain` is cancelled first, the node
    /// marks itself draining and hands its cameras over; `drained` is then
    /// cancelled once it owns none (or could not hand them over in time).
    pub async fn run(
        self,
        shutdown: CancellationToken,
        drain: CancellationToken,
        drained: CancellationToken,
    ) {
        let mut lease: Option<i64> = None;
        let mut backoff = Duration::from_millis(200);
        let mut logged_down = false;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let client = tokio::select! {
                _ = shutdown.cancelled() => break,
                c = self.connect() => c,
            };
            let end = match client {
                Ok(client) => {
                    self.connected(client, &mut lease, &shutdown, &drain, &drained)
                        .await
                }
                Err(e) => End::Lost(e),
            };
            self.view.etcd_up.store(false, Ordering::Relaxed);
            self.view.set_client(None);
            match end {
                End::Shutdown => break,
                End::LeaseGone => {
                    tracing::warn!(node = %self.cfg.node_id, "cluster: this node's etcd lease expired; joining again");
                    lease = None;
                    backoff = Duration::from_millis(200);
                }
                End::Lost(e) => {
                    tracing::debug!(node = %self.cfg.node_id, error = %e, "cluster: etcd phase ended");
                    if !logged_down {
                        tracing::error!(node = %self.cfg.node_id, error = %e, "cluster: etcd unreachable: cameras keep playing where they are; nothing moves until it is back");
                        logged_down = true;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
            logged_down = false;
        }
        drained.cancel();
        // Leave at once: the lease's keys go with it (best effort).
        if let Some(id) = lease {
            if let Ok(Ok(mut c)) =
                tokio::time::timeout(Duration::from_secs(1), self.connect()).await
            {
                let _ = tokio::time::timeout(Duration::from_secs(1), c.lease_revoke(id)).await;
            }
        }
    }

    /// One connected phase: lease, record, snapshot, watch, reconcile.
    async fn connected(
        &self,
        mut client: Client,
        lease: &mut Option<i64>,
        shutdown: &CancellationToken,
        drain: &CancellationToken,
        drained: &CancellationToken,
    ) -> End {
        let ttl = self.cfg.lease_ttl.as_secs() as i64;
        // The lease: the one we had, if etcd still keeps it.
        let (keeper, keep_stream) = loop {
            let id = match *lease {
                Some(id) => id,
                None => match client.lease_grant(ttl, None).await {
                    Ok(r) => r.id(),
                    Err(e) => return End::Lost(e.to_string()),
                },
            };
            let (mut k, mut s) = match client.lease_keep_alive(id).await {
                Ok(p) => p,
                Err(e) => return End::Lost(e.to_string()),
            };
            if let Err(e) = k.keep_alive().await {
                return End::Lost(e.to_string());
            }
            match tokio::time::timeout(Duration::from_secs(3), s.message()).await {
                Ok(Ok(Some(r))) if r.ttl() > 0 => {
                    *lease = Some(id);
                    break (k, s);
                }
                Ok(Ok(_)) => {
                    if lease.take().is_none() {
                        return End::Lost("a new lease expired at once".into());
                    }
                }
                // etcd refuses the old lease (it expired): take a new one.
                Ok(Err(_)) if lease.is_some() => {
                    lease.take();
                }
                Ok(Err(e)) => return End::Lost(e.to_string()),
                Err(_) => return End::Lost("no keep-alive answer".into()),
            }
        };
        let lease_id = lease.expect("set above");
        tracing::debug!(node = %self.cfg.node_id, lease = lease_id, "cluster: lease kept");
        let put_lease = || Some(PutOptions::new().with_lease(lease_id));
        let mut draining = drain.is_cancelled();
        let record = serde_json::to_vec(&self.record(draining)).unwrap_or_default();
        if let Err(e) = client
            .put(self.key("nodes", &self.cfg.node_id), record, put_lease())
            .await
        {
            return End::Lost(e.to_string());
        }
        self.view.writes.fetch_add(1, Ordering::Relaxed);

        // The snapshot, then every change after it.
        let mut known = Known {
            cameras_dirty: true,
            ..Known::default()
        };
        let revision = match snapshot(&mut client, &self.cfg.prefix, |key, value| {
            self.apply(&mut known, key, Some(value), false)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => return End::Lost(e),
        };
        // The view's owners follow each change from here on; start them
        // from the snapshot (dropping what an earlier phase had).
        self.view.set_owners(known.owners.clone());
        let mut watch = match client
            .watch(
                self.cfg.prefix.as_str(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await
        {
            Ok(w) => w,
            Err(e) => return End::Lost(e.to_string()),
        };
        self.view.etcd_up.store(true, Ordering::Relaxed);
        self.view.set_client(Some(client.clone()));
        tracing::info!(node = %self.cfg.node_id, lease = lease_id, nodes = known.nodes.len(), "cluster: joined");
        self.publish_view(&mut known);

        // The lease is kept alive by a task of its own, so that a long
        // reconciliation (thousands of cameras to claim) never lets it
        // expire.
        let (lease_tx, mut lease_rx) = tokio::sync::mpsc::channel::<End>(1);
        drop((keeper, keep_stream));
        let stop_keep = CancellationToken::new();
        let keep_task = stop_keep.clone().drop_guard();
        let cfg = self.cfg.clone();
        let spawned = std::thread::Builder::new()
            .name("etcd-lease".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = lease_tx.blocking_send(End::Lost(e.to_string()));
                        return;
                    }
                };
                let end = rt.block_on(async move {
                    tokio::select! {
                        _ = stop_keep.cancelled() => None,
                        end = keep_lease(&cfg, lease_id) => Some(end),
                    }
                });
                if let Some(end) = end {
                    let _ = lease_tx.blocking_send(end);
                }
            });
        if let Err(e) = spawned {
            return End::Lost(format!("cannot start the lease thread: {e}"));
        }
        let mut reconcile_tick = tokio::time::interval(RECONCILE_EVERY);
        reconcile_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut published: Option<BTreeMap<String, CameraSummary>> = None;
        let mut last_publish = Instant::now() - PUBLISH_EVERY;
        // When the cluster starts cold (no camera has an owner), wait for the
        // other nodes' records before claiming anything: a node starting
        // alone would take every camera for a moment. A node joining a
        // running cluster sees its nodes in the snapshot.
        let settle_until = if known.owners.is_empty() {
            Instant::now() + self.cfg.lease_ttl.min(Duration::from_secs(2))
        } else {
            Instant::now()
        };
        let mut file_cameras = self.file_cameras.clone();
        let mut last_reconcile = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return End::Shutdown,
                _ = drain.cancelled(), if !draining => {
                    draining = true;
                    tracing::info!("cluster: draining: handing this node's cameras over");
                    let record = serde_json::to_vec(&self.record(true)).unwrap_or_default();
                    if let Err(e) = client.put(self.key("nodes", &self.cfg.node_id), record, put_lease()).await {
                        return End::Lost(e.to_string());
                    }
                    self.view.writes.fetch_add(1, Ordering::Relaxed);
                }
                end = lease_rx.recv() => {
                    tracing::debug!(node = %self.cfg.node_id, "cluster: the lease keeper stopped");
                    drop(keep_task);
                    return end.unwrap_or(End::Lost("the keep-alive task ended".into()));
                }
                msg = watch.message() => match msg {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            return End::Lost("etcd cancelled the watch".into());
                        }
                        for ev in resp.events() {
                            let Some(kv) = ev.kv() else { continue };
                            let value = match ev.event_type() {
                                EventType::Put => Some(kv.value()),
                                EventType::Delete => None,
                            };
                            self.apply(&mut known, kv.key(), value, true);
                        }
                        // With thousands of cameras a watch answer comes
                        // per claim: the view is shared at most every
                        // 200 ms (the tick catches up).
                        if known.published_at.is_none_or(|t| t.elapsed() >= Duration::from_millis(200)) {
                            self.publish_view(&mut known);
                        }
                        if known.nodes.contains_key(&self.cfg.node_id) {
                            // News act at once, but at most every 100 ms
                            // (the tick catches up).
                            if Instant::now() >= settle_until && last_reconcile.elapsed() >= Duration::from_millis(100) {
                                if let Err(e) = self.reconcile(&mut client, &mut known, lease_id, draining).await {
                                    return End::Lost(e);
                                }
                                last_reconcile = Instant::now();
                            }
                        } else {
                            // Our record went: the lease is gone.
                            tracing::debug!(node = %self.cfg.node_id, "cluster: this node's record was deleted");
                            return End::LeaseGone;
                        }
                    }
                    Ok(None) => return End::Lost("the watch ended".into()),
                    Err(e) => return End::Lost(e.to_string()),
                },
                _ = reconcile_tick.tick() => {
                    if file_cameras.has_changed().unwrap_or(false) {
                        file_cameras.borrow_and_update();
                        known.cameras_dirty = true;
                        self.publish_view(&mut known);
                    }
                    if Instant::now() >= settle_until {
                        if let Err(e) = self.reconcile(&mut client, &mut known, lease_id, draining).await {
                            return End::Lost(e);
                        }
                        last_reconcile = Instant::now();
                    }
                    if draining && !drained.is_cancelled() && !known.owners.values().any(|o| *o == self.cfg.node_id) {
                        tracing::info!("cluster: drained: this node owns no camera");
                        drained.cancel();
                    }
                    if last_publish.elapsed() >= PUBLISH_EVERY {
                        let now = self.runner.summaries();
                        if published.as_ref() != Some(&now) {
                            let body = serde_json::to_vec(&now).unwrap_or_default();
                            if let Err(e) = client.put(self.key("states", &self.cfg.node_id), body, put_lease()).await {
                                return End::Lost(e.to_string());
                            }
                            self.view.writes.fetch_add(1, Ordering::Relaxed);
                            published = Some(now);
                            last_publish = Instant::now();
                        }
                    }
                }
            }
        }
    }

    /// Applies one key's new value (`None`: deleted) to `known`.
    /// With `to_view`, owner changes also go to the shared view at once
    /// (a snapshot's owners go to it in one piece when it is read).
    fn apply(&self, known: &mut Known, key: &[u8], value: Option<&[u8]>, to_view: bool) {
        let Ok(key) = std::str::from_utf8(key) else {
            return;
        };
        let Some(rest) = key.strip_prefix(self.cfg.prefix.as_str()) else {
            return;
        };
        let Some((kind, name)) = rest.split_once('/') else {
            return;
        };
        let name = name.to_string();
        let text = value.and_then(|v| std::str::from_utf8(v).ok());
        known.changed = true;
        if kind == "cameras" {
            known.cameras_dirty = true;
        }
        match (kind, text) {
            ("nodes", Some(t)) => match serde_json::from_str::<NodeRecord>(t) {
                Ok(r) => {
                    known.nodes.insert(name, r);
                }
                Err(e) => tracing::warn!(key, error = %e, "cluster: unreadable node record"),
            },
            ("nodes", None) => {
                known.nodes.remove(&name);
                known.states.remove(&name);
            }
            ("owners", Some(t)) => {
                if to_view {
                    self.view.set_owner(&name, Some(t));
                }
                if t == self.cfg.node_id {
                    known.owned_here.insert(name.clone());
                } else {
                    known.owned_here.remove(&name);
                }
                known.owners.insert(name, t.to_string());
            }
            ("owners", None) => {
                if to_view {
                    self.view.set_owner(&name, None);
                }
                known.owned_here.remove(&name);
                if let Some(prev) = known.owners.remove(&name) {
                    known.last_owner.insert(name, prev);
                }
            }
            ("handover", Some(t)) => {
                known.handovers.insert(name, t.to_string());
            }
            ("handover", None) => {
                known.handovers.remove(&name);
            }
            ("states", Some(t)) => {
                known.states.insert(name, Arc::from(t));
            }
            ("states", None) => {
                known.states.remove(&name);
            }
            ("cameras", Some(t)) => {
                if let Ok(v) = serde_json::from_str(t) {
                    known.api_cameras.insert(name, v);
                }
            }
            ("cameras", None) => {
                known.api_cameras.remove(&name);
            }
            _ => {}
        }
    }

    /// The cluster's camera list: cameras.toml's, then the API's.
    fn cameras(&self, known: &Known) -> BTreeMap<String, ClusterCamera> {
        let mut out = BTreeMap::new();
        for c in self.file_cameras.borrow().iter() {
            out.insert(
                c.id.clone(),
                ClusterCamera {
                    config: c.clone(),
                    from_api: false,
                },
            );
        }
        for (id, body) in &known.api_cameras {
            if out.contains_key(id) {
                continue;
            }
            match (self.parse_api)(body) {
                Ok(config) if config.id == *id => {
                    out.insert(
                        id.clone(),
                        ClusterCamera {
                            config,
                            from_api: true,
                        },
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(camera = %id, error = %e, "cluster: an API camera in etcd is invalid here")
                }
            }
        }
        out
    }

    /// Builds the camera list again if it changed.
    fn refresh_cameras(&self, known: &mut Known) {
        if known.cameras_dirty {
            known.cameras = Arc::new(self.cameras(known));
            known.cameras_dirty = false;
            known.placed_for = None;
            known.changed = true;
        }
    }

    /// Shares what changed with the API and the redirects.
    fn publish_view(&self, known: &mut Known) {
        self.refresh_cameras(known);
        if !known.changed {
            return;
        }
        known.changed = false;
        known.published_at = Some(Instant::now());
        let mut v = self.view.write();
        v.nodes = known.nodes.clone();
        v.states = known.states.clone();
        v.cameras = known.cameras.clone();
    }
}

/// A client of `cfg`'s etcd.
async fn connect(cfg: &ClusterConfig) -> Result<Client, String> {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        // A busy node (thousands of events to apply) must not take its own
        // slowness for etcd's: the lease has its own connection and
        // deadline; these only catch a dead connection.
        .with_timeout(Duration::from_secs(10))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
    if let Some((user, password)) = &cfg.credentials {
        opts = opts.with_user(user.clone(), password.expose().to_string());
    }
    if let Some(tls) = &cfg.tls {
        let mut t = etcd_client::TlsOptions::new();
        if let Some(ca) = &tls.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            t = t.ca_certificate(etcd_client::Certificate::from_pem(pem));
        }
        if let Some((cert, key)) = &tls.identity {
            let c = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
            let k = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
            t = t.identity(etcd_client::Identity::from_pem(c, k));
        }
        opts = opts.with_tls(t);
    }
    let endpoints: Vec<String> = cfg
        .etcd
        .iter()
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .collect();
    Client::connect(endpoints, Some(opts))
        .await
        .map_err(|e| e.to_string())
}

/// Keys read per request of a snapshot: a whole prefix of 10,000 cameras
/// in one answer comes near gRPC's 4 MiB message limit.
const SNAPSHOT_PAGE: i64 = 1000;

/// Reads every key under `prefix` at one revision, page by page, giving
/// each to `each`; returns that revision.
async fn snapshot(
    client: &mut Client,
    prefix: &str,
    mut each: impl FnMut(&[u8], &[u8]),
) -> Result<i64, String> {
    let end = prefix_end(prefix.as_bytes());
    let mut from = prefix.as_bytes().to_vec();
    let mut revision = 0;
    loop {
        let mut opts = GetOptions::new()
            .with_range(end.clone())
            .with_limit(SNAPSHOT_PAGE);
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        let mut page = client
            .get(from.clone(), Some(opts))
            .await
            .map_err(|e| e.to_string())?;
        if revision == 0 {
            revision = page.header().map(|h| h.revision()).unwrap_or(0);
        }
        let kvs = page.take_kvs();
        for kv in &kvs {
            each(kv.key(), kv.value());
        }
        match kvs.last() {
            Some(last) if page.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => return Ok(revision),
        }
    }
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every key: etcd's "\0" range end.
    vec![0]
}

/// Keeps lease `id` alive, on a thread and a connection of its own so that
/// however busy the node is (thousands of cameras to claim), its lease
/// never expires while it lives. Returns why it stopped.
async fn keep_lease(cfg: &ClusterConfig, id: i64) -> End {
    let mut client = match connect(cfg).await {
        Ok(c) => c,
        Err(e) => return End::Lost(e),
    };
    let (mut keeper, mut stream) = match client.lease_keep_alive(id).await {
        Ok(p) => p,
        Err(e) => return End::Lost(e.to_string()),
    };
    let ttl = cfg.lease_ttl;
    let mut tick = tokio::time::interval(ttl / 3);
    let mut last_answer = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if last_answer.elapsed() > ttl {
                    return End::Lost("etcd stopped answering keep-alives".into());
                }
                if let Err(e) = keeper.keep_alive().await {
                    return End::Lost(e.to_string());
                }
            }
            msg = stream.message() => match msg {
                Ok(Some(r)) if r.ttl() > 0 => last_answer = Instant::now(),
                Ok(Some(_)) => return End::LeaseGone,
                Ok(None) => return End::Lost("the keep-alive stream ended".into()),
                Err(e) if e.to_string().contains("lease not found") => return End::LeaseGone,
                Err(e) => return End::Lost(e.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_ends_at_its_last_byte_plus_one() {
        assert_eq!(prefix_end(b"/camgate/"), b"/camgate0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }
}
