//! Parses arbitrary strings as Transport, RTP-Info and Session headers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::transport_header::run(data));
