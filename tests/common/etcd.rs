//! A real etcd for the cluster tests: Debian's etcd 3.4 (`/usr/bin/etcd`,
//! package etcd-server; `etcdctl` from etcd-client) as a one-member cluster
//! on loopback, with free client and peer ports and a temporary data
//! directory; stopped (SIGTERM) and started again on the same data and
//! ports, killed (SIGKILL), asked with `etcdctl`, and its Prometheus
//! metrics read to measure writes per second. Include it with
//! `#[path = "common/etcd.rs"] mod etcd;`. Only 127.0.0.1.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The etcd server binary.
pub const ETCD: &str = "/usr/bin/etcd";
/// Its command-line client (API v3).
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// How long etcd may take to answer its health check after a start.
const START_LIMIT: Duration = Duration::from_secs(30);

/// One etcd member on 127.0.0.1; killed and its data removed on drop.
pub struct Etcd {
    /// Port of the client URL (`http://127.0.0.1:PORT`), kept across
    /// restarts so clients reconnect to the same endpoint.
    pub client_port: u16,
    /// Port of the peer URL; the member's identity in its own data, so it
    /// must not change across restarts either.
    pub peer_port: u16,
    /// Holds the data directory (`data/`) and the log (`etcd.log`).
    dir: tempfile::TempDir,
    /// The running process, `None` while stopped.
    child: Option<Child>,
}

impl Etcd {
    /// Starts a new member on free ports with an empty data directory and
    /// waits until it is healthy. Panics, naming the package to install,
    /// when etcd is missing.
    pub fn start() -> Etcd {
        assert!(
            Path::new(ETCD).exists(),
            "{ETCD} is missing: install Debian's etcd-server (scripts/test does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("camgate-etcd-")
            .tempdir()
            .expect("temporary directory for etcd");
        let client_port = free_port();
        let mut peer_port = free_port();
        while peer_port == client_port {
            peer_port = free_port();
        }
        let mut etcd = Etcd {
            client_port,
            peer_port,
            dir,
            child: None,
        };
        etcd.start_again();
        etcd
    }

    /// The client endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// What etcd logged (warnings and errors; every start appends).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// Starts etcd on the data directory and ports it had (after
    /// [`Etcd::stop`] or [`Etcd::kill`]) and waits until it is healthy.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "etcd is already running");
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = self.dir.path().join("etcd.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("etcd log file");
        let child = Command::new(ETCD)
            .args(["--name", "default", "--data-dir"])
            .arg(self.data_dir())
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-level", "warn", "--log-outputs"])
            .arg(&log)
            .env_remove("ETCD_NAME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let start = Instant::now();
        while !self.healthy() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!("etcd exited with {status}:\n{}", self.log_text());
            }
            assert!(
                start.elapsed() < START_LIMIT,
                "etcd not healthy after {START_LIMIT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// Whether etcd answers `GET /health` with `{"health":"true"}`.
    pub fn healthy(&self) -> bool {
        matches!(
            http_get(self.client_port, "/health"),
            Some((200, body)) if body.contains(r#""health":"true""#)
        )
    }

    /// SIGTERM, as an orderly shutdown; waits until it exited (SIGKILL
    /// after 10 s). Returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let start = Instant::now();
        let Some(mut child) = self.child.take() else {
            return Duration::ZERO;
        };
        signal(&child, rustix::process::Signal::TERM);
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        start.elapsed()
    }

    /// SIGKILL, as a crash; the data directory stays for
    /// [`Etcd::start_again`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `etcdctl` (API v3) against this member with `args`.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        Command::new(ETCDCTL)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint(), "--dial-timeout", "3s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl (Debian package etcd-client)")
    }

    /// `etcdctl put KEY VALUE`; panics when it fails.
    pub fn put(&self, key: &str, value: &str) {
        let out = self.etcdctl(&["put", "--", key, value]);
        assert!(
            out.status.success(),
            "etcdctl put {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The value of `key` (`etcdctl get --print-value-only`), `None` when
    /// it is absent; panics when etcdctl fails.
    pub fn get(&self, key: &str) -> Option<String> {
        let out = self.etcdctl(&["get", "--print-value-only", "--", key]);
        assert!(
            out.status.success(),
            "etcdctl get {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let value = text.strip_suffix('\n').unwrap_or(&text);
        (!text.is_empty()).then(|| value.to_owned())
    }

    /// Every key under `prefix` with its value, in key order.
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let out = self.etcdctl(&["get", "--prefix", "--", prefix]);
        assert!(
            out.status.success(),
            "etcdctl get --prefix {prefix}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        lines
            .chunks(2)
            .filter(|kv| kv.len() == 2)
            .map(|kv| (kv[0].to_owned(), kv[1].to_owned()))
            .collect()
    }

    /// The Prometheus metrics (`GET /metrics`); panics when etcd does not
    /// answer.
    pub fn metrics(&self) -> Metrics {
        match http_get(self.client_port, "/metrics") {
            Some((200, text)) => Metrics::parse(&text),
            other => panic!("etcd /metrics: {other:?}"),
        }
    }

    /// Writes etcd counted so far: see [`Metrics::writes`].
    pub fn writes(&self) -> f64 {
        self.metrics().writes()
    }

    /// Writes per second over the next `over`, measured from the metrics
    /// before and after.
    pub fn writes_per_second(&self, over: Duration) -> f64 {
        let (before, start) = (self.writes(), Instant::now());
        std::thread::sleep(over);
        (self.writes() - before) / start.elapsed().as_secs_f64()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Samples of etcd's Prometheus text exposition, by metric name with its
/// labels (`name{label="v"}`) as written.
#[derive(Debug, Default)]
pub struct Metrics {
    /// `(series, value)` in the order etcd wrote them.
    pub samples: Vec<(String, f64)>,
}

impl Metrics {
    /// Parses the text format (comments skipped, unparsable lines too).
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.trim().to_owned(), value.trim().parse().ok()?))
            })
            .collect();
        Metrics { samples }
    }

    /// The sum of every series of metric `name` (all label sets); 0 when
    /// etcd exposes none.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| {
                series == name
                    || series
                        .strip_prefix(name)
                        .is_some_and(|r| r.starts_with('{'))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// Writes as etcd 3.4's MVCC store counts them:
    /// `etcd_mvcc_put_total + etcd_mvcc_delete_total + etcd_mvcc_txn_total`.
    /// A put or delete alone (or in a transaction of one operation) counts
    /// once; a transaction of several operations counts once more for
    /// itself besides its puts and deletes. Lease keep-alives are not
    /// writes (`etcd_server_proposals_committed_total` counts the raft
    /// proposals, lease grants and revocations included).
    pub fn writes(&self) -> f64 {
        self.sum("etcd_mvcc_put_total")
            + self.sum("etcd_mvcc_delete_total")
            + self.sum("etcd_mvcc_txn_total")
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// `GET path` from 127.0.0.1:`port` (HTTP/1.0): `(status, body)`, `None`
/// when nothing answers within 2 s.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some((status, body.to_owned()))
}

/// Sends `sig` to `child`.
fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a child's pid");
    let _ = rustix::process::kill_process(pid, sig);
}
