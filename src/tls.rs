//! The TLS crypto provider camgate uses on both sides (the HTTPS listener
//! and `rtsps://` cameras), at the bottom layer so that neither side
//! imports the other.

use std::sync::Arc;

/// The crypto provider camgate uses everywhere (server and camera side),
/// never the process default, which other crates may set differently.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
