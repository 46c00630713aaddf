//! The simulator's status listener (`camgate sim --status-listen`), for
//! tests that watch cameras from outside the sim's process: `GET /sessions`
//! answers the live RTSP sessions of each camera as a JSON object, e.g.
//! `{"cam1":1,"yard":2}` (HTTP/1.1, RFC 9110). A camera with no live
//! session is absent. A session counts from its SETUP until its TEARDOWN,
//! its connection's end (TCP) or its timeout (UDP).

use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::LiveSessions;

/// The status listener of a sim server.
#[derive(Debug)]
pub struct StatusServer {
    /// The listening socket.
    listener: TcpListener,
    /// Its address (port resolved when bound to port 0).
    local_addr: SocketAddr,
    /// What `GET /sessions` reports.
    sessions: LiveSessions,
}

impl StatusServer {
    /// Binds the listener; `sessions` comes from
    /// [`SimServer::live_sessions`](super::SimServer::live_sessions).
    pub async fn bind(addr: SocketAddr, sessions: LiveSessions) -> std::io::Result<StatusServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(StatusServer {
            listener,
            local_addr,
            sessions,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let router = Router::new()
            .route("/sessions", get(sessions))
            .with_state(self.sessions);
        if let Err(e) = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        {
            warn!("sim status: server failed: {e}");
        }
    }
}

/// `GET /sessions`.
async fn sessions(
    State(live): State<LiveSessions>,
) -> Json<std::collections::BTreeMap<String, usize>> {
    Json(live.snapshot())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::sim::control::Registry;

    /// One HTTP/1.1 request to `addr`: (status code, body).
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).await.unwrap();
        let status = reply
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap();
        let body = reply
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap();
        (status, body)
    }

    #[tokio::test]
    async fn sessions_answers_live_sessions_by_camera() {
        let registry = Arc::new(Registry::default());
        let server = StatusServer::bind(
            ([127, 0, 0, 1], 0).into(),
            LiveSessions::new(registry.clone()),
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.run(stop.clone()));

        assert_eq!(get(addr, "/sessions").await, (200, "{}".to_owned()));
        let a = registry.register("cam");
        let b = registry.register("cam");
        let c = registry.register("yard");
        let (status, body) = get(addr, "/sessions").await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v, serde_json::json!({"cam": 2, "yard": 1}));
        drop((a, c));
        let (_, body) = get(addr, "/sessions").await;
        assert_eq!(body, r#"{"cam":1}"#);
        drop(b);
        assert_eq!(get(addr, "/sessions").await.1, "{}");
        assert_eq!(get(addr, "/other").await.0, 404);

        stop.cancel();
        task.await.unwrap();
    }
}
