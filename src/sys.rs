//! The one module allowed `unsafe`: calls into the C library that no safe
//! wrapper offers. Each call states why it is sound. Everything else in
//! the crate is `#![deny(unsafe_code)]` (see `src/lib.rs`), and
//! `tests/architecture.rs` checks that `unsafe` appears nowhere else.

#![allow(unsafe_code)]

/// glibc gives each thread that allocates its own heap arena (up to 8 per
/// core); freed memory stays in whichever arena it came from, so a gateway
/// whose viewers come and go on every worker thread keeps growing its RSS
/// for a long time before it levels off. Two arenas keep it flat (measured
/// by the viewer churn test in `tests/e2e_webrtc.rs`). `MALLOC_ARENA_MAX`
/// in the environment still wins. Call it first in `main`, before the
/// runtime starts its threads.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator tuning; called before any
        // other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
