//! Fuzzes `cameras.toml` parsing: any UTF-8 text must give a `Config` or an
//! error with a line inside the text, never a panic.

use camgate::config::{Config, ConfigError};

/// Runs one input (the fuzz target calls this with libFuzzer's bytes):
/// decoded as `&str` the way `fuzz_target!` does, ignored when too short.
pub fn run(data: &[u8]) {
    let Ok(text) =
        <&str as arbitrary::Arbitrary>::arbitrary_take_rest(arbitrary::Unstructured::new(data))
    else {
        return;
    };
    match Config::parse(text, "fuzz.toml") {
        Ok(config) => {
            // The summary and Debug paths must not panic either.
            let _ = config.summary();
            let _ = format!("{config:?}");
        }
        Err(ConfigError::Invalid { line, .. }) => {
            // An error at the very end of the text may sit on the line after
            // the last newline.
            let last = text.matches('\n').count() + 1;
            assert!((1..=last).contains(&line), "line {line} outside the text");
        }
        Err(ConfigError::Io { .. }) => unreachable!("parse does no I/O"),
    }
}
