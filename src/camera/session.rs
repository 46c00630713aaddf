//! One RTSP session with a camera: the tokio driver around the sans-IO
//! [`crate::rtsp::Client`]. It owns the TCP connection and UDP sockets,
//! feeds the depacketizer and publishes frames to the camera's hub. It ends
//! on failure, redirect or cancellation; the supervisor decides what next.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::hub::{AudioInfo, Hub, StreamInfo};
use super::media::{describe_video, MediaPath, MediaSink};
use super::stats::CameraStats;
use super::udp::{bind_udp_pair, record_buffer, recv_opt, set_receive_buffer, udp_reader, UdpRole};
use super::{CameraState, CameraStatus};
use crate::h264::repair::OnDamage;
use crate::credentials::Credentials;
use crate::h264::ParameterSets;
use crate::onvif::{OnvifClient, OnvifError};
use crate::redact::redact_url;
use crate::rtp::rtcp;
use crate::rtp::RtpPacket;
use crate::rtsp::{
    Client, ClientConfig, ClientError, Event, Presentation, StreamSetup, TransportRequest,
};

/// Audio encodings forwarded as they are (one RTP payload is self-contained).
const PASSTHROUGH_AUDIO: &[&str] = &["PCMU", "PCMA", "OPUS", "G722", "MPEG4-GENERIC", "L16"];

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
    /// Jitter buffer latency; `None`: 200 ms over UDP, 0 over TCP.
    pub network_cache: Option<Duration>,
    /// SO_RCVBUF to ask for on the media sockets.
    pub socket_buffer_bytes: usize,
    /// What the repair gate does with damaged pictures.
    pub on_damage: OnDamage,
    /// How long the picture may stay frozen after damage before the session
    /// is restarted; `None`: twice the measured GOP, at least 4 s.
    pub refresh_timeout: Option<Duration>,
    /// ONVIF client for SetSynchronizationPoint, shared across sessions so
    /// its discovery is cached.
    pub onvif: Option<Arc<tokio::sync::Mutex<OnvifClient>>>,
    /// `rtsps://` only: check the camera's certificate (default true).
    pub tls_verify: bool,
}

impl SessionParams {
    /// Defaults for `url`: 5 s media timeout, 10 s connect timeout.
    pub fn new(url: Url, credentials: Option<Credentials>, carrier: Carrier) -> Self {
        SessionParams {
            url,
            credentials,
            carrier,
            udp_probe: None,
            media_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            network_cache: None,
            socket_buffer_bytes: crate::config::DEFAULT_SOCKET_BUFFER_BYTES,
            on_damage: OnDamage::default(),
            refresh_timeout: None,
            onvif: None,
            tls_verify: true,
        }
    }
}

/// Why a session ended other than by request.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The host name did not resolve.
    #[error("cannot resolve camera host {host}: {reason}")]
    Resolve { host: String, reason: String },
    /// The TCP connection was refused or timed out.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    /// The TLS handshake of an `rtsps://` camera failed (the message names
    /// a certificate problem).
    #[error("{0}")]
    Tls(String),
    /// The RTSP exchange failed.
    #[error(transparent)]
    Rtsp(#[from] ClientError),
    /// The camera offers no H.264 video.
    #[error("camera sends no H.264 video (it offers: {0}); camgate republishes H.264 only")]
    UnsupportedCodec(String),
    /// Playing, but no RTP arrived for a while.
    #[error("no RTP received for {0} s while playing")]
    MediaTimeout(u64),
    /// RTP arrives but no video picture completes (payloads that are not
    /// H.264 as described, or a flood of fragments).
    #[error("RTP arrives but no complete video picture for {0} s: the camera's video cannot be depacketized")]
    NoPictures(u64),
    /// UDP was negotiated but no packet arrived (firewall or NAT).
    #[error("no media arrived over UDP within {0} s (firewall or NAT?)")]
    NoUdpMedia(u64),
    /// The camera closed the connection.
    #[error("the camera closed the connection")]
    Closed,
    /// Damaged video and no clean keyframe for too long, despite refresh
    /// requests: a new session starts with a keyframe.
    #[error("no clean keyframe within {0:.1} s of damage despite refresh requests; restarting the session")]
    RefreshTimeout(f64),
    /// Reading or writing the connection failed.
    #[error("connection error: {0}")]
    Io(String),
}

impl SessionError {
    /// The visible state this failure puts the camera in.
    pub fn state(&self) -> CameraState {
        match self {
            SessionError::Resolve { .. } | SessionError::Connect { .. } => CameraState::Unreachable,
            SessionError::Rtsp(ClientError::Unauthorized { .. }) => CameraState::Unauthorized,
            SessionError::Rtsp(ClientError::NotFound { .. }) => CameraState::NotFound,
            SessionError::UnsupportedCodec(_) => CameraState::UnsupportedCodec,
            _ => CameraState::Backoff,
        }
    }

    /// A short fixed name for metrics labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SessionError::Resolve { .. } | SessionError::Connect { .. } => "unreachable",
            SessionError::Tls(_) => "tls_error",
            SessionError::Rtsp(ClientError::Unauthorized { .. }) => "unauthorized",
            SessionError::Rtsp(ClientError::NotFound { .. }) => "not_found",
            SessionError::Rtsp(ClientError::Timeout { .. }) => "rtsp_timeout",
            SessionError::Rtsp(_) => "rtsp_error",
            SessionError::UnsupportedCodec(_) => "unsupported_codec",
            SessionError::MediaTimeout(_) | SessionError::NoPictures(_) => "media_timeout",
            SessionError::NoUdpMedia(_) => "no_udp_media",
            SessionError::Closed => "closed",
            SessionError::RefreshTimeout(_) => "refresh_timeout",
            SessionError::Io(_) => "io_error",
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
    /// Session number for consumers' timestamp re-anchoring.
    pub generation: u64,
    /// Stops the session (TEARDOWN is sent).
    pub cancel: &'a CancellationToken,
}

/// A media stream being received.
struct MediaStream {
    /// Index in the presentation.
    index: usize,
    /// Jitter buffer, depacketizer, analyzer, repair gate.
    path: MediaPath,
    /// Interleaved channels (TCP).
    channels: Option<(u8, u8)>,
    /// Where to send RTCP (UDP): camera address and its RTCP port.
    rtcp_dest: Option<SocketAddr>,
    /// Our RTCP socket (UDP).
    rtcp_socket: Option<Arc<UdpSocket>>,
    /// Reception statistics for receiver reports.
    rr: rtcp::ReceiverStats,
    /// Clock rate, for jitter.
    clock_rate: u32,
    /// The middle 32 bits of the last SR's NTP time and when it arrived.
    last_sr: Option<(u32, Instant)>,
    /// SSRC from the last packet.
    ssrc: Option<u32>,
}

impl MediaStream {
    /// Appends a receiver report (RR + SDES) about this stream to `out` and
    /// returns the stream's SSRC; `None` (nothing written) before the first
    /// packet.
    fn write_report(&mut self, reporter_ssrc: u32, out: &mut Vec<u8>) -> Option<u32> {
        let ssrc = self.ssrc?;
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (lsr, rtcp::dlsr(at.elapsed())),
            None => (0, 0),
        };
        let block = self.rr.report_block(ssrc, lsr, dlsr);
        rtcp::write_receiver_report(out, reporter_ssrc, &[block], "camgate");
        Some(ssrc)
    }
}

/// Runs one session until it ends. Never panics on camera input.
pub async fn run_session(params: &SessionParams, ctx: SessionContext<'_>) -> SessionOutcome {
    let mut played_since: Option<Instant> = None;
    let end = match Driver::connect(params, &ctx).await {
        Ok(mut driver) => {
            let end = driver.run(params, &ctx, &mut played_since).await;
            driver.shutdown().await;
            end
        }
        Err(e) => SessionEnd::Failed(e),
    };
    SessionOutcome {
        end,
        played: played_since.map(|t| t.elapsed()).unwrap_or_default(),
    }
}

/// The reading half of the camera connection (TCP, or TLS over TCP).
type ConnReader = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of the camera connection.
type ConnWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// The live parts of a session.
struct Driver {
    client: Client,
    reader: ConnReader,
    writer: ConnWriter,
    /// Our end of the TCP connection; UDP sockets bind to the same address.
    local_ip: IpAddr,
    /// The camera's end of the TCP connection.
    peer_ip: IpAddr,
    streams: Vec<MediaStream>,
    /// Datagrams from the UDP reader tasks (bounded; overflow is dropped).
    udp_rx: Option<mpsc::Receiver<(UdpRole, Bytes)>>,
    /// The UDP reader tasks, aborted when the session ends.
    udp_tasks: JoinSet<()>,
    /// Our SSRC in receiver reports.
    rr_ssrc: u32,
    /// Set when PLAY succeeded.
    playing: bool,
    /// Set when interleaved RTP arrived since the last loop turn.
    tcp_media_seen: bool,
    /// RTP packets received in this session (the camera's counters span
    /// sessions).
    rtp_packets: u64,
    /// A stream asked for a keyframe since the last loop turn.
    want_refresh: bool,
    /// When a keyframe was last requested (rate limit).
    last_refresh: Option<Instant>,
    /// FIR command sequence number (RFC 5104 4.3.1).
    fir_seq: u8,
    /// An ONVIF SetSynchronizationPoint under way.
    onvif_inflight: Option<OnvifFuture>,
    /// Framing counters of the client already added to the camera's stats.
    framing_counted: (u64, u64),
}

type OnvifFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), OnvifError>> + Send>>;

/// Jitter buffer latency over UDP when `network_cache_ms` is not set.
const DEFAULT_UDP_CACHE: Duration = Duration::from_millis(200);
/// While the picture stays frozen, the keyframe request is repeated this
/// often (a request or its answer may be lost).
const REFRESH_INTERVAL: Duration = Duration::from_millis(500);
/// Fewest time between two keyframe requests: a new damage episode asks at
/// once unless a request went out this recently.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(50);
/// Shortest automatic refresh timeout.
const MIN_REFRESH_TIMEOUT: Duration = Duration::from_secs(4);

/// Receiver reports go out this often (some cameras end sessions without).
const RR_INTERVAL: Duration = Duration::from_secs(5);
/// How long TEARDOWN may take before the connection is closed anyway.
const TEARDOWN_WAIT: Duration = Duration::from_millis(800);
/// A write to the camera that takes longer than this means a dead link.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

impl Driver {
    async fn connect(
        params: &SessionParams,
        ctx: &SessionContext<'_>,
    ) -> Result<Driver, SessionError> {
        let host = params.url.host_str().unwrap_or_default().to_string();
        let tls = params.url.scheme() == "rtsps";
        let default_port = if tls { super::rtsps::DEFAULT_PORT } else { 554 };
        let port = params.url.port().unwrap_or(default_port);
        let addr = resolve(&host, port).await?;
        // The receive buffer is set before connecting so TCP window scaling
        // can use it.
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| SessionError::Io(e.to_string()))?;
        let granted =
            set_receive_buffer(&socket2::SockRef::from(&socket), params.socket_buffer_bytes);
        record_buffer(ctx.stats, params.socket_buffer_bytes, granted);
        let tcp = match timeout(params.connect_timeout, socket.connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err(SessionError::Connect {
                    addr,
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(SessionError::Connect {
                    addr,
                    reason: format!("no answer within {} s", params.connect_timeout.as_secs()),
                })
            }
        };
        // Requests are small and latency matters; keepalive finds dead peers
        // behind NAT faster than the media timeout on idle links.
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp).set_keepalive(true);
        let local_ip = tcp
            .local_addr()
            .map(|a| a.ip())
            .map_err(|e| SessionError::Io(e.to_string()))?;
        let (reader, writer): (ConnReader, ConnWriter) = if tls {
            let handshake = super::rtsps::connect(tcp, &host, addr, params.tls_verify);
            let stream = match timeout(params.connect_timeout, handshake).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(SessionError::Tls(e)),
                Err(_) => {
                    return Err(SessionError::Tls(format!(
                        "TLS handshake with {addr}: no answer within {} s",
                        params.connect_timeout.as_secs()
                    )))
                }
            };
            let (r, w) = tokio::io::split(stream);
            (Box::new(r), Box::new(w))
        } else {
            let (r, w) = tcp.into_split();
            (Box::new(r), Box::new(w))
        };
        ctx.status
            .send_modify(|s| s.transport = Some(params.carrier.as_str()));
        let client = Client::new(
            ClientConfig {
                url: params.url.clone(),
                credentials: params.credentials.clone(),
                user_agent: concat!("camgate/", env!("CARGO_PKG_VERSION")).to_string(),
            },
            Instant::now(),
        );
        Ok(Driver {
            client,
            reader,
            writer,
            local_ip,
            peer_ip: addr.ip(),
            streams: Vec::new(),
            udp_rx: None,
            udp_tasks: JoinSet::new(),
            rr_ssrc: rand::random(),
            playing: false,
            tcp_media_seen: false,
            rtp_packets: 0,
            want_refresh: false,
            last_refresh: None,
            fir_seq: 0,
            onvif_inflight: None,
            framing_counted: (0, 0),
        })
    }

    async fn run(
        &mut self,
        params: &SessionParams,
        ctx: &SessionContext<'_>,
        played_since: &mut Option<Instant>,
    ) -> SessionEnd {
        let mut rbuf = vec![0u8; 64 * 1024];
        let mut last_media: Option<Instant> = None;
        // When a video picture last completed, and the camera's picture
        // count then: RTP that never forms a picture is no better than none.
        let mut last_picture: Option<(Instant, u64)> = None;
        let mut next_rr = Instant::now() + RR_INTERVAL;
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
                if played_since.is_none() && !self.streams.is_empty() && self.playing() {
                    let now = Instant::now();
                    *played_since = Some(now);
                    last_media = Some(now);
                    last_picture = Some((now, ctx.stats.frames_received.load(Relaxed)));
                }
            }
            if let Err(e) = self.flush().await {
                return SessionEnd::Failed(e);
            }

            let now = Instant::now();
            // The media deadline: UDP probing in auto mode uses its own limit
            // until the first packet.
            let media_deadline =
                played_since.map(|start| match (params.udp_probe, self.rtp_packets) {
                    (Some(probe), 0) => start + probe,
                    _ => last_media.unwrap_or(start) + params.media_timeout,
                });
            let picture_deadline = last_picture
                .filter(|_| self.rtp_packets > 0)
                .map(|(at, _)| at + params.media_timeout);
            // Frozen after damage: keep asking for a keyframe, and restart
            // the session when none comes in time.
            let frozen = self.video_damaged_since();
            let refresh_deadline = frozen.map(|since| since + self.refresh_timeout(params));
            let reask = frozen.and(self.last_refresh).map(|t| t + REFRESH_INTERVAL);
            let pending_refresh = self
                .want_refresh
                .then(|| self.last_refresh.map(|t| t + MIN_REFRESH_GAP))
                .flatten();
            let media_timers = self.streams.iter().filter_map(|s| s.path.poll_timeout());
            let mut deadline = now + Duration::from_secs(1);
            for d in [
                self.client.poll_timeout(),
                media_deadline,
                picture_deadline,
                played_since.map(|_| next_rr),
                refresh_deadline,
                reask,
                pending_refresh,
            ]
            .into_iter()
            .flatten()
            .chain(media_timers)
            {
                deadline = deadline.min(d);
            }

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
                _ = ctx.hub.keyframe_requested(), if self.playing() => {
                    // A viewer asked for a keyframe the GOP cache could not
                    // give it (the hub rate-limits these).
                    self.want_refresh = true;
                }
                result = onvif_opt(&mut self.onvif_inflight) => {
                    self.onvif_inflight = None;
                    CameraStats::add(&ctx.stats.onvif_refresh_requests, 1);
                    if let Err(e) = result {
                        CameraStats::add(&ctx.stats.onvif_refresh_errors, 1);
                        tracing::warn!(error = %e, "ONVIF SetSynchronizationPoint failed");
                    }
                }
                Some((role, data)) = recv_opt(&mut self.udp_rx) => {
                    CameraStats::add(&ctx.stats.bytes_received, data.len() as u64);
                    match role {
                        UdpRole::Rtp(i) => {
                            last_media = Some(Instant::now());
                            self.on_rtp(i, data, ctx);
                        }
                        UdpRole::Rtcp(i) => self.on_rtcp(i, &data),
                    }
                }
                _ = sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    self.client.handle_timeout(now);
                    self.on_media_timeout(now, ctx);
                    if refresh_deadline.is_some_and(|d| now >= d) {
                        let waited = frozen.map(|f| now.duration_since(f).as_secs_f64()).unwrap_or_default();
                        return self.fail_with_teardown(SessionError::RefreshTimeout(waited)).await;
                    }
                    if reask.is_some_and(|d| now >= d) {
                        self.want_refresh = true;
                    }
                    if let Some(d) = media_deadline {
                        if now >= d {
                            let err = if params.udp_probe.is_some() && self.rtp_packets == 0 {
                                SessionError::NoUdpMedia(params.udp_probe.unwrap_or_default().as_secs())
                            } else {
                                SessionError::MediaTimeout(params.media_timeout.as_secs())
                            };
                            return self.fail_with_teardown(err).await;
                        }
                    }
                    if picture_deadline.is_some_and(|d| now >= d) {
                        let err = SessionError::NoPictures(params.media_timeout.as_secs());
                        return self.fail_with_teardown(err).await;
                    }
                    if played_since.is_some() && now >= next_rr {
                        self.send_receiver_reports().await;
                        next_rr = now + RR_INTERVAL;
                    }
                }
            }
            if self.want_refresh {
                self.request_refresh(params, ctx).await;
            }
            // Interleaved media arrives as client events; note its arrival.
            if self.tcp_media_seen {
                last_media = Some(Instant::now());
                self.tcp_media_seen = false;
            }
            if let Some((at, seen)) = &mut last_picture {
                let frames = ctx.stats.frames_received.load(Relaxed);
                if frames != *seen {
                    (*at, *seen) = (Instant::now(), frames);
                }
            }
        }
    }
}

impl Driver {
    fn playing(&self) -> bool {
        self.playing
    }

    /// Since when the video has been frozen after damage, if it is.
    fn video_damaged_since(&self) -> Option<Instant> {
        self.streams.iter().find_map(|s| s.path.damaged_since())
    }

    /// The configured refresh timeout, or twice the measured GOP (at least
    /// [`MIN_REFRESH_TIMEOUT`]).
    fn refresh_timeout(&self, params: &SessionParams) -> Duration {
        params.refresh_timeout.unwrap_or_else(|| {
            let gop = self.streams.iter().find_map(|s| s.path.gop());
            gop.map_or(MIN_REFRESH_TIMEOUT, |g| (g * 2).max(MIN_REFRESH_TIMEOUT))
        })
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
                let requests = self.choose_streams(&presentation, params, ctx).await?;
                self.client.setup(requests, Instant::now());
            }
            Event::Playing(setups) => self.on_playing(setups, ctx).await?,
            Event::Interleaved { channel, data } => {
                CameraStats::add(&ctx.stats.bytes_received, data.len() as u64 + 4);
                let found = self.streams.iter().position(|s| {
                    s.channels
                        .is_some_and(|(rtp, rtcp)| rtp == channel || rtcp == channel)
                });
                if let Some(i) = found {
                    let (rtp, _) = self.streams[i].channels.unwrap_or_default();
                    if channel == rtp {
                        self.tcp_media_seen = true;
                        self.on_rtp(i, data, ctx);
                    } else {
                        self.on_rtcp(i, &data);
                    }
                }
            }
            Event::Redirect(url) => return Ok(Some(SessionEnd::Redirect(url))),
            Event::TornDown => return Ok(Some(SessionEnd::Stopped)),
            Event::Failed(e) => return Err(SessionError::Rtsp(e)),
        }
        Ok(None)
    }

    /// Picks the H.264 video stream and a pass-through audio stream, prepares
    /// their receivers and returns the SETUP requests.
    async fn choose_streams(
        &mut self,
        p: &Presentation,
        params: &SessionParams,
        ctx: &SessionContext<'_>,
    ) -> Result<Vec<(usize, TransportRequest)>, SessionError> {
        let sdp = String::from_utf8_lossy(&p.sdp).into_owned();
        let server = self
            .client
            .server()
            .map(str::to_string)
            .or_else(|| p.tool.clone());
        let video = p
            .streams
            .iter()
            .position(|s| s.media == "video" && s.encoding == "H264");
        let Some(video) = video else {
            let offered: Vec<String> = p
                .streams
                .iter()
                .map(|s| format!("{} {}", s.media, s.encoding))
                .collect();
            ctx.status.send_modify(|st| {
                st.sdp = Some(redact_url(&sdp));
                st.server = server;
            });
            return Err(SessionError::UnsupportedCodec(offered.join(", ")));
        };
        let audio = p
            .streams
            .iter()
            .position(|s| s.media == "audio" && PASSTHROUGH_AUDIO.contains(&s.encoding.as_str()));

        let vdesc = &p.streams[video];
        let params_from_sdp = vdesc
            .fmtp_param("sprop-parameter-sets")
            .and_then(|v| ParameterSets::from_sprop(v).ok());
        let audio_info = audio.map(|i| {
            let d = &p.streams[i];
            AudioInfo {
                encoding: d.encoding.clone(),
                clock_rate: d.clock_rate,
                channels: d.channels,
                payload_type: d.payload_type,
                fmtp: d.fmtp.clone(),
            }
        });
        // Audio WebRTC cannot carry (AAC above all): viewers get video only.
        let no_webrtc_audio = audio_info
            .as_ref()
            .filter(|a| {
                !matches!(
                    a.encoding.to_ascii_uppercase().as_str(),
                    "PCMU" | "PCMA" | "OPUS"
                )
            })
            .map(|a| {
                format!(
                    "the camera's {} audio cannot be sent over WebRTC: browsers get video only",
                    a.encoding
                )
            });
        ctx.status.send_modify(|st| {
            if let Some(w) = &no_webrtc_audio {
                st.warn(w);
            }
            st.sdp = Some(redact_url(&sdp));
            st.server = server;
            st.video = Some(describe_video(params_from_sdp.as_ref()));
            st.audio = audio_info
                .as_ref()
                .map(|a| format!("{}/{}", a.encoding, a.clock_rate));
        });
        ctx.hub.set_info(StreamInfo {
            video_params: params_from_sdp.clone(),
            audio: audio_info,
        });

        let latency = params.network_cache.unwrap_or(match params.carrier {
            // UDP reorders on busy links and Wi-Fi; TCP never does.
            Carrier::Udp => DEFAULT_UDP_CACHE,
            Carrier::Tcp => Duration::ZERO,
        });
        let generation = ctx.generation << 20;
        let mut chosen = vec![(
            video,
            MediaPath::video(
                latency,
                params_from_sdp.clone(),
                params.on_damage,
                generation,
            ),
        )];
        if let Some(a) = audio {
            chosen.push((
                a,
                MediaPath::audio(latency, p.streams[a].clock_rate, generation),
            ));
        }
        let mut requests = Vec::new();
        let mut udp_sockets = Vec::new();
        for (n, (index, path)) in chosen.into_iter().enumerate() {
            let request = match params.carrier {
                Carrier::Tcp => TransportRequest::Tcp {
                    rtp_channel: (n * 2) as u8,
                },
                Carrier::Udp => {
                    let (rtp, rtcp) = bind_udp_pair(self.local_ip).await.map_err(|e| {
                        SessionError::Io(format!("cannot bind a UDP port pair: {e}"))
                    })?;
                    let granted = set_receive_buffer(
                        &socket2::SockRef::from(&rtp),
                        params.socket_buffer_bytes,
                    );
                    record_buffer(ctx.stats, params.socket_buffer_bytes, granted);
                    let port = rtp
                        .local_addr()
                        .map_err(|e| SessionError::Io(e.to_string()))?
                        .port();
                    udp_sockets.push((n, rtp, rtcp));
                    TransportRequest::Udp { rtp_port: port }
                }
            };
            requests.push((index, request));
            self.streams.push(MediaStream {
                index,
                clock_rate: p.streams[index].clock_rate.max(1),
                path,
                channels: None,
                rtcp_dest: None,
                rtcp_socket: None,
                rr: rtcp::ReceiverStats::default(),
                last_sr: None,
                ssrc: None,
            });
        }
        if !udp_sockets.is_empty() {
            // Bounded: a flood of datagrams is dropped here, not queued.
            let (tx, rx) = mpsc::channel(1024);
            for (n, rtp, rtcp) in udp_sockets {
                let rtcp = Arc::new(rtcp);
                self.streams[n].rtcp_socket = Some(rtcp.clone());
                self.udp_tasks
                    .spawn(udp_reader(Arc::new(rtp), UdpRole::Rtp(n), tx.clone()));
                self.udp_tasks
                    .spawn(udp_reader(rtcp, UdpRole::Rtcp(n), tx.clone()));
            }
            self.udp_rx = Some(rx);
        }
        Ok(requests)
    }

    async fn on_playing(
        &mut self,
        setups: Vec<StreamSetup>,
        ctx: &SessionContext<'_>,
    ) -> Result<(), SessionError> {
        for setup in setups {
            let Some(stream) = self.streams.iter_mut().find(|s| s.index == setup.stream) else {
                continue;
            };
            match setup.request {
                TransportRequest::Tcp { rtp_channel } => {
                    stream.channels = Some(
                        setup
                            .channels
                            .unwrap_or((rtp_channel, rtp_channel.wrapping_add(1))),
                    );
                }
                TransportRequest::Udp { .. } => {
                    if let Some((_, server_rtcp)) = setup.server_ports {
                        stream.rtcp_dest = Some(SocketAddr::new(self.peer_ip, server_rtcp));
                    }
                }
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
        // An early receiver report opens NAT/firewall state towards the camera.
        self.send_receiver_reports().await;
        Ok(())
    }

    /// One RTP packet of stream `i`.
    fn on_rtp(&mut self, i: usize, data: Bytes, ctx: &SessionContext<'_>) {
        let Some(stream) = self.streams.get_mut(i) else {
            return;
        };
        let pkt = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "dropping a non-RTP packet");
                return;
            }
        };
        CameraStats::add(&ctx.stats.rtp_packets_received, 1);
        self.rtp_packets += 1;
        stream.ssrc = Some(pkt.ssrc);
        let _ = stream.rr.on_packet(
            pkt.sequence,
            pkt.timestamp,
            arrival_units(stream.clock_rate),
        );
        let sink = MediaSink {
            hub: ctx.hub,
            stats: ctx.stats,
            status: ctx.status,
        };
        let actions = stream.path.on_packet(pkt, Instant::now(), &sink);
        self.want_refresh |= actions.refresh;
    }

    /// Lets every jitter buffer release what waited long enough.
    fn on_media_timeout(&mut self, now: Instant, ctx: &SessionContext<'_>) {
        let sink = MediaSink {
            hub: ctx.hub,
            stats: ctx.stats,
            status: ctx.status,
        };
        for stream in &mut self.streams {
            if stream.path.poll_timeout().is_some_and(|t| t <= now) {
                self.want_refresh |= stream.path.on_timeout(now, &sink).refresh;
            }
        }
    }

    /// Asks the camera for a keyframe: RTCP PLI and FIR (RFC 4585, RFC 5104)
    /// on the video stream's RTCP channel or port, and ONVIF
    /// SetSynchronizationPoint where configured. Rate-limited.
    async fn request_refresh(&mut self, params: &SessionParams, ctx: &SessionContext<'_>) {
        let now = Instant::now();
        if self
            .last_refresh
            .is_some_and(|t| now.duration_since(t) < MIN_REFRESH_GAP)
        {
            // Asked a moment ago; the loop comes back when the gap is over.
            return;
        }
        self.want_refresh = false;
        self.last_refresh = Some(now);
        let Some(i) = self.streams.iter().position(|s| s.path.is_video()) else {
            return;
        };
        // Feedback goes in a compound packet that starts with a report.
        let mut out = Vec::with_capacity(96);
        let Some(media_ssrc) = self.streams[i].write_report(self.rr_ssrc, &mut out) else {
            return;
        };
        rtcp::write_pli(&mut out, self.rr_ssrc, media_ssrc);
        self.fir_seq = self.fir_seq.wrapping_add(1);
        rtcp::write_fir(&mut out, self.rr_ssrc, media_ssrc, self.fir_seq);
        self.send_rtcp(i, &out).await;
        CameraStats::add(&ctx.stats.refresh_requests, 1);
        tracing::debug!("asked the camera for a keyframe (PLI, FIR)");
        if let (Some(onvif), None) = (&params.onvif, &self.onvif_inflight) {
            let onvif = onvif.clone();
            self.onvif_inflight = Some(Box::pin(async move {
                onvif.lock().await.request_keyframe().await
            }));
        }
    }

    /// One RTCP packet of stream `i`: remember the sender report for LSR/DLSR.
    fn on_rtcp(&mut self, i: usize, data: &[u8]) {
        if let Some(stream) = self.streams.get_mut(i) {
            if let Some(sr) = rtcp::parse_sender_report(data) {
                stream.last_sr = Some((sr.lsr(), Instant::now()));
            }
        }
    }

    /// Sends one RTCP receiver report per stream (RFC 3550 6.4.2).
    async fn send_receiver_reports(&mut self) {
        for i in 0..self.streams.len() {
            let mut out = Vec::with_capacity(64);
            if self.streams[i]
                .write_report(self.rr_ssrc, &mut out)
                .is_some()
            {
                self.send_rtcp(i, &out).await;
            }
        }
        let _ = self.flush().await;
    }

    /// Sends an RTCP packet for stream `i`: on its interleaved channel over
    /// TCP (queued; the loop flushes), or to the camera's RTCP port over UDP.
    async fn send_rtcp(&mut self, i: usize, packet: &[u8]) {
        let stream = &self.streams[i];
        if let Some((_, rtcp_channel)) = stream.channels {
            self.client.send_interleaved(rtcp_channel, packet);
        } else if let (Some(sock), Some(dest)) = (&stream.rtcp_socket, stream.rtcp_dest) {
            let _ = sock.send_to(packet, dest).await;
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

/// Arrival time in units of `clock_rate`, for RFC 3550 jitter.
fn arrival_units(clock_rate: u32) -> u32 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    (start.elapsed().as_secs_f64() * f64::from(clock_rate)) as u64 as u32
}

/// Waits for the ONVIF request under way, or forever when there is none.
async fn onvif_opt(inflight: &mut Option<OnvifFuture>) -> Result<(), OnvifError> {
    match inflight {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Resolves `host:port` to the first address.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, SessionError> {
    let host_for_err = host.to_string();
    let target = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::net::lookup_host(target).await {
        Ok(mut addrs) => addrs.next().ok_or(SessionError::Resolve {
            host: host_for_err,
            reason: "no address".into(),
        }),
        Err(e) => Err(SessionError::Resolve {
            host: host_for_err,
            reason: e.to_string(),
        }),
    }
}
