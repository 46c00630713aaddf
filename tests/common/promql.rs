//! What a PromQL expression asks of the metrics it reads, for the tests of
//! deploy/ (alert rules, Grafana dashboard): the metric names it selects
//! and the label names it matches on or groups by, checked against what a
//! real camgate scrape exposes. A small tokenizer, not a parser: strings,
//! durations in brackets, numbers, functions, keywords and Grafana
//! variables (`$camera`, `${camera}`, `$__rate_interval`) are skipped.
//! Include with `#[path = "common/promql.rs"] mod promql;`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

/// Series names (as exposed: `x_bucket`, `x_sum`, `x_count` for
/// histograms and summaries) and the label names each carries.
pub type Exposition = BTreeMap<String, BTreeSet<String>>;

/// Parses Prometheus text exposition: every series line's name and its
/// label names.
pub fn parse_exposition(text: &str) -> Exposition {
    let mut out = Exposition::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = out.entry(line[..name_end].to_owned()).or_default();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.rfind('}').unwrap_or(line.len())];
            for (name, _) in label_pairs(body) {
                labels.insert(name);
            }
        }
    }
    out
}

/// `a="x",b="y"`: (name, value) pairs, honouring escapes in values.
fn label_pairs(body: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if name.is_empty() || chars.next().is_none() {
            return pairs;
        }
        let mut value = String::new();
        if chars.next() == Some('"') {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        }
        pairs.push((name.trim().to_owned(), value));
    }
}

/// One vector selector of an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The metric name (`None` for `{__name__=~"..."}` forms).
    pub metric: Option<String>,
    /// Label names its matchers use.
    pub labels: Vec<String>,
}

/// What an expression reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Uses {
    pub selectors: Vec<Selector>,
    /// Label names of `by`, `without`, `on`, `ignoring`, `group_left`,
    /// `group_right` clauses.
    pub grouping: Vec<String>,
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
    "start",
    "end",
    // Aggregations, whose `by (...)` may come before their arguments.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names and label names `expr` uses.
pub fn uses(expr: &str) -> Uses {
    let chars: Vec<char> = expr.chars().collect();
    let mut uses = Uses::default();
    let mut i = 0;
    // The last identifier was a grouping keyword: the next `(...)` lists
    // label names.
    let mut grouping_next = false;
    let skip_ws = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '#' {
            // A comment, to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '$' {
            // A Grafana variable: $name or ${name...}.
            i += 1;
            if chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
            }
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            // A number or duration (1e3, 0x1f, 5m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c == '{' {
            // A selector without a metric name.
            let (labels, next) = matchers(&chars, i);
            uses.selectors.push(Selector {
                metric: None,
                labels,
            });
            i = next;
        } else if ident_start(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = skip_ws(i);
            if GROUPING.contains(&word.as_str()) {
                // `group_left` may come without a list.
                grouping_next = chars.get(after) == Some(&'(');
            } else if KEYWORDS.contains(&word.as_str()) {
            } else if chars.get(after) == Some(&'(') {
                // A function or an aggregation (whose `by` may follow
                // its arguments).
            } else {
                let (labels, next) = if chars.get(after) == Some(&'{') {
                    matchers(&chars, after)
                } else {
                    (Vec::new(), i)
                };
                uses.selectors.push(Selector {
                    metric: Some(word),
                    labels,
                });
                i = next;
            }
        } else if c == '(' && grouping_next {
            grouping_next = false;
            i += 1;
            let start = i;
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            let list: String = chars[start..i.min(chars.len())].iter().collect();
            uses.grouping.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
            i += 1;
        } else {
            i += 1;
        }
    }
    uses
}

/// Skips the string starting at `i` (its quote); returns the index after it.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The label names of the matchers in `{...}` at `i`; returns the index
/// after the `}`.
fn matchers(chars: &[char], mut i: usize) -> (Vec<String>, usize) {
    let mut labels = Vec::new();
    i += 1;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        if i >= chars.len() || chars[i] == '}' {
            return (labels, i + 1);
        }
        let start = i;
        while i < chars.len() && ident_char(chars[i]) {
            i += 1;
        }
        labels.push(chars[start..i].iter().collect());
        // The operator, then the value.
        while i < chars.len() && !matches!(chars[i], '"' | '\'' | '`' | '}') {
            i += 1;
        }
        if i < chars.len() && chars[i] != '}' {
            i = skip_string(chars, i);
        }
    }
}

/// Series Prometheus makes itself for every target, and the target labels
/// it adds to every series.
const PROMETHEUS_SERIES: &[&str] = &[
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];
const TARGET_LABELS: &[&str] = &["job", "instance"];

/// The problems with `expr` against `exposition`: a metric name nothing
/// exposes, a label a metric does not carry, a grouping label none of the
/// expression's metrics carries. Empty when all is well.
pub fn check(expr: &str, exposition: &Exposition) -> Vec<String> {
    let uses = uses(expr);
    let mut problems = Vec::new();
    let mut carried: BTreeSet<&str> = TARGET_LABELS.iter().copied().collect();
    for s in &uses.selectors {
        let Some(metric) = &s.metric else {
            problems.push(format!("a selector without a metric name: {:?}", s.labels));
            continue;
        };
        if PROMETHEUS_SERIES.contains(&metric.as_str()) {
            for l in &s.labels {
                if !TARGET_LABELS.contains(&l.as_str()) {
                    problems.push(format!("{metric} has no label {l:?}"));
                }
            }
            continue;
        }
        let Some(labels) = exposition.get(metric) else {
            problems.push(format!("no metric {metric} in /metrics"));
            continue;
        };
        carried.extend(labels.iter().map(String::as_str));
        for l in &s.labels {
            if l != "__name__" && !labels.contains(l) && !TARGET_LABELS.contains(&l.as_str()) {
                problems.push(format!("{metric} has no label {l:?} (it has {labels:?})"));
            }
        }
    }
    for l in &uses.grouping {
        if !carried.contains(l.as_str()) {
            problems.push(format!("no metric of the expression has label {l:?}"));
        }
    }
    problems
}

/// A real Prometheus (the Debian package, which scripts/test installs)
/// scraping camgate on 127.0.0.1:`target` every second as job `camgate`,
/// evaluating `rules` (if any) every second, on 127.0.0.1:`port`.
pub struct Prometheus {
    pub proc: crate::common::Proc,
    pub port: u16,
}

pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const PROMTOOL: &str = "/usr/bin/promtool";

/// Fails (never skips) when a Prometheus program is missing.
pub fn require(path: &str) {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is missing: run the tests with scripts/test, which installs the prometheus package"
    );
}

impl Prometheus {
    pub fn start(
        dir: &std::path::Path,
        target: u16,
        rules: Option<&std::path::Path>,
    ) -> Prometheus {
        require(PROMETHEUS);
        let port = crate::common::free_tcp_port();
        let config = dir.join("prometheus.yml");
        let rules = rules
            .map(|r| format!("rule_files:\n  - {}\n", r.display()))
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rules}\
                 scrape_configs:\n  - job_name: camgate\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let log = dir.join("prometheus.log");
        let child = std::process::Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        Prometheus {
            proc: crate::common::Proc { child, log },
            port,
        }
    }

    /// GET `path` as JSON, `None` until Prometheus answers 200.
    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let (status, body) = crate::common::http_get(self.port, path);
        if status != 200 {
            return None;
        }
        serde_json::from_str(&body).ok()
    }

    /// An instant query: Prometheus's whole answer, whatever the status
    /// (`None` until it answers at all).
    pub fn query(&self, query: &str) -> Option<serde_json::Value> {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let q: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
        let (_, body) = crate::common::http_get(self.port, &format!("/api/v1/query?query={q}"));
        serde_json::from_str(&body).ok()
    }

    /// Waits until Prometheus has scraped camgate a few times.
    pub fn wait_scraped(&self, limit: std::time::Duration) {
        let start = std::time::Instant::now();
        loop {
            let samples = self
                .query("count_over_time(up{job=\"camgate\"}[1m])")
                .and_then(|v| {
                    v["data"]["result"][0]["value"][1]
                        .as_str()?
                        .parse::<f64>()
                        .ok()
                });
            if samples.is_some_and(|n| n >= 5.0) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "Prometheus did not scrape camgate: {}",
                self.proc.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_finds_metrics_and_labels() {
        let u = uses(
            r#"sum by (camera, kind) (rate(camgate_frames_damaged_total{camera=~"$camera", kind!="x"}[$__rate_interval]))
               / on (job, instance, camera) group_left sum by (job, instance, camera) (rate(camgate_frames_received_total[5m]) > 0) > 0.01
               and histogram_quantile(0.9, rate(x_bucket{le="+Inf"}[1m])) unless ${foo} # comment: not_a_metric"#,
        );
        let names: Vec<_> = u
            .selectors
            .iter()
            .map(|s| s.metric.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "camgate_frames_damaged_total",
                "camgate_frames_received_total",
                "x_bucket"
            ]
        );
        assert_eq!(u.selectors[0].labels, ["camera", "kind"]);
        assert_eq!(u.selectors[2].labels, ["le"]);
        assert_eq!(
            u.grouping,
            ["camera", "kind", "job", "instance", "camera", "job", "instance", "camera"]
        );
    }

    #[test]
    fn unknown_names_and_labels_are_problems() {
        let e = parse_exposition("# HELP a x\na_total{camera=\"c\",kind=\"k\"} 1\nb 2\n");
        assert!(check("sum by (kind) (rate(a_total{camera=\"c\"}[5m])) + b", &e).is_empty());
        assert_eq!(check("a_totl", &e), ["no metric a_totl in /metrics"]);
        assert_eq!(check("b{camera=\"c\"}", &e).len(), 1);
        assert_eq!(check("sum by (reason) (a_total)", &e).len(), 1);
        assert!(check("up{job=\"camgate\"}", &e).is_empty());
    }
}
