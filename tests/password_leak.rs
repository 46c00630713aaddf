//! Camera passwords never leave camgate: a gateway pulls cameras whose
//! passwords come from every source (URL, `password_env`,
//! `credentials_file`, the API), one with a wrong password and one on a
//! closed port, with debug logs in text and in JSON; then every output
//! surface is searched for the passwords: logs, `/metrics`, every API
//! route, SDP files, the HTML pages, and the `check`, `probe` and `sim`
//! commands' output.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The right password, with the characters that end a URL's userinfo or
/// authority early (`/ ? # : @`) and `%`: in URLs it is percent-encoded,
/// and both forms are searched for.
const PASSWORD: &str = "Pw/LEAK:7f@3a%9c?#x";
/// A wrong password, which must not leak either.
const WRONG: &str = "Wr0ng/LEAK@b41e:%";
/// Given through the API.
const API_PASSWORD: &str = "Api/LEAK:5d2e@";

/// `password` percent-encoded for a URL's userinfo.
fn enc(password: &str) -> String {
    percent_encoding::utf8_percent_encode(password, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `METHOD path` with a JSON body; returns (status, body).
fn http_request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// What the camera list says of `id`'s state.
fn state(port: u16, id: &str) -> String {
    let (_, body) = http_get(port, &format!("/api/v1/cameras/{id}"));
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["state"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn config(http: u16, sim: u16, closed: u16, cred_file: &str, rtp: [u16; 2]) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:{http}"

[webrtc]
udp_listen = "127.0.0.1:0"

# In-process simulator with credentials, password from the environment.
[[camera]]
id = "env"
url = "sim://env"
username = "admin"
password_env = "CAMGATE_LEAK_TEST_PASSWORD"
[[camera.rtp_out]]
destination = "127.0.0.1:{rtp0}"

# External simulator, password in the URL.
[[camera]]
id = "url"
url = "rtsp://admin:{password}@127.0.0.1:{sim}/url"
[[camera.rtp_out]]
destination = "127.0.0.1:{rtp1}"

# The same, from a credentials file.
[[camera]]
id = "file"
url = "rtsp://127.0.0.1:{sim}/file"
credentials_file = "{cred_file}"

# A wrong password.
[[camera]]
id = "wrong"
url = "rtsp://admin:{wrong}@127.0.0.1:{sim}/wrong"

# Nothing listens there.
[[camera]]
id = "closed"
url = "rtsp://admin:{password}@127.0.0.1:{closed}/closed"
"#,
        rtp0 = rtp[0],
        rtp1 = rtp[1],
        password = enc(PASSWORD),
        wrong = enc(WRONG),
    )
}

/// Every HTTP surface of a gateway, as one text (status codes included, so
/// a page that does not exist yet is still searched).
fn http_surfaces(port: u16) -> String {
    let ids = ["env", "url", "file", "wrong", "closed", "api"];
    let mut paths = vec![
        "/".to_string(),
        "/metrics".to_string(),
        "/api/v1/cameras".to_string(),
    ];
    for id in ids {
        paths.push(format!("/api/v1/cameras/{id}"));
        paths.push(format!("/api/v1/cameras/{id}/sessions"));
        paths.push(format!("/cameras/{id}.sdp"));
        paths.push(format!("/cameras/{id}"));
    }
    let mut all = String::new();
    for p in paths {
        let (status, body) = http_get(port, &p);
        all.push_str(&format!("=== GET {p} -> {status}\n{body}\n"));
    }
    all
}

fn assert_clean(surface: &str, text: &str) {
    for secret in [PASSWORD, WRONG, API_PASSWORD]
        .into_iter()
        .flat_map(|p| [p.to_owned(), enc(p)])
    {
        if let Some(at) = text.find(&secret) {
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(i, _)| i);
            let to = (at + 200).min(text.len());
            let to = (to..text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            panic!("{surface} contains a password:\n...{}...", &text[from..to]);
        }
    }
}

/// Runs a camgate command to completion; stdout and stderr together.
fn camgate_output(args: &[&str]) -> String {
    let out = Command::new(camgate_bin())
        .args(args)
        .env("RUST_LOG", "debug")
        .env("CAMGATE_LEAK_TEST_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn no_surface_shows_a_password() {
    let dir = temp_dir();
    let sim_port = free_tcp_port();
    let closed = free_tcp_port();
    let mut sim = spawn_sim(dir.path(), sim_port, Some(("admin", PASSWORD)));

    let cred = dir.path().join("file.cred");
    std::fs::write(&cred, format!("admin:{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Two gateways on the same cameras: text logs and JSON logs.
    let mut gateways = Vec::new();
    for format in ["text", "json"] {
        let http = free_tcp_port();
        let toml = config(
            http,
            sim_port,
            closed,
            cred.to_str().unwrap(),
            [free_rtp_port(), free_rtp_port()],
        );
        let path = dir.path().join(format!("cameras-{format}.toml"));
        std::fs::write(&path, &toml).unwrap();
        let log = dir.path().join(format!("gateway-{format}.log"));
        let child = Command::new(camgate_bin())
            .args([
                "run",
                "--config",
                path.to_str().unwrap(),
                "--log-format",
                format,
            ])
            .env("RUST_LOG", "debug")
            .env("CAMGATE_LEAK_TEST_PASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let proc = Proc { child, log };
        wait_for(Duration::from_secs(15), || {
            TcpStream::connect(("127.0.0.1", http)).is_ok()
        });
        gateways.push((format, http, path, proc));
    }

    let mut texts: Vec<(String, String)> = Vec::new();
    for (format, http, path, proc) in &mut gateways {
        let http = *http;
        let expect = [
            ("env", "playing"),
            ("url", "playing"),
            ("file", "playing"),
            ("wrong", "unauthorized"),
            ("closed", "unreachable"),
        ];
        wait_for(Duration::from_secs(30), || {
            expect.iter().all(|(id, want)| state(http, id) == *want)
        });

        // The API takes credentials too: a good camera and a refused one.
        let api_password = enc(API_PASSWORD);
        let good =
            format!(r#"{{"id":"api","url":"rtsp://admin:{api_password}@127.0.0.1:{closed}/api"}}"#);
        let bad = format!(r#"{{"id":"bad","url":"http://admin:{api_password}@127.0.0.1/x"}}"#);
        let bad_json = format!(r#"{{"id":"bad","url":"rtsp://admin:{api_password}@h/""#);
        // Typed without percent-encoding: not a URL, refused.
        let raw = format!(r#"{{"id":"raw","url":"rtsp://admin:{API_PASSWORD}@127.0.0.1/x"}}"#);
        let mut api = String::new();
        for body in [good, bad, bad_json, raw] {
            let (status, text) = http_request(http, "POST", "/api/v1/cameras", &body);
            api.push_str(&format!("=== POST -> {status}\n{text}\n"));
        }
        wait_for(Duration::from_secs(15), || {
            state(http, "api") == "unreachable"
        });
        texts.push((format!("{format} gateway: API writes"), api));
        texts.push((format!("{format} gateway: HTTP"), http_surfaces(http)));
        let check = camgate_output(&["check", path.to_str().unwrap()]);
        assert!(check.contains(": OK"), "{check}");
        texts.push((format!("{format} gateway: camgate check"), check));
        assert!(proc.terminate(Duration::from_secs(10)).is_some());
        let log = proc.log_text();
        assert!(log.contains("session ended"), "{format} log: {log}");
        if *format == "json" {
            assert!(log
                .lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
        }
        texts.push((format!("{format} gateway: log"), log));
    }

    // probe: the right password, a wrong one, a closed port.
    let (password, wrong) = (enc(PASSWORD), enc(WRONG));
    for url in [
        format!("rtsp://admin:{password}@127.0.0.1:{sim_port}/probe"),
        format!("rtsp://admin:{wrong}@127.0.0.1:{sim_port}/probe"),
        format!("rtsp://admin:{password}@127.0.0.1:{closed}/probe"),
        format!("rtsp://admin:{password}@[bad"),
        // Typed without percent-encoding.
        format!("rtsp://admin:{PASSWORD}@127.0.0.1:{sim_port}/probe"),
    ] {
        let shown = url
            .replace(&password, "P")
            .replace(&wrong, "W")
            .replace(PASSWORD, "P");
        texts.push((
            format!("probe {shown}"),
            camgate_output(&["probe", &url, "--seconds", "1"]),
        ));
    }

    sim.terminate(Duration::from_secs(5));
    texts.push(("sim log".into(), sim.log_text()));

    let searched: usize = texts.iter().map(|(_, t)| t.len()).sum();
    assert!(
        searched > 10_000,
        "too little output searched: {searched} bytes"
    );
    for (surface, text) in &texts {
        assert_clean(surface, text);
    }
}
