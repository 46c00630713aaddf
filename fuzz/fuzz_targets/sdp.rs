//! Parses arbitrary bytes as a DESCRIBE answer body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::sdp::run(data));
