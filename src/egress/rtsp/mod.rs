//! The RTSP server (RFC 2326): every camera's repaired stream at
//! `rtsp://HOST:PORT/{camera_id}`, for recorders and video management
//! systems. Each client is a consumer of the camera's hub like a WebRTC
//! viewer: it starts at the cached GOP's keyframe, skips to the next
//! keyframe when it falls behind (never slowing the camera or other
//! clients), gets sender reports, and its PLI/FIR replays the GOP.
//!
//! One task per connection ([`conn`]) owns its session and sends its media
//! ([`play`]); this module accepts connections within the caps, keeps the
//! places (`max_rtsp_clients`, per camera) and the UDP port pool.

mod conn;
mod play;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::{address_key, Auth};
use crate::camera::Supervisor;
use crate::config::RtspServerConfig;
use crate::egress::places::{Names, Place, Places};

/// Connections beyond the client places (clients that only DESCRIBE, or
/// are on their way out) accepted at once.
const SPARE_CONNECTIONS: usize = 64;
/// Time to send a whole request head once its first byte arrived.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Realm of the Digest and Basic challenges.
const REALM: &str = "camgate";

/// A bound RTSP server, ready to [`RtspServer::run`].
pub struct RtspServer {
    /// RTSP over TCP.
    tcp: TcpListener,
    /// RTSP over TLS, when `rtsps_listen` is set.
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    /// What every connection shares.
    shared: Arc<Shared>,
}

/// What every connection of the server shares.
pub(crate) struct Shared {
    /// `[rtsp_server]`.
    config: RtspServerConfig,
    /// The cameras.
    supervisor: Arc<Supervisor>,
    /// The `[auth]` policy, shared with HTTP (one lockout for both).
    auth: Arc<Auth>,
    /// The Digest nonce of this run.
    nonce: String,
    /// Client places under `max_rtsp_clients` and the per-camera limit.
    places: Arc<Places>,
    /// Open connections per address (IPv6 by /64).
    connections: Mutex<HashMap<IpAddr, usize>>,
    /// Local UDP ports in use (the even port of each pair).
    udp_ports: Mutex<std::collections::HashSet<u16>>,
    /// Where cameras that another node of a cluster plays are.
    locator: Option<Arc<dyn crate::camera::remote::Locator>>,
}

impl Shared {
    /// Binds a free even/odd UDP port pair of the range on `ip`.
    async fn udp_pair(
        self: &Arc<Self>,
        ip: IpAddr,
    ) -> std::io::Result<(tokio::net::UdpSocket, tokio::net::UdpSocket, PortLease)> {
        let (first, last) = self.config.udp_ports;
        let mut port = first;
        while port < last {
            let free = {
                let mut used = self.udp_ports.lock().unwrap_or_else(|e| e.into_inner());
                used.insert(port)
            };
            if free {
                let lease = PortLease {
                    shared: self.clone(),
                    port,
                };
                if let (Ok(rtp), Ok(rtcp)) = (
                    tokio::net::UdpSocket::bind((ip, port)).await,
                    tokio::net::UdpSocket::bind((ip, port + 1)).await,
                ) {
                    return Ok((rtp, rtcp, lease));
                }
            }
            port = port.saturating_add(2);
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("no free UDP port pair in [rtsp_server] udp_port_range {first}-{last}"),
        ))
    }
}

/// A UDP port pair in use: given back when dropped.
pub(crate) struct PortLease {
    shared: Arc<Shared>,
    port: u16,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.shared
            .udp_ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.port);
    }
}

/// A connection's slot under the per-address cap.
struct ConnectionSlot {
    shared: Arc<Shared>,
    key: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.remove(&self.key);
            }
        }
    }
}

impl RtspServer {
    /// Binds the listeners of `config` (`tls`: the acceptor for
    /// `rtsps_listen`, made from the `[server]` certificate by the caller).
    pub async fn bind(
        config: &RtspServerConfig,
        tls: Option<tokio_rustls::TlsAcceptor>,
        supervisor: Arc<Supervisor>,
        auth: Arc<Auth>,
        locator: Option<Arc<dyn crate::camera::remote::Locator>>,
    ) -> std::io::Result<RtspServer> {
        let tcp = TcpListener::bind(config.listen).await?;
        let tls = match (config.rtsps_listen, tls) {
            (Some(addr), Some(acceptor)) => Some((TcpListener::bind(addr).await?, acceptor)),
            _ => None,
        };
        Ok(RtspServer {
            tcp,
            tls,
            shared: Arc::new(Shared {
                config: config.clone(),
                supervisor,
                auth,
                nonce: crate::rtsp::digest::new_nonce(),
                places: Places::new(
                    config.max_rtsp_clients,
                    config.max_rtsp_clients_per_camera,
                    Names {
                        what: "RTSP clients",
                        total_key: "[rtsp_server] max_rtsp_clients",
                        camera_key: "[rtsp_server] max_rtsp_clients_per_camera",
                    },
                ),
                connections: Mutex::default(),
                udp_ports: Mutex::default(),
                locator,
            }),
        })
    }

    /// The address RTSP over TCP listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The address RTSP over TLS listens on, when it does.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until `shutdown`, then ends every connection and returns once
    /// their tasks have ended.
    pub async fn run(self, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        let RtspServer { tcp, tls, shared } = self;
        tracing::info!(listen = %tcp.local_addr().map(|a| a.to_string()).unwrap_or_default(), "rtsp server running");
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = tcp.accept() => a.map(|(s, peer)| (s, peer, false)),
                a = async {
                    match &tls {
                        Some((l, _)) => l.accept().await,
                        None => std::future::pending().await,
                    }
                } => a.map(|(s, peer)| (s, peer, true)),
            };
            let (stream, peer, secure) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "rtsp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(slot) = admit(&shared, peer.ip()) else {
                tracing::debug!(peer = %peer, "rtsp connection refused: too many connections");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            let acceptor = tls.as_ref().map(|(_, a)| a.clone()).filter(|_| secure);
            tasks.spawn(async move {
                let _slot = slot;
                serve(stream, peer, acceptor, shared, shutdown).await;
            });
        }
        tasks.close();
        tasks.wait().await;
    }
}

/// A slot for a connection from `ip`, unless a cap is reached.
fn admit(shared: &Arc<Shared>, ip: IpAddr) -> Option<ConnectionSlot> {
    let key = address_key(ip);
    let mut c = shared.connections.lock().unwrap_or_else(|e| e.into_inner());
    let total: usize = c.values().sum();
    let n = c.get(&key).copied().unwrap_or(0);
    if n >= shared.config.max_connections_per_address
        || total >= shared.config.max_rtsp_clients + SPARE_CONNECTIONS
    {
        return None;
    }
    c.insert(key, n + 1);
    Some(ConnectionSlot {
        shared: shared.clone(),
        key,
    })
}

/// One connection, plain or TLS.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    match tls {
        None => {
            conn::Connection::new(shared, peer, local, false)
                .run(stream, shutdown)
                .await
        }
        Some(acceptor) => {
            let handshake = tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await;
            match handshake {
                Ok(Ok(s)) => {
                    conn::Connection::new(shared, peer, local, true)
                        .run(s, shutdown)
                        .await
                }
                _ => tracing::debug!(peer = %peer, "rtsps handshake failed or too slow"),
            }
        }
    }
}
