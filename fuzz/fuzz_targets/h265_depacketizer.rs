//! Drives the H.265 depacketizer (RFC 7798) with a script of packets and
//! checks its invariants after every step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::h265_depacketizer::run(data));
