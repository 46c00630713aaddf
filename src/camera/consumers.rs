//! Who is receiving a camera: WebRTC viewers and RTP consumers, each with
//! live counters that the API, the metrics and the dashboard read. A consumer
//! registers itself when it starts and is removed when its guard drops, so
//! the registry can never hold a consumer whose task has ended.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What kind of receiver a consumer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerKind {
    /// A WebRTC viewer (WHEP).
    Viewer,
    /// A configured plain-RTP destination.
    Rtp,
    /// An RTSP client of the RTSP server (a recorder, a VMS, a player).
    Rtsp,
}

/// One receiver of a camera, shared between its task and the registry.
#[derive(Debug)]
pub struct Consumer {
    /// Unique within the gateway (used in URLs).
    pub id: String,
    /// Viewer or RTP consumer.
    pub kind: ConsumerKind,
    /// The camera it receives.
    pub camera: String,
    /// When it started.
    pub started: SystemTime,
    started_at: Instant,
    /// Ends the consumer (its task watches this token).
    pub cancel: CancellationToken,
    /// Remote address as text (`ip:port`), once known.
    pub remote: Mutex<Option<String>>,
    /// Free-form state (`new`, `connecting`, `connected`, `sending`, ...).
    pub state: Mutex<&'static str>,
    /// The SDP offer (viewers).
    pub offer: Option<String>,
    /// The SDP answer (viewers) or the consumer SDP (RTP).
    pub answer: Mutex<Option<String>>,
    /// Payload and header bytes sent.
    pub bytes_sent: AtomicU64,
    /// RTP packets sent.
    pub packets_sent: AtomicU64,
    /// Pictures sent.
    pub frames_sent: AtomicU64,
    /// PLIs received from the viewer.
    pub plis: AtomicU64,
    /// FIRs received from the viewer.
    pub firs: AtomicU64,
    /// NACKs received from the viewer (one per NACK message).
    pub nacks: AtomicU64,
    /// Packets resent in answer to NACKs.
    pub retransmitted: AtomicU64,
    /// Times the consumer fell behind and skipped to the next keyframe.
    pub skips: AtomicU64,
    /// Round-trip time from RTCP, in microseconds (0 = unknown).
    pub rtt_us: AtomicU64,
    /// Fraction lost from the receiver's last report, in 1/256 units.
    pub fraction_lost: AtomicU64,
    /// Cumulative packets lost from the receiver's reports.
    pub packets_lost: AtomicU64,
}

impl Consumer {
    /// A new consumer record.
    pub fn new(
        id: String,
        kind: ConsumerKind,
        camera: String,
        offer: Option<String>,
        cancel: CancellationToken,
    ) -> Consumer {
        Consumer {
            id,
            kind,
            camera,
            started: SystemTime::now(),
            started_at: Instant::now(),
            cancel,
            remote: Mutex::new(None),
            state: Mutex::new("new"),
            offer,
            answer: Mutex::new(None),
            bytes_sent: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            plis: AtomicU64::new(0),
            firs: AtomicU64::new(0),
            nacks: AtomicU64::new(0),
            retransmitted: AtomicU64::new(0),
            skips: AtomicU64::new(0),
            rtt_us: AtomicU64::new(0),
            fraction_lost: AtomicU64::new(0),
            packets_lost: AtomicU64::new(0),
        }
    }

    /// Sets the state text.
    pub fn set_state(&self, state: &'static str) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// Sets the remote address.
    pub fn set_remote(&self, remote: String) {
        *self.remote.lock().unwrap_or_else(|e| e.into_inner()) = Some(remote);
    }

    /// Counts a sent RTP packet of `len` bytes.
    pub fn count_packet(&self, len: usize) {
        self.packets_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// A point-in-time copy for the API.
    pub fn snapshot(&self) -> ConsumerView {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rtt = get(&self.rtt_us);
        ConsumerView {
            id: self.id.clone(),
            kind: self.kind,
            camera: self.camera.clone(),
            remote: self
                .remote
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            state: *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            started: self.started,
            duration_seconds: self.started_at.elapsed().as_secs_f64(),
            bytes_sent: get(&self.bytes_sent),
            packets_sent: get(&self.packets_sent),
            frames_sent: get(&self.frames_sent),
            plis: get(&self.plis),
            firs: get(&self.firs),
            nacks: get(&self.nacks),
            retransmitted: get(&self.retransmitted),
            skips: get(&self.skips),
            rtt_seconds: (rtt > 0).then(|| rtt as f64 / 1e6),
            fraction_lost: get(&self.fraction_lost) as f64 / 256.0,
            packets_lost: get(&self.packets_lost),
            offer: self.offer.clone(),
            answer: self
                .answer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// A consumer as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerView {
    pub id: String,
    pub kind: ConsumerKind,
    pub camera: String,
    pub remote: Option<String>,
    pub state: &'static str,
    #[serde(with = "super::unix_seconds")]
    pub started: SystemTime,
    pub duration_seconds: f64,
    pub bytes_sent: u64,
    pub packets_sent: u64,
    pub frames_sent: u64,
    pub plis: u64,
    pub firs: u64,
    pub nacks: u64,
    pub retransmitted: u64,
    pub skips: u64,
    pub rtt_seconds: Option<f64>,
    pub fraction_lost: f64,
    pub packets_lost: u64,
    pub offer: Option<String>,
    pub answer: Option<String>,
}

/// The consumers of one camera.
#[derive(Debug)]
pub struct ConsumerRegistry {
    consumers: Mutex<BTreeMap<String, Arc<Consumer>>>,
    /// How many consumers there are, updated under the `consumers` lock (so
    /// in order): what an on-demand camera waits on.
    count: watch::Sender<usize>,
}

impl Default for ConsumerRegistry {
    fn default() -> Self {
        ConsumerRegistry {
            consumers: Mutex::default(),
            count: watch::Sender::new(0),
        }
    }
}

/// Removes its consumer from the registry when dropped.
#[derive(Debug)]
pub struct ConsumerGuard {
    registry: Arc<ConsumerRegistry>,
    consumer: Arc<Consumer>,
}

impl ConsumerGuard {
    /// The consumer.
    pub fn consumer(&self) -> &Arc<Consumer> {
        &self.consumer
    }
}

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        let mut consumers = self.registry.lock();
        consumers.remove(&self.consumer.id);
        self.registry.count.send_replace(consumers.len());
    }
}

impl ConsumerRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Consumer>>> {
        self.consumers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `consumer`; it stays until the guard drops.
    pub fn register(self: &Arc<Self>, consumer: Consumer) -> ConsumerGuard {
        let consumer = Arc::new(consumer);
        let mut consumers = self.lock();
        consumers.insert(consumer.id.clone(), consumer.clone());
        self.count.send_replace(consumers.len());
        drop(consumers);
        ConsumerGuard {
            registry: self.clone(),
            consumer,
        }
    }

    /// A consumer by id.
    pub fn get(&self, id: &str) -> Option<Arc<Consumer>> {
        self.lock().get(id).cloned()
    }

    /// All consumers.
    pub fn list(&self) -> Vec<Arc<Consumer>> {
        self.lock().values().cloned().collect()
    }

    /// Number of consumers of `kind`.
    pub fn count(&self, kind: ConsumerKind) -> usize {
        self.lock().values().filter(|s| s.kind == kind).count()
    }

    /// The number of consumers, as a watch that changes on every register
    /// and every guard drop.
    pub fn watch_count(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }

    /// Number of consumers.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// A random consumer id (128 bits, hex): unguessable, so a consumer URL (a WHEP session resource) is a
/// capability.
pub fn new_consumer_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_removes_its_consumer() {
        let reg = Arc::new(ConsumerRegistry::default());
        let id = new_consumer_id();
        let g = reg.register(Consumer::new(
            id.clone(),
            ConsumerKind::Viewer,
            "cam".into(),
            None,
            CancellationToken::new(),
        ));
        assert_eq!(reg.count(ConsumerKind::Viewer), 1);
        assert_eq!(reg.count(ConsumerKind::Rtp), 0);
        g.consumer().count_packet(100);
        assert_eq!(reg.get(&id).unwrap().snapshot().bytes_sent, 100);
        drop(g);
        assert!(reg.is_empty());
        assert!(reg.get(&id).is_none());
    }

    #[test]
    fn count_watch_follows_registrations() {
        let reg = Arc::new(ConsumerRegistry::default());
        let mut count = reg.watch_count();
        assert_eq!(*count.borrow_and_update(), 0);
        let consumer = |kind| {
            Consumer::new(
                new_consumer_id(),
                kind,
                "cam".into(),
                None,
                CancellationToken::new(),
            )
        };
        let a = reg.register(consumer(ConsumerKind::Viewer));
        assert!(count.has_changed().unwrap());
        assert_eq!(*count.borrow_and_update(), 1);
        let b = reg.register(consumer(ConsumerKind::Rtp));
        assert_eq!(*count.borrow_and_update(), 2);
        drop(a);
        assert_eq!(*count.borrow_and_update(), 1);
        drop(b);
        assert_eq!(*count.borrow_and_update(), 0);
    }
}
