//! Parses arbitrary strings as Transport, RTP-Info and Session headers.
#![no_main]

use camgate::rtsp::transport::{parse_rtp_info, SessionHeader, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    let _ = Transport::parse(s);
    let _ = parse_rtp_info(s);
    if let Some(h) = SessionHeader::parse(s) {
        assert!(!h.id.is_empty());
    }
});
