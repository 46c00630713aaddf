//! Who is receiving a camera: WebRTC viewers and RTP consumers, each with
//! live counters that the API, the metrics and the dashboard read. A session
//! registers itself when it starts and is removed when its guard drops, so
//! the registry can never hold a session whose task has ended.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What kind of receiver a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// A WebRTC viewer (WHEP).
    Viewer,
    /// A configured plain-RTP destination.
    Rtp,
}

/// One receiver of a camera, shared between its task and the registry.
#[derive(Debug)]
pub struct Session {
    /// Unique within the gateway (used in URLs).
    pub id: String,
    /// Viewer or RTP consumer.
    pub kind: SessionKind,
    /// The camera it receives.
    pub camera: String,
    /// When it started.
    pub started: SystemTime,
    started_at: Instant,
    /// Ends the session (its task watches this token).
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
    /// Times the session fell behind and skipped to the next keyframe.
    pub skips: AtomicU64,
    /// Round-trip time from RTCP, in microseconds (0 = unknown).
    pub rtt_us: AtomicU64,
    /// Fraction lost from the receiver's last report, in 1/256 units.
    pub fraction_lost: AtomicU64,
    /// Cumulative packets lost from the receiver's reports.
    pub packets_lost: AtomicU64,
}

impl Session {
    /// A new session record.
    pub fn new(
        id: String,
        kind: SessionKind,
        camera: String,
        offer: Option<String>,
        cancel: CancellationToken,
    ) -> Session {
        Session {
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
    pub fn snapshot(&self) -> SessionView {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rtt = get(&self.rtt_us);
        SessionView {
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

/// A session as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: String,
    pub kind: SessionKind,
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

/// The sessions of one camera.
#[derive(Debug)]
pub struct SessionRegistry {
    sessions: Mutex<BTreeMap<String, Arc<Session>>>,
    /// How many sessions there are, updated under the `sessions` lock (so
    /// in order): what an on-demand camera waits on.
    count: watch::Sender<usize>,
}

impl Default for SessionRegistry {
    fn default() -> Self {
        SessionRegistry {
            sessions: Mutex::default(),
            count: watch::Sender::new(0),
        }
    }
}

/// Removes its session from the registry when dropped.
#[derive(Debug)]
pub struct SessionGuard {
    registry: Arc<SessionRegistry>,
    session: Arc<Session>,
}

impl SessionGuard {
    /// The session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut sessions = self.registry.lock();
        sessions.remove(&self.session.id);
        self.registry.count.send_replace(sessions.len());
    }
}

impl SessionRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `session`; it stays until the guard drops.
    pub fn register(self: &Arc<Self>, session: Session) -> SessionGuard {
        let session = Arc::new(session);
        let mut sessions = self.lock();
        sessions.insert(session.id.clone(), session.clone());
        self.count.send_replace(sessions.len());
        drop(sessions);
        SessionGuard {
            registry: self.clone(),
            session,
        }
    }

    /// A session by id.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    /// All sessions.
    pub fn list(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }

    /// Number of sessions of `kind`.
    pub fn count(&self, kind: SessionKind) -> usize {
        self.lock().values().filter(|s| s.kind == kind).count()
    }

    /// The number of sessions, as a watch that changes on every register
    /// and every guard drop.
    pub fn watch_count(&self) -> watch::Receiver<usize> {
        self.count.subscribe()
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// A random session id (128 bits, hex): unguessable, so a session URL is a
/// capability.
pub fn new_session_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_removes_its_session() {
        let reg = Arc::new(SessionRegistry::default());
        let id = new_session_id();
        let g = reg.register(Session::new(
            id.clone(),
            SessionKind::Viewer,
            "cam".into(),
            None,
            CancellationToken::new(),
        ));
        assert_eq!(reg.count(SessionKind::Viewer), 1);
        assert_eq!(reg.count(SessionKind::Rtp), 0);
        g.session().count_packet(100);
        assert_eq!(reg.get(&id).unwrap().snapshot().bytes_sent, 100);
        drop(g);
        assert!(reg.is_empty());
        assert!(reg.get(&id).is_none());
    }

    #[test]
    fn count_watch_follows_registrations() {
        let reg = Arc::new(SessionRegistry::default());
        let mut count = reg.watch_count();
        assert_eq!(*count.borrow_and_update(), 0);
        let session = |kind| {
            Session::new(
                new_session_id(),
                kind,
                "cam".into(),
                None,
                CancellationToken::new(),
            )
        };
        let a = reg.register(session(SessionKind::Viewer));
        assert!(count.has_changed().unwrap());
        assert_eq!(*count.borrow_and_update(), 1);
        let b = reg.register(session(SessionKind::Rtp));
        assert_eq!(*count.borrow_and_update(), 2);
        drop(a);
        assert_eq!(*count.borrow_and_update(), 1);
        drop(b);
        assert_eq!(*count.borrow_and_update(), 0);
    }
}
