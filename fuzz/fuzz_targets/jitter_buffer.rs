//! Drives the RTP jitter buffer with an arbitrary script of pushes, polls
//! and flushes, checking its invariants after every step and that what it
//! releases is contiguous in sequence order between discontinuities.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::jitter_buffer::run(data));
