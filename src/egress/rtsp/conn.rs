//! One RTSP client connection (RFC 2326): its requests (OPTIONS, DESCRIBE,
//! SETUP, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN), its one
//! session, and the media it plays, in one task.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::play::{self, Carrier, Next, Player, Source, Track, SR_INTERVAL};
use super::{Place, Shared, HEAD_TIMEOUT, REALM};
use crate::access::{Denied, Need, Presented};
use crate::camera::consumers::new_consumer_id;
use crate::camera::{CameraHandle, CameraState, Consumer, ConsumerGuard, ConsumerKind, MediaEvent};
use crate::egress::rtp::OutStream;
use crate::rtsp::digest::{digest_challenge, Authorization};
use crate::rtsp::message::Request;
use crate::rtsp::server::{parse_target, Answer, ClientInput, RequestReader, Target};
use crate::rtsp::transport::Transport;

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

    /// Checks the request's credentials for watching `camera`: the
    /// principal's name, or the refusal to send.
    async fn authorize(&self, req: &Request, camera: &str) -> Result<(), Answer> {
        let auth = &self.shared.auth;
        if !auth.enabled() {
            return Ok(());
        }
        let method = req.method.to_ascii_uppercase();
        let presented =
            req.headers
                .get("Authorization")
                .map(|value| match Authorization::parse(value) {
                    Some(Authorization::Basic { user, password }) => {
                        Ok(Presented::Basic { user, password })
                    }
                    Some(Authorization::Digest(d)) => {
                        if d.nonce != self.shared.nonce {
                            return Ok(Presented::Rejected("stale or foreign Digest nonce"));
                        }
                        Ok(match auth.token_by_name(&d.username) {
                            Some((secret, principal))
                                if d.verify(
                                    &method,
                                    REALM,
                                    &self.shared.nonce,
                                    secret.expose(),
                                ) =>
                            {
                                Presented::Verified(principal)
                            }
                            _ => Presented::Rejected("invalid Digest answer"),
                        })
                    }
                    None => Err("unsupported or malformed Authorization (use Digest or Basic)"),
                });
        match auth
            .authorize(presented, self.peer.ip(), Need::Watch(camera))
            .await
        {
            Ok(_) => Ok(()),
            Err(Denied::Unauthorized(why)) => {
                tracing::debug!(peer = %self.peer, why, "rtsp authentication failed");
                Err(Answer::new(401)
                    .header(
                        "WWW-Authenticate",
                        digest_challenge(REALM, &self.shared.nonce),
                    )
                    .header("WWW-Authenticate", format!("Basic realm=\"{REALM}\"")))
            }
            Err(Denied::Forbidden(why)) => Err(Answer::new(403).header("X-Reason", why)),
            Err(Denied::LockedOut(wait)) => Err(Answer::new(403).header(
                "X-Reason",
                format!(
                    "too many failed authentications from this address; try again in {} s",
                    wait.as_secs().max(1)
                ),
            )),
            Err(Denied::Busy) => Err(Answer::new(503).header("Retry-After", "1")),
        }
    }

    /// The camera a request names, authorized; or the answer to send.
    async fn camera(&self, req: &Request) -> Result<(Target, CameraHandle), Answer> {
        let Some(target) = parse_target(&req.uri) else {
            return Err(Answer::new(404).header(
                "X-Reason",
                "the URL names no camera: use rtsp://HOST:PORT/{camera_id}",
            ));
        };
        // Authorized before the camera is looked up, so that strangers
        // cannot list camera ids by probing.
        self.authorize(req, &target.camera).await?;
        match self.shared.supervisor.camera(&target.camera) {
            Some(cam) => Ok((target, cam)),
            None => Err(Answer::new(404)
                .header("X-Reason", format!("no camera with id {:?}", target.camera))),
        }
    }

    async fn describe(&mut self, req: &Request) -> Answer {
        let (target, cam) = match self.camera(req).await {
            Ok(c) => c,
            Err(a) => return a,
        };
        if cam.config.on_demand && self.describing.is_none() && self.session.is_none() {
            // Wanting the camera starts it (and keeps it up until SETUP).
            let consumer = Consumer::new(
                new_consumer_id(),
                ConsumerKind::Rtsp,
                cam.config.id.clone(),
                None,
                cam.cancel.child_token(),
            );
            consumer.set_state("describing");
            consumer.set_remote(self.peer.to_string());
            self.describing = Some(cam.consumers.register(consumer));
        }
        let info = match wait_for_video(&cam).await {
            Some(info) => info,
            None => {
                let status = cam.status.borrow().clone();
                let mut why = format!(
                    "camera {:?} is not playing (state {:?})",
                    cam.config.id, status.state
                );
                if let Some(e) = status.last_error {
                    why.push_str(&format!(": {e}"));
                }
                return Answer::new(503).header("X-Reason", why);
            }
        };
        let base = content_base(&req.uri, &target.camera);
        let sdp = describe_sdp(&cam.config.id, &info, self.local.ip());
        Answer::new(200)
            .header("Content-Base", base)
            .body("application/sdp", sdp)
    }

    async fn setup(&mut self, req: &Request) -> Answer {
        let (target, cam) = match self.camera(req).await {
            Ok(c) => c,
            Err(a) => return a,
        };
        let track = target.track.unwrap_or(0);
        let info = cam.hub.info();
        if track > 1 || (track == 1 && info.audio.is_none()) {
            return Answer::new(404).header(
                "X-Reason",
                format!("camera {:?} has no track {track}", cam.config.id),
            );
        }
        if let Some(s) = &self.session {
            if !session_matches(req, &s.id) {
                return Answer::new(459);
            }
            if s.camera.config.id != cam.config.id {
                return Answer::new(459).header("X-Reason", "one camera per session");
            }
            if s.player.is_some() {
                return Answer::new(455);
            }
        } else if req.headers.get("Session").is_some() {
            return Answer::new(454);
        }
        let Some(value) = req.headers.get("Transport") else {
            return Answer::new(461).header("X-Reason", "no Transport header");
        };
        if value
            .split(',')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("multicast")
        {
            return Answer::new(461).header(
                "X-Reason",
                "multicast is not offered; use unicast UDP or TCP",
            );
        }
        let transport = Transport::parse(value);
        let tcp = transport.profile.to_ascii_uppercase().ends_with("/TCP")
            || transport.interleaved.is_some();
        let clock = if track == 0 {
            90_000
        } else {
            info.audio.as_ref().map_or(8000, |a| a.clock_rate)
        };
        let mut server_ports = None;
        let carrier = if tcp {
            let (rtp, rtcp) = transport
                .interleaved
                .unwrap_or((2 * track as u8, 2 * track as u8 + 1));
            Carrier::Tcp { rtp, rtcp }
        } else {
            let Some((crtp, crtcp)) = transport.client_port else {
                return Answer::new(461).header("X-Reason", "UDP without client_port");
            };
            match self.shared.udp_pair(self.local.ip()).await {
                Ok((rtp, rtcp, lease)) => {
                    let ports = (
                        rtp.local_addr().map(|a| a.port()).unwrap_or(0),
                        rtcp.local_addr().map(|a| a.port()).unwrap_or(0),
                    );
                    server_ports = Some(ports);
                    Carrier::Udp {
                        rtp,
                        rtcp,
                        to_rtp: SocketAddr::new(self.peer.ip(), crtp),
                        to_rtcp: SocketAddr::new(self.peer.ip(), crtcp),
                        _lease: lease,
                    }
                }
                Err(e) => return Answer::new(453).header("X-Reason", e.to_string()),
            }
        };
        if self.session.is_none() {
            let place = match self.shared.take_place(&cam.config.id) {
                Ok(p) => p,
                Err(why) => {
                    tracing::info!(peer = %self.peer, camera = %cam.config.id, why = %why, "rtsp client refused");
                    return Answer::new(453).header("X-Reason", why);
                }
            };
            let id = format!("{:016X}", rand::random::<u64>());
            let consumer = Consumer::new(
                new_consumer_id(),
                ConsumerKind::Rtsp,
                cam.config.id.clone(),
                None,
                cam.cancel.child_token(),
            );
            consumer.set_remote(self.peer.to_string());
            consumer.set_state("ready");
            *consumer.answer.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(describe_sdp(&cam.config.id, &info, self.local.ip()));
            let guard = cam.consumers.register(consumer);
            self.describing = None;
            let timeout = self.shared.config.session_timeout;
            tracing::info!(peer = %self.peer, camera = %cam.config.id, session = %id, secure = self.secure, "rtsp session set up");
            self.session = Some(Session {
                id,
                camera: cam,
                _place: place,
                guard,
                tracks: [None, None],
                player: None,
                gop: Vec::new(),
                expires: Instant::now() + timeout,
                next_sr: Instant::now() + SR_INTERVAL,
            });
        }
        let s = self.session.as_mut().expect("set just above");
        let t = Track {
            carrier,
            out: OutStream::new(clock),
        };
        let answer = t.transport_answer(server_ports);
        s.tracks[track] = Some(t);
        Answer::new(200)
            .header(
                "Session",
                format!(
                    "{};timeout={}",
                    s.id,
                    self.shared.config.session_timeout.as_secs()
                ),
            )
            .header("Transport", answer)
    }

    fn play(&mut self, req: &Request) -> Answer {
        let Some(s) = &mut self.session else {
            return Answer::new(455).header("X-Reason", "PLAY before SETUP");
        };
        if !session_matches(req, &s.id) {
            return Answer::new(454);
        }
        if s.tracks[0].is_none() {
            return Answer::new(455).header("X-Reason", "set up the video track (trackID=0) first");
        }
        let session = format!(
            "{};timeout={}",
            s.id,
            self.shared.config.session_timeout.as_secs()
        );
        if s.player.is_none() {
            let (player, gop) = Player::start(&s.camera);
            s.player = Some(player);
            s.gop = gop;
        }
        let player = s.player.as_ref().expect("set just above");
        let base = content_base(&req.uri, &s.camera.config.id);
        let base = base.trim_end_matches('/');
        let mut info = Vec::new();
        for (i, t) in s.tracks.iter().enumerate() {
            let Some(t) = t else { continue };
            let rtptime = if i == 0 {
                player.first_video_timestamp()
            } else if t.out.packets == 0 {
                t.out.timeline.first_output()
            } else {
                // PLAY after PAUSE: the audio timeline went on; its first
                // output is long past.
                t.out
                    .timeline
                    .now_output(std::time::Instant::now())
                    .unwrap_or_else(|| t.out.timeline.first_output())
            };
            info.push(format!(
                "url={base}/trackID={i};seq={};rtptime={rtptime}",
                t.out.seq
            ));
        }
        Answer::new(200)
            .header("Session", session)
            .header("Range", "npt=0.000-")
            .header("RTP-Info", info.join(","))
    }

    fn pause(&mut self, req: &Request) -> Answer {
        let Some(s) = &mut self.session else {
            return Answer::new(455);
        };
        if !session_matches(req, &s.id) {
            return Answer::new(454);
        }
        s.player = None;
        s.guard.consumer().set_state("paused");
        Answer::new(200).header("Session", s.id.clone())
    }

    fn keepalive(&mut self, req: &Request) -> Answer {
        match &self.session {
            Some(s) if req.headers.get("Session").is_some() && !session_matches(req, &s.id) => {
                Answer::new(454)
            }
            Some(s) => Answer::new(200).header("Session", s.id.clone()),
            None => Answer::new(200),
        }
    }

    fn teardown(&mut self, req: &Request) -> Answer {
        match &self.session {
            Some(s) if session_matches(req, &s.id) => Answer::new(200),
            _ => Answer::new(454),
        }
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

/// The camera's first picture description, waiting for an on-demand or
/// starting camera; `None` when it does not come.
async fn wait_for_video(cam: &CameraHandle) -> Option<crate::camera::StreamInfo> {
    let mut info = cam.hub.watch_info();
    let deadline = Instant::now() + DESCRIBE_WAIT;
    loop {
        {
            let now = info.borrow_and_update();
            if now.video_params.is_some() {
                return Some(now.clone());
            }
        }
        let state = cam.status.borrow().state;
        if !cam.config.on_demand && !matches!(state, CameraState::Connecting | CameraState::Playing)
        {
            return None;
        }
        if tokio::time::timeout_at(deadline, info.changed())
            .await
            .is_err()
        {
            return None;
        }
    }
}

/// The SDP of a DESCRIBE answer: the repaired stream as camgate sends it,
/// one `a=control` per track.
fn describe_sdp(camera: &str, info: &crate::camera::StreamInfo, local: IpAddr) -> String {
    let net = if local.is_ipv4() { "IP4" } else { "IP6" };
    let mut sdp = format!(
        "v=0\r\no=- 0 0 IN {net} {local}\r\ns=camgate {camera}\r\nc=IN {net} 0.0.0.0\r\nt=0 0\r\na=control:*\r\na=range:npt=0-\r\n"
    );
    crate::egress::rtp::write_media(&mut sdp, info, [0, 0], true);
    sdp
}

/// Whether the request's `Session` header names `id`.
fn session_matches(req: &Request, id: &str) -> bool {
    req.headers
        .get("Session")
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == id)
}

/// `Content-Base` of a camera: the request URI up to the camera id, with a
/// trailing `/`.
fn content_base(uri: &str, camera: &str) -> String {
    let uri = uri.split(['?', '#']).next().unwrap_or(uri);
    let cut = uri.trim_end_matches('/');
    let cut = match cut.rfind("/trackID=") {
        Some(i) => &cut[..i],
        None => cut,
    };
    if cut.starts_with("rtsp") {
        format!("{cut}/")
    } else {
        format!("rtsp://127.0.0.1/{camera}/")
    }
}
