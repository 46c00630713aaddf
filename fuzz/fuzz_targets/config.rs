//! Fuzzes `cameras.toml` parsing: any UTF-8 text must give a `Config` or an
//! error with a line inside the text, never a panic.
#![no_main]

use camgate::config::{Config, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match Config::parse(text, "fuzz.toml") {
        Ok(config) => {
            // The summary and Debug paths must not panic either.
            let _ = config.summary();
            let _ = format!("{config:?}");
        }
        Err(ConfigError::Invalid { line, .. }) => {
            assert!(
                line >= 1 && line <= text.lines().count().max(1) + 1,
                "line {line} outside the text"
            );
        }
        Err(ConfigError::Io { .. }) => unreachable!("parse does no I/O"),
    }
});
