//! Drives the RTSP server's request reader (`camgate::rtsp::server`) with
//! arbitrary bytes in arbitrary chunks, as a client's connection delivers
//! them, and runs what the server does with each request's client text:
//! the URI to a camera and track, `Transport`, `Authorization` (with a
//! Digest check), and an answer echoing the client's `Session` and CSeq.
//! Checks that every request keeps its bounds, that the reader's buffer
//! stays bounded, that nothing follows a failure, and that no client text
//! breaks an answer's head.
//!
//! Input: byte 0 is the chunk size (0: all at once), the rest is the
//! connection. So a recorded client exchange with one byte in front is a
//! seed.

use camgate::rtsp::digest::Authorization;
use camgate::rtsp::server::{
    parse_target, Answer, ClientInput, RequestReader, MAX_REQUEST_BODY, MAX_REQUEST_HEAD,
};
use camgate::rtsp::transport::Transport;

/// The most the reader may hold after `poll` returned `None`: a head and a
/// body waiting to complete, or one interleaved frame, plus the chunk just
/// pushed (added by the caller).
const BOUND: usize = MAX_REQUEST_HEAD + 4 + MAX_REQUEST_BODY;

fn check(input: &ClientInput) {
    let req = match input {
        ClientInput::Interleaved { data, .. } => {
            assert!(data.len() <= 65_535);
            return;
        }
        ClientInput::Request(req) => req,
    };
    assert!(!req.method.is_empty() && !req.uri.is_empty());
    assert!(req.body.len() <= MAX_REQUEST_BODY);
    let declared = req
        .headers
        .get("Content-Length")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    assert_eq!(req.body.len(), declared);
    if let Some(t) = parse_target(&req.uri) {
        assert!(!t.camera.is_empty());
    }
    if let Some(v) = req.headers.get("Transport") {
        let _ = Transport::parse(v);
    }
    if let Some(v) = req.headers.get("Authorization") {
        if let Some(Authorization::Digest(d)) = Authorization::parse(v) {
            let _ = d.verify(&req.method, "camgate", "0123456789abcdef", "secret");
        }
    }
    // Client text echoed in an answer stays inside its header line.
    let session = req.headers.get("Session").unwrap_or("").to_owned();
    let answer = Answer::new(454)
        .header("Session", session)
        .header("X-Reason", format!("no camera {:?}", req.uri))
        .to_bytes(req.headers.cseq());
    let text = String::from_utf8_lossy(&answer);
    let head = text
        .strip_suffix("\r\n\r\n")
        .expect("an answer ends its head");
    let lines = head.split("\r\n").count();
    let expected = 1 + usize::from(req.headers.cseq().is_some()) + 1 + 2;
    assert_eq!(lines, expected, "{text:?}");
}

/// Runs one input (the fuzz target calls this with libFuzzer's bytes).
pub fn run(data: &[u8]) {
    let [chunk, stream @ ..] = data else {
        return;
    };
    let chunk = if *chunk == 0 {
        stream.len().max(1)
    } else {
        usize::from(*chunk)
    };
    let mut r = RequestReader::new();
    let mut failed = false;
    for piece in stream.chunks(chunk) {
        r.push(piece);
        while let Some(input) = r.poll() {
            assert!(!failed, "input handed out after a failure");
            match input {
                Ok(input) => check(&input),
                Err(e) => {
                    assert!(e.to_string().chars().count() < 200, "{e}");
                    failed = true;
                }
            }
        }
        if failed {
            assert_eq!(r.buffered(), 0, "a failed reader keeps nothing");
        }
        assert!(
            r.buffered() <= BOUND + piece.len(),
            "{} bytes buffered",
            r.buffered()
        );
    }
}
