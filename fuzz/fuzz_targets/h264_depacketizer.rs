//! Drives the H.264 depacketizer (RFC 6184) with an arbitrary script of
//! packets and checks its invariants after every step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::h264_depacketizer::run(data));
