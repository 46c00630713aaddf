//! Issue 14, the Prometheus alert rules in deploy/prometheus: `promtool
//! check rules` and `promtool test rules` (unit tests of each alert with
//! input series, deploy/prometheus/camgate-rules.test.yml) pass, every
//! alert has such a test; and a real Prometheus (the Debian package, which
//! scripts/test installs) scraping a real gateway loads the rules,
//! evaluates each without error, finds every metric and label they use in
//! camgate's `/metrics`, and raises CamgateCameraDown for a camera on a
//! closed port and nothing for a playing one. Everything on 127.0.0.1.

mod common;
#[path = "common/promql.rs"]
mod promql;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/prometheus")
        .join(file)
}

/// Runs promtool with `args`; panics with its output unless it succeeds.
fn promtool(args: &[&str]) -> String {
    promql::require(promql::PROMTOOL);
    let out = Command::new(promql::PROMTOOL)
        .args(args)
        .current_dir(deploy(""))
        .output()
        .expect("run promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{said}");
    said
}

/// The alert names of the rules file (`- alert: NAME` lines).
fn alert_names() -> Vec<String> {
    let rules = std::fs::read_to_string(deploy("camgate-rules.yml")).unwrap();
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect()
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let said = promtool(&["check", "rules", "camgate-rules.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");
    let said = promtool(&["test", "rules", "camgate-rules.test.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");

    // Every alert has a unit test in which it fires: an `alertname:` line
    // followed by a non-empty `exp_alerts:`.
    let tests = std::fs::read_to_string(deploy("camgate-rules.test.yml")).unwrap();
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let names = alert_names();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        let fires = lines
            .windows(2)
            .any(|w| w[0] == format!("alertname: {name}") && w[1] == "exp_alerts:");
        assert!(
            fires,
            "alert {name} has no unit test in camgate-rules.test.yml in which it fires"
        );
    }
}

#[test]
fn prometheus_evaluates_the_rules_on_a_real_gateway() {
    let dir = temp_dir();
    let http = free_tcp_port();
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
    // The keyframe interval is measured after two keyframes.
    wait_for(Duration::from_secs(20), || {
        http_get(http, "/metrics")
            .1
            .contains("camgate_keyframe_interval_seconds{camera=\"good\"}")
    });
    let (status, text) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    let exposition = promql::parse_exposition(&text);

    let rules_file = deploy("camgate-rules.yml");
    let prometheus = promql::Prometheus::start(dir.path(), http, Some(&rules_file));

    // The rules as Prometheus loaded them, once each was evaluated (health
    // "ok"; "err" is an evaluation error, e.g. a many-to-many match on
    // camgate's real series).
    let limit = Duration::from_secs(60);
    let start = Instant::now();
    let rules = loop {
        let rules: Vec<serde_json::Value> = prometheus
            .get("/api/v1/rules")
            .and_then(|v| v["data"]["groups"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let errors: Vec<String> = rules
            .iter()
            .filter(|r| r["health"] == "err")
            .map(|r| format!("{}: {}", r["name"], r["lastError"]))
            .collect();
        assert!(errors.is_empty(), "rules failed to evaluate: {errors:?}");
        if !rules.is_empty() && rules.iter().all(|r| r["health"] == "ok") {
            break rules;
        }
        assert!(
            start.elapsed() < limit,
            "Prometheus did not load and evaluate the rules: {rules:?}\n{}",
            prometheus.proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, alert_names(), "Prometheus loaded other rules");

    for rule in &rules {
        let name = rule["name"].as_str().unwrap();
        let query = rule["query"].as_str().unwrap();
        let problems = promql::check(query, &exposition);
        assert!(
            problems.is_empty(),
            "alert {name}: {problems:?} in\n{query}"
        );
        for key in ["summary", "description"] {
            let text = rule["annotations"][key].as_str().unwrap_or_default();
            assert!(text.len() > 10, "alert {name} has no {key}");
        }
        // An alert about one camera names it.
        if promql::uses(query).grouping.iter().any(|l| l == "camera")
            || rule["annotations"]["summary"]
                .as_str()
                .is_some_and(|s| s.contains("Camera"))
        {
            let description = rule["annotations"]["description"].as_str().unwrap();
            assert!(
                description.contains("{{ $labels.camera }}"),
                "alert {name} does not name the camera: {description}"
            );
        }
        assert!(
            matches!(
                rule["labels"]["severity"].as_str(),
                Some("critical" | "warning")
            ),
            "alert {name} has no severity"
        );
    }

    // The camera on a closed port is down (pending for its minute); the
    // playing one raises nothing.
    let start = Instant::now();
    loop {
        let alerts = prometheus
            .get("/api/v1/alerts")
            .and_then(|v| v["data"]["alerts"].as_array().cloned())
            .unwrap_or_default();
        let about_good: Vec<_> = alerts
            .iter()
            .filter(|a| a["labels"]["camera"] == "good")
            .collect();
        assert!(
            about_good.is_empty(),
            "alerts about a playing camera: {about_good:?}"
        );
        let down = alerts.iter().any(|a| {
            a["labels"]["alertname"] == "CamgateCameraDown" && a["labels"]["camera"] == "broken"
        });
        if down && start.elapsed() > Duration::from_secs(5) {
            break;
        }
        assert!(
            start.elapsed() < limit,
            "no CamgateCameraDown for the camera on a closed port: {alerts:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
