//! Issue 5, `/metrics` end to end: a real Prometheus server (the Debian
//! package, which scripts/test installs) scrapes the camgate binary every
//! second; its query API must show the job up and `camgate_camera_up` 1 for
//! a playing sim camera and 0 for a camera on a closed port. `promtool
//! check metrics` must find no problem in a scrape. Everything on
//! 127.0.0.1.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

fn require(path: &str) {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is missing: run the tests with scripts/test, which installs the prometheus package"
    );
}

/// The value of the single series `query` returns, if exactly one.
fn query(port: u16, query: &str) -> Option<f64> {
    let q: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
    // Prometheus may not be listening yet.
    std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let (status, body) = http_get(port, &format!("/api/v1/query?query={q}"));
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

/// Waits until `q` gives `want` (panics with the last answer after `limit`).
fn wait_query(port: u16, q: &str, want: f64, limit: Duration) {
    let start = Instant::now();
    loop {
        let got = query(port, q);
        if got == Some(want) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "Prometheus: {q} = {got:?}, expected {want} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_scrapes_camera_health() {
    require(PROMETHEUS);
    require(PROMTOOL);
    let dir = temp_dir();
    let http = free_tcp_port();
    // Nothing listens there.
    let closed = free_tcp_port();
    let toml = format!(
        r#"[server]
listen = "127.0.0.1:{http}"

[webrtc]
udp_listen = "127.0.0.1:0"

[[camera]]
id = "good"
url = "sim://good"

[[camera]]
id = "broken"
url = "rtsp://127.0.0.1:{closed}/stream"
"#
    );
    let _gw = spawn_gateway_checked(dir.path(), &toml, http);
    wait_state(http, "good", "playing", Duration::from_secs(20));
    wait_state(http, "broken", "unreachable", Duration::from_secs(20));

    // One scrape, checked by promtool.
    let (status, text) = http_get(http, "/metrics");
    assert_eq!(status, 200, "{text}");
    for series in [
        "camgate_camera_up{camera=\"good\"} 1",
        "camgate_camera_up{camera=\"broken\"} 0",
        "camgate_camera_state{camera=\"broken\",state=\"unreachable\"} 1",
        "camgate_viewers{camera=\"good\"} 0",
        "camgate_rtp_packets_lost_total{camera=\"good\"}",
        "camgate_frames_damaged_total{camera=\"good\",kind=\"missing_slices\"}",
        "camgate_framing_resyncs_total{camera=\"good\"}",
        "camgate_reconnects_total{camera=\"broken\",reason=\"unreachable\"}",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "camgate_tokio_tasks ",
    ] {
        assert!(text.contains(series), "{series:?} missing from\n{text}");
    }
    let mut promtool = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );

    // A real Prometheus scraping every second.
    let prom_port = free_tcp_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: camgate\n    static_configs:\n      - targets: ['127.0.0.1:{http}']\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("prometheus.log");
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start prometheus");
    let prometheus = Proc { child, log };
    let limit = Duration::from_secs(60);
    let start = Instant::now();
    while query(prom_port, "up{job=\"camgate\"}") != Some(1.0) {
        assert!(
            start.elapsed() < limit,
            "Prometheus never scraped camgate: {}",
            prometheus.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    wait_query(prom_port, "camgate_camera_up{camera=\"good\"}", 1.0, limit);
    wait_query(
        prom_port,
        "camgate_camera_up{camera=\"broken\"}",
        0.0,
        limit,
    );
    wait_query(
        prom_port,
        "camgate_camera_state{camera=\"broken\",state=\"playing\"}",
        0.0,
        limit,
    );
}
