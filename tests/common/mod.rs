//! Helpers for end-to-end tests: free loopback ports, the camgate binary as a
//! child process, a minimal HTTP GET, ffmpeg as the consumer, and GStreamer's
//! RTSP server. Everything binds and sends on 127.0.0.1 only.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An even UDP port with the three ports above it free (video + audio pairs).
pub fn free_rtp_port() -> u16 {
    for _ in 0..200 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port();
        if p % 2 != 0 || p > 65000 {
            continue;
        }
        drop(s);
        if (p..p + 4).all(|q| UdpSocket::bind(("127.0.0.1", q)).is_ok()) {
            return p;
        }
    }
    panic!("no free UDP port quadruple on 127.0.0.1");
}

/// Fails loudly when a tool the interop tests need is missing: interop tests
/// never skip silently. `scripts/test` installs them.
pub fn require_tool(cmd: &str) {
    let ok = Command::new(cmd)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "{cmd} is not installed: run the tests with scripts/test, which installs it"
    );
}

/// The camgate binary under test.
pub fn camgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_camgate")
}

/// A running process killed on drop, with stderr saved to a file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Sends SIGTERM and waits up to `limit`; returns how long it took, or
    /// `None` if it had to be killed.
    pub fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// The process's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `camgate` with `args`, stderr to `dir/NAME.log`.
pub fn spawn_camgate(dir: &Path, name: &str, args: &[&str]) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let err = std::fs::File::create(&log).unwrap();
    let child = Command::new(camgate_bin())
        .args(args)
        .env("RUST_LOG", "camgate=debug,info")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start camgate");
    Proc { child, log }
}

/// Starts `camgate sim` on `port`, waiting until it accepts connections.
pub fn spawn_sim(dir: &Path, port: u16, credentials: Option<(&str, &str)>) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["sim", "--listen", listen.as_str()];
    if let Some((u, p)) = credentials {
        args.extend(["--username", u, "--password", p]);
    }
    let proc = spawn_camgate(dir, &format!("sim-{port}"), &args);
    wait_for(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    proc
}

/// Starts a gateway on `toml`, waiting until its HTTP listener answers.
pub fn spawn_gateway(dir: &Path, toml: &str, http_port: u16) -> Proc {
    let path = dir.join("cameras.toml");
    std::fs::write(&path, toml).unwrap();
    let proc = spawn_camgate(dir, "gateway", &["run", "--config", path.to_str().unwrap()]);
    wait_for(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", http_port)).is_ok()
    });
    proc
}

/// Polls `f` every 50 ms until it is true; panics after `limit`.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET path` on 127.0.0.1:port; returns (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP listener");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The camera's JSON status from the API.
pub fn camera_json(port: u16, id: &str) -> serde_json::Value {
    let (status, body) = http_get(port, &format!("/api/v1/cameras/{id}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until camera `id` is in `state`.
pub fn wait_state(port: u16, id: &str, state: &str, limit: Duration) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let v = camera_json(port, id);
        if v["state"] == state {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "camera {id} not {state} within {limit:?}: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What ffmpeg decoded.
#[derive(Debug)]
pub struct Decoded {
    /// Video frames decoded.
    pub video_frames: usize,
    /// Audio frames decoded.
    pub audio_frames: usize,
    /// Lines ffmpeg printed at level `error` or worse.
    pub errors: Vec<String>,
    /// ffmpeg's exit status.
    pub success: bool,
}

/// Starts ffmpeg decoding `input` for `seconds` of media; `wait_decode`
/// collects the result.
pub fn spawn_ffmpeg_decode(input: &str, seconds: u32, extra_input_args: &[&str]) -> Child {
    require_tool("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-v", "error"]);
    cmd.args(extra_input_args);
    cmd.args([
        "-i",
        input,
        "-t",
        &seconds.to_string(),
        "-f",
        "framecrc",
        "-",
    ]);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg")
}

/// Waits for ffmpeg (killing it after `limit`) and counts what it decoded.
pub fn wait_decode(mut child: Child, limit: Duration) -> Decoded {
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let err = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let start = Instant::now();
    let success = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st.success();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let lines = out.join().unwrap();
    let errors = err.join().unwrap();
    // framecrc lines: "stream_index, dts, pts, duration, size, crc".
    let count = |idx: &str| {
        lines
            .iter()
            .filter(|l| !l.starts_with('#') && l.split(',').next().map(str::trim) == Some(idx))
            .count()
    };
    Decoded {
        video_frames: count("0"),
        audio_frames: count("1"),
        errors,
        success,
    }
}

/// GStreamer's RTSP server (tests/support/gst_rtsp_server.py) on `port`.
pub fn spawn_gst_server(dir: &Path, port: u16, user: &str, password: &str) -> Proc {
    spawn_gst_server_with(dir, port, user, password, &[])
}

/// GStreamer's RTSP server with the script's options `extra` (for example
/// `["--codec", "h265"]`).
pub fn spawn_gst_server_with(
    dir: &Path,
    port: u16,
    user: &str,
    password: &str,
    extra: &[&str],
) -> Proc {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/gst_rtsp_server.py"
    );
    let log = dir.join(format!("gst-{port}.log"));
    let err = std::fs::File::create(&log).unwrap();
    // Debian's python3 has the gi bindings; a pyenv python on PATH does not.
    let child = Command::new("/usr/bin/python3")
        .args([script, user, password, &port.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("/usr/bin/python3 is missing: run the tests with scripts/test");
    let proc = Proc { child, log };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "GStreamer RTSP server did not start (is gir1.2-gst-rtsp-server-1.0 installed? scripts/test installs it): {}",
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    proc
}

/// A temporary directory for one test.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A TCP connection to 127.0.0.1:`port` from the loopback address
/// `source` (e.g. "127.0.0.2"; Linux routes all of 127/8 to lo), for tests
/// of per-address limits.
pub fn connect_from(source: &str, port: u16) -> TcpStream {
    let source: std::net::IpAddr = source.parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::new(source, 0).into())
        .unwrap();
    socket
        .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    socket.into()
}

/// The reply to one HTTP/1.1 request: status, head (status line and
/// headers) and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    /// A header's value (case-insensitive name), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Sends one request (`Connection: close`) on `stream` and reads the reply
/// (status 0 when the connection closed without one).
pub fn request_on<S: Read + Write>(
    stream: &mut S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let _ = stream.write_all(&bytes);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// One request to 127.0.0.1:`port`.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    request_on(&mut s, method, path, headers, body)
}

/// Waits until camera `id` is in `state`, asking with `headers` (e.g. an
/// `Authorization` header).
pub fn wait_state_with(
    port: u16,
    id: &str,
    state: &str,
    headers: &[(&str, &str)],
    limit: Duration,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let r = request(port, "GET", &format!("/api/v1/cameras/{id}"), headers, b"");
        assert_eq!(r.status, 200, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        if v["state"] == state {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "camera {id} not {state} within {limit:?}: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a gateway on `toml` and waits until its port answers; fails with
/// its log when it exits instead.
pub fn spawn_gateway_checked(dir: &Path, toml: &str, http_port: u16) -> Proc {
    let path = dir.join("cameras.toml");
    std::fs::write(&path, toml).unwrap();
    let mut proc = spawn_camgate(dir, "gateway", &["run", "--config", path.to_str().unwrap()]);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
        if let Ok(Some(status)) = proc.child.try_wait() {
            panic!("camgate exited ({status}): {}", proc.log_text());
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "camgate did not listen: {}",
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    proc
}

/// `camgate hash-password` with `password` on standard input.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(camgate_bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start camgate hash-password");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Sends `signal` (`HUP`, `TERM`, ...) to the process.
pub fn send_signal(proc: &Proc, signal: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(proc.child.id().to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -{signal} failed");
}

/// When media arrived at one receiver, recorded by a thread until dropped
/// or stopped: the check that a consumer kept receiving while something
/// else happened. `FlowWatch::udp` watches an `rtp_out` destination; a
/// WebRTC viewer (or anything else) can feed one through
/// `FlowWatch::spawn`.
pub struct FlowWatch {
    arrivals: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FlowWatch {
    /// Records every datagram arriving on UDP 127.0.0.1:`port`.
    pub fn udp(port: u16) -> FlowWatch {
        let sock = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        FlowWatch::spawn(move |arrived, stop| {
            let mut buf = [0u8; 2048];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if sock.recv(&mut buf).is_ok() {
                    arrived();
                }
            }
        })
    }

    /// Runs `source` on a thread: it calls `arrived` for every piece of
    /// media received and returns once `stop` is set.
    pub fn spawn(
        source: impl FnOnce(&dyn Fn(), &std::sync::atomic::AtomicBool) + Send + 'static,
    ) -> FlowWatch {
        let arrivals = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, s) = (arrivals.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let arrived = || a.lock().unwrap().push(Instant::now());
            source(&arrived, &s);
        });
        FlowWatch {
            arrivals,
            stop,
            thread: Some(thread),
        }
    }

    /// Arrivals so far.
    pub fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// Waits until at least `n` arrivals (panics after `limit`).
    pub fn wait_for(&self, n: usize, limit: Duration) {
        wait_for(limit, || self.count() >= n);
    }

    /// Time since the last arrival (`None`: nothing yet).
    pub fn quiet_for(&self) -> Option<Duration> {
        self.arrivals.lock().unwrap().last().map(|t| t.elapsed())
    }

    /// Arrivals at or after `from`.
    pub fn count_since(&self, from: Instant) -> usize {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|&&t| t >= from)
            .count()
    }

    /// The longest time without an arrival from `from` until now (the time
    /// since the last arrival included).
    pub fn max_gap_since(&self, from: Instant) -> Duration {
        let arrivals = self.arrivals.lock().unwrap();
        let mut last = from;
        let mut gap = Duration::ZERO;
        for &t in arrivals.iter().filter(|&&t| t >= from) {
            gap = gap.max(t - last);
            last = t;
        }
        gap.max(last.elapsed())
    }
}

impl Drop for FlowWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Resident memory of process `pid`, KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
