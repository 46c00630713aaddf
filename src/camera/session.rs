//! One RTSP session with a camera: the thin tokio driver around the
//! sans-IO cores (RFC 2326 [`crate::rtsp::Client`], the RTCP receiver side
//! [`crate::rtp::receiver`], the session [`Watchdog`] and each stream's
//! [`super::media`] path). It owns the connection and UDP sockets, waits
//! on them, the deadlines and cancellation, and feeds the cores. It ends
//! on failure, redirect or cancellation; the supervisor decides what next.
//! What a session is given is in [`super::params`]; UDP ingest and RTCP
//! feedback are in the `datagrams` and `feedback` submodules.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout};

use super::connect::{connect, ConnReader, ConnWriter, ConnectOptions};
use super::ingest::UdpIngest;
use super::media::MediaSink;
use super::setup::{apply_setups, choose_streams, MediaStream};
use super::stats::CameraStats;
use super::udp::{recv_opt, UdpRole};
use super::watchdog::{Limits, Watchdog};
use super::CameraState;
use crate::onvif::OnvifError;
use crate::rtp::receiver::RtcpReceiver;
use crate::rtp::RtpPacket;
use crate::rtsp::{Client, ClientConfig, Event, StreamSetup};

pub use super::error::SessionError;
pub use super::params::{
    Carrier, SessionContext, SessionEnd, SessionOutcome, SessionParams, CONNECT_TIMEOUT,
    MEDIA_TIMEOUT,
};

mod datagrams;
mod feedback;

/// How long TEARDOWN may take before the connection is closed anyway.
const TEARDOWN_WAIT: Duration = Duration::from_millis(800);
/// A write to the camera that takes longer than this means a dead link.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The loop wakes at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Runs one session until it ends. Never panics on camera input.
pub async fn run_session(params: &SessionParams, ctx: SessionContext<'_>) -> SessionOutcome {
    let mut driver = match Driver::connect(params, &ctx).await {
        Ok(driver) => driver,
        Err(e) => {
            return SessionOutcome {
                end: SessionEnd::Failed(e),
                played: Duration::ZERO,
            }
        }
    };
    let end = driver.run(params, &ctx).await;
    driver.shutdown().await;
    SessionOutcome {
        end,
        played: driver
            .watchdog
            .playing_since()
            .map(|t| t.elapsed())
            .unwrap_or_default(),
    }
}

/// An ONVIF SetSynchronizationPoint under way.
type OnvifFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), OnvifError>> + Send>>;

/// The live parts of a session.
struct Driver {
    /// The RTSP state machine.
    client: Client,
    reader: ConnReader,
    writer: ConnWriter,
    /// Our end of the connection; UDP sockets bind to the same address.
    local_ip: IpAddr,
    /// The camera's address.
    peer_ip: IpAddr,
    /// The streams being received, indexed like `rtcp`'s streams.
    streams: Vec<MediaStream>,
    /// Receiver reports, last SRs, keyframe requests.
    rtcp: RtcpReceiver,
    /// Media, picture, UDP-probe and refresh deadlines.
    watchdog: Watchdog,
    /// Which datagrams are the camera's (UDP only).
    ingest: Option<UdpIngest>,
    /// Datagrams from the UDP reader tasks (bounded; overflow is dropped).
    udp_rx: Option<mpsc::Receiver<(UdpRole, SocketAddr, Bytes)>>,
    /// The UDP reader tasks, aborted when the session ends.
    udp_tasks: JoinSet<()>,
    /// Set when PLAY succeeded.
    playing: bool,
    /// An ONVIF SetSynchronizationPoint under way.
    onvif_inflight: Option<OnvifFuture>,
    /// Framing counters of the client already added to the camera's stats.
    framing_counted: (u64, u64),
}

impl Driver {
    async fn connect(
        params: &SessionParams,
        ctx: &SessionContext<'_>,
    ) -> Result<Driver, SessionError> {
        let options = ConnectOptions {
            timeout: params.connect_timeout,
            socket_buffer_bytes: params.socket_buffer_bytes,
            tls_verify: params.tls_verify,
        };
        let conn = connect(&params.url, &options, ctx.stats).await?;
        ctx.status
            .send_modify(|s| s.transport = Some(params.carrier.as_str()));
        let now = Instant::now();
        let client = Client::new(
            ClientConfig {
                url: params.url.clone(),
                credentials: params.credentials.clone(),
                user_agent: concat!("camgate/", env!("CARGO_PKG_VERSION")).to_string(),
            },
            now,
        );
        Ok(Driver {
            client,
            reader: conn.reader,
            writer: conn.writer,
            local_ip: conn.local_ip,
            peer_ip: conn.peer.ip(),
            streams: Vec::new(),
            rtcp: RtcpReceiver::new(rand::random()),
            watchdog: Watchdog::new(Limits {
                media_timeout: params.media_timeout,
                udp_probe: params.udp_probe,
                refresh_timeout: params.refresh_timeout,
            }),
            ingest: None,
            udp_rx: None,
            udp_tasks: JoinSet::new(),
            playing: false,
            onvif_inflight: None,
            framing_counted: (0, 0),
        })
    }

    async fn run(&mut self, params: &SessionParams, ctx: &SessionContext<'_>) -> SessionEnd {
        let mut rbuf = vec![0u8; 64 * 1024];
        loop {
            if let Err(e) = self.flush().await {
                return SessionEnd::Failed(e);
            }
            while let Some(event) = self.client.poll_event() {
                match self.on_event(event, params, ctx).await {
                    Ok(None) => {}
                    Ok(Some(end)) => return end,
                    Err(e) => return self.fail_with_teardown(e).await,
                }
            }
            let now = Instant::now();
            if self.watchdog.poll_refresh(now) {
                self.request_refresh(params, ctx, now).await;
            }
            if let Err(e) = self.flush().await {
                return SessionEnd::Failed(e);
            }

            let deadline = [
                self.client.poll_timeout(),
                self.watchdog.poll_timeout(),
                self.rtcp.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .chain(self.streams.iter().filter_map(|s| s.path.poll_timeout()))
            .fold(now + MAX_SLEEP, Instant::min);

            tokio::select! {
                _ = ctx.cancel.cancelled() => {
                    self.teardown().await;
                    return SessionEnd::Stopped;
                }
                read = self.reader.read(&mut rbuf) => match read {
                    Ok(0) => return SessionEnd::Failed(SessionError::Closed),
                    Ok(n) => {
                        self.client.handle_input(&rbuf[..n], Instant::now());
                        self.count_framing(ctx);
                    }
                    Err(e) => return SessionEnd::Failed(SessionError::Io(e.to_string())),
                },
                _ = ctx.hub.keyframe_requested(), if self.playing => {
                    // A viewer asked for a keyframe the GOP cache could not
                    // give it (the hub rate-limits these).
                    self.watchdog.handle_refresh_wanted();
                }
                result = onvif_opt(&mut self.onvif_inflight) => {
                    self.onvif_inflight = None;
                    CameraStats::add(&ctx.stats.onvif_refresh_requests, 1);
                    if let Err(e) = result {
                        CameraStats::add(&ctx.stats.onvif_refresh_errors, 1);
                        tracing::warn!(error = %e, "ONVIF SetSynchronizationPoint failed");
                    }
                }
                Some((role, from, data)) = recv_opt(&mut self.udp_rx) => {
                    if let Err(e) = self.on_datagram(role, from, data, ctx) {
                        return self.fail_with_teardown(e).await;
                    }
                }
                _ = sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    self.client.handle_timeout(now);
                    self.on_media_timeout(now, ctx);
                    if let Err(expired) = self.watchdog.handle_timeout(now) {
                        return self.fail_with_teardown(expired.into()).await;
                    }
                    if self.rtcp.handle_timeout(now) {
                        self.send_receiver_reports(ctx, now).await;
                    }
                }
            }
        }
    }

    /// Adds the framer's resync counters to the camera's stats.
    fn count_framing(&mut self, ctx: &SessionContext<'_>) {
        let now = (self.client.framing_resyncs(), self.client.skipped_bytes());
        let (resyncs, skipped) = self.framing_counted;
        if now != self.framing_counted {
            CameraStats::add(&ctx.stats.framing_resyncs, now.0 - resyncs);
            CameraStats::add(&ctx.stats.framing_bytes_skipped, now.1 - skipped);
            if now.0 > resyncs {
                tracing::debug!(
                    resyncs = now.0,
                    skipped_bytes = now.1,
                    "interleaved framing resynced"
                );
            }
            self.framing_counted = now;
        }
    }

    /// Writes everything the client queued.
    async fn flush(&mut self) -> Result<(), SessionError> {
        while let Some(bytes) = self.client.poll_transmit() {
            match timeout(WRITE_TIMEOUT, self.writer.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(SessionError::Io(e.to_string())),
                Err(_) => {
                    return Err(SessionError::Io(
                        "the camera stopped reading our requests".into(),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Handles one client event; `Some` ends the session.
    async fn on_event(
        &mut self,
        event: Event,
        params: &SessionParams,
        ctx: &SessionContext<'_>,
    ) -> Result<Option<SessionEnd>, SessionError> {
        match event {
            Event::Described(presentation) => {
                let server = self.client.server().map(str::to_string);
                let chosen =
                    choose_streams(&presentation, server, self.local_ip, params, ctx).await?;
                for _ in &chosen.streams {
                    self.rtcp.add_stream();
                }
                self.streams = chosen.streams;
                if !chosen.udp.is_empty() {
                    self.start_udp(chosen.udp);
                }
                self.client.setup(chosen.requests, Instant::now());
            }
            Event::Playing(setups) => self.on_playing(setups, ctx).await,
            Event::Interleaved { channel, data } => {
                CameraStats::add(&ctx.stats.bytes_received, data.len() as u64 + 4);
                let found = self.streams.iter().position(|s| {
                    s.channels
                        .is_some_and(|(rtp, rtcp)| rtp == channel || rtcp == channel)
                });
                if let Some(i) = found {
                    let (rtp, _) = self.streams[i].channels.unwrap_or_default();
                    let now = Instant::now();
                    if channel == rtp {
                        self.on_rtp(i, data, now, ctx);
                    } else {
                        self.on_rtcp(i, &data, now, ctx);
                    }
                }
            }
            Event::Redirect(url) => return Ok(Some(SessionEnd::Redirect(url))),
            Event::TornDown => return Ok(Some(SessionEnd::Stopped)),
            Event::Failed(e) => return Err(SessionError::Rtsp(e)),
        }
        Ok(None)
    }

    async fn on_playing(&mut self, setups: Vec<StreamSetup>, ctx: &SessionContext<'_>) {
        let server_ports = apply_setups(&mut self.streams, setups, self.peer_ip);
        if let Some(ingest) = &mut self.ingest {
            for (n, rtp, rtcp) in server_ports {
                ingest.set_server_ports(n, rtp, rtcp);
            }
        }
        self.playing = true;
        ctx.status.send_modify(|st| {
            st.state = CameraState::Playing;
            st.since = std::time::SystemTime::now();
        });
        let transport = if self.streams.iter().any(|s| s.channels.is_some()) {
            "tcp"
        } else {
            "udp"
        };
        tracing::info!(transport, "playing");
        let now = Instant::now();
        self.watchdog.handle_playing(now);
        // The first reports go out at once: they open NAT and firewall
        // state towards the camera.
        self.rtcp.start(now);
        if self.rtcp.handle_timeout(now) {
            self.send_receiver_reports(ctx, now).await;
        }
    }

    /// One RTP packet of stream `i` from the camera.
    /// RTCP from the camera on stream `i`: its sender report feeds our
    /// receiver reports and, on the hub, consumers' sender reports.
    fn on_rtcp(&mut self, i: usize, data: &[u8], now: Instant, ctx: &SessionContext<'_>) {
        if let Some(sr) = self.rtcp.handle_rtcp(i, data, now) {
            if let Some(stream) = self.streams.get(i) {
                stream.path.on_sender_report(&sr, ctx.hub);
            }
        }
    }

    fn on_rtp(&mut self, i: usize, data: Bytes, now: Instant, ctx: &SessionContext<'_>) {
        let Some(stream) = self.streams.get_mut(i) else {
            return;
        };
        // Arrival, parsed or not: the link is alive.
        self.watchdog.handle_media(now);
        let pkt = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "dropping a non-RTP packet");
                return;
            }
        };
        CameraStats::add(&ctx.stats.rtp_packets_received, 1);
        self.rtcp.handle_rtp(i, pkt.sequence, pkt.ssrc);
        let sink = MediaSink {
            hub: ctx.hub,
            stats: ctx.stats,
            status: ctx.status,
        };
        let actions = stream.path.on_packet(pkt, now, &sink);
        self.after_media(actions, now);
    }

    /// Tells the watchdog what a media path did.
    fn after_media(&mut self, actions: super::media::Actions, now: Instant) {
        self.watchdog.handle_pictures(actions.pictures, now);
        if actions.refresh {
            self.watchdog.handle_refresh_wanted();
        }
        if let Some(video) = self.streams.iter().find(|s| s.path.is_video()) {
            self.watchdog
                .handle_video(video.path.damaged_since(), video.path.gop());
        }
    }

    /// Lets every jitter buffer release what waited long enough.
    fn on_media_timeout(&mut self, now: Instant, ctx: &SessionContext<'_>) {
        let sink = MediaSink {
            hub: ctx.hub,
            stats: ctx.stats,
            status: ctx.status,
        };
        for i in 0..self.streams.len() {
            let path = &mut self.streams[i].path;
            if path.poll_timeout().is_some_and(|t| t <= now) {
                let actions = path.on_timeout(now, &sink);
                self.after_media(actions, now);
            }
        }
    }

    /// Sends TEARDOWN and waits briefly for the answer: old live555 cameras
    /// keep streaming into sessions that were not torn down.
    async fn teardown(&mut self) {
        self.client.teardown(Instant::now());
        if self.flush().await.is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + TEARDOWN_WAIT;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(event) = self.client.poll_event() {
                match event {
                    Event::TornDown => {
                        tracing::info!("TEARDOWN answered");
                        return;
                    }
                    Event::Failed(e) => {
                        tracing::debug!(error = %e, "TEARDOWN failed");
                        return;
                    }
                    _ => {}
                }
            }
            match tokio::time::timeout_at(deadline, self.reader.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.client.handle_input(&buf[..n], Instant::now()),
                _ => return,
            }
        }
    }

    /// Tears the session down (when the connection still works) and fails.
    async fn fail_with_teardown(&mut self, e: SessionError) -> SessionEnd {
        if !matches!(e, SessionError::Closed | SessionError::Io(_)) {
            self.teardown().await;
        }
        SessionEnd::Failed(e)
    }

    /// Closes the connection and stops the UDP readers.
    async fn shutdown(&mut self) {
        self.udp_tasks.abort_all();
        let _ = self.writer.shutdown().await;
        while self.udp_tasks.join_next().await.is_some() {}
    }
}

/// Waits for the ONVIF request under way, or forever when there is none.
async fn onvif_opt(inflight: &mut Option<OnvifFuture>) -> Result<(), OnvifError> {
    match inflight {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
