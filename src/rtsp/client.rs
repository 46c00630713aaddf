//! The RTSP client state machine: OPTIONS, DESCRIBE, SETUP, PLAY, keepalive,
//! TEARDOWN, with Basic/Digest authentication and redirects.
//!
//! Call order for a driver:
//! 1. [`Client::new`], then write every [`Client::poll_transmit`] to the TCP
//!    connection.
//! 2. Feed every byte read with [`Client::handle_input`]; drain
//!    [`Client::poll_event`] and [`Client::poll_transmit`] after each call.
//! 3. On [`Event::Described`], choose transports and call [`Client::setup`].
//! 4. Call [`Client::handle_timeout`] when [`Client::poll_timeout`] is due.
//! 5. [`Client::teardown`] to stop; the session is over once
//!    [`Event::TornDown`] is out (or the connection closed).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use url::Url;

use super::auth::{AuthError, Authenticator};
use super::framer::{quote_limit, Framer, Item};
use super::message::{Request, Response};
use super::sdp::{self, Presentation};
use super::transport::{parse_rtp_info, SessionHeader, Transport};

mod answers;

/// How long a request may wait for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an interleaved frame may wait for the bytes after it, which
/// show whether its declared length was true (see `framer`), before it is
/// handed out unchecked.
pub const FRAME_HOLD: Duration = Duration::from_millis(5);
/// Session timeout when the camera announces none (RFC 2326 section 12.37).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest SDP accepted in a DESCRIBE answer. Real ones are a few KiB; the
/// SDP is kept in the camera's status and shown by the API.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Most bytes a camera may send per second, averaged over
/// [`INGEST_WINDOW`]: 64 MiB/s (512 Mbit/s), several times what any camera
/// stream needs. More is a faulty or hostile camera flooding the
/// connection, which would otherwise take a whole CPU core from the others.
pub const MAX_INGEST_BYTES_PER_SEC: u64 = 64 << 20;
/// The window over which [`MAX_INGEST_BYTES_PER_SEC`] is measured; long
/// enough that a full receive buffer delivered at once after a network
/// stall (at most 64 MiB, `socket_buffer_bytes`) stays below the limit.
pub const INGEST_WINDOW: Duration = Duration::from_secs(2);

/// Settings for one RTSP session.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The camera URL, with credentials removed.
    pub url: Url,
    /// User name and password, if the camera needs them.
    pub credentials: Option<crate::credentials::Credentials>,
    /// `User-Agent` header value.
    pub user_agent: String,
}

/// How one stream should be delivered, chosen by the driver for SETUP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportRequest {
    /// RTP/AVP/TCP;interleaved=rtp_channel-(rtp_channel+1).
    Tcp { rtp_channel: u8 },
    /// RTP/AVP;unicast;client_port=rtp_port-(rtp_port+1).
    Udp { rtp_port: u16 },
}

/// What the camera answered to SETUP and PLAY for one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSetup {
    /// Index into [`Presentation::streams`].
    pub stream: usize,
    /// The transport as requested.
    pub request: TransportRequest,
    /// Interleaved channels the camera confirmed (TCP).
    pub channels: Option<(u8, u8)>,
    /// `server_port` the camera confirmed (UDP).
    pub server_ports: Option<(u16, u16)>,
    /// `source` the camera confirmed (UDP), if any.
    pub source: Option<String>,
    /// `ssrc=` from the Transport header, in whatever format the camera used.
    pub ssrc: Option<u32>,
    /// `seq` from `RTP-Info` in the PLAY answer, if valid.
    pub rtp_info_seq: Option<u16>,
    /// `rtptime` from `RTP-Info` in the PLAY answer, if valid.
    pub rtp_info_rtptime: Option<u32>,
}

/// What the client tells its driver.
#[derive(Clone, Debug)]
pub enum Event {
    /// DESCRIBE succeeded; call [`Client::setup`].
    Described(Presentation),
    /// SETUP and PLAY succeeded; media flows.
    Playing(Vec<StreamSetup>),
    /// An interleaved frame arrived (TCP).
    Interleaved { channel: u8, data: Bytes },
    /// The camera redirected us (3xx); reconnect to this URL.
    Redirect(Url),
    /// The TEARDOWN was answered.
    TornDown,
    /// The session failed; the driver should close the connection.
    Failed(ClientError),
}

/// Why an RTSP session failed. Carries the context that finds the exchange
/// in a capture.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    /// The camera refused the credentials (or none were given).
    #[error("{method} (CSeq {cseq}) was refused with 401 Unauthorized: wrong or missing user name or password")]
    Unauthorized { method: String, cseq: u32 },
    /// The camera has no such stream.
    #[error(
        "{method} (CSeq {cseq}) answered 404 Not Found: the camera has no stream at this path"
    )]
    NotFound { method: String, cseq: u32 },
    /// Any other non-success status.
    #[error("{method} (CSeq {cseq}) answered {status} {reason}")]
    Status {
        method: String,
        cseq: u32,
        status: u16,
        reason: String,
    },
    /// The camera sent something that is not RTSP or not what was asked.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No answer to a request in time.
    #[error("{method} (CSeq {cseq}) got no answer within {secs} s")]
    Timeout {
        method: String,
        cseq: u32,
        secs: u64,
    },
    /// The camera sent more than [`MAX_INGEST_BYTES_PER_SEC`].
    #[error("the camera sent {mib} MiB within {secs} s, more than the {limit_mib} MiB/s limit: a flood, not a video stream")]
    Flood {
        /// MiB received in the window.
        mib: u64,
        /// The window, in seconds.
        secs: u64,
        /// [`MAX_INGEST_BYTES_PER_SEC`] in MiB/s.
        limit_mib: u64,
    },
}

/// Why a request was sent: decides what its answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Options,
    Describe,
    /// SETUP of `plan[i]`.
    Setup(usize),
    Play,
    Keepalive,
    Teardown,
}

/// A request waiting for its answer; kept whole so a 401 can resend it.
#[derive(Debug)]
struct Pending {
    cseq: u32,
    purpose: Purpose,
    method: &'static str,
    url: Url,
    /// Headers besides CSeq, User-Agent and Authorization.
    headers: Vec<(&'static str, String)>,
    /// When the request fails with [`ClientError::Timeout`].
    deadline: Instant,
    /// Whether it carried an `Authorization` header.
    authorized: bool,
    /// Whether it is already the resend after a 401 (a second 401 fails).
    retried: bool,
}

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// OPTIONS then DESCRIBE in flight.
    Describing,
    /// Waiting for [`Client::setup`].
    Described,
    /// SETUPs then PLAY in flight.
    SettingUp,
    /// Media flows; keepalives run.
    Playing,
    /// Failed, redirected or torn down: nothing more happens.
    Done,
}

/// The RTSP client state machine. See the module doc for the call order.
#[derive(Debug)]
pub struct Client {
    /// The camera and credentials.
    config: ClientConfig,
    /// Splits received bytes into answers and interleaved frames.
    framer: Framer,
    /// When to hand out a frame the framer holds for its boundary check.
    held_deadline: Option<Instant>,
    /// Bytes for the connection, handed out by `poll_transmit`.
    out: BytesMut,
    /// Events for the driver.
    events: VecDeque<Event>,
    /// Requests awaiting answers, matched by CSeq.
    pending: Vec<Pending>,
    /// CSeq of the next request.
    next_cseq: u32,
    /// Where the session is.
    state: State,
    /// Answers challenges on every request once one was accepted.
    auth: Authenticator,
    /// From the DESCRIBE answer.
    presentation: Option<Presentation>,
    /// `Session` of the DESCRIBE answer: used only if SETUP omits it.
    describe_session: Option<String>,
    /// Session id from SETUP, echoed in later requests.
    session: Option<String>,
    /// The camera's session timeout.
    session_timeout: Duration,
    /// Streams to SETUP, from [`Client::setup`].
    plan: Vec<(usize, TransportRequest)>,
    /// SETUP results so far, completed by PLAY.
    setups: Vec<StreamSetup>,
    /// When the next keepalive is due (while playing).
    next_keepalive: Option<Instant>,
    /// GET_PARAMETER, or OPTIONS once the camera refused GET_PARAMETER.
    keepalive_method: &'static str,
    /// TEARDOWN was asked: other answers no longer matter.
    tearing_down: bool,
    /// The `Server` header of the camera's answers.
    server: Option<String>,
    /// Start of the current [`INGEST_WINDOW`] and the bytes received in it.
    ingest: Option<(Instant, u64)>,
}

/// Header values we write must not break the message.
fn clean(v: &str) -> String {
    v.chars().filter(|&c| c != '\r' && c != '\n').collect()
}

impl Client {
    /// Starts a session: queues OPTIONS (then DESCRIBE). Credentials in
    /// `config.url` are removed; use `config.credentials`.
    pub fn new(mut config: ClientConfig, now: Instant) -> Self {
        sdp::strip_credentials(&mut config.url);
        let auth = Authenticator::new(config.credentials.clone());
        let mut client = Client {
            config,
            framer: Framer::new(),
            held_deadline: None,
            out: BytesMut::new(),
            events: VecDeque::new(),
            pending: Vec::new(),
            next_cseq: 1,
            state: State::Describing,
            auth,
            presentation: None,
            describe_session: None,
            session: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            plan: Vec::new(),
            setups: Vec::new(),
            next_keepalive: None,
            keepalive_method: "GET_PARAMETER",
            tearing_down: false,
            server: None,
            ingest: None,
        };
        let url = client.config.url.clone();
        client.send(Purpose::Options, "OPTIONS", url, Vec::new(), now, false);
        client
    }

    /// Feeds bytes read from the connection; then drain
    /// [`Client::poll_event`] and [`Client::poll_transmit`].
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.state == State::Done {
            return;
        }
        if self.flooded(data.len(), now) {
            return;
        }
        self.framer.push(data);
        while self.state != State::Done {
            let Some(item) = self.framer.poll() else {
                break;
            };
            match item {
                Item::Interleaved { channel, data } => {
                    self.events.push_back(Event::Interleaved { channel, data })
                }
                Item::Response(r) => self.on_response(r, now),
                Item::Request(r) => self.on_request(&r),
                Item::Error(e) => {
                    // Name the request in flight: usually its answer broke.
                    let what = match self.pending.first() {
                        Some(p) => format!(
                            "waiting for the answer to {} (CSeq {}): {e}",
                            p.method, p.cseq
                        ),
                        None => e.to_string(),
                    };
                    self.fail(ClientError::Protocol(what));
                }
            }
        }
        self.held_deadline = match (self.framer.holding(), self.held_deadline) {
            (false, _) => None,
            (true, None) => Some(now + FRAME_HOLD),
            (true, kept) => kept,
        };
    }

    /// Bytes to write to the connection, if any (all queued bytes at once).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] should next be called: the earliest
    /// request deadline or keepalive; `None` when nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Done {
            return None;
        }
        let requests = self.pending.iter().map(|p| p.deadline);
        let keepalive = self
            .next_keepalive
            .filter(|_| self.state == State::Playing && !self.tearing_down);
        requests.chain(keepalive).chain(self.held_deadline).min()
    }

    /// Sends keepalives and fails requests that got no answer in
    /// [`REQUEST_TIMEOUT`]. Call when [`Client::poll_timeout`] is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Done {
            return;
        }
        if self.held_deadline.is_some_and(|d| d <= now) {
            // Nothing followed the held frame: it was whole after all.
            self.held_deadline = None;
            if let Some(Item::Interleaved { channel, data }) = self.framer.release_held() {
                self.events.push_back(Event::Interleaved { channel, data });
            }
            self.handle_input(&[], now);
        }
        if let Some(p) = self.pending.iter().find(|p| p.deadline <= now) {
            let err = ClientError::Timeout {
                method: p.method.to_string(),
                cseq: p.cseq,
                secs: REQUEST_TIMEOUT.as_secs(),
            };
            self.fail(err);
            return;
        }
        if self.state != State::Playing || self.tearing_down {
            return;
        }
        if self.next_keepalive.is_some_and(|due| due <= now) {
            if !self.pending.iter().any(|p| p.purpose == Purpose::Keepalive) {
                let url = self.aggregate_url();
                let headers = self.session_header();
                self.send(
                    Purpose::Keepalive,
                    self.keepalive_method,
                    url,
                    headers,
                    now,
                    false,
                );
            }
            self.next_keepalive = Some(now + self.keepalive_interval());
        }
    }

    /// After [`Event::Described`]: SETUP these streams (indexes into
    /// [`Presentation::streams`]) in order, then PLAY. Ignored in any other
    /// state; an empty list or a bad index fails the session.
    pub fn setup(&mut self, streams: Vec<(usize, TransportRequest)>, now: Instant) {
        if self.state != State::Described || self.tearing_down {
            return;
        }
        let count = self.presentation.as_ref().map_or(0, |p| p.streams.len());
        if streams.is_empty() {
            return self.fail(ClientError::Protocol(
                "setup() called with no streams".into(),
            ));
        }
        if let Some((bad, _)) = streams.iter().find(|(i, _)| *i >= count) {
            return self.fail(ClientError::Protocol(format!(
                "setup() of stream {bad}; the camera offers {count}"
            )));
        }
        self.plan = streams;
        self.state = State::SettingUp;
        self.send_setup(0, now);
    }

    /// Queues an interleaved frame (RTCP on TCP). A frame over 65 535 bytes
    /// cannot be framed and is dropped, as is anything after the session
    /// ended.
    pub fn send_interleaved(&mut self, channel: u8, data: &[u8]) {
        let Ok(len) = u16::try_from(data.len()) else {
            return;
        };
        if self.state == State::Done {
            return;
        }
        self.out.reserve(4 + data.len());
        self.out.extend_from_slice(&[b'$', channel]);
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(data);
    }

    /// Queues TEARDOWN if a session exists; [`Event::TornDown`] follows when
    /// it is answered (at once if there is no session).
    pub fn teardown(&mut self, now: Instant) {
        if self.state == State::Done || self.tearing_down {
            return;
        }
        self.tearing_down = true;
        self.next_keepalive = None;
        // Answers to anything else no longer matter, nor do their deadlines.
        self.pending.clear();
        if self.session.is_none() {
            self.events.push_back(Event::TornDown);
            self.state = State::Done;
            return;
        }
        let url = self.aggregate_url();
        let headers = self.session_header();
        self.send(Purpose::Teardown, "TEARDOWN", url, headers, now, false);
    }

    /// The session timeout the camera announced (default 60 s).
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// The `Server` header of the camera's answers, if any.
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// Garbage bytes the framer skipped on this connection.
    pub fn skipped_bytes(&self) -> u64 {
        self.framer.skipped_bytes()
    }

    /// Times the interleaved framing broke and was found again on this
    /// connection.
    pub fn framing_resyncs(&self) -> u64 {
        self.framer.resyncs()
    }

    /// Counts `n` bytes received at `now`; fails the session and returns
    /// true when the window's total passes the ingest limit.
    fn flooded(&mut self, n: usize, now: Instant) -> bool {
        let (start, bytes) = match self.ingest {
            Some((start, bytes)) if now.saturating_duration_since(start) < INGEST_WINDOW => {
                (start, bytes)
            }
            _ => (now, 0),
        };
        let bytes = bytes + n as u64;
        self.ingest = Some((start, bytes));
        let limit = MAX_INGEST_BYTES_PER_SEC * INGEST_WINDOW.as_secs();
        if bytes <= limit {
            return false;
        }
        self.fail(ClientError::Flood {
            mib: bytes >> 20,
            secs: INGEST_WINDOW.as_secs(),
            limit_mib: MAX_INGEST_BYTES_PER_SEC >> 20,
        });
        true
    }

    fn keepalive_interval(&self) -> Duration {
        (self.session_timeout / 2).max(Duration::from_secs(1))
    }

    fn aggregate_url(&self) -> Url {
        self.presentation
            .as_ref()
            .map_or_else(|| self.config.url.clone(), |p| p.control.clone())
    }

    fn session_header(&self) -> Vec<(&'static str, String)> {
        self.session
            .iter()
            .map(|s| ("Session", s.clone()))
            .collect()
    }

    fn fail(&mut self, err: ClientError) {
        self.events.push_back(Event::Failed(err));
        self.state = State::Done;
        self.pending.clear();
        self.next_keepalive = None;
    }

    /// Writes a request (with CSeq, User-Agent and any Authorization) and
    /// records it as pending.
    fn send(
        &mut self,
        purpose: Purpose,
        method: &'static str,
        url: Url,
        headers: Vec<(&'static str, String)>,
        now: Instant,
        retried: bool,
    ) {
        let cseq = self.next_cseq;
        self.next_cseq = self.next_cseq.wrapping_add(1).max(1);
        let authorization = match self.auth.authorization(method, url.as_str()) {
            Ok(a) => a,
            Err(e) => return self.fail(auth_error(e, method, cseq)),
        };
        let mut msg = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: {}\r\n",
            clean(&self.config.user_agent)
        );
        if let Some(a) = &authorization {
            let _ = write!(msg, "Authorization: {}\r\n", clean(a));
        }
        for (name, value) in &headers {
            let _ = write!(msg, "{name}: {}\r\n", clean(value));
        }
        msg.push_str("\r\n");
        self.out.extend_from_slice(msg.as_bytes());
        let authorized = authorization.is_some();
        self.pending.push(Pending {
            cseq,
            purpose,
            method,
            url,
            headers,
            deadline: now + REQUEST_TIMEOUT,
            authorized,
            retried,
        });
    }

    fn send_describe(&mut self, now: Instant) {
        let url = self.config.url.clone();
        self.send(
            Purpose::Describe,
            "DESCRIBE",
            url,
            vec![("Accept", "application/sdp".into())],
            now,
            false,
        );
    }

    fn send_setup(&mut self, i: usize, now: Instant) {
        let Some(&(stream, request)) = self.plan.get(i) else {
            return;
        };
        let Some(url) = self
            .presentation
            .as_ref()
            .and_then(|p| p.streams.get(stream))
            .map(|s| s.control.clone())
        else {
            return self.fail(ClientError::Protocol(format!(
                "no stream {stream} to SETUP"
            )));
        };
        let transport = match request {
            TransportRequest::Tcp { rtp_channel } => {
                // Frames on these channels may start arriving before the
                // answer; check and resync them from now on.
                self.framer.expect_channels(rtp_channel);
                format!(
                    "RTP/AVP/TCP;unicast;interleaved={}-{}",
                    rtp_channel,
                    rtp_channel.wrapping_add(1)
                )
            }
            TransportRequest::Udp { rtp_port } => {
                format!(
                    "RTP/AVP;unicast;client_port={}-{}",
                    rtp_port,
                    rtp_port.wrapping_add(1)
                )
            }
        };
        let mut headers = vec![("Transport", transport)];
        headers.extend(self.session_header());
        self.send(Purpose::Setup(i), "SETUP", url, headers, now, false);
    }

    fn send_play(&mut self, now: Instant) {
        let url = self.aggregate_url();
        let mut headers = self.session_header();
        headers.push(("Range", "npt=0.000-".into()));
        self.send(Purpose::Play, "PLAY", url, headers, now, false);
    }

    /// Answers a request from the camera: OPTIONS with 200, anything else
    /// with 551 Option Not Supported.
    fn on_request(&mut self, r: &Request) {
        let Some(cseq) = r.headers.cseq() else { return };
        let status = if r.method.eq_ignore_ascii_case("OPTIONS") {
            "200 OK"
        } else {
            "551 Option not supported"
        };
        let msg = format!(
            "RTSP/1.0 {status}\r\nCSeq: {cseq}\r\nUser-Agent: {}\r\n\r\n",
            clean(&self.config.user_agent)
        );
        self.out.extend_from_slice(msg.as_bytes());
    }
}

fn auth_error(e: AuthError, method: &str, cseq: u32) -> ClientError {
    ClientError::Protocol(format!("{method} (CSeq {cseq}): {e}"))
}

#[cfg(test)]
mod tests;
