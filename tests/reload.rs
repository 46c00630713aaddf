//! Issue 5, hot reload end to end: the camgate binary re-reads its file on
//! SIGHUP and when the file changes; added cameras start, removed ones
//! stop, changed ones restart, and an unchanged camera's consumer keeps
//! receiving throughout. An invalid file keeps the running set and is
//! logged with its line. Cameras added through the API survive. Everything
//! on 127.0.0.1.

mod common;
#[path = "common/viewer.rs"]
mod viewer;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The ids the API lists.
fn ids(http: u16) -> BTreeSet<String> {
    let (status, body) = http_get(http, "/api/v1/cameras");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Viewers' UDP port: any free one, so gateways can run side by side.
const WEBRTC: &str = "[webrtc]\nudp_listen = \"127.0.0.1:0\"\n\n";

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Waits until the API lists exactly `want`.
fn wait_ids(http: u16, want: &[&str], limit: Duration) {
    let want = set(want);
    let start = Instant::now();
    loop {
        let got = ids(http);
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "cameras {got:?}, expected {want:?} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Replaces the file the way editors that write in place do.
fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn camera(id: &str, extra: &str) -> String {
    format!("[[camera]]\nid = \"{id}\"\nurl = \"sim://{id}\"\n{extra}\n")
}

#[test]
fn reload_adds_removes_and_restarts_while_unchanged_cameras_keep_flowing() {
    let dir = temp_dir();
    let http = free_tcp_port();
    let rtp = free_rtp_port();
    let flow = FlowWatch::udp(rtp);
    let server = format!("[server]\nlisten = \"127.0.0.1:{http}\"\n\n{WEBRTC}");
    let steady = format!(
        "[[camera]]\nid = \"steady\"\nurl = \"sim://steady\"\n[[camera.rtp_out]]\ndestination = \"127.0.0.1:{rtp}\"\n"
    );
    let v1 = format!(
        "{server}{steady}\n{}{}",
        camera("gone", ""),
        camera("changing", "")
    );
    let mut gw = spawn_gateway_checked(dir.path(), &v1, http);
    let path = dir.path().join("cameras.toml");
    for id in ["steady", "gone", "changing"] {
        wait_state(http, id, "playing", Duration::from_secs(20));
    }
    flow.wait_for(50, Duration::from_secs(10));
    let steady_before = camera_json(http, "steady");
    let changing_before = camera_json(http, "changing");

    // A camera added through the API.
    let r = request(
        http,
        "POST",
        "/api/v1/cameras",
        &[("Content-Type", "application/json")],
        br#"{"id": "apicam", "url": "sim://apicam"}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");

    let t0 = Instant::now();

    // SIGHUP: "gone" removed, "changing" changed, "fresh" added; "steady"
    // is the same but moved to the end of the file, below a comment.
    let v2 = format!(
        "{server}[[camera]]\nid = \"changing\"\nurl = \"sim://changing?audio=0\"\n\n{}# the camera with a consumer\n{steady}",
        camera("fresh", ""),
    );
    write(&path, &v2);
    send_signal(&gw, "HUP");
    wait_ids(
        http,
        &["steady", "changing", "fresh", "apicam"],
        Duration::from_secs(10),
    );
    let changing = wait_state(http, "changing", "playing", Duration::from_secs(20));
    assert_eq!(changing["url"], "sim://changing?audio=0", "{changing}");
    assert!(changing["audio"].is_null(), "{changing}");
    assert_ne!(changing["since"], changing_before["since"]);
    wait_state(http, "fresh", "playing", Duration::from_secs(20));
    // The API lists the file's order, then the API cameras.
    let (_, body) = http_get(http, "/api/v1/cameras");
    let order: Vec<String> = serde_json::from_str::<serde_json::Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["changing", "fresh", "steady", "apicam"]);

    // The file changes, no signal: "later" is added.
    let v3 = format!("{v2}\n{}", camera("later", ""));
    write(&path, &v3);
    wait_ids(
        http,
        &["steady", "changing", "fresh", "apicam", "later"],
        Duration::from_secs(10),
    );
    wait_state(http, "later", "playing", Duration::from_secs(20));

    // An invalid file changes nothing, and says where the problem is.
    let broken = format!("{v3}\n{}", "[[camera]]\nid = \"oops\"\nurl = 5\n");
    let bad_line = broken.lines().count();
    write(&path, &broken);
    send_signal(&gw, "HUP");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        ids(http),
        set(&["steady", "changing", "fresh", "apicam", "later"])
    );
    let log = gw.log_text();
    let expected = format!("cameras.toml:{bad_line}:");
    assert!(
        log.contains(&expected) && log.contains("keeping the running configuration"),
        "no {expected:?} error in the log:\n{log}"
    );

    // The unchanged camera was never touched, and its consumer kept
    // receiving throughout.
    let steady_after = camera_json(http, "steady");
    assert_eq!(steady_after["since"], steady_before["since"]);
    assert_eq!(steady_after["stats"]["reconnects"], 0);
    assert_eq!(steady_after["state"], "playing");
    let gap = flow.max_gap_since(t0);
    assert!(
        gap < Duration::from_secs(1),
        "the unchanged camera's consumer saw a {gap:?} gap"
    );

    // The API camera is still saved and comes back after a restart.
    assert!(gw.terminate(Duration::from_secs(10)).is_some());
    write(&path, &v3);
    let _gw = spawn_gateway_checked(dir.path(), &v3, http);
    assert_eq!(
        ids(http),
        set(&["steady", "changing", "fresh", "apicam", "later"])
    );
}

#[test]
fn a_file_camera_takes_over_an_api_camera_of_the_same_id() {
    let dir = temp_dir();
    let http = free_tcp_port();
    let server = format!("[server]\nlisten = \"127.0.0.1:{http}\"\n\n{WEBRTC}");
    let v1 = format!("{server}{}", camera("a", ""));
    let gw = spawn_gateway_checked(dir.path(), &v1, http);
    let r = request(
        http,
        "POST",
        "/api/v1/cameras",
        &[("Content-Type", "application/json")],
        br#"{"id": "b", "url": "sim://b"}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let state_file = dir.path().join("cameras.api.toml");
    assert!(state_file.exists());

    let v2 = format!("{v1}{}", camera("b", "transport = \"udp\""));
    std::fs::write(dir.path().join("cameras.toml"), &v2).unwrap();
    send_signal(&gw, "HUP");
    let start = Instant::now();
    loop {
        let v = camera_json(http, "b");
        if v["source"] == "file" && v["transport"] == "udp" && v["state"] == "playing" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // No API camera is left to save.
    assert!(!state_file.exists());
}

#[test]
fn reload_leaves_a_webrtc_viewer_of_an_unchanged_camera_watching() {
    if viewer::in_loopback_netns("reload_leaves_a_webrtc_viewer_of_an_unchanged_camera_watching") {
        return;
    }
    let dir = temp_dir();
    let http = free_tcp_port();
    let server = format!("[server]\nlisten = \"127.0.0.1:{http}\"\n\n{WEBRTC}");
    let v1 = format!("{server}{}{}", camera("steady", ""), camera("other", ""));
    let gw = spawn_gateway_checked(dir.path(), &v1, http);
    wait_state(http, "steady", "playing", Duration::from_secs(20));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let v = rt.block_on(async {
        let v = viewer::Viewer::connect(http, "steady", "").await;
        v.wait_frames(25, Duration::from_secs(15)).await;
        v
    });
    // Every picture the viewer decodes is an arrival.
    let received = v.received.clone();
    let flow = FlowWatch::spawn(move |arrived, stop| {
        let mut seen = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let now = received.frames.load(std::sync::atomic::Ordering::Relaxed);
            for _ in seen..now {
                arrived();
            }
            seen = now;
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    flow.wait_for(10, Duration::from_secs(5));
    let t0 = Instant::now();

    // Remove one camera, add another, change nothing of steady (SIGHUP),
    // then change "fresh" through the file alone.
    let v2 = format!("{server}{}{}", camera("fresh", ""), camera("steady", ""));
    std::fs::write(dir.path().join("cameras.toml"), &v2).unwrap();
    send_signal(&gw, "HUP");
    wait_ids(http, &["steady", "fresh"], Duration::from_secs(10));
    wait_state(http, "fresh", "playing", Duration::from_secs(20));
    let v3 = format!(
        "{server}{}{}",
        camera("fresh", "transport = \"udp\""),
        camera("steady", "")
    );
    std::fs::write(dir.path().join("cameras.toml"), &v3).unwrap();
    wait_camera_transport(http, "fresh", "udp");
    std::thread::sleep(Duration::from_secs(1));

    let gap = flow.max_gap_since(t0);
    assert!(
        gap < Duration::from_secs(1),
        "the viewer of the unchanged camera saw a {gap:?} gap"
    );
    let (_, body) = http_get(http, "/api/v1/cameras/steady/sessions");
    assert!(body.contains("\"kind\":\"viewer\""), "{body}");
    drop(flow);
    rt.block_on(v.abandon());
}

/// Waits until camera `id` plays over `transport`.
fn wait_camera_transport(http: u16, id: &str, transport: &str) {
    let start = Instant::now();
    loop {
        let v = camera_json(http, id);
        if v["transport"] == transport && v["state"] == "playing" {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
