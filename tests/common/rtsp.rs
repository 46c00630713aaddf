//! A small blocking RTSP client written for the tests of camgate's RTSP
//! server: exact control over each request (bad ones included), Digest
//! computed here from RFC 2617 (not with camgate's code), interleaved
//! frames read with their arrival time. Only 127.0.0.1.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use md5::{Digest as _, Md5};

/// An answer from the server.
#[derive(Debug, Clone)]
pub struct RtspReply {
    /// Status code (0 when the connection ended before an answer).
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    /// Body.
    pub body: String,
    /// When its last byte arrived.
    pub at: Instant,
}

impl RtspReply {
    /// A header's value (case-insensitive name), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// Every value of a header.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
            .collect()
    }

    /// The session id of a `Session` header.
    pub fn session(&self) -> Option<String> {
        self.header("Session")
            .map(|s| s.split(';').next().unwrap_or("").trim().to_owned())
    }
}

/// An interleaved frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub channel: u8,
    pub data: Vec<u8>,
    pub at: Instant,
}

impl Frame {
    /// RTP marker bit.
    pub fn marker(&self) -> bool {
        self.data.len() > 1 && self.data[1] & 0x80 != 0
    }

    /// RTP payload (after the fixed header and CSRCs; extensions are not
    /// sent by camgate).
    pub fn payload(&self) -> &[u8] {
        rtp_payload(&self.data)
    }
}

/// The payload of an RTP packet (empty when too short).
pub fn rtp_payload(p: &[u8]) -> &[u8] {
    if p.len() < 12 {
        return &[];
    }
    let at = 12 + 4 * usize::from(p[0] & 0x0f);
    p.get(at..).unwrap_or(&[])
}

/// Whether an H.264 RTP payload starts or carries an IDR slice (single
/// NAL, STAP-A, or the first FU-A fragment).
pub fn h264_payload_has_idr(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        5 => true,
        24 => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if rest.len() < 2 + len || len == 0 {
                    return false;
                }
                if rest[2] & 0x1f == 5 {
                    return true;
                }
                rest = &rest[2 + len..];
            }
            false
        }
        28 => payload.len() > 1 && payload[1] & 0x1f == 5,
        _ => false,
    }
}

/// Credentials for a Digest (or Basic) answer.
#[derive(Debug, Clone)]
pub struct Creds {
    pub user: String,
    pub password: String,
    /// Answer with Basic even when Digest is offered.
    pub basic: bool,
}

/// A connection to camgate's RTSP server.
pub struct RawRtsp {
    pub stream: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    /// The session id, once a SETUP was answered.
    pub session: Option<String>,
    creds: Option<Creds>,
    /// `(realm, nonce)` of the last Digest challenge.
    challenge: Option<(String, String)>,
    /// Interleaved frames that arrived while waiting for an answer.
    pub pending: Vec<Frame>,
}

impl RawRtsp {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> RawRtsp {
        RawRtsp::on(TcpStream::connect(("127.0.0.1", port)).expect("connect to the RTSP server"))
    }

    /// Wraps a connected stream.
    pub fn on(stream: TcpStream) -> RawRtsp {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawRtsp {
            stream,
            buf: Vec::new(),
            cseq: 0,
            session: None,
            creds: None,
            challenge: None,
            pending: Vec::new(),
        }
    }

    /// Answers challenges with `creds` from now on.
    pub fn with_creds(mut self, user: &str, password: &str, basic: bool) -> RawRtsp {
        self.creds = Some(Creds {
            user: user.into(),
            password: password.into(),
            basic,
        });
        self
    }

    fn authorization(&self, method: &str, uri: &str) -> Option<String> {
        let c = self.creds.as_ref()?;
        if c.basic {
            use base64::Engine as _;
            let v = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.user, c.password));
            return Some(format!("Basic {v}"));
        }
        let (realm, nonce) = self.challenge.as_ref()?;
        let hex = |s: String| format!("{:x}", Md5::digest(s.as_bytes()));
        let ha1 = hex(format!("{}:{realm}:{}", c.user, c.password));
        let ha2 = hex(format!("{method}:{uri}"));
        let response = hex(format!("{ha1}:{nonce}:{ha2}"));
        Some(format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"",
            c.user
        ))
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends one request (with CSeq, the session once known, and
    /// credentials when challenged before); returns the answer. A 401 with
    /// a Digest challenge is answered once when credentials are set.
    pub fn request(&mut self, method: &str, uri: &str, headers: &[(&str, &str)]) -> RtspReply {
        let reply = self.request_once(method, uri, headers);
        if reply.status == 401 && self.creds.is_some() {
            if let Some((realm, nonce)) = reply
                .headers("WWW-Authenticate")
                .iter()
                .find_map(|v| parse_digest_challenge(v))
            {
                self.challenge = Some((realm, nonce));
                return self.request_once(method, uri, headers);
            }
        }
        reply
    }

    fn request_once(&mut self, method: &str, uri: &str, headers: &[(&str, &str)]) -> RtspReply {
        self.cseq += 1;
        let mut req = format!(
            "{method} {uri} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: camgate-tests\r\n",
            self.cseq
        );
        if let Some(s) = &self.session {
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("Session"))
            {
                req.push_str(&format!("Session: {s}\r\n"));
            }
        }
        if let Some(a) = self.authorization(method, uri) {
            req.push_str(&format!("Authorization: {a}\r\n"));
        }
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        if self.stream.write_all(req.as_bytes()).is_err() {
            return closed();
        }
        loop {
            match self.read_item() {
                Ok(Item::Reply(r)) => {
                    if r.status == 200 {
                        if let Some(s) = r.session() {
                            self.session = Some(s);
                        }
                    }
                    return r;
                }
                Ok(Item::Frame(f)) => self.pending.push(f),
                Err(_) => return closed(),
            }
        }
    }

    /// The next interleaved frame (answers in between are dropped).
    pub fn read_frame(&mut self) -> std::io::Result<Frame> {
        if !self.pending.is_empty() {
            return Ok(self.pending.remove(0));
        }
        loop {
            if let Item::Frame(f) = self.read_item()? {
                return Ok(f);
            }
        }
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn read_item(&mut self) -> std::io::Result<Item> {
        loop {
            if self.buf.first() == Some(&b'$') && self.buf.len() >= 4 {
                let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                if self.buf.len() >= 4 + len {
                    let data = self.buf[4..4 + len].to_vec();
                    let channel = self.buf[1];
                    self.buf.drain(..4 + len);
                    return Ok(Item::Frame(Frame {
                        channel,
                        data,
                        at: Instant::now(),
                    }));
                }
            } else if self.buf.starts_with(b"RTSP/") {
                if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (n, v) = l.split_once(':')?;
                            n.trim()
                                .eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if self.buf.len() >= end + 4 + len {
                        let body =
                            String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).into_owned();
                        self.buf.drain(..end + 4 + len);
                        let status = head
                            .split_whitespace()
                            .nth(1)
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(0);
                        return Ok(Item::Reply(RtspReply {
                            status,
                            head,
                            body,
                            at: Instant::now(),
                        }));
                    }
                }
            } else if !self.buf.is_empty() && self.buf.len() >= 5 {
                return Err(std::io::Error::new(
                    ErrorKind::InvalidData,
                    format!(
                        "unframed bytes from the server: {:?}",
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(40)])
                    ),
                ));
            }
            self.fill()?;
        }
    }

    /// OPTIONS, DESCRIBE, SETUP of video (and audio when `audio`) over TCP
    /// interleaved, PLAY. Panics on any answer but 200. Returns the PLAY
    /// answer.
    pub fn play_tcp(&mut self, url: &str, audio: bool) -> RtspReply {
        let r = self.request("OPTIONS", url, &[]);
        assert_eq!(r.status, 200, "OPTIONS: {r:?}");
        let r = self.request("DESCRIBE", url, &[("Accept", "application/sdp")]);
        assert_eq!(r.status, 200, "DESCRIBE: {r:?}");
        let r = self.request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
        );
        assert_eq!(r.status, 200, "SETUP video: {r:?}");
        if audio {
            let r = self.request(
                "SETUP",
                &format!("{url}/trackID=1"),
                &[("Transport", "RTP/AVP/TCP;unicast;interleaved=2-3")],
            );
            assert_eq!(r.status, 200, "SETUP audio: {r:?}");
        }
        let r = self.request("PLAY", url, &[("Range", "npt=0.000-")]);
        assert_eq!(r.status, 200, "PLAY: {r:?}");
        r
    }

    /// Reads frames until a complete picture that contains an IDR (its
    /// packet with the marker bit on channel 0); returns when that packet
    /// arrived and how many video packets came before.
    pub fn first_idr_complete(&mut self, limit: Duration) -> (Instant, usize) {
        let start = Instant::now();
        let mut in_idr = false;
        let mut packets = 0;
        loop {
            assert!(start.elapsed() < limit, "no IDR within {limit:?}");
            let f = self.read_frame().expect("media until the first IDR");
            if f.channel != 0 {
                continue;
            }
            packets += 1;
            if h264_payload_has_idr(f.payload()) {
                in_idr = true;
            }
            if in_idr && f.marker() {
                return (f.at, packets);
            }
        }
    }
}

enum Item {
    Reply(RtspReply),
    Frame(Frame),
}

fn closed() -> RtspReply {
    RtspReply {
        status: 0,
        head: String::new(),
        body: String::new(),
        at: Instant::now(),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `(realm, nonce)` of a `Digest` challenge.
fn parse_digest_challenge(v: &str) -> Option<(String, String)> {
    let rest = v.trim().strip_prefix("Digest")?;
    let field = |name: &str| {
        let at = rest.find(&format!("{name}=\""))? + name.len() + 2;
        let end = rest[at..].find('"')?;
        Some(rest[at..at + end].to_owned())
    };
    Some((field("realm")?, field("nonce")?))
}

/// A UDP port pair for a client (even RTP, odd RTCP), bound.
pub fn udp_client_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..200 {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p % 2 != 0 || p == 65535 {
            continue;
        }
        if let Ok(b) = UdpSocket::bind(("127.0.0.1", p + 1)) {
            return (a, b);
        }
    }
    panic!("no free UDP port pair");
}

/// A `udp_port_range` of `pairs` even/odd pairs that nothing else was
/// using a moment ago, distinct per test: derived from a free port, and
/// checked by binding every port.
pub fn free_udp_range(pairs: u16) -> (u16, u16) {
    for _ in 0..200 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port() & !1;
        drop(s);
        let Some(last) = p.checked_add(2 * pairs - 1) else {
            continue;
        };
        if p < 10_000 || last > 65_000 {
            continue;
        }
        if (p..=last).all(|q| UdpSocket::bind(("127.0.0.1", q)).is_ok()) {
            return (p, last);
        }
    }
    panic!("no free UDP port range of {pairs} pairs");
}
