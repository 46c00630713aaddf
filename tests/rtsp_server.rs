//! camgate's RTSP server (issue 15) end to end: the camgate binary pulls a
//! camera (GStreamer's RTSP server, or camgate's simulator) and serves it at
//! `rtsp://127.0.0.1:PORT/{id}`; ffmpeg, GStreamer's `rtspsrc`, retina and a
//! raw client written here (`common/rtsp.rs`) pull it. Everything on
//! 127.0.0.1; each gateway has its own RTSP port and UDP port range.

mod common;
#[path = "common/rtsp.rs"]
mod rtsp;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rtsp::*;

/// A gateway's ports: HTTP, RTSP, and its `udp_port_range`.
struct Ports {
    http: u16,
    rtsp: u16,
    udp: (u16, u16),
}

impl Ports {
    fn new() -> Ports {
        Ports {
            http: free_tcp_port(),
            rtsp: free_tcp_port(),
            udp: free_udp_range(16),
        }
    }

    /// `[server]`, `[webrtc]` and `[rtsp_server]` (with `rtsp_extra`
    /// lines), then `rest` (cameras, auth).
    fn toml(&self, rtsp_extra: &str, rest: &str) -> String {
        format!(
            r#"
[server]
listen = "127.0.0.1:{http}"

[webrtc]
udp_listen = "127.0.0.1:0"

[rtsp_server]
listen = "127.0.0.1:{rtsp}"
udp_port_range = "{a}-{b}"
{rtsp_extra}

{rest}
"#,
            http = self.http,
            rtsp = self.rtsp,
            a = self.udp.0,
            b = self.udp.1,
        )
    }

    fn url(&self, camera: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{camera}", self.rtsp)
    }
}

/// Starts the gateway and waits until its RTSP port listens too.
fn gateway(dir: &std::path::Path, ports: &Ports, toml: &str) -> Proc {
    let gw = spawn_gateway_checked(dir, toml, ports.http);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", ports.rtsp)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the RTSP server did not listen: {}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gw
}

/// The consumers of a camera, from the API.
fn sessions(http: u16, camera: &str) -> Vec<serde_json::Value> {
    let (status, body) = http_get(http, &format!("/api/v1/cameras/{camera}/sessions"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The value of the /metrics line that starts with `series` (name and
/// labels as written).
fn metric(http: u16, series: &str) -> f64 {
    let (status, body) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

/// GStreamer's RTSP server as a camera (`/test`, H.264 + PCMU, user
/// `viewer`, password `pw`) with `args`.
fn spawn_gst_camera(dir: &std::path::Path, port: u16, args: &[&str]) -> Proc {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/gst_rtsp_server.py"
    );
    let log = dir.join(format!("gst-camera-{port}.log"));
    let child = Command::new("/usr/bin/python3")
        .arg(script)
        .args(["viewer", "pw", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("/usr/bin/python3 is missing: run the tests with scripts/test");
    let proc = Proc { child, log };
    wait_for(Duration::from_secs(15), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    proc
}

/// A camera section pulling the GStreamer camera on `port`.
fn gst_camera_toml(id: &str, port: u16) -> String {
    format!("[[camera]]\nid = \"{id}\"\nurl = \"rtsp://viewer:pw@127.0.0.1:{port}/test\"\n")
}

/// What a GStreamer `rtspsrc` pipeline decoded.
#[derive(Debug)]
struct GstDecoded {
    video_frames: usize,
    audio_buffers: usize,
    /// From the first to the last decoded picture's PTS.
    video_span: Duration,
    /// WARNING and ERROR messages of the pipeline (a decoder's error is a
    /// WARNING until too many).
    problems: Vec<String>,
}

/// `gst-launch-1.0` pulling `url` over TCP or UDP, decoding H.264 with
/// openh264 and PCMU, every buffer reported (`-v` and `fakesink
/// silent=false`).
fn spawn_gst_pull(url: &str, tcp: bool) -> Child {
    require_tool("gst-launch-1.0");
    let pipeline = format!(
        "rtspsrc location={url} protocols={proto} latency=300 name=src \
         src. ! application/x-rtp,media=video ! rtph264depay ! h264parse ! openh264dec ! fakesink name=video silent=false sync=false \
         src. ! application/x-rtp,media=audio ! rtppcmudepay ! mulawdec ! fakesink name=audio silent=false sync=false",
        proto = if tcp { "tcp" } else { "udp" }
    );
    Command::new("gst-launch-1.0")
        .arg("-v")
        .args(pipeline.split_whitespace())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gst-launch-1.0")
}

/// Lets the pipeline run `run`, interrupts it (SIGINT), and counts.
fn finish_gst_pull(mut child: Child, run: Duration) -> GstDecoded {
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
    std::thread::sleep(run);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if start.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = out.join().unwrap();
    let errs = err.join().unwrap();
    let pts = |l: &str| -> Option<Duration> {
        let at = l.find("pts: ")? + 5;
        let t = l[at..].split([',', ' ', ')']).next()?;
        let mut parts = t.split(':');
        let h: f64 = parts.next()?.parse().ok()?;
        let m: f64 = parts.next()?.parse().ok()?;
        let s: f64 = parts.next()?.parse().ok()?;
        Some(Duration::from_secs_f64(h * 3600.0 + m * 60.0 + s))
    };
    let video: Vec<Duration> = lines
        .iter()
        .filter(|l| l.contains("GstFakeSink:video: last-message = chain"))
        .filter_map(|l| pts(l))
        .collect();
    let audio_buffers = lines
        .iter()
        .filter(|l| l.contains("GstFakeSink:audio: last-message = chain"))
        .count();
    let span = match (video.iter().min(), video.iter().max()) {
        (Some(a), Some(b)) => *b - *a,
        _ => Duration::ZERO,
    };
    let problems = lines
        .iter()
        .chain(errs.iter())
        .filter(|l| l.starts_with("WARNING") || l.starts_with("ERROR"))
        .cloned()
        .collect();
    GstDecoded {
        video_frames: video.len(),
        audio_buffers,
        video_span: span,
        problems,
    }
}

/// What retina received.
#[derive(Debug, Default)]
struct RetinaPulled {
    video_frames: usize,
    audio_frames: usize,
    /// From the first to the last picture's timestamp.
    video_span: Duration,
    started_with_keyframe: bool,
}

/// retina pulls `url` (video and audio) for `run`.
async fn retina_pull(
    url: &str,
    transport: retina::client::Transport,
    creds: Option<(&str, &str)>,
    run: Duration,
) -> Result<RetinaPulled, String> {
    use futures::StreamExt;
    use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions};
    let mut opts = SessionOptions::default();
    if let Some((u, p)) = creds {
        opts = opts.creds(Some(retina::client::Credentials {
            username: u.into(),
            password: p.into(),
        }));
    }
    let url = url::Url::parse(url).unwrap();
    let mut session = Session::describe(url, opts)
        .await
        .map_err(|e| format!("DESCRIBE: {e}"))?;
    let kinds: Vec<String> = session
        .streams()
        .iter()
        .map(|s| s.media().to_owned())
        .collect();
    for i in 0..kinds.len() {
        session
            .setup(i, SetupOptions::default().transport(transport.clone()))
            .await
            .map_err(|e| format!("SETUP {i}: {e}"))?;
    }
    let session = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| format!("PLAY: {e}"))?;
    let mut demuxed = session.demuxed().map_err(|e| e.to_string())?;
    let mut out = RetinaPulled::default();
    let (mut first, mut last) = (None, None);
    let end = tokio::time::Instant::now() + run;
    loop {
        let item = match tokio::time::timeout_at(end, demuxed.next()).await {
            Err(_) => break,
            Ok(None) => return Err("stream ended".into()),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(item))) => item,
        };
        match item {
            retina::codec::CodecItem::VideoFrame(f) => {
                if out.video_frames == 0 {
                    out.started_with_keyframe = f.is_random_access_point();
                }
                out.video_frames += 1;
                let t = f.timestamp().elapsed_secs();
                first.get_or_insert(t);
                last = Some(t);
            }
            retina::codec::CodecItem::AudioFrame(_) => out.audio_frames += 1,
            _ => {}
        }
    }
    if let (Some(a), Some(b)) = (first, last) {
        out.video_span = Duration::from_secs_f64((b - a).max(0.0));
    }
    Ok(out)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Pictures expected over `span` at the camera's 25 per second, counting
/// both ends.
fn expected_frames(span: Duration) -> f64 {
    span.as_secs_f64() * 25.0 + 1.0
}

/// Issue 15's interop: ffmpeg (TCP, UDP), GStreamer's rtspsrc (TCP, UDP)
/// and retina (TCP, UDP), all at once, pull camgate's copy of a GStreamer
/// RTSP camera (H.264 + PCMU) for 10 s: no decoder error, at least 95 % of
/// the pictures, audio decoded (ffmpeg, GStreamer) or received (retina).
#[test]
fn ffmpeg_gstreamer_and_retina_pull_a_gstreamer_camera_over_tcp_and_udp() {
    require_tool("ffmpeg");
    require_tool("gst-launch-1.0");
    let dir = temp_dir();
    let ports = Ports::new();
    let cam_port = free_tcp_port();
    let gst = spawn_gst_camera(dir.path(), cam_port, &[]);
    let mut gw = gateway(
        dir.path(),
        &ports,
        &ports.toml("", &gst_camera_toml("gst", cam_port)),
    );
    wait_state(ports.http, "gst", "playing", Duration::from_secs(20));
    let url = ports.url("gst");
    const SECS: u32 = 10;
    let ff_tcp = spawn_ffmpeg_decode(&url, SECS, &["-rtsp_transport", "tcp"]);
    let ff_udp = spawn_ffmpeg_decode(&url, SECS, &["-rtsp_transport", "udp"]);
    let gst_tcp = spawn_gst_pull(&url, true);
    let gst_udp = spawn_gst_pull(&url, false);
    let rt = runtime();
    let (r_tcp, r_udp) = rt.block_on(async {
        let run = Duration::from_secs(u64::from(SECS));
        tokio::join!(
            retina_pull(
                &url,
                retina::client::Transport::Tcp(Default::default()),
                None,
                run
            ),
            retina_pull(
                &url,
                retina::client::Transport::Udp(Default::default()),
                None,
                run
            )
        )
    });
    // The pipelines started before retina's 10 s: stop them after it.
    let g_tcp = finish_gst_pull(gst_tcp, Duration::from_secs(1));
    let g_udp = finish_gst_pull(gst_udp, Duration::ZERO);
    let f_tcp = wait_decode(ff_tcp, Duration::from_secs(30));
    let f_udp = wait_decode(ff_udp, Duration::from_secs(30));
    eprintln!(
        "ffmpeg tcp {f_tcp:?}\nffmpeg udp {f_udp:?}\ngst tcp {g_tcp:?}\ngst udp {g_udp:?}\nretina tcp {r_tcp:?}\nretina udp {r_udp:?}"
    );
    let wanted = 0.95 * f64::from(SECS) * 25.0;
    for (name, d) in [("tcp", &f_tcp), ("udp", &f_udp)] {
        assert!(
            d.errors.is_empty(),
            "ffmpeg {name}: decoder errors {:#?}\n{}",
            d.errors,
            gw.log_text()
        );
        assert!(d.success, "ffmpeg {name} did not run to the end: {d:?}");
        assert!(
            d.video_frames as f64 >= wanted,
            "ffmpeg {name}: {} pictures in {SECS} s",
            d.video_frames
        );
        assert!(d.audio_frames > 0, "ffmpeg {name}: no audio decoded");
    }
    for (name, g) in [("tcp", &g_tcp), ("udp", &g_udp)] {
        assert!(g.problems.is_empty(), "rtspsrc {name}: {:#?}", g.problems);
        assert!(
            g.video_span > Duration::from_secs(7),
            "rtspsrc {name}: pictures over only {:?}: {g:?}",
            g.video_span
        );
        assert!(
            g.video_frames as f64 >= 0.95 * expected_frames(g.video_span),
            "rtspsrc {name}: {} pictures over {:?}",
            g.video_frames,
            g.video_span
        );
        assert!(g.audio_buffers > 0, "rtspsrc {name}: no audio decoded");
    }
    for (name, r) in [("tcp", r_tcp), ("udp", r_udp)] {
        let r = r.unwrap_or_else(|e| panic!("retina {name}: {e}"));
        assert!(r.started_with_keyframe, "retina {name}: {r:?}");
        assert!(
            r.video_span > Duration::from_secs(7)
                && r.video_frames as f64 >= 0.95 * expected_frames(r.video_span),
            "retina {name}: {r:?}"
        );
        assert!(r.audio_frames > 0, "retina {name}: no audio");
    }
    // Each client was a consumer of kind rtsp, counted in the metrics.
    let packets = metric(
        ports.http,
        "camgate_egress_packets_total{camera=\"gst\",kind=\"rtsp\"}",
    );
    assert!(packets > 6.0 * 250.0, "{packets} RTSP packets sent");
    wait_for(Duration::from_secs(10), || {
        sessions(ports.http, "gst").is_empty()
    });
    assert_eq!(
        metric(ports.http, "camgate_rtsp_clients{camera=\"gst\"}"),
        0.0
    );
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
    drop(gst);
}

/// The camera's keyframe count from the API, sampled every 20 ms on a
/// thread: (when the request was sent, keyframes received).
struct KeyframeWatch {
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KeyframeWatch {
    fn start(http: u16, camera: &'static str) -> KeyframeWatch {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let n = camera_json(http, camera)["stats"]["keyframes_received"]
                    .as_u64()
                    .unwrap();
                s.lock().unwrap().push((sent, n));
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        KeyframeWatch {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> u64 {
        self.samples.lock().unwrap().last().map_or(0, |s| s.1)
    }

    /// Waits until the count is at least `n`.
    fn wait_count(&self, n: u64, limit: Duration) {
        wait_for(limit, || self.count() >= n);
    }

    /// When the last sample that still counted fewer than `n` keyframes
    /// was asked for: keyframe `n` reached the gateway after this.
    fn before(&self, n: u64) -> Instant {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s.1 < n)
            .expect("a sample before the keyframe")
            .0
    }
}

impl Drop for KeyframeWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Issue 15: with a 4 s GOP camera that ignores keyframe requests, a client
/// that plays 1 s after a keyframe has its first IDR within 500 ms of PLAY
/// (the raw client times the IDR's last packet against the PLAY request),
/// long before the camera's next keyframe reaches the gateway; ffmpeg
/// joining the same way decodes its first picture before that keyframe
/// too, with no decoder error. The 500 ms is the issue's bound; on loopback
/// the cached GOP goes out right after the PLAY answer.
#[test]
fn first_picture_comes_from_the_gop_cache_within_500_ms_of_play() {
    require_tool("ffmpeg");
    let dir = temp_dir();
    let ports = Ports::new();
    let cam_port = free_tcp_port();
    let gst = spawn_gst_camera(
        dir.path(),
        cam_port,
        &["--gop", "100", "--ignore-keyframe-requests"],
    );
    let mut gw = gateway(
        dir.path(),
        &ports,
        &ports.toml("", &gst_camera_toml("gst", cam_port)),
    );
    wait_state(ports.http, "gst", "playing", Duration::from_secs(20));
    let url = ports.url("gst");
    let keyframes = KeyframeWatch::start(ports.http, "gst");
    keyframes.wait_count(1, Duration::from_secs(10));

    // The raw client is set up ahead; PLAY goes 1 s after a keyframe.
    let mut c = RawRtsp::connect(ports.rtsp);
    assert_eq!(c.request("DESCRIBE", &url, &[]).status, 200);
    let r = c.request(
        "SETUP",
        &format!("{url}/trackID=0"),
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let k = keyframes.count() + 1;
    keyframes.wait_count(k, Duration::from_secs(6));
    std::thread::sleep(Duration::from_secs(1));
    let sent = Instant::now();
    let play = c.request("PLAY", &url, &[]);
    assert_eq!(play.status, 200, "{play:?}");
    let (idr_at, packets) = c.first_idr_complete(Duration::from_secs(10));
    keyframes.wait_count(k + 1, Duration::from_secs(6));
    let next_keyframe = keyframes.before(k + 1);
    eprintln!(
        "raw client: PLAY answered after {} ms, first IDR complete {} ms after PLAY ({packets} packets), {} ms before the camera's next keyframe",
        (play.at - sent).as_millis(),
        (idr_at - sent).as_millis(),
        next_keyframe.saturating_duration_since(idr_at).as_millis()
    );
    assert!(
        idr_at - sent < Duration::from_millis(500),
        "first IDR {} ms after PLAY",
        (idr_at - sent).as_millis()
    );
    assert!(
        idr_at + Duration::from_secs(1) < next_keyframe,
        "the first IDR was not the cached one"
    );
    drop(c);

    // ffmpeg, 1 s after the next keyframe: its first decoded picture.
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let mut ff = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "error"])
        .args(["-rtsp_transport", "tcp", "-i", &url, "-t", "3"])
        .args(["-flush_packets", "1", "-f", "framecrc", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg");
    let stdout = ff.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .map(|l| (Instant::now(), l))
            .collect::<Vec<_>>()
    });
    let mut errors = String::new();
    ff.stderr
        .take()
        .unwrap()
        .read_to_string(&mut errors)
        .unwrap();
    let status = ff.wait().unwrap();
    let lines = lines.join().unwrap();
    let video: Vec<Instant> = lines
        .iter()
        .filter(|(_, l)| l.starts_with("0,"))
        .map(|(t, _)| *t)
        .collect();
    keyframes.wait_count(k + 2, Duration::from_secs(6));
    let next_keyframe = keyframes.before(k + 2);
    let first = *video.first().expect("ffmpeg decoded no picture");
    eprintln!(
        "ffmpeg: first picture {} ms after start, {} ms before the camera's next keyframe; {} pictures",
        (first - started).as_millis(),
        next_keyframe.saturating_duration_since(first).as_millis(),
        video.len()
    );
    assert!(status.success() && errors.trim().is_empty(), "{errors}");
    assert!(
        first < next_keyframe,
        "ffmpeg's first picture came after the camera's next keyframe"
    );
    assert!(video.len() >= 70, "{} pictures in 3 s", video.len());
    drop(keyframes);
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
    drop(gst);
}

const VIEWER_TOKEN: &str = "front-viewer-token-0123456789";
const ADMIN_TOKEN: &str = "ops-token-0123456789abcdef";

/// Issue 15's access rules: `[auth]` tokens answer Digest (user name = the
/// token's name, password = the token) or Basic; `[[auth.user]]` users
/// answer Basic only; a viewer limited to some cameras gets 403 for others;
/// a wrong password 401. ffmpeg and retina play with Digest.
#[test]
fn digest_and_basic_with_the_auth_policy() {
    require_tool("ffmpeg");
    let dir = temp_dir();
    let ports = Ports::new();
    let alice = hash_password("wonderland");
    let rest = format!(
        r#"
[auth]
max_failures = 50
lockout = 60

[[auth.token]]
name = "front-viewer"
token = "{VIEWER_TOKEN}"
role = "viewer"
cameras = ["front"]

[[auth.token]]
name = "ops"
token = "{ADMIN_TOKEN}"
role = "admin"

[[auth.user]]
name = "alice"
password_hash = "{alice}"
role = "viewer"

[[camera]]
id = "front"
url = "sim://front"

[[camera]]
id = "back"
url = "sim://back"
"#
    );
    let mut gw = gateway(dir.path(), &ports, &ports.toml("", &rest));
    wait_state_with(
        ports.http,
        "front",
        "playing",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        Duration::from_secs(15),
    );
    let (front, back) = (ports.url("front"), ports.url("back"));

    // No credentials: 401 with both challenges.
    let mut c = RawRtsp::connect(ports.rtsp);
    let r = c.request("DESCRIBE", &front, &[]);
    assert_eq!(r.status, 401, "{r:?}");
    let challenges = r.headers("WWW-Authenticate");
    assert!(
        challenges.iter().any(|v| v.starts_with("Digest "))
            && challenges.iter().any(|v| v.starts_with("Basic ")),
        "{challenges:?}"
    );

    // Digest with the right token plays.
    let mut c = RawRtsp::connect(ports.rtsp).with_creds("front-viewer", VIEWER_TOKEN, false);
    c.play_tcp(&front, false);
    c.first_idr_complete(Duration::from_secs(10));
    drop(c);

    // A wrong token: 401; the right one on a camera not in the list: 403.
    let mut c = RawRtsp::connect(ports.rtsp).with_creds("front-viewer", "not-the-token", false);
    assert_eq!(c.request("DESCRIBE", &front, &[]).status, 401);
    let mut c = RawRtsp::connect(ports.rtsp).with_creds("front-viewer", VIEWER_TOKEN, false);
    let r = c.request("DESCRIBE", &back, &[]);
    assert_eq!(r.status, 403, "{r:?}");
    let r = c.request(
        "SETUP",
        &format!("{back}/trackID=0"),
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    );
    assert_eq!(r.status, 403, "SETUP of another camera: {r:?}");
    // The admin token sees every camera.
    let mut c = RawRtsp::connect(ports.rtsp).with_creds("ops", ADMIN_TOKEN, false);
    assert_eq!(c.request("DESCRIBE", &back, &[]).status, 200);

    // Basic: a token as the password, and a user; a user over Digest is
    // refused (its password is only kept as an Argon2 hash).
    let mut c = RawRtsp::connect(ports.rtsp).with_creds("front-viewer", VIEWER_TOKEN, true);
    assert_eq!(c.request("DESCRIBE", &front, &[]).status, 200);
    let mut c = RawRtsp::connect(ports.rtsp).with_creds("alice", "wonderland", true);
    assert_eq!(c.request("DESCRIBE", &back, &[]).status, 200);
    let mut c = RawRtsp::connect(ports.rtsp).with_creds("alice", "wonderland", false);
    assert_eq!(c.request("DESCRIBE", &back, &[]).status, 401);
    let mut c = RawRtsp::connect(ports.rtsp).with_creds("alice", "queen-of-hearts", true);
    assert_eq!(c.request("DESCRIBE", &back, &[]).status, 401);

    // Independent clients with Digest: ffmpeg decodes, retina plays.
    let ff = spawn_ffmpeg_decode(
        &format!(
            "rtsp://front-viewer:{VIEWER_TOKEN}@127.0.0.1:{}/front",
            ports.rtsp
        ),
        3,
        &["-rtsp_transport", "tcp"],
    );
    let r = runtime().block_on(retina_pull(
        &front,
        retina::client::Transport::Tcp(Default::default()),
        Some(("front-viewer", VIEWER_TOKEN)),
        Duration::from_secs(3),
    ));
    let wrong = runtime().block_on(retina_pull(
        &front,
        retina::client::Transport::Tcp(Default::default()),
        Some(("front-viewer", "wrong")),
        Duration::from_secs(1),
    ));
    let d = wait_decode(ff, Duration::from_secs(20));
    assert!(
        d.success && d.errors.is_empty() && d.video_frames >= 60,
        "ffmpeg with Digest: {d:?}"
    );
    let r = r.expect("retina with Digest");
    assert!(r.video_frames >= 60, "retina with Digest: {r:?}");
    let e = wrong.expect_err("retina with a wrong password played");
    assert!(e.contains("401"), "{e}");
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

/// A camera with the simulator's fault set (partial writes, resent and
/// garbage bytes, stalls, SSRC changes, timestamp jumps, a reboot):
/// camgate repairs it, and ffmpeg pulling camgate over TCP and UDP decodes
/// 20 s with no error.
#[test]
fn a_faulty_camera_decodes_cleanly_through_the_rtsp_server() {
    require_tool("ffmpeg");
    let dir = temp_dir();
    let ports = Ports::new();
    let rest = r#"
[[camera]]
id = "flaky"
url = "sim://flaky"

[camera.faults]
seed = 5
truncate = 0.02
truncate_resend = 0.01
garbage = 0.01
stall_every_s = 6
stall_ms = 400
ssrc_change_every_s = 7
timestamp_jump_every_s = 9
reboot_every_s = 12
"#;
    let mut gw = gateway(dir.path(), &ports, &ports.toml("", rest));
    wait_state(ports.http, "flaky", "playing", Duration::from_secs(15));
    let url = ports.url("flaky");
    const SECS: u32 = 20;
    let tcp = spawn_ffmpeg_decode(&url, SECS, &["-rtsp_transport", "tcp"]);
    let udp = spawn_ffmpeg_decode(&url, SECS, &["-rtsp_transport", "udp"]);
    let tcp = wait_decode(tcp, Duration::from_secs(60));
    let udp = wait_decode(udp, Duration::from_secs(60));
    let cam = camera_json(ports.http, "flaky");
    eprintln!("tcp {tcp:?}\nudp {udp:?}\ncamera stats {}", cam["stats"]);
    let stat = |k: &str| cam["stats"][k].as_u64().unwrap_or(0);
    assert!(
        stat("framing_resyncs") > 0 && stat("frames_dropped_damaged") > 0 && stat("reconnects") > 0,
        "the faults did not happen: {}",
        cam["stats"]
    );
    for (name, d) in [("tcp", &tcp), ("udp", &udp)] {
        assert!(
            d.errors.is_empty(),
            "ffmpeg {name}: decoder errors {:#?}",
            d.errors
        );
        assert!(d.success, "ffmpeg {name}: {d:?}");
        // Damaged pictures are dropped until the next clean IDR: fewer
        // than 25 a second, but most.
        assert!(
            d.video_frames >= 300,
            "ffmpeg {name}: {} pictures",
            d.video_frames
        );
    }
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

/// A gateway with the simulator cameras `ids` and `[rtsp_server]` extra
/// lines.
fn sim_gateway(dir: &std::path::Path, ports: &Ports, rtsp_extra: &str, ids: &[&str]) -> Proc {
    let cameras: String = ids
        .iter()
        .map(|id| format!("[[camera]]\nid = \"{id}\"\nurl = \"sim://{id}\"\n\n"))
        .collect();
    let gw = gateway(dir, ports, &ports.toml(rtsp_extra, &cameras));
    for id in ids {
        wait_state(ports.http, id, "playing", Duration::from_secs(15));
    }
    gw
}

/// Reads until the server closes the connection; how long that took, or
/// `None` if it stayed open for `limit`.
fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// Request head and body caps, the head time limit (slowloris) and the
/// per-address connection cap, each once.
#[test]
fn request_caps_head_time_limit_and_connections_per_address() {
    let dir = temp_dir();
    let ports = Ports::new();
    let mut gw = sim_gateway(
        dir.path(),
        &ports,
        "max_connections_per_address = 32\n",
        &["demo"],
    );
    let url = ports.url("demo");

    // Slowloris, in the background: a head that never ends, a byte a
    // second. The server cuts it 10 s after its first byte.
    let rtsp_port = ports.rtsp;
    let slow = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", rtsp_port)).unwrap();
        s.write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n").unwrap();
        let start = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 256];
        while start.elapsed() < Duration::from_secs(20) {
            if s.write_all(b"X").is_err() {
                return Some(start.elapsed());
            }
            match s.read(&mut buf) {
                Ok(0) => return Some(start.elapsed()),
                Ok(n) => panic!("answer to half a head: {:?}", &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return Some(start.elapsed()),
            }
        }
        None
    });

    // A head over 16 KiB: 400, closed.
    let mut c = RawRtsp::connect(ports.rtsp);
    let mut big = format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\nX-Pad: ").into_bytes();
    big.extend(std::iter::repeat_n(b'a', 17 * 1024));
    c.send_raw(&big).unwrap();
    let mut text = String::new();
    let _ = c.stream.read_to_string(&mut text);
    assert!(text.starts_with("RTSP/1.0 400 "), "{text:?}");
    // A body over 64 KiB announced: 400, closed.
    let mut c = RawRtsp::connect(ports.rtsp);
    c.send_raw(
        format!("SET_PARAMETER {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 70000\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut text = String::new();
    let _ = c.stream.read_to_string(&mut text);
    assert!(text.starts_with("RTSP/1.0 400 "), "{text:?}");
    // A body within the cap is read and the connection goes on.
    let mut c = RawRtsp::connect(ports.rtsp);
    let body = "x".repeat(60 * 1024);
    c.send_raw(
        format!(
            "SET_PARAMETER {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(c.request("OPTIONS", &url, &[]).status, 200);

    // 32 connections from 127.0.0.7 are held; the 33rd is closed at once
    // without an answer; 127.0.0.8 still gets in; one closed frees one.
    let mut held: Vec<RawRtsp> = (0..32)
        .map(|i| {
            let mut c = RawRtsp::on(connect_from("127.0.0.7", ports.rtsp));
            assert_eq!(
                c.request("OPTIONS", &url, &[]).status,
                200,
                "connection {i}"
            );
            c
        })
        .collect();
    let mut extra = connect_from("127.0.0.7", ports.rtsp);
    let _ = extra.write_all(format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n").as_bytes());
    let closed = closed_within(&mut extra, Duration::from_secs(5));
    assert!(
        closed.is_some(),
        "a 33rd connection from one address stayed"
    );
    let mut other = RawRtsp::on(connect_from("127.0.0.8", ports.rtsp));
    assert_eq!(other.request("OPTIONS", &url, &[]).status, 200);
    held.pop();
    // The place is given back when the server sees the close.
    let mut again = None;
    wait_for(Duration::from_secs(5), || {
        let mut c = RawRtsp::on(connect_from("127.0.0.7", ports.rtsp));
        c.stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let ok = c.request("OPTIONS", &url, &[]).status == 200;
        if ok {
            again = Some(c);
        }
        ok
    });
    drop(held);

    let slow = slow.join().unwrap();
    eprintln!("slowloris cut after {slow:?}");
    let slow = slow.expect("a head sent a byte a second stayed open 20 s");
    assert!(
        slow >= Duration::from_secs(9) && slow < Duration::from_secs(15),
        "slowloris cut after {slow:?}, the limit is 10 s"
    );
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

/// SETUP over TCP interleaved; the answer.
fn setup_tcp(c: &mut RawRtsp, url: &str) -> RtspReply {
    c.request(
        "SETUP",
        &format!("{url}/trackID=0"),
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    )
}

/// `max_rtsp_clients` and `max_rtsp_clients_per_camera` refuse the next
/// client with 453 and the reason; a client leaving frees its place. The
/// clients are consumers of kind rtsp in the API and the metrics.
#[test]
fn client_limits_refuse_the_next_client_with_453() {
    let dir = temp_dir();
    let ports = Ports::new();
    let mut gw = sim_gateway(
        dir.path(),
        &ports,
        "max_rtsp_clients = 3\nmax_rtsp_clients_per_camera = 2",
        &["a", "b"],
    );
    let (a, b) = (ports.url("a"), ports.url("b"));
    let mut a1 = RawRtsp::connect(ports.rtsp);
    assert_eq!(setup_tcp(&mut a1, &a).status, 200);
    let mut a2 = RawRtsp::connect(ports.rtsp);
    a2.play_tcp(&a, false);
    let mut a3 = RawRtsp::connect(ports.rtsp);
    let r = setup_tcp(&mut a3, &a);
    assert_eq!(r.status, 453, "{r:?}");
    let why = r.header("X-Reason").unwrap_or_default();
    assert!(why.contains("max_rtsp_clients_per_camera"), "{r:?}");
    let mut b1 = RawRtsp::connect(ports.rtsp);
    assert_eq!(setup_tcp(&mut b1, &b).status, 200);
    let mut b2 = RawRtsp::connect(ports.rtsp);
    let r = setup_tcp(&mut b2, &b);
    assert_eq!(r.status, 453, "{r:?}");
    let why = r.header("X-Reason").unwrap_or_default();
    assert!(
        why.contains("max_rtsp_clients") && !why.contains("per_camera"),
        "{r:?}"
    );

    let listed = sessions(ports.http, "a");
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert!(listed.iter().all(|s| s["kind"] == "rtsp"), "{listed:#?}");
    assert!(
        listed.iter().any(|s| s["state"] == "playing"),
        "{listed:#?}"
    );
    assert_eq!(
        metric(ports.http, "camgate_rtsp_clients{camera=\"a\"}"),
        2.0
    );

    // TEARDOWN frees a place at once; a vanished client when its
    // connection ends.
    assert_eq!(a1.request("TEARDOWN", &a, &[]).status, 200);
    wait_for(Duration::from_secs(5), || {
        let mut c = RawRtsp::connect(ports.rtsp);
        let ok = setup_tcp(&mut c, &a).status == 200;
        if ok {
            a3 = c;
        }
        ok
    });
    drop(a2);
    wait_for(Duration::from_secs(5), || {
        let mut c = RawRtsp::connect(ports.rtsp);
        let ok = setup_tcp(&mut c, &b).status == 200;
        if ok {
            b2 = c;
        }
        ok
    });
    drop((a3, b1, b2));
    wait_for(Duration::from_secs(5), || {
        sessions(ports.http, "a").is_empty() && sessions(ports.http, "b").is_empty()
    });
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

/// An `on_demand` camera that nobody watches is idle; DESCRIBE starts it
/// and answers with its SDP once it plays; the client then plays from an
/// IDR.
#[test]
fn describe_starts_an_on_demand_camera() {
    let dir = temp_dir();
    let ports = Ports::new();
    let rest =
        "[[camera]]\nid = \"lazy\"\nurl = \"sim://lazy\"\non_demand = true\nidle_timeout = 5\n";
    let mut gw = gateway(dir.path(), &ports, &ports.toml("", rest));
    wait_state(ports.http, "lazy", "idle", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(camera_json(ports.http, "lazy")["state"], "idle");
    let url = ports.url("lazy");
    let mut c = RawRtsp::connect(ports.rtsp);
    let start = Instant::now();
    let r = c.request("DESCRIBE", &url, &[]);
    eprintln!(
        "DESCRIBE of an idle camera answered in {:?}",
        start.elapsed()
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("m=video"), "{}", r.body);
    // DESCRIBE answers once the camera's SDP is known, which may be just
    // before its PLAY is answered.
    wait_state(ports.http, "lazy", "playing", Duration::from_secs(10));
    let r = setup_tcp(&mut c, &url);
    assert_eq!(r.status, 200);
    assert_eq!(c.request("PLAY", &url, &[]).status, 200);
    c.first_idr_complete(Duration::from_secs(10));
    assert_eq!(c.request("TEARDOWN", &url, &[]).status, 200);
    drop(c);
    // Nobody wants it any more: idle again after idle_timeout.
    wait_state(ports.http, "lazy", "idle", Duration::from_secs(15));
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

/// A UDP client.
struct UdpClient {
    rtsp: RawRtsp,
    rtp: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
    /// The server's RTCP port of the video track.
    server_rtcp: u16,
}

impl UdpClient {
    fn play(port: u16, url: &str) -> UdpClient {
        let (rtp, rtcp) = udp_client_pair();
        let p = rtp.local_addr().unwrap().port();
        let mut rtsp = RawRtsp::connect(port);
        let r = rtsp.request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[(
                "Transport",
                &format!("RTP/AVP;unicast;client_port={p}-{}", p + 1),
            )],
        );
        assert_eq!(r.status, 200, "{r:?}");
        let transport = r.header("Transport").unwrap();
        let server_rtcp = transport
            .split(';')
            .find_map(|p| p.strip_prefix("server_port="))
            .and_then(|p| p.split('-').nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no server_port: {transport}"));
        assert_eq!(rtsp.request("PLAY", url, &[]).status, 200);
        rtp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        UdpClient {
            rtsp,
            rtp,
            rtcp,
            server_rtcp,
        }
    }

    /// RTP datagrams received within `d`.
    fn received_within(&self, d: Duration) -> usize {
        let start = Instant::now();
        let mut n = 0;
        let mut buf = [0u8; 2048];
        while start.elapsed() < d {
            if self.rtp.recv(&mut buf).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// An empty RTCP receiver report, to the server's RTCP port.
    fn send_rr(&self) {
        let rr = [0x80u8, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
        self.rtcp
            .send_to(&rr, ("127.0.0.1", self.server_rtcp))
            .unwrap();
    }
}

/// The session timeout (5 s here) reaps a UDP client that sends nothing
/// (its media stops, its connection is closed, its consumer leaves), while
/// a UDP client that sends only RTCP receiver reports is kept.
#[test]
fn the_session_timeout_reaps_a_silent_udp_client() {
    let dir = temp_dir();
    let ports = Ports::new();
    let mut gw = sim_gateway(dir.path(), &ports, "session_timeout = 5", &["demo"]);
    let url = ports.url("demo");
    let mut silent = UdpClient::play(ports.rtsp, &url);
    let talking = UdpClient::play(ports.rtsp, &url);
    assert!(silent.received_within(Duration::from_millis(500)) > 0);
    assert_eq!(sessions(ports.http, "demo").len(), 2);
    let start = Instant::now();
    // 8 s: the talking client reports every 1.5 s.
    let reporter = std::thread::spawn(move || {
        while start.elapsed() < Duration::from_secs(8) {
            talking.send_rr();
            std::thread::sleep(Duration::from_millis(1500));
        }
        talking
    });
    let closed = closed_within(&mut silent.rtsp.stream, Duration::from_secs(10));
    let talking = reporter.join().unwrap();
    eprintln!("silent UDP client cut after {closed:?}");
    let closed = closed.expect("the silent client's connection stayed open");
    assert!(
        closed >= Duration::from_secs(4) && closed < Duration::from_secs(8),
        "cut after {closed:?} with a 5 s session timeout"
    );
    // Its media stopped (what was in flight aside); the other still plays.
    silent.received_within(Duration::from_millis(300));
    assert_eq!(silent.received_within(Duration::from_secs(1)), 0);
    assert!(talking.received_within(Duration::from_millis(500)) > 0);
    let listed = sessions(ports.http, "demo");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    drop(talking);
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

/// Ending an RTSP client's session through the API
/// (`DELETE /api/v1/cameras/{id}/sessions/{sid}`) ends its connection.
#[test]
fn deleting_the_session_in_the_api_ends_the_client() {
    let dir = temp_dir();
    let ports = Ports::new();
    let mut gw = sim_gateway(dir.path(), &ports, "", &["demo"]);
    let url = ports.url("demo");
    let mut c = RawRtsp::connect(ports.rtsp);
    c.play_tcp(&url, false);
    c.first_idr_complete(Duration::from_secs(10));
    let listed = sessions(ports.http, "demo");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let sid = listed[0]["id"].as_str().unwrap().to_owned();
    let r = request(
        ports.http,
        "DELETE",
        &format!("/api/v1/cameras/demo/sessions/{sid}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 204, "{r:?}");
    let closed = closed_within(&mut c.stream, Duration::from_secs(5));
    assert!(closed.is_some(), "the client kept playing after DELETE");
    wait_for(Duration::from_secs(5), || {
        sessions(ports.http, "demo").is_empty()
    });
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

/// RTSP over TLS (`rtsps_listen`, with the `[server]` certificate): ffmpeg
/// pulls `rtsps://` over TCP and decodes with no error.
#[test]
fn rtsps_with_the_server_certificate() {
    require_tool("ffmpeg");
    let dir = temp_dir();
    let ports = Ports::new();
    let tls_port = free_tcp_port();
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), key.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.key_pair.serialize_pem()).unwrap();
    let toml = ports
        .toml(
            &format!("rtsps_listen = \"127.0.0.1:{tls_port}\""),
            "[[camera]]\nid = \"demo\"\nurl = \"sim://demo\"\n",
        )
        .replace(
            "[server]\n",
            "[server]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
        );
    let mut gw = gateway(dir.path(), &ports, &toml);
    // The API is HTTPS now: ask the RTSP server whether the camera plays.
    wait_for(Duration::from_secs(15), || {
        RawRtsp::connect(ports.rtsp)
            .request("DESCRIBE", &ports.url("demo"), &[])
            .status
            == 200
    });
    let ff = spawn_ffmpeg_decode(
        &format!("rtsps://127.0.0.1:{tls_port}/demo"),
        4,
        &["-rtsp_transport", "tcp"],
    );
    let d = wait_decode(ff, Duration::from_secs(30));
    eprintln!("rtsps: {d:?}");
    assert!(
        d.success && d.errors.is_empty() && d.video_frames >= 90,
        "ffmpeg over rtsps: {d:?}\n{}",
        gw.log_text()
    );
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}

#[allow(dead_code)]
#[path = "../fuzz/src/rtsp_server.rs"]
mod fuzz_rtsp_server;

/// The `rtsp_server` fuzz target's checks over 20,000 mutations of its
/// seeds (bytes flipped, inserted, deleted, duplicated; seeds spliced;
/// chunk sizes changed), deterministic, so `cargo test` exercises the
/// request reader beyond the fixed corpus without a fuzzer.
#[test]
fn request_reader_survives_mutated_client_exchanges() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/rtsp_server");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 5);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    for i in 0..20_000 {
        let mut input = seeds[rand(seeds.len())].clone();
        for _ in 0..1 + rand(8) {
            let at = rand(input.len());
            match rand(6) {
                0 => input[at] ^= 1 << rand(8),
                1 => input.insert(at, b"\r\n$:; \0\xff0"[rand(9)]),
                2 if input.len() > 2 => {
                    input.remove(at);
                }
                3 => {
                    let end = (at + rand(64)).min(input.len());
                    let piece = input[at..end].to_vec();
                    input.splice(at..at, piece);
                }
                4 => {
                    let other = &seeds[rand(seeds.len())];
                    let from = rand(other.len());
                    input.truncate(at);
                    input.extend_from_slice(&other[from..]);
                }
                _ => input[0] = rand(256) as u8,
            }
        }
        let result = std::panic::catch_unwind(|| fuzz_rtsp_server::run(&input));
        assert!(
            result.is_ok(),
            "mutation {i} failed the target: {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

/// An RTP stream as a client sees it: sequence numbers, timestamps and SSRC.
#[derive(Debug, Default)]
struct Track {
    first: Option<(u16, u32)>,
    last: Option<(u16, u32)>,
    ssrc: Option<u32>,
    packets: usize,
    /// Sequence gaps, repeats and timestamps going back.
    faults: Vec<String>,
    /// The next packet starts a PLAY: its timestamp is not compared.
    resumed: bool,
}

impl Track {
    fn push(&mut self, p: &[u8]) {
        let seq = u16::from_be_bytes([p[2], p[3]]);
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
        if *self.ssrc.get_or_insert(ssrc) != ssrc {
            self.faults
                .push(format!("SSRC {ssrc:08X} after {:08X?}", self.ssrc));
        }
        if let Some((s, t)) = self.last {
            if seq != s.wrapping_add(1) {
                self.faults.push(format!("seq {s} then {seq}"));
            }
            if !self.resumed && (ts.wrapping_sub(t) as i32) < 0 {
                self.faults.push(format!("timestamp {t} then {ts}"));
            }
        }
        self.first.get_or_insert((seq, ts));
        self.last = Some((seq, ts));
        self.resumed = false;
        self.packets += 1;
    }
}

/// `seq` and `rtptime` of a track in an RTP-Info header.
fn rtp_info(reply: &RtspReply, track: usize) -> (u16, u32) {
    let info = reply.header("RTP-Info").expect("RTP-Info");
    let part = info
        .split(',')
        .find(|p| p.contains(&format!("trackID={track};")))
        .unwrap_or_else(|| panic!("no track {track} in {info}"));
    let field = |name: &str| {
        part.split(';')
            .find_map(|f| f.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {part}"))
            .to_owned()
    };
    (
        field("seq=").parse().unwrap(),
        field("rtptime=").parse().unwrap(),
    )
}

/// The stream a client gets is well formed: per track one SSRC (the one
/// SETUP announced), sequence numbers without gap or repeat, timestamps
/// that never go back, and the first packet as RTP-Info announced it; after
/// PAUSE and PLAY the sequence goes on where it stopped.
#[test]
fn rtp_streams_match_setup_and_rtp_info_across_pause() {
    let dir = temp_dir();
    let ports = Ports::new();
    let mut gw = sim_gateway(dir.path(), &ports, "", &["demo"]);
    let url = ports.url("demo");
    let mut c = RawRtsp::connect(ports.rtsp);
    assert_eq!(c.request("DESCRIBE", &url, &[]).status, 200);
    let mut ssrcs = Vec::new();
    for (track, channels) in [(0, "0-1"), (1, "2-3")] {
        let r = c.request(
            "SETUP",
            &format!("{url}/trackID={track}"),
            &[(
                "Transport",
                &format!("RTP/AVP/TCP;unicast;interleaved={channels}"),
            )],
        );
        assert_eq!(r.status, 200, "{r:?}");
        let t = r.header("Transport").unwrap();
        let ssrc = t
            .split(';')
            .find_map(|f| f.strip_prefix("ssrc="))
            .map(|s| u32::from_str_radix(s, 16).unwrap())
            .unwrap_or_else(|| panic!("no ssrc in {t}"));
        ssrcs.push(ssrc);
    }
    let mut tracks = [Track::default(), Track::default()];
    let play_and_read = |c: &mut RawRtsp, tracks: &mut [Track; 2], secs: u64| {
        let r = c.request("PLAY", &url, &[]);
        assert_eq!(r.status, 200, "{r:?}");
        let announced = [rtp_info(&r, 0), rtp_info(&r, 1)];
        let before: Vec<Option<(u16, u32)>> = tracks.iter().map(|t| t.last).collect();
        // A new PLAY may start a new timestamp mapping (RTP-Info gives it).
        for t in tracks.iter_mut() {
            t.resumed = true;
        }
        let mut firsts: [Option<(u16, u32)>; 2] = [None, None];
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            let f = c.read_frame().unwrap();
            let i = match f.channel {
                0 => 0,
                2 => 1,
                _ => continue,
            };
            let p = &f.data;
            firsts[i].get_or_insert((
                u16::from_be_bytes([p[2], p[3]]),
                u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            ));
            tracks[i].push(p);
        }
        for i in 0..2 {
            let first = firsts[i].unwrap_or_else(|| panic!("nothing on track {i}"));
            assert_eq!(first.0, announced[i].0, "track {i}: RTP-Info seq");
            if i == 1 {
                // Audio starts live while video starts at the cached
                // keyframe, which is npt 0: the audio rtptime is dated back
                // to that keyframe, so the first audio packet comes between
                // 0 and one GOP (the sim's is 2 s) after it. The sim's audio
                // is PCMU at 8 kHz (a resumed PLAY also extrapolates the
                // audio timeline to the PLAY, within a packet or two).
                let off = first.1.wrapping_sub(announced[i].1) as i32;
                assert!(
                    (-800..=2 * 8000 + 800).contains(&off),
                    "audio: RTP-Info rtptime {} but the first packet has {} ({off})",
                    announced[i].1,
                    first.1
                );
            } else {
                assert_eq!(first.1, announced[i].1, "track {i}: RTP-Info rtptime");
            }
            if let Some((s, _)) = before[i] {
                assert_eq!(first.0, s.wrapping_add(1), "track {i}: seq after PAUSE");
            }
        }
    };
    play_and_read(&mut c, &mut tracks, 3);
    let r = c.request("PAUSE", &url, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    // What was on its way before the PAUSE answer (read_frame hands out
    // first what arrived while waiting for it).
    c.stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while let Ok(f) = c.read_frame() {
        let i = if f.channel == 0 {
            0
        } else if f.channel == 2 {
            1
        } else {
            continue;
        };
        tracks[i].push(&f.data);
    }
    c.stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    play_and_read(&mut c, &mut tracks, 2);
    for (i, t) in tracks.iter().enumerate() {
        assert_eq!(t.ssrc, Some(ssrcs[i]), "track {i}");
        assert!(t.faults.is_empty(), "track {i}: {:?}", t.faults);
        assert!(t.packets > 20, "track {i}: {t:?}");
    }
    assert!(gw.terminate(Duration::from_secs(5)).is_some());
}
