//! Parses arbitrary strings as Transport, RTP-Info and Session headers.

use camgate::rtsp::transport::{parse_rtp_info, SessionHeader, Transport};

/// Runs one input (the fuzz target calls this with libFuzzer's bytes):
/// decoded as `&str` the way `fuzz_target!` does, ignored when too short.
pub fn run(data: &[u8]) {
    let Ok(s) =
        <&str as arbitrary::Arbitrary>::arbitrary_take_rest(arbitrary::Unstructured::new(data))
    else {
        return;
    };
    let _ = Transport::parse(s);
    let _ = parse_rtp_info(s);
    if let Some(h) = SessionHeader::parse(s) {
        assert!(!h.id.is_empty());
    }
}
