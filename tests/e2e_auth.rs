//! Access control end to end: the camgate binary with tokens and a user,
//! driven over loopback. Roles, per-camera permissions, `/metrics`, the
//! lockout after repeated failures, and the refusal to serve an open
//! listener on a public address.

mod common;

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use common::*;

const VIEWER: &str = "viewer-token-front-0123456789";
const ADMIN: &str = "admin-token-0123456789abcdef";
const METRICS: &str = "metrics-token-0123456789abcd";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(user: &str, password: &str) -> String {
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {v}")
}

/// A gateway with two simulated cameras (`front`, `back`), each with an
/// RTP output so that their SDP files exist.
fn gateway(dir: &std::path::Path, port: u16, extra_auth: &str) -> Proc {
    let alice = hash_password("wonderland");
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[auth]
max_failures = 5
lockout = 60
{extra_auth}

[[auth.token]]
name = "front viewer"
token = "{VIEWER}"
role = "viewer"
cameras = ["front"]

[[auth.token]]
name = "ops"
token = "{ADMIN}"
role = "admin"

[[auth.token]]
name = "prometheus"
token = "{METRICS}"
role = "metrics"

[[auth.user]]
name = "alice"
password_hash = "{alice}"
role = "viewer"

[webrtc]
udp_listen = "127.0.0.1:0"

[[camera]]
id = "front"
url = "sim://front"
[[camera.rtp_out]]
destination = "127.0.0.1:{front_rtp}"

[[camera]]
id = "back"
url = "sim://back"
[[camera.rtp_out]]
destination = "127.0.0.1:{back_rtp}"
"#,
        front_rtp = free_rtp_port(),
        back_rtp = free_rtp_port(),
    );
    spawn_gateway_checked(dir, &toml, port)
}

#[test]
fn roles_cameras_and_users() {
    let dir = temp_dir();
    let port = free_tcp_port();
    let _gw = gateway(dir.path(), port, "");
    let admin = bearer(ADMIN);
    let viewer = bearer(VIEWER);
    wait_state_with(
        port,
        "back",
        "playing",
        &[("Authorization", &admin)],
        Duration::from_secs(20),
    );

    // No credentials: 401 with a challenge a browser answers.
    let r = request(port, "GET", "/api/v1/cameras", &[], b"");
    assert_eq!(r.status, 401, "{r:?}");
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.contains("Basic realm=\"camgate\""), "{challenge}");
    assert!(challenge.contains("Bearer"), "{challenge}");
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(body["error"].is_string(), "{r:?}");
    assert_eq!(
        request(port, "GET", "/cameras/front.sdp", &[], b"").status,
        401
    );
    assert_eq!(request(port, "GET", "/", &[], b"").status, 401);

    // A wrong token: 401.
    let r = request(
        port,
        "GET",
        "/api/v1/cameras",
        &[("Authorization", "Bearer not-a-valid-token-at-all")],
        b"",
    );
    assert_eq!(r.status, 401, "{r:?}");

    // The viewer lists only its camera, watches it, not the other.
    let r = request(
        port,
        "GET",
        "/api/v1/cameras",
        &[("Authorization", &viewer)],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let list: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["front"], "{list}");
    let auth = [("Authorization", viewer.as_str())];
    assert_eq!(
        request(port, "GET", "/api/v1/cameras/front", &auth, b"").status,
        200
    );
    assert_eq!(
        request(port, "GET", "/api/v1/cameras/back", &auth, b"").status,
        403
    );
    let r = request(port, "GET", "/cameras/front.sdp", &auth, b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.starts_with("v=0"), "{r:?}");
    let r = request(port, "GET", "/cameras/back.sdp", &auth, b"");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("back"), "{r:?}");
    // Percent-encoding does not get around it.
    assert_eq!(
        request(port, "GET", "/cameras/b%61ck.sdp", &auth, b"").status,
        403
    );

    // The viewer cannot change anything.
    let new_camera = br#"{"id":"side","url":"sim://side"}"#;
    let json = ("Content-Type", "application/json");
    let r = request(
        port,
        "POST",
        "/api/v1/cameras",
        &[auth[0], json],
        new_camera,
    );
    assert_eq!(r.status, 403, "{r:?}");
    let r = request(port, "DELETE", "/api/v1/cameras/front", &auth, b"");
    assert_eq!(r.status, 403, "{r:?}");

    // The admin can: the request reaches the API (whatever it answers).
    let admin_auth = [("Authorization", admin.as_str())];
    let r = request(
        port,
        "POST",
        "/api/v1/cameras",
        &[admin_auth[0], json],
        new_camera,
    );
    assert!(![401, 403].contains(&r.status), "{r:?}");
    let r = request(port, "GET", "/cameras/back.sdp", &admin_auth, b"");
    assert_eq!(r.status, 200, "{r:?}");
    let r = request(port, "GET", "/api/v1/cameras", &admin_auth, b"");
    let list: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(list.as_array().unwrap().len() >= 2, "{list}");

    // A user with a password, over Basic (as a browser sends it).
    let alice = basic("alice", "wonderland");
    let r = request(
        port,
        "GET",
        "/api/v1/cameras/back",
        &[("Authorization", &alice)],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let wrong = basic("alice", "wonderlanD");
    let r = request(
        port,
        "GET",
        "/api/v1/cameras",
        &[("Authorization", &wrong)],
        b"",
    );
    assert_eq!(r.status, 401, "{r:?}");
    // A token as the Basic password (ffmpeg's http://user:token@ URLs).
    let ffmpeg = basic("ffmpeg", VIEWER);
    let r = request(
        port,
        "GET",
        "/cameras/front.sdp",
        &[("Authorization", &ffmpeg)],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn metrics_protected_separately() {
    let dir = temp_dir();
    let port = free_tcp_port();
    let _gw = gateway(dir.path(), port, "");
    let status = |auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        request(port, "GET", "/metrics", &headers, b"").status
    };
    assert_eq!(status(None), 401);
    assert_eq!(status(Some(&bearer(VIEWER))), 403);
    let allowed = status(Some(&bearer(METRICS)));
    assert!(![401, 403].contains(&allowed), "{allowed}");
    let allowed = status(Some(&bearer(ADMIN)));
    assert!(![401, 403].contains(&allowed), "{allowed}");
    // The metrics token is good for nothing else.
    let r = request(
        port,
        "GET",
        "/api/v1/cameras",
        &[("Authorization", &bearer(METRICS))],
        b"",
    );
    assert_eq!(r.status, 403, "{r:?}");
}

#[test]
fn public_metrics() {
    let dir = temp_dir();
    let port = free_tcp_port();
    let _gw = gateway(dir.path(), port, "public_metrics = true");
    let r = request(port, "GET", "/metrics", &[], b"");
    assert!(![401, 403].contains(&r.status), "{r:?}");
    // Nothing else is public.
    assert_eq!(
        request(port, "GET", "/api/v1/cameras", &[], b"").status,
        401
    );
}

#[test]
fn lockout_after_repeated_failures() {
    let dir = temp_dir();
    let port = free_tcp_port();
    let _gw = gateway(dir.path(), port, "");
    let attempt = |source: &str, auth: &str| {
        let mut s = connect_from(source, port);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        request_on(
            &mut s,
            "GET",
            "/api/v1/cameras",
            &[("Authorization", auth)],
            b"",
        )
    };
    let wrong = bearer("guessing-the-token-000000");
    // max_failures = 5: five 401s, then 429 even for a good token.
    for i in 0..5 {
        let r = attempt("127.0.0.2", &wrong);
        assert_eq!(r.status, 401, "attempt {i}: {r:?}");
    }
    let r = attempt("127.0.0.2", &wrong);
    assert_eq!(r.status, 429, "{r:?}");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{r:?}");
    let r = attempt("127.0.0.2", &bearer(ADMIN));
    assert_eq!(r.status, 429, "{r:?}");
    // Wrong Basic passwords count too, and the lockout is per address.
    for _ in 0..5 {
        assert_eq!(attempt("127.0.0.3", &basic("alice", "guess")).status, 401);
    }
    assert_eq!(
        attempt("127.0.0.3", &basic("alice", "wonderland")).status,
        429
    );
    let r = attempt("127.0.0.1", &bearer(ADMIN));
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn refuses_an_open_public_listener() {
    let dir = temp_dir();
    let port = free_tcp_port();
    let path = dir.path().join("cameras.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"0.0.0.0:{port}\"\n\n[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(camgate_bin())
        .args(["run", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("allow_unauthenticated"), "{stderr}");
    assert!(stderr.contains("cameras.toml:2"), "{stderr}");
    // `check` says the same, without binding anything.
    let out = Command::new(camgate_bin())
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Explicitly allowed: valid.
    std::fs::write(
        &path,
        format!("[server]\nlisten = \"0.0.0.0:{port}\"\nallow_unauthenticated = true\n"),
    )
    .unwrap();
    let out = Command::new(camgate_bin())
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
