//! One RTSP session with a camera: the thin tokio driver around the
//! sans-IO cores (RFC 2326 [`crate::rtsp::Client`], the RTCP receiver side
//! [`crate::rtp::receiver`], the session [`Watchdog`] and each stream's
//! [`super::media`] path). It owns the connection and UDP sockets, waits
//! on them, the deadlines and cancellation, and feeds the cores. It ends
//! on failure, redirect or cancellation; the supervisor decides what next.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::connect::{connect, ConnReader, ConnWriter, ConnectOptions};
use super::hub::Hub;
use super::ingest::{UdpIngest, Verdict};
use super::media::MediaSink;
use super::setup::{apply_setups, auto_network_cache, choose_streams, MediaStream};
use super::stats::CameraStats;
use super::udp::{recv_opt, udp_reader, UdpRole};
use super::watchdog::{Limits, Watchdog};
use super::{CameraState, CameraStatus};
use crate::config::CameraConfig;
use crate::credentials::Credentials;
use crate::h264::repair::OnDamage;
use crate::onvif::{OnvifClient, OnvifError};
use crate::rtp::receiver::RtcpReceiver;
use crate::rtp::RtpPacket;
use crate::rtsp::{Client, ClientConfig, Event, StreamSetup};

pub use super::error::SessionError;

/// No RTP (or no complete picture) this long while playing ends a session.
pub const MEDIA_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP connect (and TLS handshake) limit.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long TEARDOWN may take before the connection is closed anyway.
const TEARDOWN_WAIT: Duration = Duration::from_millis(800);
/// A write to the camera that takes longer than this means a dead link.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The loop wakes at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// How media is carried in one session (auto is resolved by the supervisor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// Interleaved in the RTSP connection.
    Tcp,
    /// UDP port pairs.
    Udp,
}

impl Carrier {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Tcp => "tcp",
            Carrier::Udp => "udp",
        }
    }
}

/// What one session needs to know.
#[derive(Clone, Debug)]
pub struct SessionParams {
    /// `rtsp://` URL without credentials.
    pub url: Url,
    /// User name and password.
    pub credentials: Option<Credentials>,
    /// TCP or UDP for media.
    pub carrier: Carrier,
    /// Fail with [`SessionError::NoUdpMedia`] when UDP delivers nothing this
    /// long after PLAY (set in `auto` mode so the supervisor falls back).
    pub udp_probe: Option<Duration>,
    /// No RTP this long while playing means the session is dead.
    pub media_timeout: Duration,
    /// TCP connect limit.
    pub connect_timeout: Duration,
    /// Jitter buffer latency.
    pub network_cache: Duration,
    /// SO_RCVBUF to ask for on the media sockets.
    pub socket_buffer_bytes: usize,
    /// What the repair gate does with damaged pictures.
    pub on_damage: OnDamage,
    /// How long the picture may stay frozen after damage before the session
    /// is restarted; `None`: automatic (see
    /// [`crate::config::CameraConfig::refresh_timeout_for`]).
    pub refresh_timeout: Option<Duration>,
    /// ONVIF client for SetSynchronizationPoint, shared across sessions so
    /// its discovery is cached.
    pub onvif: Option<Arc<tokio::sync::Mutex<OnvifClient>>>,
    /// `rtsps://` only: check the camera's certificate (default true).
    pub tls_verify: bool,
}

impl SessionParams {
    /// A camera at `url` with every setting at its configuration default
    /// (`camgate probe`, tests).
    pub fn new(url: Url, credentials: Option<Credentials>, carrier: Carrier) -> Self {
        SessionParams {
            url,
            credentials,
            carrier,
            udp_probe: None,
            media_timeout: MEDIA_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            network_cache: auto_network_cache(carrier),
            socket_buffer_bytes: crate::config::DEFAULT_SOCKET_BUFFER_BYTES,
            on_damage: OnDamage::default(),
            refresh_timeout: None,
            onvif: None,
            tls_verify: true,
        }
    }

    /// Camera `cfg` pulled from `url` (its own, a redirect's or the
    /// simulator's) over `carrier`.
    pub fn for_camera(cfg: &CameraConfig, url: Url, carrier: Carrier) -> Self {
        SessionParams {
            network_cache: cfg.network_cache(carrier == Carrier::Udp),
            socket_buffer_bytes: cfg.socket_buffer_bytes,
            on_damage: cfg.on_damage,
            refresh_timeout: cfg.refresh_timeout,
            tls_verify: cfg.tls_verify,
            ..SessionParams::new(url, cfg.credentials.clone(), carrier)
        }
    }
}

/// How a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// Cancelled; TEARDOWN was sent.
    Stopped,
    /// The camera moved; connect there.
    Redirect(Url),
    /// Failed.
    Failed(SessionError),
}

/// The result of [`run_session`].
#[derive(Debug)]
pub struct SessionOutcome {
    /// How it ended.
    pub end: SessionEnd,
    /// How long media was playing (zero if it never did).
    pub played: Duration,
}

/// Shared things a session writes to.
pub struct SessionContext<'a> {
    /// The camera's fan-out.
    pub hub: &'a Hub,
    /// The camera's counters.
    pub stats: &'a CameraStats,
    /// The camera's visible status.
    pub status: &'a watch::Sender<CameraStatus>,
    /// How many sessions this camera started, this one included: each
    /// session gives consumers a new range of timelines, so they re-anchor
    /// timestamps.
    pub session_number: u64,
    /// Stops the session (TEARDOWN is sent).
    pub cancel: &'a CancellationToken,
}

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
                        self.rtcp.handle_rtcp(i, &data, now);
                    }
                }
            }
            Event::Redirect(url) => return Ok(Some(SessionEnd::Redirect(url))),
            Event::TornDown => return Ok(Some(SessionEnd::Stopped)),
            Event::Failed(e) => return Err(SessionError::Rtsp(e)),
        }
        Ok(None)
    }

    /// Starts a reader task per UDP socket, and the gate that takes only
    /// the camera's datagrams.
    fn start_udp(&mut self, sockets: Vec<(usize, UdpSocket, UdpSocket)>) {
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

    /// One datagram from a UDP reader: taken only from the camera.
    fn on_datagram(
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
            self.rtcp.handle_rtcp(i, &data, now);
        }
        Ok(())
    }

    /// One RTP packet of stream `i` from the camera.
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

    /// Asks the camera for a keyframe: RTCP PLI and FIR (RFC 4585, RFC 5104)
    /// on the video stream's RTCP channel or port, and ONVIF
    /// SetSynchronizationPoint where configured. The watchdog rate-limits.
    async fn request_refresh(
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
    async fn send_receiver_reports(&mut self, ctx: &SessionContext<'_>, now: Instant) {
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
