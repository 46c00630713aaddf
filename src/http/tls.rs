//! HTTPS for the listener: rustls with the ring provider, TLS 1.2 and 1.3,
//! HTTP/1.1 by ALPN. The certificate and key are read at start and again
//! on SIGHUP; connections already open keep the certificate they began
//! with.

use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;
use crate::tls::provider;

/// The listener's TLS configuration, swappable while serving.
pub struct TlsReloader {
    /// Where the certificate and key are read from.
    files: TlsFiles,
    /// The configuration new connections get.
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsReloader {
    /// Reads the files; the message names the file and the problem.
    pub fn load(files: &TlsFiles) -> Result<TlsReloader, String> {
        Ok(TlsReloader {
            current: RwLock::new(Arc::new(server_config(files)?)),
            files: files.clone(),
        })
    }

    /// Reads the files again. On failure the previous certificate stays in
    /// use and the message says why.
    pub fn reload(&self) -> Result<(), String> {
        let config = Arc::new(server_config(&self.files)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// A rustls server configuration from PEM files.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, String> {
    let cert_name = files.cert.display();
    let key_name = files.key.display();
    let cert_pem = std::fs::read(&files.cert)
        .map_err(|e| format!("cannot read [server] tls_cert {cert_name}: {e}"))?;
    let key_pem = std::fs::read(&files.key)
        .map_err(|e| format!("cannot read [server] tls_key {key_name}: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("[server] tls_cert {cert_name}: not a PEM certificate chain ({e})"))?;
    if chain.is_empty() {
        return Err(format!(
            "[server] tls_cert {cert_name}: no CERTIFICATE block in the file"
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "[server] tls_key {key_name}: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"
        )
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!("[server] tls_cert {cert_name} and tls_key {key_name} do not go together: {e}")
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
