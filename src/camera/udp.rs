//! UDP media for a camera session: even/odd port pairs (RFC 3550 section 11)
//! and the reader tasks that hand datagrams to the session loop.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Which UDP socket a datagram came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UdpRole {
    Rtp(usize),
    Rtcp(usize),
}

/// Binds an even RTP port and the odd port above it on `ip`.
pub(super) async fn bind_udp_pair(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    let mut last_err = io::Error::other("no port pair found");
    for _ in 0..32 {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        match UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

/// Forwards datagrams from one socket to the session loop with their
/// source (the loop takes only the camera's). Drops when the loop is
/// behind rather than queueing without bound.
pub(super) async fn udp_reader(
    socket: Arc<UdpSocket>,
    role: UdpRole,
    tx: mpsc::Sender<(UdpRole, SocketAddr, Bytes)>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        // Room for any datagram a camera sends (jumbo frames included).
        buf.reserve(16 * 1024);
        match socket.recv_buf_from(&mut buf).await {
            Ok((_, from)) => {
                let data = buf.split().freeze();
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send((role, from, data)) {
                    return;
                }
            }
            Err(e) => {
                // ICMP port unreachable surfaces as an error on some systems;
                // keep reading.
                tracing::debug!(error = %e, "udp receive error");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

pub(super) async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Asks for a `bytes` receive buffer (SO_RCVBUF) and returns what the kernel
/// granted. Linux reports twice the usable size (it counts bookkeeping) and
/// caps the request at `net.core.rmem_max`.
pub(super) fn set_receive_buffer(socket: &socket2::SockRef<'_>, bytes: usize) -> usize {
    if let Err(e) = socket.set_recv_buffer_size(bytes) {
        tracing::debug!(error = %e, "SO_RCVBUF not set");
    }
    socket.recv_buffer_size().unwrap_or(0)
}

/// Records the granted receive buffer and says how to raise a capped one.
pub(super) fn record_buffer(stats: &super::CameraStats, requested: usize, granted: usize) {
    super::CameraStats::set(&stats.socket_buffer_requested, requested as u64);
    super::CameraStats::set(&stats.socket_buffer_granted, granted as u64);
    // Linux doubles what it grants; anything under the request was capped.
    if granted < requested {
        tracing::warn!(
            requested,
            granted,
            "the kernel capped the socket receive buffer (net.core.rmem_max); \
             raise it with `sysctl -w net.core.rmem_max={requested}` and persist it in /etc/sysctl.d"
        );
    } else {
        tracing::debug!(requested, granted, "socket receive buffer");
    }
}
