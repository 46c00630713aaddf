//! Drives the AAC depacketizers (RFC 3640, RFC 6416) with a script of
//! packets and checks their invariants after every step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::aac_depacketizer::run(data));
