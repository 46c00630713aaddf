//! Parses arbitrary bytes as a DESCRIBE answer body.

use bytes::Bytes;
use camgate::rtsp::sdp::{base_url, Presentation};

/// Runs one input (the fuzz target calls this with libFuzzer's bytes).
pub fn run(data: &[u8]) {
    let request = "rtsp://cam/a/b?x=1".parse().expect("constant URL is valid");
    // The first line (if any) plays the Content-Base header.
    let text = String::from_utf8_lossy(data);
    let content_base = text.lines().next();
    let base = base_url(&request, content_base, None);
    if let Ok(p) = Presentation::parse(Bytes::copy_from_slice(data), base, None) {
        assert!(!p.streams.is_empty());
        for s in &p.streams {
            assert!(s.control.password().is_none() && s.control.username().is_empty());
            let _ = s.fmtp_param("packetization-mode");
        }
    }
}
