//! Drives the RTSP/TCP framer (RFC 2326 section 10.12: RTSP messages and
//! `$` interleaved frames on one connection) with arbitrary bytes in
//! arbitrary chunks, with and without known channels, releasing held frames
//! as the client's timer does. Checks what it hands out and that its buffer
//! stays bounded. The RTSP message parser (start line, headers, folding,
//! Content-Length) runs under it.
//!
//! Input: byte 0 sets the channels (bits 0-1: that many RTP/RTCP pairs at
//! channels 0, 2, 4 are set up, as after SETUP; bit 7: release held frames
//! after each chunk), byte 1 the chunk size (0: all at once), the rest is
//! the connection. So a recorded exchange with two bytes in front is a seed.

use camgate::rtsp::framer::{Framer, Item, MAX_BODY_BYTES, MAX_HEADER_BYTES};

/// The most the framer may hold after `poll` returned `None`: a header
/// section and a body waiting to complete, or one interleaved frame, plus
/// the chunk just pushed.
const BOUND: usize = MAX_HEADER_BYTES + MAX_BODY_BYTES + 4 + 65_535;

fn check(item: &Item) {
    match item {
        Item::Interleaved { data, .. } => assert!(data.len() <= 65_535),
        Item::Response(r) => {
            let declared = r
                .headers
                .get("Content-Length")
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            assert_eq!(r.body.len(), declared);
            assert!(r.body.len() <= MAX_BODY_BYTES);
            assert!((100..1000).contains(&r.status));
        }
        Item::Request(q) => {
            assert!(!q.method.is_empty() && !q.uri.is_empty());
            assert!(q.body.len() <= MAX_BODY_BYTES);
        }
        // Camera text in errors is cut short (it reaches logs and the API).
        Item::Error(e) => assert!(e.to_string().chars().count() < 400, "{e}"),
    }
}

/// Runs one input (the fuzz target calls this with libFuzzer's bytes).
pub fn run(data: &[u8]) {
    let [mode, chunk, stream @ ..] = data else {
        return;
    };
    let mut f = Framer::new();
    for pair in 0..(mode & 3) {
        f.expect_channels(2 * pair);
    }
    let release = mode & 0x80 != 0;
    let chunk = if *chunk == 0 {
        stream.len().max(1)
    } else {
        usize::from(*chunk)
    };
    let mut skipped = 0;
    for piece in stream.chunks(chunk) {
        f.push(piece);
        while let Some(item) = f.poll() {
            check(&item);
        }
        assert!(f.buffered() <= BOUND, "{} bytes buffered", f.buffered());
        if release {
            while let Some(item) = f.release_held() {
                check(&item);
                while let Some(item) = f.poll() {
                    check(&item);
                }
            }
        }
        assert!(f.skipped_bytes() >= skipped);
        skipped = f.skipped_bytes();
    }
    // The end of the connection: whatever is held goes out.
    while let Some(item) = f.release_held() {
        check(&item);
        while let Some(item) = f.poll() {
            check(&item);
        }
    }
}
