//! Whether anyone wants an on-demand camera: its consumer count, and the
//! idle timeout that runs from the last departure.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::consumers::ConsumerRegistry;
use crate::config::CameraConfig;

/// Whether anyone wants an on-demand camera: its session count, and since
/// when it has been zero.
pub(super) struct Demand {
    /// Session count; `None` for a camera that is always pulled.
    count: Option<watch::Receiver<usize>>,
    idle_timeout: Duration,
    /// When the count last dropped to zero; kept across sessions and
    /// backoff waits so the idle timeout runs from the last departure.
    zero_since: Option<Instant>,
}

impl Demand {
    pub(super) fn new(cfg: &CameraConfig, consumers: &ConsumerRegistry) -> Demand {
        Demand {
            count: cfg.on_demand.then(|| consumers.watch_count()),
            idle_timeout: cfg.idle_timeout,
            zero_since: None,
        }
    }

    /// Resolves once at least one session wants the camera (at once for a
    /// camera that is always pulled).
    pub(super) async fn wanted(&mut self) {
        let Some(count) = &mut self.count else {
            return;
        };
        loop {
            if *count.borrow_and_update() > 0 {
                self.zero_since = None;
                return;
            }
            if count.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Resolves once no session has wanted the camera for `idle_timeout`
    /// (never for a camera that is always pulled). Cancel-safe.
    pub(super) async fn lost(&mut self) {
        let Some(count) = &mut self.count else {
            return std::future::pending().await;
        };
        loop {
            let changed = if *count.borrow_and_update() > 0 {
                self.zero_since = None;
                count.changed().await
            } else {
                let since = *self.zero_since.get_or_insert_with(Instant::now);
                tokio::select! {
                    _ = tokio::time::sleep_until(since + self.idle_timeout) => return,
                    changed = count.changed() => changed,
                }
            };
            if changed.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::camera::consumers::{new_consumer_id, Consumer, ConsumerKind};

    fn on_demand_config(idle_timeout: Duration) -> CameraConfig {
        let mut cfg = crate::config::Config::parse(
            "[[camera]]\nid = \"od\"\nurl = \"rtsp://127.0.0.1:9/x\"\non_demand = true\n",
            "test.toml",
        )
        .expect("valid")
        .cameras
        .remove(0);
        cfg.idle_timeout = idle_timeout;
        cfg
    }

    fn viewer() -> Consumer {
        Consumer::new(
            new_consumer_id(),
            ConsumerKind::Viewer,
            "od".into(),
            None,
            CancellationToken::new(),
        )
    }

    /// Whether `f` is still pending after `wait`.
    async fn pending_for<F: std::future::Future>(wait: Duration, f: F) -> bool {
        tokio::time::timeout(wait, f).await.is_err()
    }

    #[tokio::test]
    async fn demand_waits_for_a_session_and_times_out_after_the_last() {
        let idle = Duration::from_millis(300);
        let reg = Arc::new(ConsumerRegistry::default());
        let mut demand = Demand::new(&on_demand_config(idle), &reg);
        // Nobody: not wanted.
        assert!(pending_for(Duration::from_millis(200), demand.wanted()).await);
        let guard = reg.register(viewer());
        tokio::time::timeout(Duration::from_secs(5), demand.wanted())
            .await
            .expect("wanted once a session registered");
        // Watched: never lost.
        assert!(pending_for(Duration::from_millis(600), demand.lost()).await);
        drop(guard);
        let left = Instant::now();
        // An interrupted wait keeps the time of the departure.
        assert!(pending_for(Duration::from_millis(100), demand.lost()).await);
        demand.lost().await;
        assert!(left.elapsed() >= idle, "{:?}", left.elapsed());
        // A session that comes back within the timeout resets it.
        let guard = reg.register(viewer());
        assert!(pending_for(Duration::from_millis(600), demand.lost()).await);
        drop(guard);
        let left = Instant::now();
        demand.lost().await;
        assert!(left.elapsed() >= idle, "{:?}", left.elapsed());
    }

    #[tokio::test]
    async fn always_pulled_camera_is_always_wanted() {
        let reg = Arc::new(ConsumerRegistry::default());
        let mut cfg = on_demand_config(Duration::from_millis(100));
        cfg.on_demand = false;
        let mut demand = Demand::new(&cfg, &reg);
        demand.wanted().await;
        assert!(pending_for(Duration::from_millis(500), demand.lost()).await);
    }
}
