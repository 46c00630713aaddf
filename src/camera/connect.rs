//! The connection to a camera: name resolution, the TCP socket with its
//! options (receive buffer before connect for window scaling, no Nagle,
//! keepalive) and, for `rtsps://` (RFC 7826 section 19.2 applied to RTSP
//! 1.0 as cameras do), the client side of the TLS handshake with the
//! system's trusted roots, or with no certificate check at all for cameras
//! with self-signed certificates (`tls_verify = false`).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use url::Url;

use super::error::SessionError;
use super::stats::CameraStats;
use super::udp::{record_buffer, set_receive_buffer};

/// The port of `rtsp://` URLs without one.
pub const RTSP_PORT: u16 = 554;
/// The port of `rtsps://` URLs without one (IANA "rtsps").
pub const RTSPS_PORT: u16 = 322;

/// The reading half of the camera connection (TCP, or TLS over TCP).
pub(super) type ConnReader = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of the camera connection.
pub(super) type ConnWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// An open connection to a camera.
pub(super) struct Connection {
    pub reader: ConnReader,
    pub writer: ConnWriter,
    /// Our end; UDP media sockets bind to the same address.
    pub local_ip: IpAddr,
    /// The camera's end; UDP media is accepted from this address only.
    pub peer: SocketAddr,
}

/// How to connect.
pub(super) struct ConnectOptions {
    /// TCP connect and TLS handshake limit, each.
    pub timeout: Duration,
    /// SO_RCVBUF to ask for.
    pub socket_buffer_bytes: usize,
    /// `rtsps://` only: check the camera's certificate.
    pub tls_verify: bool,
}

/// Connects to the camera of `url` (`rtsp://` or `rtsps://`), recording
/// the granted receive buffer in `stats`.
pub(super) async fn connect(
    url: &Url,
    options: &ConnectOptions,
    stats: &CameraStats,
) -> Result<Connection, SessionError> {
    let host = url.host_str().unwrap_or_default().to_string();
    let tls = url.scheme() == "rtsps";
    let port = url
        .port()
        .unwrap_or(if tls { RTSPS_PORT } else { RTSP_PORT });
    let addr = resolve(&host, port).await?;
    // The receive buffer is set before connecting so TCP window scaling
    // can use it.
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| SessionError::Io(e.to_string()))?;
    let granted = set_receive_buffer(
        &socket2::SockRef::from(&socket),
        options.socket_buffer_bytes,
    );
    record_buffer(stats, options.socket_buffer_bytes, granted);
    let secs = options.timeout.as_secs();
    let tcp = match timeout(options.timeout, socket.connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            return Err(SessionError::Connect {
                addr,
                reason: e.to_string(),
            })
        }
        Err(_) => {
            return Err(SessionError::Connect {
                addr,
                reason: format!("no answer within {secs} s"),
            })
        }
    };
    // Requests are small and latency matters; keepalive finds dead peers
    // behind NAT faster than the media timeout on idle links.
    let _ = tcp.set_nodelay(true);
    let _ = socket2::SockRef::from(&tcp).set_keepalive(true);
    let local_ip = tcp
        .local_addr()
        .map(|a| a.ip())
        .map_err(|e| SessionError::Io(e.to_string()))?;
    let (reader, writer): (ConnReader, ConnWriter) = if tls {
        let handshake = tls_handshake(tcp, &host, addr, options.tls_verify);
        let stream = match timeout(options.timeout, handshake).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(SessionError::Tls(e)),
            Err(_) => {
                return Err(SessionError::Tls(format!(
                    "TLS handshake with {addr}: no answer within {secs} s"
                )))
            }
        };
        let (r, w) = tokio::io::split(stream);
        (Box::new(r), Box::new(w))
    } else {
        let (r, w) = tcp.into_split();
        (Box::new(r), Box::new(w))
    };
    Ok(Connection {
        reader,
        writer,
        local_ip,
        peer: addr,
    })
}

/// Resolves `host:port` to the first address.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, SessionError> {
    let unresolved = |reason: String| SessionError::Resolve {
        host: host.to_string(),
        reason,
    };
    let target = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::net::lookup_host(target).await {
        Ok(mut addrs) => addrs.next().ok_or_else(|| unresolved("no address".into())),
        Err(e) => Err(unresolved(e.to_string())),
    }
}

/// Runs the TLS handshake on `tcp` for `host`; the message names the
/// camera address and the certificate problem, if that was it.
async fn tls_handshake(
    tcp: TcpStream,
    host: &str,
    addr: SocketAddr,
    verify: bool,
) -> Result<TlsStream<TcpStream>, String> {
    let name = server_name(host)?;
    let connector = TlsConnector::from(if verify { verified() } else { unverified() });
    connector.connect(name, tcp).await.map_err(|e| {
        let hint = match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(_)) if verify => {
                "; for a camera with a self-signed certificate set tls_verify = false"
            }
            _ => "",
        };
        format!("TLS handshake with {addr} failed: {e}{hint}")
    })
}

/// The name the certificate must carry: the URL's host (an IP address is
/// checked against the certificate's IP addresses).
fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_owned())
        .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))
}

/// Checks certificates against the system's roots (read once).
fn verified() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::warn!(error = %e, "reading the system's trusted certificates");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "trusted roots for rtsps:// cameras");
            let config = ClientConfig::builder_with_provider(crate::tls::provider())
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Accepts any certificate (but still checks the handshake signatures, so
/// the session is at least bound to the key the camera presented).
fn unverified() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = crate::tls::provider();
            let verifier = Arc::new(AcceptAnyCertificate {
                provider: provider.clone(),
            });
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// `tls_verify = false`.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
