//! Issue 5, the REST API end to end: every camera and session route of the
//! camgate binary with its error cases (400 naming the field, 404, 409), a
//! camera added through the API playing, restarting, listed with its
//! sessions and removed, and surviving a gateway restart. The camera's
//! password never appears in an API answer or in the log. Everything on
//! 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The password of the camera added through the API.
const PASSWORD: &str = "Sup3r-Secret-Pw";

fn json(r: &Reply) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

fn get(port: u16, path: &str) -> Reply {
    request(port, "GET", path, &[], b"")
}

fn post(port: u16, path: &str, body: &str) -> Reply {
    request(
        port,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

fn delete(port: u16, path: &str) -> Reply {
    request(port, "DELETE", path, &[], b"")
}

/// Asserts `r` is the JSON error `status` whose message contains `part`.
#[track_caller]
fn assert_error(r: &Reply, status: u16, part: &str) {
    assert_eq!(r.status, status, "{r:?}");
    let v = json(r);
    let message = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {v}"));
    assert!(message.contains(part), "{message:?} lacks {part:?}");
}

/// Polls camera `id` until `f` holds for its JSON.
fn wait_camera(port: u16, id: &str, limit: Duration, f: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let v = camera_json(port, id);
        if f(&v) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "camera {id}: condition not met: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn camera_and_session_routes_with_their_errors() {
    let dir = temp_dir();
    let http = free_tcp_port();
    let rtp = free_rtp_port();
    let flow = FlowWatch::udp(rtp);
    let toml = format!(
        r#"[server]
listen = "127.0.0.1:{http}"

[webrtc]
udp_listen = "127.0.0.1:0"

[[camera]]
id = "base"
url = "sim://base"

[[camera.rtp_out]]
destination = "127.0.0.1:{rtp}"
"#
    );
    let mut gw = spawn_gateway_checked(dir.path(), &toml, http);
    wait_state(http, "base", "playing", Duration::from_secs(20));
    flow.wait_for(10, Duration::from_secs(10));

    // Listing.
    let r = get(http, "/api/v1/cameras");
    assert_eq!(r.status, 200, "{r:?}");
    let list = json(&r);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], "base");
    assert_eq!(list[0]["source"], "file");
    assert_eq!(list[0]["rtp_consumers"], 1);
    assert!(list[0]["stats"]["frames_received"].as_u64().unwrap() > 0);

    // 404: unknown camera or session, on every route.
    assert_error(&get(http, "/api/v1/cameras/nope"), 404, "nope");
    assert_error(&delete(http, "/api/v1/cameras/nope"), 404, "nope");
    assert_error(&post(http, "/api/v1/cameras/nope/restart", ""), 404, "nope");
    assert_error(&get(http, "/api/v1/cameras/nope/sessions"), 404, "nope");
    assert_error(
        &delete(http, "/api/v1/cameras/nope/sessions/x"),
        404,
        "nope",
    );
    assert_error(
        &delete(http, "/api/v1/cameras/base/sessions/0123"),
        404,
        "0123",
    );

    // 400: not a camera, with the field named.
    assert_error(&post(http, "/api/v1/cameras", "{not json"), 400, "JSON");
    assert_error(&post(http, "/api/v1/cameras", "[1, 2]"), 400, "object");
    let invalid = [
        (r#"{"id": "x", "url": "http://192.0.2.1/x"}"#, "`url`"),
        (r#"{"id": "x"}"#, "`url`"),
        (
            r#"{"id": "x", "url": "sim://x", "trasport": "udp"}"#,
            "`trasport`",
        ),
        (r#"{"id": "bad id!", "url": "sim://x"}"#, "`id`"),
        (
            r#"{"id": "x", "url": "sim://x", "transport": "carrier-pigeon"}"#,
            "`transport`",
        ),
        (
            r#"{"id": "x", "url": "sim://x", "idle_timeout": 0}"#,
            "`idle_timeout`",
        ),
        (r#"{"id": "x", "url": "sim://x", "url2": null}"#, "`url2`"),
        (
            r#"{"id": "x", "url": "sim://x", "password": "p"}"#,
            "`password`",
        ),
    ];
    for (body, field) in invalid {
        assert_error(&post(http, "/api/v1/cameras", body), 400, field);
    }
    // The rtp_out of base owns its ports: the message names the field.
    let clash = format!(
        r#"{{"id": "x", "url": "sim://x", "rtp_out": [{{"destination": "127.0.0.1:{rtp}"}}]}}"#
    );
    assert_error(&post(http, "/api/v1/cameras", &clash), 400, "`destination`");
    assert_eq!(get(http, "/api/v1/cameras/x").status, 404);

    // 409: the id is taken.
    assert_error(
        &post(
            http,
            "/api/v1/cameras",
            r#"{"id": "base", "url": "sim://other"}"#,
        ),
        409,
        "base",
    );

    // Add a camera with credentials (the simulator demands them).
    let body = format!(
        r#"{{"id": "secure", "url": "sim://secure", "username": "admin", "password": "{PASSWORD}", "transport": "udp"}}"#
    );
    let r = post(http, "/api/v1/cameras", &body);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.header("location").as_deref(),
        Some("/api/v1/cameras/secure")
    );
    assert!(!r.body.contains(PASSWORD), "{}", r.body);
    assert_eq!(json(&r)["source"], "api");
    assert_error(&post(http, "/api/v1/cameras", &body), 409, "secure");

    let v = wait_state(http, "secure", "playing", Duration::from_secs(20));
    assert_eq!(v["transport"], "udp", "{v}");
    assert!(
        v["video"]
            .as_str()
            .unwrap_or_default()
            .starts_with("H264 640x360"),
        "{v}"
    );
    assert!(
        v["sdp"].as_str().unwrap_or_default().contains("m=video"),
        "{v}"
    );
    assert!(v["since"].as_f64().unwrap() > 0.0, "{v}");
    for path in ["/api/v1/cameras", "/api/v1/cameras/secure"] {
        let r = get(http, path);
        assert!(!r.body.contains(PASSWORD), "password in {path}: {}", r.body);
    }
    // Saved beside the configuration, for the owner only.
    let state_file = dir.path().join("cameras.api.toml");
    let saved = std::fs::read_to_string(&state_file).unwrap();
    assert!(saved.contains("id = \"secure\""), "{saved}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&state_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // Restart: a fresh session, counted as a reconnect.
    let r = post(http, "/api/v1/cameras/secure/restart", "");
    assert_eq!(r.status, 202, "{r:?}");
    wait_camera(http, "secure", Duration::from_secs(20), |v| {
        v["stats"]["reconnects_by_reason"]["restart"] == 1 && v["state"] == "playing"
    });

    // Sessions: base has its RTP consumer, secure none.
    let r = get(http, "/api/v1/cameras/base/sessions");
    assert_eq!(r.status, 200, "{r:?}");
    let sessions = json(&r);
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let s = &sessions[0];
    assert_eq!(s["kind"], "rtp");
    assert_eq!(s["camera"], "base");
    assert_eq!(s["remote"], format!("127.0.0.1:{rtp}"));
    assert!(s["packets_sent"].as_u64().unwrap() > 0, "{s}");
    assert!(s["bytes_sent"].as_u64().unwrap() > 0, "{s}");
    let r = get(http, "/api/v1/cameras/secure/sessions");
    assert_eq!(json(&r), serde_json::json!([]));

    // End the RTP consumer: it leaves the list, and its packets stop.
    let sid = s["id"].as_str().unwrap();
    let r = delete(http, &format!("/api/v1/cameras/base/sessions/{sid}"));
    assert_eq!(r.status, 204, "{r:?}");
    wait_camera(http, "base", Duration::from_secs(5), |v| {
        v["rtp_consumers"] == 0
    });
    let r = get(http, "/api/v1/cameras/base/sessions");
    assert_eq!(json(&r), serde_json::json!([]));
    std::thread::sleep(Duration::from_millis(300));
    let after = flow.count();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(flow.count(), after, "the ended RTP consumer still sends");

    // Restarting a disabled camera is a conflict; an on-demand camera
    // added through the API stays idle with nobody watching.
    let r = post(
        http,
        "/api/v1/cameras",
        r#"{"id": "lazy", "url": "sim://lazy", "on_demand": true, "idle_timeout": 5}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = post(
        http,
        "/api/v1/cameras",
        r#"{"id": "spare", "url": "sim://spare", "enabled": false}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_error(
        &post(http, "/api/v1/cameras/spare/restart", ""),
        409,
        "disabled",
    );
    std::thread::sleep(Duration::from_secs(1));
    let v = camera_json(http, "lazy");
    assert_eq!(v["state"], "idle", "{v}");
    assert_eq!(v["on_demand"], true);
    assert_eq!(v["stats"]["rtp_packets_received"], 0, "{v}");

    // Remove.
    let r = delete(http, "/api/v1/cameras/secure");
    assert_eq!(r.status, 204, "{r:?}");
    assert_error(&get(http, "/api/v1/cameras/secure"), 404, "secure");
    assert_error(&delete(http, "/api/v1/cameras/secure"), 404, "secure");
    let saved = std::fs::read_to_string(&state_file).unwrap();
    assert!(!saved.contains("secure"), "{saved}");
    assert!(saved.contains("id = \"lazy\""), "{saved}");
    let ids: Vec<String> = json(&get(http, "/api/v1/cameras"))
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["base", "lazy", "spare"]);

    // The API cameras survive a restart of the gateway.
    assert!(gw.terminate(Duration::from_secs(10)).is_some());
    let log = gw.log_text();
    assert!(!log.contains(PASSWORD), "password in the log");
    assert!(log.contains("camera added through the API"), "{log}");
    let gw = spawn_gateway_checked(dir.path(), &toml, http);
    let v = camera_json(http, "lazy");
    assert_eq!(v["source"], "api", "{v}");
    assert_eq!(v["state"], "idle", "{v}");
    assert_eq!(camera_json(http, "spare")["enabled"], false);
    assert_error(&get(http, "/api/v1/cameras/secure"), 404, "secure");
    drop(gw);
}
