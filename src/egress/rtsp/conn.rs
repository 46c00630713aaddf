//! One RTSP client connection (RFC 2326): its requests (OPTIONS, DESCRIBE,
//! SETUP, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN), its one
//! session, and the media it plays, in one task. The answers to each
//! method are in [`methods`].

mod methods;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::play::{self, Carrier, Next, Player, Source, Track, SR_INTERVAL};
use super::{Place, Shared, HEAD_TIMEOUT};
use crate::camera::{CameraHandle, ConsumerGuard, MediaEvent};
use crate::rtsp::message::Request;
use crate::rtsp::server::{Answer, ClientInput, RequestReader};

/// What `OPTIONS` announces.
const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN";
/// How long DESCRIBE waits for an on-demand camera's first picture.
const DESCRIBE_WAIT: Duration = Duration::from_secs(15);

/// A connection and its session.
pub(super) struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    local: SocketAddr,
    /// RTSP over TLS.
    secure: bool,
    /// The session set up on this connection (one per connection).
    session: Option<Session>,
    /// A consumer registered by DESCRIBE, so an on-demand camera starts and
    /// stays up until SETUP (or the connection ends).
    describing: Option<ConsumerGuard>,
}

/// One RTSP session.
struct Session {
    /// The `Session` header value.
    id: String,
    camera: CameraHandle,
    /// Its place under the client limits.
    _place: Place,
    /// Its consumer record (API, metrics, dashboard, on-demand).
    guard: ConsumerGuard,
    /// Tracks 0 (video) and 1 (audio), as set up.
    tracks: [Option<Track>; 2],
    /// Set while playing.
    player: Option<Player>,
    /// The cached GOP to send right after the PLAY answer.
    gop: Vec<Arc<crate::camera::VideoFrame>>,
    /// The session ends when nothing came from the client by then.
    expires: Instant,
    /// Next sender report.
    next_sr: Instant,
}

/// Something that happened to a playing session.
enum Event {
    Media(Next),
    /// RTCP from the client over UDP.
    Rtcp(Vec<u8>),
}

impl Connection {
    pub(super) fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        local: SocketAddr,
        secure: bool,
    ) -> Connection {
        Connection {
            shared,
            peer,
            local,
            secure,
            session: None,
            describing: None,
        }
    }

    /// Serves the connection until the client leaves, breaks a rule, or
    /// `shutdown`.
    pub(super) async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        mut self,
        stream: S,
        shutdown: CancellationToken,
    ) {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut reader = RequestReader::new();
        let mut buf = vec![0u8; 16 * 1024];
        // A request head must be whole this long after its first byte; a
        // connection with no session must send one within the timeout.
        let mut head_deadline: Option<Instant> = None;
        let mut idle_deadline = Instant::now() + self.shared.config.session_timeout;
        let end = loop {
            let deadline = [
                head_deadline,
                Some(idle_deadline),
                self.session.as_ref().map(|s| s.expires),
                self.session
                    .as_ref()
                    .filter(|s| s.player.is_some())
                    .map(|s| s.next_sr),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("the idle deadline is always set");
            // The consumer's token: the API ending the session, or the
            // camera going away.
            let ended = self
                .session
                .as_ref()
                .map(|s| s.guard.consumer().cancel.clone());
            tokio::select! {
                _ = shutdown.cancelled() => break "gateway stopping",
                _ = async {
                    match &ended {
                        Some(t) => t.cancelled().await,
                        None => std::future::pending().await,
                    }
                } => break "session ended by the API or the camera was removed",
                r = rd.read(&mut buf) => {
                    let n = match r {
                        Ok(0) | Err(_) => break "client closed the connection",
                        Ok(n) => n,
                    };
                    reader.push(&buf[..n]);
                    let mut stop = None;
                    while let Some(input) = reader.poll() {
                        match input {
                            Err(e) => {
                                tracing::debug!(peer = %self.peer, error = %e, "rtsp client sent garbage");
                                let _ = play::write_timed(&mut wr, &Answer::new(400).to_bytes(None)).await;
                                stop = Some("bad request");
                                break;
                            }
                            Ok(ClientInput::Request(req)) => {
                                idle_deadline = Instant::now() + self.shared.config.session_timeout;
                                if let Err(why) = self.request(req, &mut wr).await {
                                    stop = Some(why);
                                    break;
                                }
                            }
                            Ok(ClientInput::Interleaved { channel, data }) => {
                                self.interleaved(channel, &data, &mut wr).await;
                            }
                        }
                    }
                    if let Some(why) = stop {
                        break why;
                    }
                    head_deadline = match (reader.buffered(), head_deadline) {
                        (0, _) => None,
                        (_, Some(d)) => Some(d),
                        (_, None) => Some(Instant::now() + HEAD_TIMEOUT),
                    };
                }
                ev = next_event(&mut self.session) => {
                    if let Err(why) = self.on_event(ev, &mut wr).await {
                        break why;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    if head_deadline.is_some_and(|d| d <= now) {
                        break "request head too slow";
                    }
                    if let Some(s) = &self.session {
                        if s.expires <= now {
                            break "session timed out";
                        }
                    } else if idle_deadline <= now {
                        break "no session";
                    }
                    if let Some(s) = &mut self.session {
                        if s.next_sr <= now {
                            s.next_sr = now + SR_INTERVAL;
                            if let Some(p) = &s.player {
                                if play::send_reports(p, &s.camera, &mut s.tracks, &mut wr).await.is_err() {
                                    break "client stopped reading or left";
                                }
                            }
                        }
                    }
                }
            }
        };
        if let Some(s) = &self.session {
            tracing::info!(peer = %self.peer, camera = %s.camera.config.id, session = %s.id, why = end, "rtsp session ended");
        } else {
            tracing::debug!(peer = %self.peer, why = end, "rtsp connection ended");
        }
    }

    /// Answers one request; `Err` ends the connection.
    async fn request<W: AsyncWrite + Unpin>(
        &mut self,
        req: Request,
        wr: &mut W,
    ) -> Result<(), &'static str> {
        let cseq = req.headers.cseq();
        if let Some(s) = &mut self.session {
            s.expires = Instant::now() + self.shared.config.session_timeout;
        }
        let method = req.method.to_ascii_uppercase();
        let answer = match method.as_str() {
            "OPTIONS" => Answer::new(200).header("Public", PUBLIC),
            "DESCRIBE" => self.describe(&req).await,
            "SETUP" => self.setup(&req).await,
            "PLAY" => self.play(&req),
            "PAUSE" => self.pause(&req),
            "GET_PARAMETER" | "SET_PARAMETER" => self.keepalive(&req),
            "TEARDOWN" => self.teardown(&req),
            _ => Answer::new(405).header("Allow", PUBLIC),
        };
        let status = answer.status;
        play::write_timed(wr, &answer.to_bytes(cseq))
            .await
            .map_err(|_| "client stopped reading or left")?;
        tracing::debug!(peer = %self.peer, method = %method, status, "rtsp request");
        if method == "PLAY" && status == 200 {
            self.start_playing(wr).await?;
        }
        if method == "TEARDOWN" && status == 200 {
            self.session = None;
        }
        Ok(())
    }

    /// After the PLAY answer: the cached GOP, at once (paced over UDP).
    async fn start_playing<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
    ) -> Result<(), &'static str> {
        let Some(s) = &mut self.session else {
            return Ok(());
        };
        let gop = std::mem::take(&mut s.gop);
        let (Some(player), Some(track)) = (s.player.as_mut(), s.tracks[0].as_mut()) else {
            return Ok(());
        };
        let consumer = s.guard.consumer().clone();
        if !gop.is_empty() {
            consumer.set_state("playing");
        } else {
            consumer.set_state("waiting_keyframe");
        }
        for frame in &gop {
            play::send_video(
                player,
                track,
                frame,
                Source::Cached,
                wr,
                &consumer,
                &s.camera.stats,
            )
            .await
            .map_err(|_| "client stopped reading or left")?;
        }
        Ok(())
    }

    /// RTCP (or anything) the client sent interleaved.
    async fn interleaved<W: AsyncWrite + Unpin>(&mut self, channel: u8, data: &Bytes, wr: &mut W) {
        let Some(s) = &mut self.session else { return };
        let ours = s
            .tracks
            .iter()
            .flatten()
            .any(|t| matches!(t.carrier, Carrier::Tcp { rtcp, .. } if rtcp == channel));
        if !ours {
            return;
        }
        s.expires = Instant::now() + self.shared.config.session_timeout;
        if play::on_client_rtcp(data, &s.tracks, s.guard.consumer()) {
            let _ = replay(s, wr).await;
        }
    }

    async fn on_event<W: AsyncWrite + Unpin>(
        &mut self,
        ev: Event,
        wr: &mut W,
    ) -> Result<(), &'static str> {
        let Some(s) = &mut self.session else {
            return Ok(());
        };
        match ev {
            Event::Rtcp(data) => {
                s.expires = Instant::now() + self.shared.config.session_timeout;
                if play::on_client_rtcp(&data, &s.tracks, s.guard.consumer()) {
                    replay(s, wr).await?;
                }
            }
            Event::Media(Next::Media(MediaEvent::Video(frame))) => {
                let consumer = s.guard.consumer().clone();
                if let (Some(player), Some(track)) = (s.player.as_mut(), s.tracks[0].as_mut()) {
                    play::send_video(
                        player,
                        track,
                        &frame,
                        Source::Live,
                        wr,
                        &consumer,
                        &s.camera.stats,
                    )
                    .await
                    .map_err(|_| "client stopped reading or left")?;
                }
            }
            Event::Media(Next::Media(MediaEvent::Audio(pkt))) => {
                let consumer = s.guard.consumer().clone();
                if let (Some(player), Some(track)) = (s.player.as_mut(), s.tracks[1].as_mut()) {
                    play::send_audio(player, track, &pkt, wr, &consumer, &s.camera.stats)
                        .await
                        .map_err(|_| "client stopped reading or left")?;
                }
            }
            Event::Media(Next::Lagged(n)) => {
                tracing::warn!(peer = %self.peer, skipped = n, "rtsp client fell behind; resuming at the next keyframe");
                crate::camera::CameraStats::add(&s.camera.stats.consumer_frames_skipped, n);
                let consumer = s.guard.consumer();
                consumer
                    .skips
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                consumer.set_state("waiting_keyframe");
                if let Some(p) = &mut s.player {
                    p.skip_to_keyframe();
                }
            }
            Event::Media(Next::Closed) => return Err("camera removed"),
        }
        Ok(())
    }
}

/// A client asked for a keyframe: replay the cached GOP to it.
async fn replay<W: AsyncWrite + Unpin>(s: &mut Session, wr: &mut W) -> Result<(), &'static str> {
    let (Some(player), Some(track)) = (s.player.as_mut(), s.tracks[0].as_mut()) else {
        return Ok(());
    };
    let frames = player.replay(&s.camera);
    let consumer = s.guard.consumer().clone();
    for frame in &frames {
        play::send_video(
            player,
            track,
            frame,
            Source::Replay,
            wr,
            &consumer,
            &s.camera.stats,
        )
        .await
        .map_err(|_| "client stopped reading or left")?;
    }
    Ok(())
}

/// The next media event or UDP RTCP of a playing session; never, without.
async fn next_event(session: &mut Option<Session>) -> Event {
    let Some(s) = session else {
        return std::future::pending().await;
    };
    let Session { player, tracks, .. } = s;
    let rtcp_socket = |i: usize| match tracks[i].as_ref().map(|t| &t.carrier) {
        Some(Carrier::Udp { rtcp, to_rtcp, .. }) => Some((rtcp, to_rtcp.ip())),
        _ => None,
    };
    let (v, a) = (rtcp_socket(0), rtcp_socket(1));
    let mut buf_v = [0u8; 1500];
    let mut buf_a = [0u8; 1500];
    tokio::select! {
        next = async {
            match player {
                Some(p) => p.next().await,
                None => std::future::pending().await,
            }
        } => Event::Media(next),
        data = udp_rtcp(v, &mut buf_v) => Event::Rtcp(data),
        data = udp_rtcp(a, &mut buf_a) => Event::Rtcp(data),
    }
}

/// A datagram on a track's RTCP socket from the client's address.
async fn udp_rtcp(socket: Option<(&tokio::net::UdpSocket, IpAddr)>, buf: &mut [u8]) -> Vec<u8> {
    let Some((socket, from)) = socket else {
        return std::future::pending().await;
    };
    loop {
        match socket.recv_from(buf).await {
            Ok((n, addr)) if addr.ip() == from => return buf[..n].to_vec(),
            Ok(_) => continue,
            Err(_) => return std::future::pending().await,
        }
    }
}
