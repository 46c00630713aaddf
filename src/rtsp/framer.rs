//! Splits the bytes of an RTSP/TCP connection into RTSP messages and
//! interleaved `$` frames (RFC 2326 section 10.12).
//!
//! Sans-IO: [`Framer::push`] what was read, then drain [`Framer::poll`] until
//! it returns `None`. Memory is bounded by [`MAX_HEADER_BYTES`] +
//! [`MAX_BODY_BYTES`] (an interleaved frame is at most 65 539 bytes).

use bytes::{Buf, Bytes, BytesMut};

use super::message::{parse_head, Headers, Request, Response, StartLine};

/// Largest accepted header section (start line and headers).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest accepted message body (`Content-Length`).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Where scanning resumes after garbage: a frame, or a response line.
const RESYNC_RESPONSE: &[u8] = b"RTSP/1.0";

/// Prefixes that may begin an RTSP message at a message boundary.
const MESSAGE_STARTS: &[&[u8]] = &[
    b"RTSP/",
    b"OPTIONS ",
    b"DESCRIBE ",
    b"ANNOUNCE ",
    b"SETUP ",
    b"PLAY ",
    b"PAUSE ",
    b"TEARDOWN ",
    b"GET_PARAMETER ",
    b"SET_PARAMETER ",
    b"REDIRECT ",
    b"RECORD ",
];

/// One unit read from the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// An RTSP response.
    Response(Response),
    /// An RTSP request sent by the camera.
    Request(Request),
    /// An interleaved frame (`$`, channel, 16-bit length, data).
    Interleaved {
        /// The channel byte.
        channel: u8,
        /// The frame data, sharing the read buffer.
        data: Bytes,
    },
    /// A message that could not be accepted; the framer has skipped it and
    /// scans for the next frame or response.
    Error(FramerError),
}

/// Why a message was rejected.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramerError {
    /// No end of header section within [`MAX_HEADER_BYTES`].
    #[error("RTSP header section longer than {limit} bytes")]
    HeaderTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// `Content-Length` above [`MAX_BODY_BYTES`].
    #[error("RTSP body of {len} bytes exceeds the {limit} byte limit")]
    BodyTooLarge {
        /// The announced length.
        len: usize,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The first line is neither a status line nor a request line.
    #[error("bad RTSP start line {0:?}")]
    BadStartLine(String),
    /// `Content-Length` is not a number.
    #[error("bad Content-Length {0:?}")]
    BadContentLength(String),
}

/// A header section already parsed, waiting for its body.
#[derive(Debug)]
struct PendingBody {
    /// Length of the header section in the buffer.
    head_len: usize,
    /// The parsed start line.
    start: StartLine,
    /// The parsed headers.
    headers: Headers,
    /// `Content-Length`.
    body_len: usize,
}

/// The connection's read-side state machine. See the module doc.
#[derive(Debug, Default)]
pub struct Framer {
    /// Bytes received and not yet handed out.
    buf: BytesMut,
    /// How much of `buf` was already searched for the end of a header
    /// section, so 1-byte chunks do not rescan (quadratic time).
    head_scanned: usize,
    /// A message whose head is parsed and whose body is still arriving, so
    /// the head is not reparsed for every chunk of the body.
    pending: Option<PendingBody>,
    /// True while skipping garbage up to the next `$` or `RTSP/1.0`.
    skipping: bool,
    /// Bytes thrown away as garbage, for metrics.
    skipped_bytes: u64,
}

impl Framer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the connection; call [`Framer::poll`] next.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Total bytes skipped as garbage (neither a frame nor a message).
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped_bytes
    }

    /// Bytes buffered and not yet returned (at most about
    /// `MAX_HEADER_BYTES + MAX_BODY_BYTES` after a `poll` returned `None`).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete item, or `None` until more bytes are pushed.
    pub fn poll(&mut self) -> Option<Item> {
        loop {
            if self.pending.is_some() {
                return self.poll_body();
            }
            if self.skipping && !self.resync() {
                return None;
            }
            let first = *self.buf.first()?;
            match first {
                b'$' => return self.poll_interleaved(),
                // Stray line ends between messages are harmless padding.
                b'\r' | b'\n' => self.buf.advance(1),
                _ => match classify(&self.buf) {
                    Start::Message => return self.poll_head(),
                    Start::NeedMore => return None,
                    Start::Garbage => self.skipping = true,
                },
            }
        }
    }

    /// Drops bytes up to the next `$` or `RTSP/1.0`; false if none is
    /// buffered yet.
    fn resync(&mut self) -> bool {
        let found = self.buf.iter().enumerate().position(|(i, &b)| {
            b == b'$' || (b == b'R' && self.buf[i..].starts_with(RESYNC_RESPONSE))
        });
        let drop = match found {
            Some(pos) => pos,
            None => {
                // Keep a tail that may be the start of "RTSP/1.0".
                let keep = (1..RESYNC_RESPONSE.len())
                    .rev()
                    .find(|&n| n <= self.buf.len() && self.buf.ends_with(&RESYNC_RESPONSE[..n]))
                    .unwrap_or(0);
                self.buf.len() - keep
            }
        };
        self.skipped_bytes += drop as u64;
        self.buf.advance(drop);
        self.head_scanned = 0;
        if found.is_some() {
            self.skipping = false;
        }
        found.is_some()
    }

    fn poll_interleaved(&mut self) -> Option<Item> {
        if self.buf.len() < 4 {
            return None;
        }
        let channel = self.buf[1];
        let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
        if self.buf.len() < 4 + len {
            return None;
        }
        let frame = self.buf.split_to(4 + len).freeze();
        Some(Item::Interleaved {
            channel,
            data: frame.slice(4..),
        })
    }

    fn poll_head(&mut self) -> Option<Item> {
        let Some(head_len) = find_head_end(&self.buf, self.head_scanned) else {
            if self.buf.len() > MAX_HEADER_BYTES {
                self.discard_message(self.buf.len());
                return Some(Item::Error(FramerError::HeaderTooLarge {
                    limit: MAX_HEADER_BYTES,
                }));
            }
            self.head_scanned = self.buf.len();
            return None;
        };
        self.head_scanned = 0;
        if head_len > MAX_HEADER_BYTES {
            self.discard_message(head_len);
            return Some(Item::Error(FramerError::HeaderTooLarge {
                limit: MAX_HEADER_BYTES,
            }));
        }
        let (start, headers) = match parse_head(&self.buf[..head_len]) {
            Ok(parsed) => parsed,
            Err(line) => {
                self.discard_message(head_len);
                return Some(Item::Error(FramerError::BadStartLine(line)));
            }
        };
        let body_len = match headers.content_length() {
            Ok(len) => len.unwrap_or(0),
            Err(v) => {
                self.discard_message(head_len);
                return Some(Item::Error(FramerError::BadContentLength(v)));
            }
        };
        if body_len > MAX_BODY_BYTES {
            self.discard_message(head_len);
            return Some(Item::Error(FramerError::BodyTooLarge {
                len: body_len,
                limit: MAX_BODY_BYTES,
            }));
        }
        self.pending = Some(PendingBody {
            head_len,
            start,
            headers,
            body_len,
        });
        self.poll_body()
    }

    fn poll_body(&mut self) -> Option<Item> {
        let p = self.pending.as_ref()?;
        let total = p.head_len + p.body_len;
        if self.buf.len() < total {
            return None;
        }
        let p = self.pending.take()?;
        let body = self.buf.split_to(total).freeze().slice(p.head_len..);
        Some(match p.start {
            StartLine::Response { status, reason } => Item::Response(Response {
                status,
                reason,
                headers: p.headers,
                body,
            }),
            StartLine::Request { method, uri } => Item::Request(Request {
                method,
                uri,
                headers: p.headers,
                body,
            }),
        })
    }

    /// Drops a rejected message's first `len` bytes and scans for the next
    /// frame or response (an oversized body is skipped as garbage).
    fn discard_message(&mut self, len: usize) {
        self.buf.advance(len.min(self.buf.len()));
        self.head_scanned = 0;
        self.skipping = true;
    }
}

enum Start {
    Message,
    NeedMore,
    Garbage,
}

fn classify(buf: &[u8]) -> Start {
    let mut need_more = false;
    for s in MESSAGE_STARTS {
        if buf.starts_with(s) {
            return Start::Message;
        }
        need_more |= buf.len() < s.len() && s.starts_with(buf);
    }
    if need_more {
        Start::NeedMore
    } else {
        Start::Garbage
    }
}

/// The length of the header section (through its empty line), searching
/// from `from`; accepts `\r\n\r\n` and bare `\n\n`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    (start..buf.len()).find_map(|i| {
        if buf[i] != b'\n' || i == 0 {
            return None;
        }
        let blank = buf[i - 1] == b'\n' || (i >= 2 && buf[i - 1] == b'\r' && buf[i - 2] == b'\n');
        blank.then_some(i + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESCRIBE: &[u8] =
        include_bytes!("../../../shared/fixtures/camera-rtsp/bunny_describe.txt");
    const BUNNY: &[u8] = include_bytes!("../../../shared/fixtures/camera-rtsp/bunny.rtsp");

    fn drain(f: &mut Framer) -> Vec<Item> {
        std::iter::from_fn(|| f.poll()).collect()
    }

    fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![b'$', channel];
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn input() -> Vec<u8> {
        let mut v = frame(0, b"rtp-one");
        v.extend_from_slice(DESCRIBE);
        v.extend_from_slice(&frame(1, b""));
        v.extend_from_slice(b"GET_PARAMETER rtsp://x/ RTSP/1.0\nCSeq: 4\n\n");
        v.extend_from_slice(&frame(2, &[7; 300]));
        v
    }

    fn check(items: &[Item]) {
        assert_eq!(items.len(), 5, "{items:?}");
        assert_eq!(
            items[0],
            Item::Interleaved {
                channel: 0,
                data: Bytes::from_static(b"rtp-one")
            }
        );
        let Item::Response(r) = &items[1] else {
            panic!("{:?}", items[1])
        };
        assert_eq!(
            (r.status, r.headers.cseq(), r.body.len()),
            (200, Some(1), 589)
        );
        assert!(r.body.starts_with(b"v=0\r\n"));
        assert_eq!(
            items[2],
            Item::Interleaved {
                channel: 1,
                data: Bytes::new()
            }
        );
        let Item::Request(q) = &items[3] else {
            panic!("{:?}", items[3])
        };
        assert_eq!(
            (q.method.as_str(), q.headers.cseq()),
            ("GET_PARAMETER", Some(4))
        );
        assert!(matches!(&items[4], Item::Interleaved { channel: 2, data } if data.len() == 300));
    }

    #[test]
    fn whole_input() {
        let mut f = Framer::new();
        f.push(&input());
        check(&drain(&mut f));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn one_byte_chunks() {
        let mut f = Framer::new();
        let mut items = Vec::new();
        for b in input() {
            f.push(&[b]);
            items.extend(drain(&mut f));
        }
        check(&items);
        assert_eq!(f.skipped_bytes(), 0);
    }

    #[test]
    fn garbage_between_frames_is_skipped_and_counted() {
        let mut v = frame(0, b"a");
        v.extend_from_slice(b"\x17\x80garbage RTSP/1.1 RTSP/1."); // 26 bytes, no '$'
        v.extend_from_slice(&frame(1, b"b"));
        v.extend_from_slice(b"zz");
        v.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n");
        for chunk in [v.len(), 1] {
            let mut f = Framer::new();
            let mut items = Vec::new();
            for c in v.chunks(chunk) {
                f.push(c);
                items.extend(drain(&mut f));
            }
            assert_eq!(items.len(), 3, "{items:?}");
            assert_eq!(
                items[1],
                Item::Interleaved {
                    channel: 1,
                    data: Bytes::from_static(b"b")
                }
            );
            assert!(matches!(&items[2], Item::Response(r) if r.headers.cseq() == Some(2)));
            assert_eq!(f.skipped_bytes(), 28);
        }
    }

    #[test]
    fn bunny_recording_frames() {
        let mut f = Framer::new();
        let mut n = 0;
        for c in BUNNY.chunks(1000) {
            f.push(c);
            for item in drain(&mut f) {
                assert!(
                    matches!(item, Item::Interleaved { channel: 0..=3, .. }),
                    "{item:?}"
                );
                n += 1;
            }
        }
        assert!(n > 100);
        assert_eq!((f.skipped_bytes(), f.buffered()), (0, 0));
    }

    #[test]
    fn oversize_header_is_bounded() {
        let mut f = Framer::new();
        f.push(b"RTSP/1.0 200 OK\r\n");
        let line = [b'x'; 1024];
        let mut errors = 0;
        for _ in 0..200 {
            f.push(&line);
            while let Some(item) = f.poll() {
                assert_eq!(
                    item,
                    Item::Error(FramerError::HeaderTooLarge {
                        limit: MAX_HEADER_BYTES
                    })
                );
                errors += 1;
            }
            assert!(f.buffered() <= MAX_HEADER_BYTES + 1024);
        }
        assert_eq!(errors, 1);
        // Recovers at the next response.
        f.push(b"RTSP/1.0 200 OK\r\nCSeq: 3\r\n\r\n");
        assert!(matches!(f.poll(), Some(Item::Response(r)) if r.headers.cseq() == Some(3)));
    }

    #[test]
    fn oversize_body_is_rejected() {
        let mut f = Framer::new();
        f.push(b"RTSP/1.0 200 OK\r\nContent-Length: 99999999999\r\n\r\nabc");
        assert_eq!(
            f.poll(),
            Some(Item::Error(FramerError::BodyTooLarge {
                len: 99999999999,
                limit: MAX_BODY_BYTES
            }))
        );
        assert_eq!(f.poll(), None);
        assert!(f.buffered() < 8);
        f.push(b"RTSP/1.0 200 OK\r\nContent-Length: x\r\n\r\n");
        assert_eq!(
            f.poll(),
            Some(Item::Error(FramerError::BadContentLength("x".into())))
        );
    }

    #[test]
    fn bad_start_line_is_an_error_item() {
        let mut f = Framer::new();
        f.push(b"RTSP/1.0 OK\r\n\r\n$\x00\x00\x01z");
        assert!(matches!(
            f.poll(),
            Some(Item::Error(FramerError::BadStartLine(_)))
        ));
        assert_eq!(
            f.poll(),
            Some(Item::Interleaved {
                channel: 0,
                data: Bytes::from_static(b"z")
            })
        );
    }
}
