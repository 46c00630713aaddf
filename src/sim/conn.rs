//! One RTSP connection of the sim (RFC 2326): parses requests (and the
//! client's `$` frames) with a bounded buffer, answers them, and for a TCP
//! interleaved session paces the clip onto the same socket.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, BytesMut};
use rtsp_types::headers::{
    ALLOW, AUTHORIZATION, CONTENT_BASE, CONTENT_TYPE, CSEQ, PUBLIC, RANGE, RTP_INFO, SERVER,
    SESSION, TRANSPORT, WWW_AUTHENTICATE,
};
use rtsp_types::{HeaderName, Message, Method, ParseError, Request, Response, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::debug;

use super::control::bump;
use super::describe::{self, RequestedTransport};
use super::faults::Faults;
use super::inject::{FaultySession, Tick};
use super::stream::{PacketRef, RtpInfo, StreamState, Streamer, Track, FRAME_PERIOD};
use super::udp::{self, UdpStream};
use super::{clip, Shared, SimError};
use crate::camera::codec::VideoCodec;

/// Largest request (headers and body) the sim accepts.
const MAX_REQUEST: usize = 64 * 1024;

/// Longest a client may take to accept a frame's data (or a response).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Methods the sim implements, for `Public` and `Allow`.
const METHODS: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN";

/// Kernel send buffer per connection (Linux doubles it): about a second of
/// the clip. It bounds what a slow reader can make the host hold: past it,
/// writes stall and [`WRITE_TIMEOUT`] drops the client. Autotuning would
/// let each connection grow to megabytes.
const SEND_BUFFER: usize = 256 * 1024;

/// UDP sessions a connection keeps alive with its requests (the newest).
const MAX_TRACKED_UDP: usize = 16;

/// Cameras whose DESCRIBE faults a connection remembers for SETUP.
const MAX_DESCRIBED: usize = 8;

/// Serves one accepted connection until it closes or the server stops.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    // Media and answers are written whole; no reason to wait for Nagle.
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
    let local_ip = match stream.local_addr() {
        Ok(a) => a.ip(),
        Err(e) => {
            debug!(%peer, "sim: no local address: {e}");
            return;
        }
    };
    let mut conn = Conn {
        shared,
        peer,
        local_ip,
        tcp: None,
        udp_ids: Vec::new(),
        described: Vec::new(),
    };
    match conn.run(stream).await {
        Ok(()) => debug!(%peer, "sim: connection closed"),
        Err(e) => debug!("sim: connection ended: {e}"),
    }
}

/// A TCP interleaved session, owned by its connection.
#[derive(Debug)]
struct TcpSession {
    /// Session id.
    id: String,
    /// RTP state of its streams and the faults they suffer.
    media: FaultySession,
    /// Frame clock while playing; `None` before PLAY and while paused.
    ticker: Option<Interval>,
    /// End of the current stall: until then the ticker is not polled, so
    /// its missed ticks come as a burst afterwards, the held frame first.
    stall_until: Option<Instant>,
}

/// Per-connection state.
struct Conn {
    /// Server state.
    shared: Arc<Shared>,
    /// The client, for UDP destinations and logs.
    peer: SocketAddr,
    /// The address the client connected to; UDP ports are bound on it.
    local_ip: IpAddr,
    /// The TCP session of this connection, at most one.
    tcp: Option<TcpSession>,
    /// UDP sessions set up over this connection: its requests keep them alive.
    udp_ids: Vec<String>,
    /// Settings of the cameras DESCRIBEd here, newest last: the query is
    /// in the DESCRIBE URL, but SETUP goes to the query-less `Content-Base`.
    described: Vec<(String, CameraSettings)>,
}

/// What a camera URL's query (or the server's options) asks of a session.
#[derive(Debug, Clone)]
struct CameraSettings {
    /// The faults it injects.
    faults: Faults,
    /// The video codec it sends.
    codec: VideoCodec,
}

/// An answer before CSeq and Server are added.
struct Reply {
    /// Status code.
    status: StatusCode,
    /// Extra headers.
    headers: Vec<(HeaderName, String)>,
    /// Body (SDP for DESCRIBE).
    body: Vec<u8>,
    /// Reason phrase instead of the status code's usual one.
    reason: Option<String>,
}

impl Reply {
    fn new(status: StatusCode) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            reason: None,
        }
    }

    /// 400 Bad Request saying why, in the reason phrase and a text body.
    fn bad_request(why: String) -> Self {
        let mut r = Reply::new(StatusCode::BadRequest).header(CONTENT_TYPE, "text/plain");
        r.body = format!("{why}\r\n").into_bytes();
        r.reason = Some(format!("Bad Request: {why}"));
        r
    }

    fn ok() -> Self {
        Reply::new(StatusCode::Ok)
    }

    fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl Conn {
    async fn run(&mut self, mut stream: TcpStream) -> Result<(), SimError> {
        let mut rbuf = BytesMut::with_capacity(4096);
        // Answers of one read's worth of requests, written at once.
        let mut wbuf = Vec::with_capacity(4096);
        // One frame's interleaved packets, reused for every frame.
        let mut out = Vec::with_capacity(64 * 1024);
        let mut packets = Vec::with_capacity(64);
        // The frame with TCP faults applied, when the session has any.
        let mut wire = Vec::new();
        let shutdown = self.shared.shutdown.clone();
        loop {
            if rbuf.capacity() - rbuf.len() < 2048 {
                rbuf.reserve(8192);
            }
            let stall_until = self.tcp.as_ref().and_then(|s| s.stall_until);
            let ticker = self
                .tcp
                .as_mut()
                .filter(|s| s.stall_until.is_none())
                .and_then(|s| s.ticker.as_mut());
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                r = stream.read_buf(&mut rbuf) => {
                    let n = r.map_err(|source| SimError::Io { peer: self.peer, source })?;
                    if n == 0 {
                        return Ok(());
                    }
                    let result = self.process(&mut rbuf, &mut wbuf).await;
                    if !wbuf.is_empty() {
                        write_all(&mut stream, &wbuf, self.peer, &shutdown).await?;
                        wbuf.clear();
                    }
                    result?;
                }
                () = tick(ticker) => {
                    let Some(s) = self.tcp.as_mut() else { continue };
                    match s.media.tick() {
                        Tick::Send => {}
                        Tick::Stall(d) => {
                            s.stall_until = Some(Instant::now() + d);
                            continue;
                        }
                        Tick::Reboot => {
                            debug!(peer = %self.peer, "sim: simulated reboot, dropping the connection");
                            return Ok(());
                        }
                        Tick::NoReceiverReport => {
                            debug!(peer = %self.peer, "sim: no RTCP receiver report, dropping the connection");
                            return Ok(());
                        }
                    }
                    let buf = write_frame(&mut s.media, &mut out, &mut wire, &mut packets);
                    write_all(&mut stream, buf, self.peer, &shutdown).await?;
                }
                () = stall_end(stall_until) => {
                    let Some(s) = self.tcp.as_mut() else { continue };
                    s.stall_until = None;
                    if s.ticker.is_some() {
                        // The frame held at the stall; the missed ones follow.
                        let buf = write_frame(&mut s.media, &mut out, &mut wire, &mut packets);
                        write_all(&mut stream, buf, self.peer, &shutdown).await?;
                    }
                }
            }
        }
    }

    /// Handles every complete message in `rbuf`, appending answers to
    /// `wbuf`. An error ends the connection (after `wbuf` is written).
    async fn process(&mut self, rbuf: &mut BytesMut, wbuf: &mut Vec<u8>) -> Result<(), SimError> {
        loop {
            let skip = rbuf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            rbuf.advance(skip);
            if rbuf.is_empty() {
                return Ok(());
            }
            if rbuf[0] == b'$' {
                // RFC 2326 section 10.12: `$`, channel, 16-bit length. The
                // client's RTCP receiver reports; only liveness matters.
                if rbuf.len() < 4 {
                    return Ok(());
                }
                let len = 4 + usize::from(u16::from_be_bytes([rbuf[2], rbuf[3]]));
                if rbuf.len() < len {
                    return Ok(());
                }
                if let Some(s) = self.tcp.as_mut() {
                    let channel = rbuf[1];
                    let rtcp = s
                        .media
                        .streamer
                        .streams
                        .iter()
                        .any(|st| st.interleaved.is_some_and(|c| c.1 == channel));
                    if rtcp {
                        s.media.handle_rtcp(&rbuf[4..len]);
                    }
                }
                rbuf.advance(len);
                self.touch_udp(None);
                continue;
            }
            match Message::<Vec<u8>>::parse(&rbuf[..]) {
                Ok((msg, consumed)) => {
                    rbuf.advance(consumed);
                    if let Message::Request(req) = msg {
                        let cseq = req.header(&CSEQ).map(|v| v.as_str().to_owned());
                        let reply = self.handle(&req).await;
                        write_reply(wbuf, reply, cseq.as_deref());
                    }
                }
                Err(ParseError::Incomplete(_)) => {
                    if rbuf.len() > MAX_REQUEST {
                        write_reply(
                            wbuf,
                            Reply::new(StatusCode::RequestMessageBodyTooLarge),
                            None,
                        );
                        return Err(SimError::RequestTooLarge {
                            peer: self.peer,
                            limit: MAX_REQUEST,
                        });
                    }
                    return Ok(());
                }
                Err(ParseError::Error) => {
                    write_reply(wbuf, Reply::new(StatusCode::BadRequest), None);
                    return Err(SimError::BadRequest { peer: self.peer });
                }
            }
        }
    }

    /// Marks the UDP sessions of this connection (and `named`) alive.
    fn touch_udp(&self, named: Option<&str>) {
        let now = self.shared.now_ms();
        for id in self.udp_ids.iter().map(String::as_str).chain(named) {
            if let Some(h) = self.shared.udp_session(id) {
                h.touch(now);
            }
        }
    }

    /// The answer to one request.
    async fn handle(&mut self, req: &Request<Vec<u8>>) -> Reply {
        let session = req
            .header(&SESSION)
            .map(|v| v.as_str().split(';').next().unwrap_or("").trim().to_owned());
        self.touch_udp(session.as_deref());
        let method = req.method();
        match method {
            Method::Options => return Reply::ok().header(PUBLIC, METHODS),
            Method::Announce | Method::Record | Method::Redirect | Method::PlayNotify => {
                return Reply::new(StatusCode::MethodNotAllowed).header(ALLOW, METHODS)
            }
            Method::Extension(_) => return Reply::new(StatusCode::NotImplemented),
            _ => {}
        }
        if let Some(auth) = &self.shared.auth {
            let name: &str = method.into();
            if !auth.check(name, req.header(&AUTHORIZATION).map(|v| v.as_str())) {
                return Reply::new(StatusCode::Unauthorized)
                    .header(WWW_AUTHENTICATE, auth.challenge());
            }
        }
        match method {
            Method::Describe => self.describe(req),
            Method::Setup => self.setup(req, session.as_deref()).await,
            Method::Play => self.play(session.as_deref()).await,
            Method::Pause => self.pause(session.as_deref()).await,
            Method::Teardown => self.teardown(session.as_deref()).await,
            _ => match session {
                // GET_PARAMETER / SET_PARAMETER: keepalives.
                Some(id) if !self.session_exists(&id) => Reply::new(StatusCode::SessionNotFound),
                _ => Reply::ok(),
            },
        }
    }

    fn session_exists(&self, id: &str) -> bool {
        self.tcp.as_ref().is_some_and(|s| s.id == id) || self.shared.udp_session(id).is_some()
    }

    fn session_header(&self, id: &str) -> String {
        format!(
            "{id};timeout={}",
            self.shared.options.session_timeout.as_secs()
        )
    }

    /// The settings of a session of `url`'s camera. Faults: the URL's
    /// fault keys over the server's faults, else what its DESCRIBE on this
    /// connection asked for, else the server's. Codec: the URL's `codec`,
    /// else its DESCRIBE's, else the server's. The error names a bad query
    /// key.
    fn settings_for(&self, url: &url::Url) -> Result<(String, CameraSettings), String> {
        let camera = describe::camera_name(url);
        let described = self
            .described
            .iter()
            .rev()
            .find(|(c, _)| *c == camera)
            .map(|(_, s)| s);
        let base = &self.shared.options;
        let faults = match describe::fault_query(url) {
            Some(q) => base.faults.with_query(&q)?,
            None => described.map_or_else(|| base.faults.clone(), |s| s.faults.clone()),
        };
        let codec = describe::codec_query(url, described.map_or(base.codec, |s| s.codec))?;
        Ok((camera, CameraSettings { faults, codec }))
    }

    fn describe(&mut self, req: &Request<Vec<u8>>) -> Reply {
        let Some(url) = req.request_uri() else {
            return Reply::new(StatusCode::BadRequest);
        };
        let codec = match self.settings_for(url) {
            Ok((camera, settings)) => {
                let codec = settings.codec;
                self.described.retain(|(c, _)| *c != camera);
                if self.described.len() >= MAX_DESCRIBED {
                    self.described.remove(0);
                }
                self.described.push((camera, settings));
                codec
            }
            Err(why) => return Reply::bad_request(why),
        };
        let body = describe::sdp(
            clip::clip(codec),
            describe::audio_enabled(url),
            self.local_ip,
            rand::random::<u32>().into(),
        );
        let mut reply = Reply::ok()
            .header(CONTENT_BASE, describe::content_base(url))
            .header(CONTENT_TYPE, "application/sdp");
        reply.body = body.into_bytes();
        reply
    }

    async fn setup(&mut self, req: &Request<Vec<u8>>, session: Option<&str>) -> Reply {
        let Some(url) = req.request_uri() else {
            return Reply::new(StatusCode::BadRequest);
        };
        let (camera, CameraSettings { faults, codec }) = match self.settings_for(url) {
            Ok(s) => s,
            Err(why) => return Reply::bad_request(why),
        };
        // A SETUP of the aggregate URL is taken to mean the video track.
        let track = describe::track_of(url.as_str()).unwrap_or(Track::Video);
        let Some(transport) = req
            .header(&TRANSPORT)
            .and_then(|v| describe::parse_transport(v.as_str()))
        else {
            return Reply::new(StatusCode::UnsupportedTransport);
        };
        let udp_session = match session {
            Some(id) if self.tcp.as_ref().is_some_and(|s| s.id == id) => None,
            Some(id) => match self.shared.udp_session(id) {
                Some(h) => Some(h),
                None => return Reply::new(StatusCode::SessionNotFound),
            },
            None => None,
        };
        match transport {
            RequestedTransport::Tcp { channels } => {
                if udp_session.is_some() {
                    return Reply::new(StatusCode::UnsupportedTransport);
                }
                let channels = channels.unwrap_or_else(|| {
                    let base = (track.id() * 2) as u8;
                    (base, base + 1)
                });
                let stream = StreamState::new(track, Some(channels), url.to_string());
                let ssrc = stream.ssrc;
                let s = match (&mut self.tcp, session) {
                    (Some(s), Some(_)) => s,
                    // One TCP session per connection; a second SETUP
                    // without its id is a client bug.
                    (Some(_), None) => return Reply::new(StatusCode::MethodNotValidInThisState),
                    (None, _) => {
                        bump(&self.shared.stats.counters().tcp_sessions);
                        self.tcp.insert(TcpSession {
                            id: new_session_id(),
                            media: FaultySession::new(
                                Streamer::new(clip::clip(codec)),
                                &camera,
                                faults,
                                self.shared.stats.clone(),
                                &self.shared.registry,
                            ),
                            ticker: None,
                            stall_until: None,
                        })
                    }
                };
                if s.media.streamer.has(track) || s.ticker.is_some() {
                    return Reply::new(StatusCode::MethodNotValidInThisState);
                }
                s.media.streamer.streams.push(stream);
                let transport = format!(
                    "RTP/AVP/TCP;unicast;interleaved={}-{};ssrc={ssrc:08X}",
                    channels.0, channels.1
                );
                let id = s.id.clone();
                Reply::ok()
                    .header(TRANSPORT, transport)
                    .header(SESSION, self.session_header(&id))
            }
            RequestedTransport::Udp { client_ports } => {
                if session.is_some() && udp_session.is_none() {
                    // The id is this connection's TCP session.
                    return Reply::new(StatusCode::UnsupportedTransport);
                }
                let (rtp, rtcp) = match udp::bind_pair(self.local_ip).await {
                    Ok(pair) => pair,
                    Err(e) => {
                        debug!(peer = %self.peer, "sim: cannot bind UDP ports: {e}");
                        return Reply::new(StatusCode::InternalServerError);
                    }
                };
                let (Ok(rtp_addr), Ok(rtcp_addr)) = (rtp.local_addr(), rtcp.local_addr()) else {
                    return Reply::new(StatusCode::InternalServerError);
                };
                let state = StreamState::new(track, None, url.to_string());
                let ssrc = state.ssrc;
                let stream = UdpStream {
                    state,
                    rtp,
                    rtcp,
                    dest_rtp: SocketAddr::new(self.peer.ip(), client_ports.0),
                    dest_rtcp: SocketAddr::new(self.peer.ip(), client_ports.1),
                };
                let id = match (udp_session, session) {
                    (Some(h), Some(id)) => {
                        if !h.add_stream(stream).await {
                            return Reply::new(StatusCode::MethodNotValidInThisState);
                        }
                        id.to_owned()
                    }
                    _ => {
                        let id = new_session_id();
                        udp::start(&self.shared, id.clone(), stream, &camera, faults, codec);
                        if self.udp_ids.len() >= MAX_TRACKED_UDP {
                            self.udp_ids.remove(0);
                        }
                        self.udp_ids.push(id.clone());
                        id
                    }
                };
                let transport = format!(
                    "RTP/AVP;unicast;client_port={}-{};server_port={}-{};ssrc={ssrc:08X}",
                    client_ports.0,
                    client_ports.1,
                    rtp_addr.port(),
                    rtcp_addr.port()
                );
                Reply::ok()
                    .header(TRANSPORT, transport)
                    .header(SESSION, self.session_header(&id))
            }
        }
    }

    async fn play(&mut self, session: Option<&str>) -> Reply {
        let Some(id) = session else {
            return Reply::new(StatusCode::SessionNotFound);
        };
        let info = if let Some(s) = self.tcp.as_mut().filter(|s| s.id == id) {
            let info = s.media.streamer.rtp_info();
            if s.ticker.is_none() {
                let mut t = tokio::time::interval(FRAME_PERIOD);
                // Catch up after a stall, so media time keeps wall time.
                t.set_missed_tick_behavior(MissedTickBehavior::Burst);
                s.ticker = Some(t);
            }
            info
        } else if let Some(h) = self.shared.udp_session(id) {
            match h.play().await {
                Some(info) => info,
                None => return Reply::new(StatusCode::SessionNotFound),
            }
        } else {
            return Reply::new(StatusCode::SessionNotFound);
        };
        Reply::ok()
            .header(SESSION, self.session_header(id))
            .header(RANGE, "npt=0.000-")
            .header(RTP_INFO, rtp_info_header(&info))
    }

    async fn pause(&mut self, session: Option<&str>) -> Reply {
        let Some(id) = session else {
            return Reply::new(StatusCode::SessionNotFound);
        };
        if let Some(s) = self.tcp.as_mut().filter(|s| s.id == id) {
            s.ticker = None;
        } else if let Some(h) = self.shared.udp_session(id) {
            h.pause().await;
        } else {
            return Reply::new(StatusCode::SessionNotFound);
        }
        Reply::ok().header(SESSION, self.session_header(id))
    }

    async fn teardown(&mut self, session: Option<&str>) -> Reply {
        let Some(id) = session else {
            return Reply::new(StatusCode::SessionNotFound);
        };
        if self.tcp.as_ref().is_some_and(|s| s.id == id) {
            self.tcp = None;
        } else if let Some(h) = self.shared.udp_session(id) {
            self.shared
                .udp_sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
            self.udp_ids.retain(|u| u != id);
            h.teardown().await;
        } else {
            return Reply::new(StatusCode::SessionNotFound);
        }
        Reply::ok()
    }
}

/// `RTP-Info` (RFC 2326 section 12.33) for the streams of a PLAY.
fn rtp_info_header(info: &[RtpInfo]) -> String {
    info.iter()
        .map(|i| format!("url={};seq={};rtptime={}", i.url, i.seq, i.rtptime))
        .collect::<Vec<_>>()
        .join(",")
}

/// A random session id (RFC 2326 section 3.4: at least 8 octets of
/// randomness is plenty for a sim).
fn new_session_id() -> String {
    format!("{:016X}", rand::random::<u64>())
}

/// Serializes `reply` with CSeq and Server headers into `out`.
fn write_reply(out: &mut Vec<u8>, reply: Reply, cseq: Option<&str>) {
    let mut b = Response::builder(Version::V1_0, reply.status).header(SERVER, "camgate-sim");
    if let Some(reason) = reply.reason {
        b = b.reason_phrase(reason);
    }
    if let Some(cseq) = cseq {
        b = b.header(CSEQ, cseq);
    }
    for (name, value) in reply.headers {
        b = b.header(name, value);
    }
    // Writing into a Vec cannot fail.
    let _ = b.build(reply.body).write(out);
}

/// Writes `buf` whole within [`WRITE_TIMEOUT`]; a client that does not
/// drain its socket that fast is dropped rather than buffered for.
async fn write_all(
    stream: &mut TcpStream,
    buf: &[u8],
    peer: SocketAddr,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<(), SimError> {
    tokio::select! {
        r = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(buf)) => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(SimError::Io { peer, source }),
            Err(_) => Err(SimError::SlowReader { peer, timeout: WRITE_TIMEOUT }),
        },
        // The main loop sees the cancellation next and closes.
        _ = shutdown.cancelled() => Ok(()),
    }
}

/// Writes the next frame into `out` (and, with TCP faults, `wire`);
/// returns the bytes to put on the connection.
fn write_frame<'a>(
    media: &mut FaultySession,
    out: &'a mut Vec<u8>,
    wire: &'a mut Vec<u8>,
    packets: &mut Vec<PacketRef>,
) -> &'a [u8] {
    out.clear();
    packets.clear();
    let keyframe = media.write_frame(SystemTime::now(), out, packets);
    if !media.tcp_faulty() {
        return out;
    }
    wire.clear();
    media.tcp_wire(out, packets, keyframe, wire);
    wire
}

/// Resolves at the end of a stall; never without one.
async fn stall_end(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Waits for the next frame time while playing; never resolves otherwise.
async fn tick(ticker: Option<&mut Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
