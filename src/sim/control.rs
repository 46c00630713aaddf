//! Handles on a running sim from outside its sessions: the keyframe trigger
//! (what ONVIF `SetSynchronizationPoint` calls), the counters of injected
//! faults (and of sessions by transport), so tests compare what camgate
//! detected with what was injected, and the live sessions of each camera.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of the faults a sim server injected, across all its sessions.
/// Cheap to clone (one `Arc`); read with [`FaultStats::snapshot`].
#[derive(Clone, Debug, Default)]
pub struct FaultStats {
    /// The counters, shared with every session of the server.
    inner: Arc<Counters>,
}

/// The atomic counters behind [`FaultStats`], one per field of [`FaultCounts`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// [`FaultCounts::truncated`].
    pub(crate) truncated: AtomicU64,
    /// [`FaultCounts::truncated_resent`].
    pub(crate) truncated_resent: AtomicU64,
    /// [`FaultCounts::garbage_bursts`].
    pub(crate) garbage_bursts: AtomicU64,
    /// [`FaultCounts::garbage_bytes`].
    pub(crate) garbage_bytes: AtomicU64,
    /// [`FaultCounts::stalls`].
    pub(crate) stalls: AtomicU64,
    /// [`FaultCounts::udp_lost`].
    pub(crate) udp_lost: AtomicU64,
    /// [`FaultCounts::udp_reordered`].
    pub(crate) udp_reordered: AtomicU64,
    /// [`FaultCounts::udp_duplicated`].
    pub(crate) udp_duplicated: AtomicU64,
    /// [`FaultCounts::ssrc_changes`].
    pub(crate) ssrc_changes: AtomicU64,
    /// [`FaultCounts::timestamp_jumps`].
    pub(crate) timestamp_jumps: AtomicU64,
    /// [`FaultCounts::reboots`].
    pub(crate) reboots: AtomicU64,
    /// [`FaultCounts::keyframe_requests_honoured`].
    pub(crate) keyframe_requests_honoured: AtomicU64,
    /// [`FaultCounts::rr_timeouts`].
    pub(crate) rr_timeouts: AtomicU64,
    /// [`FaultCounts::tcp_sessions`].
    pub(crate) tcp_sessions: AtomicU64,
    /// [`FaultCounts::udp_sessions`].
    pub(crate) udp_sessions: AtomicU64,
}

/// A copy of the fault counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// TCP RTP packets cut short and never completed.
    pub truncated: u64,
    /// TCP RTP packets cut short, then sent again whole.
    pub truncated_resent: u64,
    /// Runs of garbage bytes written between two interleaved frames.
    pub garbage_bursts: u64,
    /// Garbage bytes written in all.
    pub garbage_bytes: u64,
    /// Stalls (each followed by a burst).
    pub stalls: u64,
    /// UDP RTP packets not sent.
    pub udp_lost: u64,
    /// UDP RTP packets held back behind later ones.
    pub udp_reordered: u64,
    /// UDP RTP packets sent twice.
    pub udp_duplicated: u64,
    /// Video SSRC changes (encoder restarts).
    pub ssrc_changes: u64,
    /// RTP timestamp jumps of 10 s.
    pub timestamp_jumps: u64,
    /// Connections dropped or UDP sessions ended by a simulated reboot.
    pub reboots: u64,
    /// PLI/FIR/trigger requests a session acted on (jumped to a keyframe).
    pub keyframe_requests_honoured: u64,
    /// Sessions ended because the client sent no RTCP receiver report for
    /// `require_rr_s`.
    pub rr_timeouts: u64,
    /// Sessions set up with TCP interleaved media (not a fault: tells a
    /// test which transport a client chose, and how often it came back).
    pub tcp_sessions: u64,
    /// Sessions set up with UDP media (likewise).
    pub udp_sessions: u64,
}

impl FaultStats {
    /// The counters as they are now.
    pub fn snapshot(&self) -> FaultCounts {
        let c = &self.inner;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultCounts {
            truncated: get(&c.truncated),
            truncated_resent: get(&c.truncated_resent),
            garbage_bursts: get(&c.garbage_bursts),
            garbage_bytes: get(&c.garbage_bytes),
            stalls: get(&c.stalls),
            udp_lost: get(&c.udp_lost),
            udp_reordered: get(&c.udp_reordered),
            udp_duplicated: get(&c.udp_duplicated),
            ssrc_changes: get(&c.ssrc_changes),
            timestamp_jumps: get(&c.timestamp_jumps),
            reboots: get(&c.reboots),
            keyframe_requests_honoured: get(&c.keyframe_requests_honoured),
            rr_timeouts: get(&c.rr_timeouts),
            tcp_sessions: get(&c.tcp_sessions),
            udp_sessions: get(&c.udp_sessions),
        }
    }

    /// The counters, for sessions to add to.
    pub(crate) fn counters(&self) -> &Counters {
        &self.inner
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What a live session exposes to the keyframe trigger.
#[derive(Debug)]
pub(crate) struct SessionSignal {
    /// Set by [`KeyframeTrigger::request`]; the session takes it before its
    /// next frame and jumps to the clip's next keyframe.
    keyframe: AtomicBool,
}

impl SessionSignal {
    /// True (once) if a keyframe was requested since the last call.
    pub(crate) fn take_keyframe(&self) -> bool {
        self.keyframe.swap(false, Ordering::Relaxed)
    }
}

/// Live sessions by camera name, for the keyframe trigger.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Sessions of each camera that honour keyframe requests.
    by_camera: Mutex<HashMap<String, Vec<Arc<SessionSignal>>>>,
}

impl Registry {
    /// Registers a session of `camera`; it leaves the registry when the
    /// returned guard drops. Every session registers (the trigger works even with `honour_pli` false); sessions need not
    /// register: the trigger would be ignored anyway.
    pub(crate) fn register(self: &Arc<Self>, camera: &str) -> Registration {
        let signal = Arc::new(SessionSignal {
            keyframe: AtomicBool::new(false),
        });
        self.by_camera
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(camera.to_owned())
            .or_default()
            .push(signal.clone());
        Registration {
            registry: self.clone(),
            camera: camera.to_owned(),
            signal,
        }
    }

    /// How many live sessions each camera has; a camera without one is
    /// absent.
    fn counts(&self) -> BTreeMap<String, usize> {
        let map = self.by_camera.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(camera, sessions)| (camera.clone(), sessions.len()))
            .collect()
    }

    /// Flags every live session of `camera`; returns how many there were.
    fn request(&self, camera: &str) -> usize {
        let map = self.by_camera.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sessions) = map.get(camera) else {
            return 0;
        };
        for s in sessions {
            s.keyframe.store(true, Ordering::Relaxed);
        }
        sessions.len()
    }
}

/// A session's place in the [`Registry`]; leaves it on drop.
#[derive(Debug)]
pub(crate) struct Registration {
    /// The registry to leave.
    registry: Arc<Registry>,
    /// The camera the session serves.
    camera: String,
    /// The session's flag.
    pub(crate) signal: Arc<SessionSignal>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self
            .registry
            .by_camera
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(v) = map.get_mut(&self.camera) {
            v.retain(|s| !Arc::ptr_eq(s, &self.signal));
            if v.is_empty() {
                map.remove(&self.camera);
            }
        }
    }
}

/// Asks live sessions of a camera for a keyframe, as RTCP PLI does for one
/// session; for ONVIF `SetSynchronizationPoint`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct KeyframeTrigger {
    /// The server's session registry.
    registry: Arc<Registry>,
}

impl KeyframeTrigger {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        KeyframeTrigger { registry }
    }

    /// Every live session of camera `camera` (the URL path without its
    /// leading `/` and query, e.g. `cam1`) whose faults honour PLI sends
    /// the clip's next keyframe as its next frame. Sessions that do not honour
    /// PLI ignore it; an unknown camera is not an error.
    pub fn request(&self, camera: &str) {
        let n = self.registry.request(camera.trim_matches('/'));
        tracing::debug!(camera, sessions = n, "sim: keyframe requested");
    }
}

/// Counts the live sessions of each camera (set up, playing or paused, over
/// TCP or UDP), for `camgate sim --status-listen` and tests. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct LiveSessions {
    /// The server's session registry.
    registry: Arc<Registry>,
}

impl LiveSessions {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        LiveSessions { registry }
    }

    /// Live sessions by camera name (the URL path without its leading `/`
    /// and query), now; a camera with none is absent.
    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.registry.counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_reaches_live_sessions_of_the_camera_only() {
        let reg = Arc::new(Registry::default());
        let trigger = KeyframeTrigger::new(reg.clone());
        let a = reg.register("cam");
        let b = reg.register("other");
        trigger.request("/cam");
        assert!(a.signal.take_keyframe());
        assert!(!a.signal.take_keyframe());
        assert!(!b.signal.take_keyframe());
        drop(a);
        assert!(reg.by_camera.lock().unwrap().get("cam").is_none());
        trigger.request("cam");
        drop(b);
        assert!(reg.by_camera.lock().unwrap().is_empty());
    }

    #[test]
    fn live_sessions_count_registrations_by_camera() {
        let reg = Arc::new(Registry::default());
        let live = LiveSessions::new(reg.clone());
        assert!(live.snapshot().is_empty());
        let a = reg.register("cam");
        let b = reg.register("cam");
        let c = reg.register("yard");
        let expected: BTreeMap<String, usize> = [("cam".into(), 2), ("yard".into(), 1)].into();
        assert_eq!(live.snapshot(), expected);
        drop(a);
        drop(c);
        assert_eq!(live.snapshot(), BTreeMap::from([("cam".to_owned(), 1)]));
        drop(b);
        assert!(live.snapshot().is_empty());
    }
}
