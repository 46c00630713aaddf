//! Fuzzes the RTCP compound packet parser (RFC 3550 section 6) with
//! arbitrary bytes, and round-trips arbitrary reports through the writers
//! (RR, SR, SDES, BYE, PLI, FIR) and the parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::rtcp::run(data));
