//! Drives the H.264 analyzer and repair gate (RFC 6184 access units) with
//! arbitrary NAL units and checks the gate's invariants after every step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::h264_analyzer::run(data));
