//! The monitor dashboard: `GET /api/v1/health` over HTTP, and the page at
//! `/` in Debian's Chromium (headless, inside a loopback-only network
//! namespace) with one healthy sim camera and one camera at a closed port:
//! the lights, reasons, preview, pipeline and SDP inspector are read from
//! the page itself, and a screenshot is saved to `target/dashboard.png`.

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/viewer.rs"]
mod viewer;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use browser::Browser;
use common::*;
use serde_json::Value;
use viewer::{in_loopback_netns, runtime};

/// In the failing camera's URL: it must never reach the API or the page.
const PASSWORD: &str = "hunter2-dashboard";

/// A healthy sim camera `demo` (with an RTP output to `rtp` if given) and
/// a camera `broken` at a closed port.
fn toml(http: u16, closed: u16, rtp: Option<u16>) -> String {
    let rtp_out = rtp.map_or(String::new(), |port| {
        format!("[[camera.rtp_out]]\ndestination = \"127.0.0.1:{port}\"\n")
    });
    format!(
        r#"
[server]
listen = "127.0.0.1:{http}"

[webrtc]
udp_listen = "127.0.0.1:0"

[[camera]]
id = "demo"
url = "sim://demo"
{rtp_out}

[[camera]]
id = "broken"
url = "rtsp://admin:{PASSWORD}@127.0.0.1:{closed}/x"
"#
    )
}

fn health(http: u16) -> Vec<Value> {
    let (status, body) = http_get(http, "/api/v1/health");
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(PASSWORD), "a password in {body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls `/api/v1/health` until `ok` holds for it.
fn wait_health(http: u16, limit: Duration, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let h = health(http);
        if ok(&h) {
            return h;
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {h:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn light_of<'a>(h: &'a [Value], camera: &str) -> &'a Value {
    h.iter()
        .find(|c| c["camera"] == camera)
        .unwrap_or_else(|| panic!("no {camera} in {h:?}"))
}

#[test]
fn health_api_lights_reasons_and_series() {
    let dir = temp_dir();
    let http = free_tcp_port();
    let closed = free_tcp_port();
    let mut gw = spawn_gateway(dir.path(), &toml(http, closed, None), http);
    let h = wait_health(http, Duration::from_secs(20), |h| {
        light_of(h, "demo")["light"] == "green"
            && light_of(h, "broken")["light"] == "red"
            && light_of(h, "demo")["fps"].as_array().unwrap().len() >= 2
    });
    // In configuration order.
    let ids: Vec<&str> = h.iter().map(|c| c["camera"].as_str().unwrap()).collect();
    assert_eq!(ids, ["demo", "broken"]);

    let demo = light_of(&h, "demo");
    let reason = demo["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("healthy: ") && reason.contains("fps") && reason.contains("bit/s"),
        "{reason}"
    );
    assert_eq!(demo["state"], "playing");
    assert_eq!(demo["interval_seconds"], 2.0);
    let last = |key: &str| {
        demo[key]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_f64()
            .unwrap()
    };
    assert!((20.0..=30.0).contains(&last("fps")), "{demo}");
    assert!(last("bitrate_bps") > 100_000.0, "{demo}");
    assert_eq!(last("lost"), 0.0);

    let broken = light_of(&h, "broken");
    let reason = broken["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("down: unreachable: cannot connect to 127.0.0.1:")
            && reason.contains("refused"),
        "{reason}"
    );

    // One camera; an unknown one.
    let (status, body) = http_get(http, "/api/v1/health/demo");
    assert_eq!(status, 200, "{body}");
    let one: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(one["camera"], "demo");
    assert!(one["light"].is_string() && one["bitrate_bps"].is_array());
    let (status, body) = http_get(http, "/api/v1/health/nope");
    assert_eq!(status, 404, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"], "no camera with id \"nope\"");

    // The series keep a minute at most: they only grow here.
    std::thread::sleep(Duration::from_secs(4));
    let later = health(http);
    let n = |h: &Value| h["fps"].as_array().unwrap().len();
    assert!(n(light_of(&later, "demo")) > n(demo), "{later:?}");
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

/// The expression for the element `selector` inside camera `camera`'s tile.
fn tile(camera: &str, selector: &str) -> String {
    format!("document.querySelector('.tile[data-camera=\"{camera}\"] {selector}')")
}

#[test]
fn chromium_shows_the_dashboard_with_lights_preview_pipeline_and_sdp() {
    if in_loopback_netns("chromium_shows_the_dashboard_with_lights_preview_pipeline_and_sdp") {
        return;
    }
    let dir = temp_dir();
    let http = free_tcp_port();
    let closed = free_tcp_port();
    // The RTP consumer's ports, bound so its packets are received.
    let rtp = free_rtp_port();
    let _sinks: Vec<std::net::UdpSocket> = (rtp..rtp + 4)
        .map(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).unwrap())
        .collect();
    let mut gw = spawn_gateway(dir.path(), &toml(http, closed, Some(rtp)), http);
    wait_state(http, "demo", "playing", Duration::from_secs(15));
    wait_state(http, "broken", "unreachable", Duration::from_secs(15));
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&out).unwrap();
    runtime().block_on(async {
        let mut b = Browser::launch(dir.path()).await;
        b.navigate(&format!("http://127.0.0.1:{http}/")).await;
        b.wait_for(
            "document.querySelectorAll('.tile').length === 2",
            Duration::from_secs(10),
        )
        .await;

        // The lights and reasons, as the page shows them.
        let light = |camera: &str| format!("{}?.dataset.light", tile(camera, ".light"));
        let reason = |camera: &str| format!("{}?.textContent", tile(camera, ".reason"));
        let limit = Duration::from_secs(20);
        b.wait_for(&format!("{} === 'green'", light("demo")), limit)
            .await;
        b.wait_for(&format!("{} === 'red'", light("broken")), limit)
            .await;
        let healthy = b.eval(&reason("demo")).await;
        let healthy = healthy.as_str().unwrap();
        assert!(
            healthy.starts_with("healthy: ") && healthy.contains("fps"),
            "{healthy}"
        );
        let down = b.eval(&reason("broken")).await;
        let down = down.as_str().unwrap();
        assert!(
            down.starts_with("down: unreachable") && down.contains("Connection refused"),
            "{down}"
        );
        // The summary counts them.
        let summary = b
            .eval("document.getElementById('summary').textContent")
            .await;
        assert!(
            summary
                .as_str()
                .unwrap()
                .contains("1 healthy, 0 degraded, 1 down"),
            "{summary}"
        );

        // The healthy camera's preview plays: decoded frames grow.
        let decoded =
            "(async () => { const p = window.camgatePlayers.find((p) => p.camera === 'demo'); \
                       const s = p && await p.videoStats(); return s ? s.framesDecoded : 0; })()";
        let f0 = b
            .wait_for(decoded, Duration::from_secs(15))
            .await
            .as_f64()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let f1 = b.eval(decoded).await.as_f64().unwrap();
        assert!(f1 > f0 + 25.0, "frames decoded {f0} → {f1} in 2 s");

        // Sparklines drawn from the health series.
        b.wait_for(
            &format!(
                "{}?.dataset.points >= 2",
                tile("demo", ".spark[data-series=\"fps\"]")
            ),
            limit,
        )
        .await;
        assert!(
            b.eval(&format!(
                "{}.querySelectorAll('polyline').length",
                tile("demo", ".spark[data-series=\"bitrate_bps\"]")
            ))
            .await
                == 1
        );

        // The pipeline: camera → hub → this page's own viewer, each link
        // green while media flows.
        let own =
            "window.camgatePlayers.find((p) => p.camera === 'demo').location.split('/').pop()";
        let sid = b.wait_for(own, limit).await;
        let sid = sid.as_str().unwrap().to_string();
        let viewer = tile(
            "demo",
            &format!(".pipe .session[data-kind=\"viewer\"][data-session=\"{sid}\"]"),
        );
        b.wait_for(&format!("{viewer}?.dataset.flow === 'flow'"), limit)
            .await;
        b.wait_for(
            &format!(
                "{}?.dataset.flow === 'flow'",
                tile(
                    "demo",
                    &format!(".pipe .session-link[data-session=\"{sid}\"]")
                )
            ),
            limit,
        )
        .await;
        assert_eq!(
            b.eval(&format!(
                "{}.dataset.flow",
                tile("demo", ".pipe .camera-link")
            ))
            .await,
            "flow"
        );
        let text = b.eval(&format!("{viewer}.textContent")).await;
        let text = text.as_str().unwrap();
        assert!(
            text.contains("viewer") && text.contains("this page") && text.contains("pkts"),
            "{text}"
        );
        // The RTP consumer too.
        b.wait_for(
            &format!(
                "{}?.dataset.flow === 'flow'",
                tile("demo", ".pipe .session[data-kind=\"rtp\"]")
            ),
            limit,
        )
        .await;
        // The broken camera's link is red.
        assert_eq!(
            b.eval(&format!(
                "{}.dataset.flow",
                tile("broken", ".pipe .camera-link")
            ))
            .await,
            "down"
        );

        // Nothing on the page shows the camera's password.
        let html = b.eval("document.documentElement.outerHTML").await;
        assert!(!html.as_str().unwrap().contains(PASSWORD));

        // Let the sparklines fill a little, then the picture.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let shot = out.join("dashboard.png");
        b.screenshot(&shot).await;
        eprintln!("screenshot: {}", shot.display());

        // Clicking the viewer opens the SDP inspector, offer and answer
        // side by side.
        b.eval(&format!(
            "{viewer}.dispatchEvent(new MouseEvent('click', {{ bubbles: true }}))"
        ))
        .await;
        assert_eq!(
            b.eval("document.getElementById('inspector').hidden").await,
            false
        );
        assert_eq!(
            b.eval("document.getElementById('inspector').dataset.session")
                .await,
            sid.as_str()
        );
        let offer = b
            .eval("document.querySelector('#inspector pre.offer').textContent")
            .await;
        let answer = b
            .eval("document.querySelector('#inspector pre.answer').textContent")
            .await;
        let (offer, answer) = (offer.as_str().unwrap(), answer.as_str().unwrap());
        assert!(
            offer.starts_with("v=0") && offer.contains("m=video"),
            "{offer}"
        );
        assert!(
            answer.starts_with("v=0") && answer.contains("a=candidate"),
            "{answer}"
        );
        let shot = out.join("dashboard-inspector.png");
        b.screenshot(&shot).await;
        eprintln!("screenshot: {}", shot.display());

        // One camera's page shows the same light, pipeline and inspector.
        b.navigate(&format!("http://127.0.0.1:{http}/cameras/demo"))
            .await;
        b.wait_for(&format!("{} === 'green'", light("demo")), limit)
            .await;
        b.wait_for(
            &format!(
                "{}?.dataset.flow === 'flow'",
                tile("demo", ".pipe .session[data-kind=\"viewer\"]")
            ),
            limit,
        )
        .await;
        let shot = out.join("dashboard-camera.png");
        b.screenshot(&shot).await;
        eprintln!("screenshot: {}", shot.display());
    });
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}
