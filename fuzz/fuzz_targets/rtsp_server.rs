//! The RTSP server's request reader; see `src/rtsp_server.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::rtsp_server::run(data));
