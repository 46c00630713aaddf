//! TLS end to end, with certificates made by the test (rcgen): the HTTP
//! API over https, the certificate reloaded on SIGHUP, and `rtsps://`
//! cameras behind a TLS-terminating proxy in front of the simulator, with
//! and without certificate verification.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const ADMIN: &str = "admin-token-0123456789abcdef";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test CA and leaf certificates for 127.0.0.1 it issues.
struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "camgate test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    /// A leaf for 127.0.0.1 and localhost: (certificate PEM, key PEM, DER).
    fn leaf(&self, name: &str) -> (String, String, CertificateDer<'static>) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }
}

/// A TLS client trusting `ca` only.
fn client_config(ca: &TestCa) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// One https request; returns the reply and the certificate the server
/// presented.
fn https(
    config: &Arc<rustls::ClientConfig>,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Reply, CertificateDer<'static>) {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let reply = request_on(&mut tls, method, path, headers, b"");
    let cert = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first().cloned())
        .expect("the server presented a certificate");
    (reply, cert)
}

#[test]
fn api_over_https_and_reload_on_sighup() {
    let dir = temp_dir();
    let port = free_tcp_port();
    let ca = TestCa::new();
    let (cert_pem, key_pem, first_der) = ca.leaf("first");
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key_pem).unwrap();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
tls_cert = "cert.pem"
tls_key = "key.pem"

[webrtc]
udp_listen = "127.0.0.1:0"

[[auth.token]]
token = "{ADMIN}"
role = "admin"

[[camera]]
id = "demo"
url = "sim://demo"
"#
    );
    let gw = spawn_gateway_checked(dir.path(), &toml, port);
    let client = client_config(&ca);
    let auth = format!("Bearer {ADMIN}");

    let (r, der) = https(
        &client,
        port,
        "GET",
        "/api/v1/cameras",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("\"demo\""), "{r:?}");
    assert_eq!(der, first_der);
    let (r, _) = https(&client, port, "GET", "/api/v1/cameras", &[]);
    assert_eq!(r.status, 401, "{r:?}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let r = request(
        port,
        "GET",
        "/api/v1/cameras",
        &[("Authorization", &auth)],
        b"",
    );
    assert_ne!(r.status, 200, "{r:?}");

    // A broken file on SIGHUP: the old certificate stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    sighup(&gw);
    std::thread::sleep(Duration::from_millis(300));
    let (r, der) = https(
        &client,
        port,
        "GET",
        "/api/v1/cameras",
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(der, first_der);

    // A new certificate, then SIGHUP: new connections get it.
    let (cert_pem, key_pem, second_der) = ca.leaf("second");
    std::fs::write(dir.path().join("key.pem"), &key_pem).unwrap();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    sighup(&gw);
    let start = Instant::now();
    loop {
        let (r, der) = https(
            &client,
            port,
            "GET",
            "/api/v1/cameras",
            &[("Authorization", &auth)],
        );
        assert_eq!(r.status, 200, "{r:?}");
        if der == second_der {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still the old certificate after SIGHUP: {}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = gw.log_text();
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    assert!(log.contains("previous one stays in use"), "{log}");
}

fn sighup(proc: &Proc) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &proc.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn bad_certificate_files_stop_the_start() {
    let dir = temp_dir();
    let port = free_tcp_port();
    std::fs::write(dir.path().join("cert.pem"), "nothing here").unwrap();
    std::fs::write(dir.path().join("key.pem"), "nothing here").unwrap();
    let path = dir.path().join("cameras.toml");
    std::fs::write(
        &path,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let out = std::process::Command::new(camgate_bin())
        .args(["run", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("tls_cert"), "{stderr}");
    assert!(stderr.contains("cert.pem"), "{stderr}");
}

/// Terminates TLS with a self-signed certificate and passes the bytes to
/// `upstream` (the simulator), as a camera speaking rtsps:// would.
async fn tls_proxy(listener: tokio::net::TcpListener, upstream: SocketAddr) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![key.cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.key_pair.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            }
        });
    }
}

#[test]
fn rtsps_camera_behind_tls() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let proxy_port = rt.block_on(async {
        let sim = camgate::sim::SimServer::bind(([127, 0, 0, 1], 0).into(), Default::default())
            .await
            .unwrap();
        let upstream = sim.local_addr();
        tokio::spawn(sim.run(shutdown.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(tls_proxy(listener, upstream));
        port
    });

    let dir = temp_dir();
    let port = free_tcp_port();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[webrtc]
udp_listen = "127.0.0.1:0"

[[camera]]
id = "selfsigned"
url = "rtsps://127.0.0.1:{proxy_port}/cam"
tls_verify = false

[[camera]]
id = "verified"
url = "rtsps://127.0.0.1:{proxy_port}/cam"
"#
    );
    let gw = spawn_gateway_checked(dir.path(), &toml, port);
    let v = wait_state(port, "selfsigned", "playing", Duration::from_secs(20));
    assert_eq!(v["transport"], "tcp", "{v}");

    // Verification on: the handshake fails, and the error says why.
    let start = Instant::now();
    let error = loop {
        let v = camera_json(port, "verified");
        if let Some(e) = v["last_error"].as_str() {
            break e.to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no error for the verified camera: {v} {}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(error.contains("certificate"), "{error}");
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(error.contains("tls_verify = false"), "{error}");
    assert_ne!(camera_json(port, "verified")["state"], "playing");
    shutdown.cancel();
}
