//! Splits the bytes of an RTSP/TCP connection into RTSP messages and
//! interleaved `$` frames (RFC 2326 section 10.12).
//!
//! Sans-IO: [`Framer::push`] what was read, then drain [`Framer::poll`] until
//! it returns `None`. Memory is bounded by [`MAX_HEADER_BYTES`] +
//! [`MAX_BODY_BYTES`] (an interleaved frame is at most 65 539 bytes).
//!
//! Resync: cheap cameras (old live555 firmware) lose the rest of a packet
//! when a non-blocking write is partial, so a frame's declared length runs
//! into the next frame. Once the channels are known
//! ([`Framer::expect_channels`]), every frame must end on a plausible
//! boundary (`$` and a known channel, or an RTSP message); when it does not,
//! or bytes between frames are garbage, the framer scans for the next valid
//! frame (a known channel, RTP version 2 with the stream's SSRC and a
//! sequence number near the expected one, or RTCP) or an RTSP response, drops
//! what lies before it and goes on: the damaged packet shows up downstream as
//! a lost sequence number, never as a closed connection.

use bytes::{Buf, Bytes, BytesMut};

use super::message::{parse_head, Headers, Request, Response, StartLine};

/// Largest accepted header section (start line and headers).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest accepted message body (`Content-Length`).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Longest piece of camera text quoted in an error: errors end up in logs
/// and the API, where a camera must not be able to write kilobytes.
pub const MAX_QUOTE_CHARS: usize = 120;

/// At most [`MAX_QUOTE_CHARS`] of `s`, with `...` when cut, and control
/// characters replaced by U+FFFD: `{:?}` would print each of those as up
/// to 10 characters (`\u{7f}`), letting a camera inflate a quote tenfold.
pub(crate) fn quote_limit(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_QUOTE_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if s.chars().nth(MAX_QUOTE_CHARS).is_some() {
        out.push_str("...");
    }
    out
}

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
    #[error("RTSP header section longer than {limit} bytes (no empty line ends it)")]
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
    /// The first line is neither a status line nor a request line (at most
    /// [`MAX_QUOTE_CHARS`] of it).
    #[error("bad RTSP start line {0:?}")]
    BadStartLine(String),
    /// `Content-Length` is not a number (at most [`MAX_QUOTE_CHARS`] of it).
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
    /// Interleaved channels set up, with what is known of their streams.
    /// Empty until SETUP: then any `$` frame is accepted as it is.
    channels: Vec<ChannelHint>,
    /// Times the framing was lost and found again.
    resyncs: u64,
    /// True from a framing loss until the next item is handed out, so one
    /// loss counts once however many candidates are tried.
    in_resync: bool,
}

/// What the framer knows of one interleaved channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChannelHint {
    /// The channel byte.
    channel: u8,
    /// RTP (even channel of a pair) or RTCP.
    rtp: bool,
    /// SSRC of the last RTP frame accepted.
    ssrc: Option<u32>,
    /// Sequence number expected next.
    next_seq: Option<u16>,
}

impl ChannelHint {
    /// Whether the RTP frame `at` (from its `$`, at least 16 bytes) belongs
    /// to this stream: its SSRC, and a sequence number near the expected one.
    fn owns(&self, at: &[u8]) -> bool {
        let seq = u16::from_be_bytes([at[6], at[7]]);
        let ssrc = u32::from_be_bytes([at[12], at[13], at[14], at[15]]);
        let near = |next: u16| (SEQ_BEHIND..=SEQ_AHEAD).contains(&(seq.wrapping_sub(next) as i16));
        self.ssrc == Some(ssrc) && self.next_seq.is_some_and(near)
    }
}

/// The verdict on a `$` frame at the start of the buffer.
enum Check {
    /// Wait for more bytes.
    NeedMore,
    /// A frame of this many data bytes.
    Valid(usize),
    /// Not a frame start.
    Invalid,
}

/// How far a sequence number may be from the expected one and still
/// identify the stream while resyncing.
const SEQ_BEHIND: i16 = -100;
/// See [`SEQ_BEHIND`].
const SEQ_AHEAD: i16 = 1000;

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

    /// Times the interleaved framing was lost (a frame not ending on a
    /// boundary, or garbage between frames) and found again.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// True when a complete frame is held only because nothing has arrived
    /// after it yet to check its end against. Call [`Framer::release_held`]
    /// if nothing more arrives within a few milliseconds.
    pub fn holding(&self) -> bool {
        self.held_len().is_some()
    }

    /// Hands out the held frame as it is (see [`Framer::holding`]).
    pub fn release_held(&mut self) -> Option<Item> {
        let len = self.held_len()?;
        Some(self.take_frame(len))
    }

    /// The data length of a complete frame at the start of the buffer that
    /// waits for its boundary check.
    fn held_len(&self) -> Option<usize> {
        if self.channels.is_empty()
            || self.pending.is_some()
            || self.buf.first() != Some(&b'$')
            || self.buf.len() < 4
        {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
        (self.buf.len() == 4 + len && matches!(self.check_frame(), Check::NeedMore)).then_some(len)
    }

    /// Declares the interleaved channel pair `rtp_channel`,
    /// `rtp_channel + 1` (RTP, RTCP) set up: from now on frames are checked
    /// and the framing is resynchronised when it breaks. Call when sending
    /// SETUP.
    pub fn expect_channels(&mut self, rtp_channel: u8) {
        for (channel, rtp) in [(rtp_channel, true), (rtp_channel.wrapping_add(1), false)] {
            if !self.channels.iter().any(|h| h.channel == channel) {
                self.channels.push(ChannelHint {
                    channel,
                    rtp,
                    ssrc: None,
                    next_seq: None,
                });
            }
        }
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
                b'$' if self.channels.is_empty() => return self.poll_interleaved(),
                b'$' => match self.check_frame() {
                    Check::NeedMore => return None,
                    Check::Valid(len) => return Some(self.take_frame(len)),
                    Check::Invalid => self.lose_framing(),
                },
                // Stray line ends between messages are harmless padding.
                b'\r' | b'\n' => self.buf.advance(1),
                _ => match classify(&self.buf) {
                    Start::Message => return self.poll_head(),
                    Start::NeedMore => return None,
                    Start::Garbage => {
                        if !self.channels.is_empty() && !self.in_resync {
                            self.in_resync = true;
                            self.resyncs += 1;
                        }
                        self.skipping = true;
                    }
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

    /// The frame at the start of the buffer is not one: count the loss (once
    /// per episode), skip its first byte and scan on.
    fn lose_framing(&mut self) {
        if !self.in_resync {
            self.in_resync = true;
            self.resyncs += 1;
        }
        self.buf.advance(1);
        self.skipped_bytes += 1;
        self.skipping = true;
    }

    fn hint(&self, channel: u8) -> Option<&ChannelHint> {
        self.channels.iter().find(|h| h.channel == channel)
    }

    /// Judges the `$` frame at the start of the buffer (channels known).
    fn check_frame(&self) -> Check {
        let buf = &self.buf[..];
        if buf.len() < 2 {
            return Check::NeedMore;
        }
        let Some(hint) = self.hint(buf[1]) else {
            return Check::Invalid;
        };
        if buf.len() < 4 {
            return Check::NeedMore;
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if len < if hint.rtp { 12 } else { 8 } {
            return Check::Invalid;
        }
        if buf.len() < 6 {
            return Check::NeedMore;
        }
        if buf[4] >> 6 != 2 || (!hint.rtp && !(200..=207).contains(&buf[5])) {
            return Check::Invalid;
        }
        // While resyncing, an RTP candidate must also belong to the stream.
        let mut known_stream = !hint.rtp;
        if hint.rtp {
            if buf.len() < 16 {
                return Check::NeedMore;
            }
            known_stream = hint.owns(buf);
        }
        let end = 4 + len;
        if buf.len() < end {
            return Check::NeedMore;
        }
        if buf.len() == end {
            // Nothing after the frame yet, so its end cannot be checked. The
            // last packet of a picture (marker bit) of the known stream is
            // almost always whole: hand it out without delay. Anything else
            // is held until more bytes arrive or the caller releases it
            // ([`Framer::release_held`]) after a few milliseconds.
            let marker = hint.rtp && buf[5] & 0x80 != 0;
            return if marker && known_stream && !self.in_resync {
                Check::Valid(len)
            } else {
                Check::NeedMore
            };
        }
        match self.boundary(&buf[end..]) {
            Some(true) => Check::Valid(len),
            // Truncated if the next frame (or an answer) begins inside the
            // declared length; otherwise the frame is whole and garbage
            // follows it, which the next poll skips.
            Some(false) if self.start_inside(4, end) => Check::Invalid,
            Some(false) => Check::Valid(len),
            None if known_stream || !self.in_resync => Check::Valid(len),
            None => Check::NeedMore,
        }
    }

    /// Whether a frame of a known stream, or an RTSP response, starts in
    /// `buf[from..to]`.
    fn start_inside(&self, from: usize, to: usize) -> bool {
        let buf = &self.buf[..];
        (from..to.min(buf.len())).any(|i| match buf[i] {
            b'$' => self.strong_start(&buf[i..]),
            b'R' => buf[i..].starts_with(RESYNC_RESPONSE),
            _ => false,
        })
    }

    /// Whether `at` begins a frame that certainly belongs to a set-up
    /// stream: RTP of the stream's SSRC with a sequence number near the
    /// expected one, or (before any SSRC is known) a frame whose own end is
    /// a valid boundary.
    fn strong_start(&self, at: &[u8]) -> bool {
        if at.len() < 6 {
            return false;
        }
        let Some(hint) = self.hint(at[1]) else {
            return false;
        };
        let len = usize::from(u16::from_be_bytes([at[2], at[3]]));
        if at[4] >> 6 != 2 || len < 8 {
            return false;
        }
        if hint.rtp {
            if at.len() < 16 || len < 12 {
                return false;
            }
            if hint.ssrc.is_some() && hint.next_seq.is_some() {
                return hint.owns(at);
            }
        } else if !(200..=207).contains(&at[5]) {
            return false;
        }
        at.len() > 4 + len && self.boundary(&at[4 + len..]) == Some(true)
    }

    /// Whether `next` (the bytes after a frame) starts something valid:
    /// `Some(true)` yes, `Some(false)` no, `None` not enough bytes to tell.
    fn boundary(&self, next: &[u8]) -> Option<bool> {
        if next[0] != b'$' {
            // An RTSP response, or a request from the camera.
            return match classify(next) {
                Start::Message => Some(true),
                Start::NeedMore => None,
                Start::Garbage => Some(false),
            };
        }
        let Some(hint) = self.hint(*next.get(1)?) else {
            return Some(false);
        };
        if *next.get(4)? >> 6 != 2 {
            return Some(false);
        }
        if hint.rtp {
            Some(true)
        } else {
            Some((200..=207).contains(next.get(5)?))
        }
    }

    /// Hands out the frame of `len` data bytes at the start of the buffer and
    /// learns its stream.
    fn take_frame(&mut self, len: usize) -> Item {
        let frame = self.buf.split_to(4 + len).freeze();
        let channel = frame[1];
        let data = frame.slice(4..);
        if let Some(hint) = self.channels.iter_mut().find(|h| h.channel == channel) {
            if hint.rtp && data.len() >= 12 {
                hint.ssrc = Some(u32::from_be_bytes([data[8], data[9], data[10], data[11]]));
                hint.next_seq = Some(u16::from_be_bytes([data[2], data[3]]).wrapping_add(1));
            }
        }
        self.in_resync = false;
        Item::Interleaved { channel, data }
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
                return Some(Item::Error(FramerError::BadStartLine(quote_limit(&line))));
            }
        };
        let body_len = match headers.content_length() {
            Ok(len) => len.unwrap_or(0),
            Err(v) => {
                self.discard_message(head_len);
                return Some(Item::Error(FramerError::BadContentLength(quote_limit(&v))));
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

    const DESCRIBE: &[u8] = include_bytes!("../../tests/fixtures/camera-rtsp/bunny_describe.txt");
    const BUNNY: &[u8] = include_bytes!("../../tests/fixtures/camera-rtsp/bunny.rtsp");

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

    /// Found by the rtsp_framer fuzz target: `{:?}` escaped the control
    /// characters of a quoted start line to 8 times its length.
    #[test]
    fn quoted_camera_text_stays_short() {
        let mut f = Framer::new();
        let mut line = b"RTSP/1.0 ".to_vec();
        line.extend([0x7f; 5000]);
        line.extend(b" 200 OK\r\n\r\n");
        f.push(&line);
        let Some(Item::Error(e)) = f.poll() else {
            panic!("no error")
        };
        let text = e.to_string();
        assert!(text.chars().count() < 2 * MAX_QUOTE_CHARS + 40, "{text}");
        assert!(text.ends_with("...\""), "{text}");
        assert_eq!(quote_limit("a\r\nb"), "a\u{fffd}\u{fffd}b");
        assert_eq!(quote_limit("short"), "short");
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

    // ---- resync (channels known) ----

    const SSRC: u32 = 0x1234_5678;

    /// An RTP packet of `len` bytes (header included) on `channel`.
    fn rtp(seq: u16, ssrc: u32, len: usize) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 3600).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend(
            (0..len.saturating_sub(12)).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seq as u8)),
        );
        p
    }

    fn rtp_frame(seq: u16, len: usize) -> Vec<u8> {
        frame(0, &rtp(seq, SSRC, len))
    }

    /// The first `keep` bytes of a frame whose header declares it whole.
    fn truncated(seq: u16, len: usize, keep: usize) -> Vec<u8> {
        let mut f = rtp_frame(seq, len);
        f.truncate(4 + keep);
        f
    }

    fn seqs(items: &[Item]) -> Vec<u16> {
        items
            .iter()
            .map(|i| match i {
                Item::Interleaved { data, .. } => u16::from_be_bytes([data[2], data[3]]),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn framer_with_channels() -> Framer {
        let mut f = Framer::new();
        f.expect_channels(0);
        f
    }

    /// Feeds `input` in chunks of `chunk` bytes and drains everything,
    /// releasing the last frame held for its boundary check.
    fn run(input: &[u8], chunk: usize) -> (Vec<Item>, Framer) {
        let mut f = framer_with_channels();
        let mut items = Vec::new();
        for c in input.chunks(chunk) {
            f.push(c);
            items.extend(drain(&mut f));
        }
        while let Some(held) = f.release_held() {
            items.push(held);
            items.extend(drain(&mut f));
        }
        (items, f)
    }

    #[test]
    fn truncated_frame_is_dropped_and_framing_found_again() {
        let mut input = rtp_frame(1, 1400);
        input.extend(truncated(2, 1400, 500));
        for seq in 3..8 {
            input.extend(rtp_frame(seq, 1400));
        }
        for chunk in [input.len(), 1400, 333, 1] {
            let (items, f) = run(&input, chunk);
            assert_eq!(seqs(&items), [1, 3, 4, 5, 6, 7], "chunk {chunk}");
            assert_eq!(f.resyncs(), 1, "chunk {chunk}");
            assert_eq!(f.skipped_bytes(), 504, "chunk {chunk}");
        }
    }

    #[test]
    fn truncation_followed_by_the_whole_packet_again() {
        let mut input = rtp_frame(1, 1400);
        input.extend(truncated(2, 1400, 700));
        input.extend(rtp_frame(2, 1400));
        input.extend(rtp_frame(3, 1400));
        for chunk in [input.len(), 97, 1] {
            let (items, f) = run(&input, chunk);
            assert_eq!(seqs(&items), [1, 2, 3], "chunk {chunk}");
            assert_eq!(f.resyncs(), 1);
        }
    }

    #[test]
    fn garbage_between_frames_with_dollar_signs_inside() {
        let mut input = rtp_frame(1, 200);
        input.extend(b"\x17garbage $\x00\x05 more $$ junk \x80\x60");
        input.extend(rtp_frame(2, 200));
        input.extend(rtp_frame(3, 200));
        for chunk in [input.len(), 5, 1] {
            let (items, f) = run(&input, chunk);
            assert_eq!(seqs(&items), [1, 2, 3], "chunk {chunk}");
            assert_eq!(f.resyncs(), 1);
            assert_eq!(f.skipped_bytes(), 28);
        }
    }

    #[test]
    fn truncated_frame_before_an_rtsp_answer() {
        let mut input = rtp_frame(1, 600);
        input.extend(truncated(2, 600, 100));
        input.extend(b"RTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n");
        input.extend(rtp_frame(3, 600));
        input.extend(rtp_frame(4, 600));
        for chunk in [input.len(), 64, 1] {
            let (items, f) = run(&input, chunk);
            assert_eq!(items.len(), 4, "chunk {chunk}: {items:?}");
            assert!(matches!(items[1], Item::Response(ref r) if r.status == 200));
            assert_eq!(f.resyncs(), 1);
        }
    }

    #[test]
    fn ssrc_change_on_a_clean_boundary_is_not_a_resync() {
        let mut input = rtp_frame(1, 300);
        input.extend(frame(0, &rtp(40_000, 0xdead_beef, 300)));
        input.extend(frame(0, &rtp(40_001, 0xdead_beef, 300)));
        let (items, f) = run(&input, 1);
        assert_eq!(seqs(&items), [1, 40_000, 40_001]);
        assert_eq!(f.resyncs(), 0);
    }

    #[test]
    fn rtcp_frames_are_checked_too() {
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend([0u8; 24]);
        let mut input = rtp_frame(1, 300);
        input.extend(frame(1, &sr));
        input.extend(rtp_frame(2, 300));
        let (items, f) = run(&input, 7);
        assert_eq!(items.len(), 3);
        assert_eq!(f.resyncs(), 0);
    }

    /// Bytes cut out of a large video packet (a keyframe FU-A fragment) in
    /// the real recording: exactly that packet is lost, nothing else.
    #[test]
    fn resync_inside_bunny_recording() {
        // Split the recording into frames to pick a victim.
        let mut frames = Vec::new();
        let mut pos = 0;
        while pos + 4 <= BUNNY.len() {
            let len = usize::from(u16::from_be_bytes([BUNNY[pos + 2], BUNNY[pos + 3]]));
            frames.push(&BUNNY[pos..pos + 4 + len]);
            pos += 4 + len;
        }
        let victim = frames
            .iter()
            .position(|f| f[1] == 2 && f.len() > 1000)
            .expect("a large video packet");
        let mut input = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if i == victim {
                input.extend_from_slice(&f[..f.len() / 2]);
            } else {
                input.extend_from_slice(f);
            }
        }
        for chunk in [1000, 1] {
            let mut f = Framer::new();
            f.expect_channels(0);
            f.expect_channels(2);
            let mut out = Vec::new();
            for c in input.chunks(chunk) {
                f.push(c);
                out.extend(drain(&mut f));
            }
            out.extend(f.release_held());
            assert_eq!(f.resyncs(), 1, "chunk {chunk}");
            assert_eq!(out.len(), frames.len() - 1, "chunk {chunk}");
            let expected: Vec<&[u8]> = frames
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != victim)
                .map(|(_, f)| &f[4..])
                .collect();
            for (item, want) in out.iter().zip(&expected) {
                match item {
                    Item::Interleaved { data, .. } => assert_eq!(&data[..], *want),
                    other => panic!("{other:?}"),
                }
            }
        }
    }
}
