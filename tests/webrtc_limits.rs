//! WebRTC viewer limits end to end, inside a network namespace with only
//! loopback: `max_viewers_per_camera` and `max_viewers` hold against offers
//! sent all at once, places come back when viewers leave, and an answer
//! that would carry no ICE candidate is refused with the reason.

mod common;
#[path = "common/viewer.rs"]
mod viewer;

use std::time::Duration;

use common::*;
use viewer::{in_loopback_netns, runtime, Viewer};

fn viewers(http: u16, camera: &str) -> usize {
    let (status, body) = http_get(http, &format!("/api/v1/cameras/{camera}/sessions"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .or_else(|| v["sessions"].as_array())
        .map(|list| list.iter().filter(|s| s["kind"] == "viewer").count())
        .unwrap_or(0)
}

/// Sends `n` offers for `camera` at the same moment; returns the viewers
/// answered 201 and the other replies.
async fn offers_at_once(http: u16, camera: &str, n: usize) -> (Vec<Viewer>, Vec<Reply>) {
    let mut pending = Vec::new();
    for _ in 0..n {
        pending.push(Viewer::prepare().await);
    }
    let posts: Vec<_> = pending
        .into_iter()
        .map(|p| {
            let camera = camera.to_string();
            tokio::spawn(async move { p.post(http, &camera, "").await })
        })
        .collect();
    let mut answered = Vec::new();
    let mut refused = Vec::new();
    for post in posts {
        match post.await.unwrap() {
            Ok(v) => answered.push(v),
            Err(reply) => refused.push(reply),
        }
    }
    (answered, refused)
}

fn assert_refused(replies: &[Reply], limit: &str) {
    for r in replies {
        assert_eq!(r.status, 503, "{r:?}");
        assert!(r.body.contains(limit), "{limit}: {}", r.body);
        assert_eq!(r.header("retry-after").as_deref(), Some("3"), "{r:?}");
    }
}

#[test]
fn concurrent_offers_stay_within_max_viewers_per_camera_and_max_viewers() {
    if in_loopback_netns("concurrent_offers_stay_within_max_viewers_per_camera_and_max_viewers") {
        return;
    }
    let dir = temp_dir();
    let http = free_tcp_port();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{http}"
max_whep_negotiations = 64

[webrtc]
udp_listen = "127.0.0.1:0"
max_viewers = 3
max_viewers_per_camera = 2

[[camera]]
id = "a"
url = "sim://a"

[[camera]]
id = "b"
url = "sim://b"
"#
    );
    let mut gw = spawn_gateway(dir.path(), &toml, http);
    wait_state(http, "a", "playing", Duration::from_secs(15));
    wait_state(http, "b", "playing", Duration::from_secs(15));
    runtime().block_on(async {
        // Twelve offers for camera a at once: two places.
        let (mut on_a, refused) = offers_at_once(http, "a", 12).await;
        assert_eq!(on_a.len(), 2, "{refused:?}");
        assert_refused(&refused, "max_viewers_per_camera");
        // Twelve for camera b: one place left of max_viewers = 3.
        let (on_b, refused) = offers_at_once(http, "b", 12).await;
        assert_eq!(on_b.len(), 1, "{refused:?}");
        assert_refused(&refused, "(max_viewers)");
        // Those answered really play.
        for v in on_a.iter().chain(&on_b) {
            v.wait_frames(5, Duration::from_secs(10)).await;
        }
        assert_eq!((viewers(http, "a"), viewers(http, "b")), (2, 1));

        // A viewer leaving gives its place back: camera b may take it.
        assert_eq!(on_a.pop().unwrap().delete().await, 200);
        let start = std::time::Instant::now();
        while viewers(http, "a") != 1 {
            assert!(start.elapsed() < Duration::from_secs(5), "viewer not ended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (more_b, refused) = offers_at_once(http, "b", 4).await;
        assert_eq!(more_b.len(), 1, "{refused:?}");
        assert_refused(&refused, "max_viewers");
        for v in on_a.into_iter().chain(on_b).chain(more_b) {
            v.delete().await;
        }
    });
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

/// `udp_listen = 0.0.0.0` in a namespace with only loopback: ICE finds no
/// address to offer (loopback is offered only when `udp_listen` is a
/// loopback address), so there is no answer a viewer could use.
#[test]
fn an_answer_without_candidates_is_refused_and_leaves_nothing_behind() {
    if in_loopback_netns("an_answer_without_candidates_is_refused_and_leaves_nothing_behind") {
        return;
    }
    let dir = temp_dir();
    let http = free_tcp_port();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{http}"

[webrtc]
udp_listen = "0.0.0.0:0"
max_viewers = 1

[[camera]]
id = "demo"
url = "sim://demo"
"#
    );
    let mut gw = spawn_gateway(dir.path(), &toml, http);
    wait_state(http, "demo", "playing", Duration::from_secs(15));
    runtime().block_on(async {
        // Twice: with max_viewers = 1, the second shows that the first
        // gave its place back.
        for _ in 0..2 {
            let reply = match Viewer::prepare().await.post(http, "demo", "").await {
                Ok(v) => panic!("answered without candidates: {}", v.answer),
                Err(reply) => reply,
            };
            assert_eq!(reply.status, 503, "{reply:?}");
            assert!(reply.body.contains("no ICE candidate"), "{}", reply.body);
            assert!(reply.body.contains("udp_listen"), "{}", reply.body);
            assert_eq!(viewers(http, "demo"), 0);
        }
    });
    let (_, metrics) = http_get(http, "/metrics");
    assert!(
        metrics.contains("camgate_viewers{camera=\"demo\"} 0"),
        "{metrics}"
    );
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}
