//! Every file of every fuzz target's corpus (`fuzz/corpus/<target>/`) run
//! through the target's code (`fuzz/src/`) as an ordinary test, on the
//! stable toolchain: seeds and every input a fuzzer once crashed on stay
//! regression tests. `scripts/fuzz` runs the fuzzers themselves.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod camgate_fuzz;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut failures = Vec::new();
    for &(target, run) in camgate_fuzz::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (every target keeps a corpus)", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: empty corpus", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz corpus inputs failing: {failures:#?}"
    );
}
