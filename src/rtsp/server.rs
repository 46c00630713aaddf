//! The server side of RTSP 1.0 (RFC 2326) as a sans-IO core: reading a
//! client's requests and interleaved RTCP from the bytes of its connection
//! (bounded, never panicking on any input), naming the camera and track a
//! request URI points at, and writing answers.
//!
//! Call [`RequestReader::push`] with each read, then [`RequestReader::poll`]
//! until it returns `None`. An `Err` is final: answer 400 and close.

use bytes::{Buf, Bytes, BytesMut};

use super::message::{parse_head, Headers, Request, StartLine};

/// Largest request head (request line and headers) accepted.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Largest request body accepted (clients send none but SET_PARAMETER's).
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// What a client sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientInput {
    /// A request.
    Request(Request),
    /// An interleaved frame (RTCP from a client playing over TCP).
    Interleaved {
        /// The channel byte.
        channel: u8,
        /// The frame, sharing the read buffer.
        data: Bytes,
    },
}

/// Why a connection's input cannot be read further.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// No end of the head within [`MAX_REQUEST_HEAD`].
    #[error("request head longer than {MAX_REQUEST_HEAD} bytes")]
    HeadTooLarge,
    /// `Content-Length` above [`MAX_REQUEST_BODY`], or not a number.
    #[error("request body too large or Content-Length unreadable")]
    BadBody,
    /// Not a request line (at most 80 characters of it).
    #[error("not an RTSP request: {0:?}")]
    BadRequestLine(String),
}

/// The read side of a client connection. See the module doc.
#[derive(Debug, Default)]
pub struct RequestReader {
    /// Bytes received and not yet handed out.
    buf: BytesMut,
    /// How far `buf` was searched for the end of a head, so bytes that
    /// arrive one at a time are not rescanned.
    scanned: usize,
    /// Set once input failed: nothing more is read.
    failed: bool,
}

impl RequestReader {
    /// An empty reader.
    pub fn new() -> RequestReader {
        RequestReader::default()
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes held: at most one head, body or interleaved frame beyond what
    /// `poll` hands out, so the caller can stop reading past a bound.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete input, if there is one.
    pub fn poll(&mut self) -> Option<Result<ClientInput, RequestError>> {
        if self.failed {
            return None;
        }
        // Empty lines between requests (some clients send CRLF keepalives).
        let blank = self
            .buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        if blank > 0 {
            self.buf.advance(blank);
            self.scanned = self.scanned.saturating_sub(blank);
        }
        if self.buf.first() == Some(&b'$') {
            if self.buf.len() < 4 {
                return None;
            }
            let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
            if self.buf.len() < 4 + len {
                return None;
            }
            let channel = self.buf[1];
            self.buf.advance(4);
            let data = self.buf.split_to(len).freeze();
            self.scanned = 0;
            return Some(Ok(ClientInput::Interleaved { channel, data }));
        }
        let end = match self.head_end() {
            Some(end) => end,
            None if self.buf.len() > MAX_REQUEST_HEAD => {
                return Some(Err(self.fail(RequestError::HeadTooLarge)))
            }
            None => return None,
        };
        if end > MAX_REQUEST_HEAD {
            return Some(Err(self.fail(RequestError::HeadTooLarge)));
        }
        let (start, headers) = match parse_head(&self.buf[..end]) {
            Ok((StartLine::Request { method, uri }, headers)) => ((method, uri), headers),
            Ok((StartLine::Response { .. }, _)) => {
                return Some(Err(
                    self.fail(RequestError::BadRequestLine("a response".to_owned()))
                ))
            }
            Err(line) => {
                // Quoted in logs: control characters (which `{:?}` would
                // spell out six times longer) become `?`.
                let shown: String = line
                    .chars()
                    .take(80)
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                return Some(Err(self.fail(RequestError::BadRequestLine(shown))));
            }
        };
        let body_len = match headers.content_length() {
            Ok(None) => 0,
            Ok(Some(n)) if n <= MAX_REQUEST_BODY => n,
            _ => return Some(Err(self.fail(RequestError::BadBody))),
        };
        if self.buf.len() < end + body_len {
            return None;
        }
        self.buf.advance(end);
        let body = self.buf.split_to(body_len).freeze();
        self.scanned = 0;
        let (method, uri) = start;
        Some(Ok(ClientInput::Request(Request {
            method,
            uri,
            headers,
            body,
        })))
    }

    /// The length of the head (through its empty line) at the start of
    /// `buf`, if it is complete.
    fn head_end(&mut self) -> Option<usize> {
        let from = self.scanned.saturating_sub(3);
        let limit = self.buf.len().min(MAX_REQUEST_HEAD + 4);
        let hay = &self.buf[..limit];
        let mut i = from;
        while i < hay.len() {
            if hay[i] == b'\n' {
                if hay.get(i + 1) == Some(&b'\n') {
                    return Some(i + 2);
                }
                if hay.get(i + 1) == Some(&b'\r') && hay.get(i + 2) == Some(&b'\n') {
                    return Some(i + 3);
                }
            }
            i += 1;
        }
        self.scanned = hay.len();
        None
    }

    fn fail(&mut self, e: RequestError) -> RequestError {
        self.failed = true;
        self.buf.clear();
        e
    }
}

/// What a request URI names: a camera and, for SETUP, a track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The camera id: the first path segment, percent-decoded.
    pub camera: String,
    /// `trackID=N` after it, when present.
    pub track: Option<usize>,
}

/// The camera and track of a request URI: `rtsp://host[:port]/ID[/trackID=N]`
/// or the bare path. `None` for `*`, an empty path or a malformed one.
pub fn parse_target(uri: &str) -> Option<Target> {
    let path = match uri.find("://") {
        Some(i) => {
            let rest = &uri[i + 3..];
            &rest[rest.find('/')?..]
        }
        None if uri.starts_with('/') => uri,
        None => return None,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let camera = percent_encoding::percent_decode_str(segments.next()?)
        .decode_utf8()
        .ok()?
        .into_owned();
    let track = match segments.next() {
        None => None,
        Some(s) => Some(s.strip_prefix("trackID=")?.parse().ok()?),
    };
    if segments.next().is_some() || camera.is_empty() {
        return None;
    }
    Some(Target { camera, track })
}

/// The reason phrase of a status code camgate sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        _ => "Error",
    }
}

/// An answer being written.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Header fields after `CSeq`.
    pub headers: Headers,
    /// Body, with its content type.
    pub body: Option<(&'static str, String)>,
}

impl Answer {
    /// An answer with `status` and no header yet.
    pub fn new(status: u16) -> Answer {
        Answer {
            status,
            headers: Headers::default(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push(name, value);
        self
    }

    /// Sets the body.
    pub fn body(mut self, content_type: &'static str, body: String) -> Answer {
        self.body = Some((content_type, body));
        self
    }

    /// The answer on the wire, echoing `cseq` (when the request had one).
    pub fn to_bytes(&self, cseq: Option<u32>) -> Vec<u8> {
        let mut out = format!("RTSP/1.0 {} {}\r\n", self.status, reason(self.status));
        if let Some(c) = cseq {
            out.push_str(&format!("CSeq: {c}\r\n"));
        }
        out.push_str("Server: camgate\r\n");
        for (name, value) in self.headers.iter() {
            // A value never breaks the head: control characters are dropped.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        match &self.body {
            Some((content_type, body)) => {
                out.push_str(&format!(
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                ));
                out.push_str(body);
            }
            None => out.push_str("\r\n"),
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(r: &mut RequestReader) -> Vec<Result<ClientInput, RequestError>> {
        std::iter::from_fn(|| r.poll()).collect()
    }

    #[test]
    fn requests_and_interleaved_frames_in_any_chunks() {
        let wire: &[u8] = b"OPTIONS rtsp://h/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n\
            \r\n$\x01\x00\x04abcdSET_PARAMETER rtsp://h/cam RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\nhello";
        for chunk in [1, 2, 7, wire.len()] {
            let mut r = RequestReader::new();
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                r.push(c);
                got.extend(all(&mut r));
            }
            assert_eq!(got.len(), 3, "chunk {chunk}: {got:?}");
            match &got[0] {
                Ok(ClientInput::Request(req)) => {
                    assert_eq!(req.method, "OPTIONS");
                    assert_eq!(req.headers.cseq(), Some(1));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(
                got[1],
                Ok(ClientInput::Interleaved {
                    channel: 1,
                    data: Bytes::from_static(b"abcd")
                })
            );
            match &got[2] {
                Ok(ClientInput::Request(req)) => assert_eq!(&req.body[..], b"hello"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn bounds_and_garbage() {
        let mut r = RequestReader::new();
        r.push(&vec![b'a'; MAX_REQUEST_HEAD + 10]);
        assert_eq!(r.poll(), Some(Err(RequestError::HeadTooLarge)));
        assert_eq!(r.poll(), None);
        r.push(b"OPTIONS * RTSP/1.0\r\n\r\n");
        assert_eq!(r.poll(), None, "nothing after a failure");

        let mut r = RequestReader::new();
        r.push(b"DESCRIBE rtsp://h/c RTSP/1.0\r\nContent-Length: 999999\r\n\r\n");
        assert_eq!(r.poll(), Some(Err(RequestError::BadBody)));

        let mut r = RequestReader::new();
        r.push(b"HELLO\r\n\r\n");
        assert!(matches!(
            r.poll(),
            Some(Err(RequestError::BadRequestLine(_)))
        ));

        let mut r = RequestReader::new();
        r.push(b"RTSP/1.0 200 OK\r\n\r\n");
        assert!(matches!(
            r.poll(),
            Some(Err(RequestError::BadRequestLine(_)))
        ));
    }

    #[test]
    fn targets() {
        let t = |u| parse_target(u);
        assert_eq!(
            t("rtsp://127.0.0.1:8554/lobby"),
            Some(Target {
                camera: "lobby".into(),
                track: None
            })
        );
        assert_eq!(
            t("rtsp://h/lobby/trackID=1"),
            Some(Target {
                camera: "lobby".into(),
                track: Some(1)
            })
        );
        assert_eq!(t("rtsp://h/lobby/?x=1").unwrap().camera, "lobby");
        assert_eq!(t("/front%20door").unwrap().camera, "front door");
        for bad in [
            "*",
            "rtsp://h",
            "rtsp://h/",
            "rtsp://h/a/b/c",
            "rtsp://h/a/track1",
            "/%ff",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn answers() {
        let a = Answer::new(200)
            .header("Session", "abc;timeout=60")
            .header("X-Evil", "a\r\nInjected: 1")
            .body("application/sdp", "v=0\r\n".into());
        let text = String::from_utf8(a.to_bytes(Some(7))).unwrap();
        assert!(text.starts_with("RTSP/1.0 200 OK\r\nCSeq: 7\r\n"), "{text}");
        assert!(text.contains("Session: abc;timeout=60\r\n"));
        assert!(text.contains("X-Evil: aInjected: 1\r\n"));
        assert!(text.ends_with("Content-Length: 5\r\n\r\nv=0\r\n"));
        let text = String::from_utf8(Answer::new(454).to_bytes(None)).unwrap();
        assert_eq!(
            text,
            "RTSP/1.0 454 Session Not Found\r\nServer: camgate\r\n\r\n"
        );
    }
}
