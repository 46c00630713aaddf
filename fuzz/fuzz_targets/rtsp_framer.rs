//! The RTSP/TCP framer and message parser; see `src/rtsp_framer.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::rtsp_framer::run(data));
