//! Every target in one binary: `CAMGATE_FUZZ_TARGET=rtcp all CORPUS...`.
//! scripts/fuzz builds only this one (one link instead of ten); the
//! per-target binaries remain for `cargo fuzz run TARGET`.
#![no_main]

use std::sync::OnceLock;

fn target() -> fn(&[u8]) {
    static TARGET: OnceLock<fn(&[u8])> = OnceLock::new();
    *TARGET.get_or_init(|| {
        let name = std::env::var("CAMGATE_FUZZ_TARGET").unwrap_or_default();
        match camgate_fuzz::TARGETS.iter().find(|(n, _)| *n == name) {
            Some((_, run)) => *run,
            None => {
                let names: Vec<&str> = camgate_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
                eprintln!("set CAMGATE_FUZZ_TARGET to one of {names:?}");
                std::process::exit(2);
            }
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| target()(data));
