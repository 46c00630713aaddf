//! Fuzzes `cameras.toml` parsing: any UTF-8 text must give a `Config` or an
//! error with a line inside the text, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camgate_fuzz::config::run(data));
