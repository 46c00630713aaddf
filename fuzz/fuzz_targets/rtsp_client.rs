//! Drives the RTSP client with arbitrary camera bytes and timer steps.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::rtsp_client::run(data));
