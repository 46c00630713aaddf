//! Feedback to the camera during a session: RTCP receiver reports every
//! 5 s (RFC 3550 6.4.2; some firmware ends sessions that send none),
//! keyframe requests (RTCP PLI and FIR, RFC 4585 and RFC 5104, and ONVIF
//! SetSynchronizationPoint), sent on the interleaved channel or to the
//! camera's RTCP port. What to send and when is decided by the sans-IO
//! [`crate::rtp::receiver::RtcpReceiver`] and the watchdog.

use std::time::Instant;

use super::super::stats::CameraStats;
use super::{Driver, SessionContext, SessionParams};

impl Driver {
    /// Asks the camera for a keyframe: RTCP PLI and FIR (RFC 4585, RFC 5104)
    /// on the video stream's RTCP channel or port, and ONVIF
    /// SetSynchronizationPoint where configured. The watchdog rate-limits.
    pub(super) async fn request_refresh(
        &mut self,
        params: &SessionParams,
        ctx: &SessionContext<'_>,
        now: Instant,
    ) {
        let Some(i) = self.streams.iter().position(|s| s.path.is_video()) else {
            return;
        };
        let mut out = Vec::with_capacity(96);
        let jitter = self.streams[i].path.jitter();
        if !self.rtcp.write_refresh(i, jitter, now, &mut out) {
            return;
        }
        self.send_rtcp(i, &out, ctx).await;
        CameraStats::add(&ctx.stats.refresh_requests, 1);
        tracing::debug!("asked the camera for a keyframe (PLI, FIR)");
        if let (Some(onvif), None) = (&params.onvif, &self.onvif_inflight) {
            let onvif = onvif.clone();
            self.onvif_inflight = Some(Box::pin(async move {
                onvif.lock().await.request_keyframe().await
            }));
        }
    }

    /// Sends one RTCP receiver report per stream (RFC 3550 6.4.2).
    pub(super) async fn send_receiver_reports(&mut self, ctx: &SessionContext<'_>, now: Instant) {
        for i in 0..self.streams.len() {
            let mut out = Vec::with_capacity(64);
            let jitter = self.streams[i].path.jitter();
            if self.rtcp.write_report(i, jitter, now, &mut out).is_some() {
                self.send_rtcp(i, &out, ctx).await;
            }
        }
        if self.flush().await.is_err() {
            // The read side sees the broken connection next.
            CameraStats::add(&ctx.stats.rtcp_send_errors, 1);
        }
    }

    /// Sends an RTCP packet for stream `i`: on its interleaved channel over
    /// TCP (queued; the loop flushes), or to the camera's RTCP port over
    /// UDP. A failed send is counted, not fatal (the media deadline judges
    /// the link).
    async fn send_rtcp(&mut self, i: usize, packet: &[u8], ctx: &SessionContext<'_>) {
        let stream = &self.streams[i];
        if let Some((_, rtcp_channel)) = stream.channels {
            self.client.send_interleaved(rtcp_channel, packet);
        } else if let (Some(sock), Some(dest)) = (&stream.rtcp_socket, stream.rtcp_dest) {
            if let Err(e) = sock.send_to(packet, dest).await {
                CameraStats::add(&ctx.stats.rtcp_send_errors, 1);
                tracing::debug!(error = %e, %dest, "RTCP send failed");
            }
        }
    }
}
