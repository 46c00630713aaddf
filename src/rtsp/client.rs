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

use std::time::{Duration, Instant};

use bytes::Bytes;
use url::Url;

use super::sdp::Presentation;

/// Settings for one RTSP session.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The camera URL, with credentials removed.
    pub url: Url,
    /// User name and password, if the camera needs them.
    pub credentials: Option<(String, String)>,
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
    #[error("{method} (CSeq {cseq}) answered 404 Not Found: the camera has no stream at this path")]
    NotFound { method: String, cseq: u32 },
    /// Any other non-success status.
    #[error("{method} (CSeq {cseq}) answered {status} {reason}")]
    Status { method: String, cseq: u32, status: u16, reason: String },
    /// The camera sent something that is not RTSP or not what was asked.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// No answer to a request in time.
    #[error("{method} (CSeq {cseq}) got no answer within {secs} s")]
    Timeout { method: String, cseq: u32, secs: u64 },
}

/// The RTSP client state machine. See the module doc for the call order.
#[derive(Debug)]
pub struct Client {}

impl Client {
    /// Starts a session: queues OPTIONS (then DESCRIBE).
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let _ = (config, now);
        todo!("rtsp helper")
    }

    /// Feeds bytes read from the connection.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        let _ = (data, now);
        todo!("rtsp helper")
    }

    /// Bytes to write to the connection, if any.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        todo!("rtsp helper")
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!("rtsp helper")
    }

    /// When [`Client::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!("rtsp helper")
    }

    /// Sends keepalives and fails requests that got no answer.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!("rtsp helper")
    }

    /// After [`Event::Described`]: SETUP these streams in order, then PLAY.
    pub fn setup(&mut self, streams: Vec<(usize, TransportRequest)>, now: Instant) {
        let _ = (streams, now);
        todo!("rtsp helper")
    }

    /// Queues an interleaved frame (RTCP on TCP).
    pub fn send_interleaved(&mut self, channel: u8, data: &[u8]) {
        let _ = (channel, data);
        todo!("rtsp helper")
    }

    /// Queues TEARDOWN if a session exists; [`Event::TornDown`] follows.
    pub fn teardown(&mut self, now: Instant) {
        let _ = now;
        todo!("rtsp helper")
    }

    /// The session timeout the camera announced (default 60 s).
    pub fn session_timeout(&self) -> Duration {
        todo!("rtsp helper")
    }

    /// The `Server` header of the camera's answers, if any.
    pub fn server(&self) -> Option<&str> {
        todo!("rtsp helper")
    }
}
