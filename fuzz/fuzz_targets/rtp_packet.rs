//! Fuzzes the RTP packet parser (RFC 3550 5.1), the RTCP sender report
//! parser and receiver statistics: no input may panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::rtp_packet::run(data));
