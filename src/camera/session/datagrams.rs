//! UDP media in a session: a reader task per socket once the streams are
//! chosen, and the gate ([`super::super::ingest::UdpIngest`]) that takes
//! only the camera's datagrams and caps what one camera may send.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::super::ingest::{UdpIngest, Verdict};
use super::super::stats::CameraStats;
use super::super::udp::{udp_reader, UdpRole};
use super::{Driver, SessionContext, SessionError};

impl Driver {
    /// Starts a reader task per UDP socket, and the gate that takes only
    /// the camera's datagrams.
    pub(super) fn start_udp(&mut self, sockets: Vec<(usize, UdpSocket, UdpSocket)>) {
        // Bounded: a flood of datagrams is dropped here, not queued.
        let (tx, rx) = mpsc::channel(1024);
        self.ingest = Some(UdpIngest::new(self.peer_ip, self.streams.len()));
        for (n, rtp, rtcp) in sockets {
            let rtcp = Arc::new(rtcp);
            self.streams[n].rtcp_socket = Some(rtcp.clone());
            self.udp_tasks
                .spawn(udp_reader(Arc::new(rtp), UdpRole::Rtp(n), tx.clone()));
            self.udp_tasks
                .spawn(udp_reader(rtcp, UdpRole::Rtcp(n), tx.clone()));
        }
        self.udp_rx = Some(rx);
    }

    /// One datagram from a UDP reader: taken only from the camera.
    pub(super) fn on_datagram(
        &mut self,
        role: UdpRole,
        from: SocketAddr,
        data: Bytes,
        ctx: &SessionContext<'_>,
    ) -> Result<(), SessionError> {
        let now = Instant::now();
        let (i, rtp) = match role {
            UdpRole::Rtp(i) => (i, true),
            UdpRole::Rtcp(i) => (i, false),
        };
        let Some(ingest) = &mut self.ingest else {
            return Ok(());
        };
        match ingest.check(i, rtp, from, data.len(), now) {
            Verdict::Accept => {}
            Verdict::Reject { log } => {
                CameraStats::add(&ctx.stats.rtp_packets_rejected, 1);
                if let Some(count) = log {
                    tracing::warn!(
                        %from,
                        count,
                        "rejecting UDP datagrams that do not come from the camera"
                    );
                }
                return Ok(());
            }
            Verdict::Flood(e) => return Err(SessionError::Rtsp(e)),
        }
        CameraStats::add(&ctx.stats.bytes_received, data.len() as u64);
        if rtp {
            self.on_rtp(i, data, now, ctx);
        } else {
            self.on_rtcp(i, &data, now, ctx);
        }
        Ok(())
    }
}
