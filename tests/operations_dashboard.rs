//! Issue 14, the Grafana dashboard deploy/grafana/camgate.json: every
//! metric name and label its queries (panels and template variables) use
//! exists in a real gateway's `/metrics` (a sim camera with an `rtp_out`
//! consumer, and a camera on a closed port); it shows what the issue asks
//! for; and a real Prometheus scraping that gateway accepts every panel's
//! query, with its Grafana variables filled in, and has data for it.
//! Everything on 127.0.0.1.

mod common;
#[path = "common/promql.rs"]
mod promql;

use std::time::{Duration, Instant};

use common::*;

fn dashboard() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/camgate.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).expect("deploy/grafana/camgate.json is not JSON")
}

/// Every panel query (`expr`), with the panel's title, anywhere in `v`.
fn exprs(v: &serde_json::Value, title: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            let title = map.get("title").and_then(|t| t.as_str()).unwrap_or(title);
            for (k, v) in map {
                match (k.as_str(), v.as_str()) {
                    ("expr", Some(e)) => out.push((title.to_owned(), e.to_owned())),
                    _ => exprs(v, title, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| exprs(i, title, out)),
        _ => {}
    }
}

/// The Grafana variables filled in as a user would: every gateway, camera
/// `good`.
fn fill(expr: &str) -> String {
    expr.replace("$__rate_interval", "15s")
        .replace("$instance", ".*")
        .replace("$camera", "good")
}

#[test]
fn dashboard_queries_exist_in_metrics_and_have_data() {
    let d = dashboard();
    assert_eq!(d["uid"], "camgate");
    let mut queries = Vec::new();
    exprs(&d["panels"], "", &mut queries);
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let variables = d["templating"]["list"].as_array().unwrap();

    let dir = temp_dir();
    let http = free_tcp_port();
    let rtp = free_rtp_port();
    let closed = free_tcp_port();
    let consumer = FlowWatch::udp(rtp);
    let toml = format!(
        r#"[server]
listen = "127.0.0.1:{http}"

[webrtc]
udp_listen = "127.0.0.1:0"

[[camera]]
id = "good"
url = "sim://good"

[[camera.rtp_out]]
destination = "127.0.0.1:{rtp}"

[[camera]]
id = "broken"
url = "rtsp://127.0.0.1:{closed}/stream"
"#
    );
    let _gw = spawn_gateway_checked(dir.path(), &toml, http);
    wait_state(http, "good", "playing", Duration::from_secs(20));
    consumer.wait_for(50, Duration::from_secs(10));
    // The keyframe interval is measured after two keyframes.
    wait_for(Duration::from_secs(20), || {
        http_get(http, "/metrics")
            .1
            .contains("camgate_keyframe_interval_seconds{camera=\"good\"}")
    });
    let prometheus = promql::Prometheus::start(dir.path(), http, None);
    let (status, text) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    let exposition = promql::parse_exposition(&text);
    assert!(
        text.contains("camgate_rtp_consumers{camera=\"good\"} 1"),
        "{text}"
    );

    // Every metric and label of every panel query exists.
    let mut used = std::collections::BTreeSet::new();
    for (title, expr) in &queries {
        let uses = promql::uses(expr);
        assert!(
            !uses.selectors.is_empty(),
            "panel {title:?}: no metric in {expr}"
        );
        used.extend(uses.selectors.iter().filter_map(|s| s.metric.clone()));
        let problems = promql::check(expr, &exposition);
        assert!(
            problems.is_empty(),
            "panel {title:?}: {problems:?} in\n{expr}"
        );
    }
    // And of every template variable: label_values(SELECTOR, LABEL).
    for v in variables.iter().filter(|v| v["type"] == "query") {
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: not label_values(): {q}", v["name"]));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let problems = promql::check(selector, &exposition);
        assert!(problems.is_empty(), "variable {}: {problems:?}", v["name"]);
        let metric = promql::uses(selector).selectors[0].metric.clone().unwrap();
        let label = label.trim();
        assert!(
            exposition[&metric].contains(label) || label == "instance",
            "variable {}: {metric} has no label {label:?}",
            v["name"]
        );
    }
    // What the issue asks of it.
    for metric in [
        "camgate_camera_up",
        "camgate_camera_state",
        "camgate_rtp_packets_lost_total",
        "camgate_frames_damaged_total",
        "camgate_received_bytes_total",
        "camgate_video_frames_per_second",
        "camgate_keyframe_interval_seconds",
        "camgate_rtp_jitter_seconds",
        "camgate_reconnects_total",
        "camgate_viewers",
        "camgate_rtp_consumers",
    ] {
        assert!(
            used.contains(metric),
            "the dashboard does not show {metric}"
        );
    }
    for (what, needle) in [
        (
            "damage by kind",
            "sum by (kind) (rate(camgate_frames_damaged_total",
        ),
        (
            "reconnects by reason",
            "sum by (reason) (increase(camgate_reconnects_total",
        ),
    ] {
        assert!(
            queries.iter().any(|(_, e)| e.contains(needle)),
            "the dashboard does not show {what}"
        );
    }

    // A real Prometheus accepts every query and has data for it (those
    // that keep only values above 0 may be empty on a healthy camera).
    prometheus.wait_scraped(Duration::from_secs(60));
    let start = Instant::now();
    let mut pending: Vec<&(String, String)> = queries.iter().collect();
    while !pending.is_empty() {
        let mut empty = Vec::new();
        for q in pending {
            let (title, expr) = q;
            let answer = prometheus.query(&fill(expr)).expect("Prometheus answers");
            assert_eq!(
                answer["status"], "success",
                "panel {title:?}: Prometheus refuses {expr}: {answer}"
            );
            let result = answer["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if result.is_empty() && !expr.trim_end().ends_with("> 0") {
                empty.push(q);
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30) || empty.is_empty(),
            "no data for {:?}",
            empty
        );
        pending = empty;
        std::thread::sleep(Duration::from_millis(500));
    }
}
