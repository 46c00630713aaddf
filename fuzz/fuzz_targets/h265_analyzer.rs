//! Drives the H.265 analyzer and repair gate (RFC 7798 access units) with a
//! script of access units and checks the gate's invariants after every step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::h265_analyzer::run(data));
