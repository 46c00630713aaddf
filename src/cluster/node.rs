//! One node of the cluster: its lease and record in etcd, the watch that
//! keeps its view of the cluster fresh, and the reconciliation that starts,
//! hands over and stops cameras so that each has exactly one owner.

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
    states: HashMap<String, BTreeMap<String, CameraSummary>>,
    api_cameras: BTreeMap<String, serde_json::Value>,
    /// The owner a camera had before its owner key went.
    last_owner: HashMap<String, String>,
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
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        if let Some((user, password)) = &self.cfg.credentials {
            opts = opts.with_user(user.clone(), password.expose().to_string());
        }
        if let Some(tls) = &self.cfg.tls {
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
        let endpoints: Vec<String> = self
            .cfg
            .etcd
            .iter()
            .map(|u| u.as_str().trim_end_matches('/').to_string())
            .collect();
        Client::connect(endpoints, Some(opts))
            .await
            .map_err(|e| e.to_string())
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
                    tracing::warn!("cluster: this node's etcd lease expired; joining again");
                    lease = None;
                    backoff = Duration::from_millis(200);
                }
                End::Lost(e) => {
                    if !logged_down {
                        tracing::error!(error = %e, "cluster: etcd unreachable: cameras keep playing where they are; nothing moves until it is back");
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
        let (mut keeper, mut keep_stream) = loop {
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
                Ok(Err(e)) => return End::Lost(e.to_string()),
                Err(_) => return End::Lost("no keep-alive answer".into()),
            }
        };
        let lease_id = lease.expect("set above");
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
        let snapshot = match client
            .get(
                self.cfg.prefix.as_str(),
                Some(GetOptions::new().with_prefix()),
            )
            .await
        {
            Ok(r) => r,
            Err(e) => return End::Lost(e.to_string()),
        };
        let revision = snapshot.header().map(|h| h.revision()).unwrap_or(0);
        let mut known = Known::default();
        for kv in snapshot.kvs() {
            self.apply(&mut known, kv.key(), Some(kv.value()));
        }
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
        self.publish_view(&known);

        let mut keep_tick = tokio::time::interval(self.cfg.lease_ttl / 3);
        let mut reconcile_tick = tokio::time::interval(RECONCILE_EVERY);
        reconcile_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_keepalive_answer = Instant::now();
        let mut published: Option<BTreeMap<String, CameraSummary>> = None;
        let mut last_publish = Instant::now() - PUBLISH_EVERY;
        // Wait for the other nodes' records before claiming anything (a
        // node starting alone would take every camera for a moment).
        let settle_until = Instant::now() + self.cfg.lease_ttl.min(Duration::from_secs(2));
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
                _ = keep_tick.tick() => {
                    if last_keepalive_answer.elapsed() > self.cfg.lease_ttl {
                        return End::Lost("etcd stopped answering keep-alives".into());
                    }
                    if let Err(e) = keeper.keep_alive().await {
                        return End::Lost(e.to_string());
                    }
                }
                msg = keep_stream.message() => match msg {
                    Ok(Some(r)) if r.ttl() > 0 => last_keepalive_answer = Instant::now(),
                    Ok(Some(_)) => return End::LeaseGone,
                    Ok(None) => return End::Lost("the keep-alive stream ended".into()),
                    Err(e) => return End::Lost(e.to_string()),
                },
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
                            self.apply(&mut known, kv.key(), value);
                        }
                        self.publish_view(&known);
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
                            return End::LeaseGone;
                        }
                    }
                    Ok(None) => return End::Lost("the watch ended".into()),
                    Err(e) => return End::Lost(e.to_string()),
                },
                _ = reconcile_tick.tick() => {
                    if file_cameras.has_changed().unwrap_or(false) {
                        file_cameras.borrow_and_update();
                        self.publish_view(&known);
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
    fn apply(&self, known: &mut Known, key: &[u8], value: Option<&[u8]>) {
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
                known.owners.insert(name, t.to_string());
            }
            ("owners", None) => {
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
                if let Ok(m) = serde_json::from_str(t) {
                    known.states.insert(name, m);
                }
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

    fn publish_view(&self, known: &Known) {
        let cameras = self.cameras(known);
        let mut v = self.view.write();
        v.nodes = known.nodes.clone();
        v.owners = known.owners.clone();
        v.states = known.states.clone();
        v.cameras = cameras;
    }

    /// Starts, hands over and stops cameras towards the placement.
    async fn reconcile(
        &self,
        client: &mut Client,
        known: &mut Known,
        lease: i64,
        draining: bool,
    ) -> Result<(), String> {
        let me = self.cfg.node_id.as_str();
        let cameras = self.cameras(known);
        let candidates: Vec<Candidate> = known
            .nodes
            .values()
            .filter(|n| !n.draining)
            .map(|n| Candidate {
                id: n.id.clone(),
                max_cameras: n.max_cameras,
            })
            .collect();
        let desired = place(cameras.keys().map(String::as_str), &candidates);
        let running: HashSet<String> = self.runner.running().into_iter().collect();
        let lease_opts = || Some(PutOptions::new().with_lease(lease));

        for (id, cam) in &cameras {
            let want = desired.get(id).map(String::as_str);
            let owner = known.owners.get(id).cloned();
            match owner.as_deref() {
                Some(o) if o == me => {
                    if !running.contains(id) {
                        self.runner.start(cam.config.clone(), true).await;
                    } else if !self.runner.outputs_on(id) {
                        self.runner.enable_outputs(id);
                    }
                    // Hand over when the camera's next owner plays it.
                    let next = known.handovers.get(id).map(String::as_str);
                    if let (Some(w), Some(n)) = (want, next) {
                        if w != me && n == w {
                            self.release(client, id, if draining { "drain" } else { "rebalance" })
                                .await?;
                            known.owners.remove(id);
                        }
                    }
                }
                None => {
                    // Ours when placement says so, or when we still play it
                    // (etcd lost our keys while we kept it playing).
                    let mine =
                        want == Some(me) || (running.contains(id) && self.runner.outputs_on(id));
                    if !mine || draining {
                        if running.contains(id) && !self.runner.outputs_on(id) && want != Some(me) {
                            self.runner.stop(id).await;
                        }
                        continue;
                    }
                    let key = self.key("owners", id);
                    let txn = Txn::new()
                        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(key, me, lease_opts())]);
                    let won = client
                        .txn(txn)
                        .await
                        .map_err(|e| e.to_string())?
                        .succeeded();
                    self.view.writes.fetch_add(1, Ordering::Relaxed);
                    if won {
                        known.owners.insert(id.clone(), me.to_string());
                        if running.contains(id) {
                            self.runner.enable_outputs(id);
                        } else {
                            self.runner.start(cam.config.clone(), true).await;
                        }
                        if known.handovers.get(id).map(String::as_str) == Some(me) {
                            client
                                .delete(self.key("handover", id), None)
                                .await
                                .map_err(|e| e.to_string())?;
                            self.view.writes.fetch_add(1, Ordering::Relaxed);
                        } else if known
                            .last_owner
                            .get(id)
                            .is_some_and(|o| o != me && !known.nodes.contains_key(o))
                        {
                            self.view.count_handover("failover");
                        }
                        known.last_owner.remove(id);
                        tracing::info!(camera = %id, "cluster: this node owns the camera");
                    }
                }
                Some(other) => {
                    if want == Some(me) && !draining {
                        // Make before break: play it here first.
                        if !running.contains(id) {
                            self.runner.start(cam.config.clone(), false).await;
                        } else if self.runner.is_playing(id)
                            && known.handovers.get(id).map(String::as_str) != Some(me)
                        {
                            client
                                .put(self.key("handover", id), me, lease_opts())
                                .await
                                .map_err(|e| e.to_string())?;
                            self.view.writes.fetch_add(1, Ordering::Relaxed);
                            known.handovers.insert(id.clone(), me.to_string());
                            tracing::info!(camera = %id, from = other, "cluster: camera ready here; asked its owner to hand it over");
                        }
                    } else if running.contains(id) {
                        // Another node owns it: stop ours (a warm-up no
                        // longer wanted, or a double after etcd came back).
                        self.runner.stop(id).await;
                        if known.handovers.get(id).map(String::as_str) == Some(me) {
                            let _ = client.delete(self.key("handover", id), None).await;
                            self.view.writes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        // Cameras no longer in the list.
        for id in running.iter().filter(|id| !cameras.contains_key(*id)) {
            self.runner.stop(id).await;
            if known.owners.get(id).map(String::as_str) == Some(me) {
                self.release_key(client, id).await?;
                known.owners.remove(id);
            }
        }
        self.publish_view(known);
        Ok(())
    }

    /// Gives a camera up: its outputs stop here first, then the owner key
    /// goes, so that the next owner's outputs never overlap ours.
    async fn release(&self, client: &mut Client, id: &str, reason: &str) -> Result<(), String> {
        self.runner.stop(id).await;
        self.release_key(client, id).await?;
        self.view.count_handover(reason);
        tracing::info!(camera = %id, reason, "cluster: camera handed over");
        Ok(())
    }

    async fn release_key(&self, client: &mut Client, id: &str) -> Result<(), String> {
        let key = self.key("owners", id);
        let txn = Txn::new()
            .when([Compare::value(
                key.clone(),
                CompareOp::Equal,
                self.cfg.node_id.as_str(),
            )])
            .and_then([TxnOp::delete(key, None)]);
        client.txn(txn).await.map_err(|e| e.to_string())?;
        self.view.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
