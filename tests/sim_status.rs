//! `camgate sim --status-listen`: `GET /sessions` counts the live RTSP
//! sessions of each simulated camera (set up or playing, over TCP or UDP)
//! and forgets them at TEARDOWN or when the connection ends; a gateway
//! pulling a sim camera shows as one session of it. What the cluster tests
//! use to tell which node pulls a camera. Everything on 127.0.0.1.

mod common;
#[path = "common/rtsp.rs"]
mod rtsp;

use std::net::TcpStream;
use std::time::Duration;

use common::*;
use rtsp::{udp_client_pair, RawRtsp};

/// The sim's live sessions by camera, from its status listener.
fn sessions(status: u16) -> serde_json::Value {
    let (code, body) = http_get(status, "/sessions");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Waits until the sim reports `expected`.
fn wait_sessions(status: u16, expected: serde_json::Value) {
    let mut last = serde_json::Value::Null;
    for _ in 0..200 {
        last = sessions(status);
        if last == expected {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sessions {last}, expected {expected}");
}

#[test]
fn sim_status_counts_live_sessions_by_camera() {
    let dir = temp_dir();
    let (rtsp_port, status) = (free_tcp_port(), free_tcp_port());
    let (listen, status_listen) = (
        format!("127.0.0.1:{rtsp_port}"),
        format!("127.0.0.1:{status}"),
    );
    let sim = spawn_camgate(
        dir.path(),
        "sim",
        &[
            "sim",
            "--listen",
            &listen,
            "--status-listen",
            &status_listen,
        ],
    );
    wait_for(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", rtsp_port)).is_ok()
            && TcpStream::connect(("127.0.0.1", status)).is_ok()
    });
    assert_eq!(
        sessions(status),
        serde_json::json!({}),
        "{}",
        sim.log_text()
    );
    let url = |path: &str| format!("rtsp://{listen}/{path}");

    // Two playing TCP sessions of `cam`, and a UDP session of `yard` set
    // up but not playing.
    let mut a = RawRtsp::connect(rtsp_port);
    a.play_tcp(&url("cam?audio=0"), false);
    let mut b = RawRtsp::connect(rtsp_port);
    b.play_tcp(&url("cam"), true);
    let (rtp, _rtcp) = udp_client_pair();
    let client_port = rtp.local_addr().unwrap().port();
    let mut c = RawRtsp::connect(rtsp_port);
    let r = c.request("DESCRIBE", &url("yard"), &[("Accept", "application/sdp")]);
    assert_eq!(r.status, 200, "{r:?}");
    let transport = format!(
        "RTP/AVP;unicast;client_port={client_port}-{}",
        client_port + 1
    );
    let r = c.request(
        "SETUP",
        &format!("{}/trackID=0", url("yard")),
        &[("Transport", &transport)],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        sessions(status),
        serde_json::json!({"cam": 2, "yard": 1}),
        "{}",
        sim.log_text()
    );

    // TEARDOWN ends the UDP session; a closed connection ends its session.
    let r = c.request("TEARDOWN", &url("yard"), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    wait_sessions(status, serde_json::json!({"cam": 2}));
    drop(a);
    wait_sessions(status, serde_json::json!({"cam": 1}));
    drop(b);
    wait_sessions(status, serde_json::json!({}));

    // A gateway pulling sim camera `gate` is one session of it, gone when
    // the gateway stops.
    let http = free_tcp_port();
    let mut gw = spawn_gateway(
        dir.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:{http}\"\n\n[[camera]]\nid = \"gate\"\n\
             url = \"{}\"\ntransport = \"udp\"\n",
            url("gate?audio=0")
        ),
        http,
    );
    wait_state(http, "gate", "playing", Duration::from_secs(20));
    assert_eq!(sessions(status), serde_json::json!({"gate": 1}));
    assert!(gw.terminate(Duration::from_secs(10)).is_some());
    wait_sessions(status, serde_json::json!({}));
}

#[test]
fn sim_status_listen_that_cannot_bind_fails_the_sim() {
    let dir = temp_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let listen = format!("127.0.0.1:{}", free_tcp_port());
    let mut sim = spawn_camgate(
        dir.path(),
        "sim",
        &["sim", "--listen", &listen, "--status-listen", &at],
    );
    let status = sim.child.wait().unwrap();
    assert!(!status.success());
    let log = sim.log_text();
    assert!(
        log.contains("--status-listen") && log.contains(&at),
        "{log}"
    );
}
