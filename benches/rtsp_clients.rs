//! RTSP server bench (issue 15): one 4 Mbit/s H.264 camera → camgate's RTSP
//! server → N clients over TCP interleaved, against GStreamer's RTSP server
//! re-serving the same camera to the same number of clients (the baseline),
//! measured in the same run, on loopback only.
//!
//! - The camera: GStreamer's RTSP server (tests/support/gst_rtsp_server.py
//!   `--file`) looping a 1280x720 25 fps clip (GOP 2 s, ~4 Mbit/s) that
//!   ffmpeg encodes once at start, paced by the clock; nothing is encoded
//!   while measuring.
//! - camgate pulls it over TCP and serves it on `[rtsp_server]`.
//! - The baseline: a second gst_rtsp_server.py, `--relay`: a shared media
//!   `rtspsrc (TCP) ! rtph264depay ! rtph264pay`, one pull re-served to
//!   every client, as camgate does. Both payload at 1400-byte packets
//!   (camgate's `rtp_payload_size` is set to GStreamer's payload size), so
//!   their packet rates compare.
//! - The clients: minimal RTSP clients in this process (tokio), one source
//!   address each on 127/8 (camgate caps connections per address), counting
//!   RTP packets and payload bytes, no decoding. One more client reads the
//!   camera itself: the rate every client should get.
//!
//! Each point: N clients play, 3 s warm-up, then a 10 s window in which the
//! server's CPU (user + system, /proc) and RSS are read, and each client's
//! packet and payload rates. Clients per core = N / cores used.
//!
//! `cargo bench --bench rtsp_clients` (N = 50, 200, 500), or
//! `CAMGATE_RTSP_N=50,100 cargo bench --bench rtsp_clients`. Under
//! `cargo test --benches` it runs a two-client smoke pass.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpSocket;

use common::{
    camera_tools_missing, cameras_playing, clock_ticks, cpu_ticks, free_tcp_port, load_average,
    machine_jiffies, make_camera_clip, ready_port, rss_kib, wait, Proc, TempDir,
};

const GST_SERVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/gst_rtsp_server.py"
);
/// rtph264pay's default MTU (1400) less the RTP header: camgate is set to
/// the same payload size, so both send the same packets.
const PAYLOAD_SIZE: usize = 1388;
/// Clients setting up at once.
const CONCURRENT_SETUPS: usize = 32;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let measure = Duration::from_secs(if bench { 10 } else { 2 });
    let warm_up = Duration::from_secs(if bench { 3 } else { 1 });
    let default_n = if bench { "50,200,500" } else { "2" };
    let ns: Vec<usize> = std::env::var("CAMGATE_RTSP_N")
        .unwrap_or_else(|_| default_n.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if let Some(missing) = camera_tools_missing(false) {
        // Never a silent skip: CI installs these (scripts/deps).
        panic!("rtsp_clients bench: {missing}");
    }
    let ticks = clock_ticks();
    let dir = TempDir::new("rtsp-clients");
    let clip = dir.0.join("camera.h264");
    make_camera_clip(&clip, 25);

    // The camera.
    let mut camera = gst_server(&["--file", clip.to_str().unwrap()]);
    let cam_port = ready_port(&mut camera.0, Duration::from_secs(20)).expect("camera server up");
    let cam_url = format!("rtsp://127.0.0.1:{cam_port}/test");

    // camgate, pulling it over TCP.
    let max_n = ns.iter().copied().max().unwrap_or(1);
    let http = free_tcp_port();
    let rtsp = free_tcp_port();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{http}\"\n\n\
         [rtsp_server]\nlisten = \"127.0.0.1:{rtsp}\"\n\
         max_rtsp_clients = {limit}\nmax_rtsp_clients_per_camera = {limit}\n\n\
         [[camera]]\nid = \"cam\"\nurl = \"{cam_url}\"\ntransport = \"tcp\"\n\
         rtp_payload_size = {PAYLOAD_SIZE}\n",
        limit = max_n + 10
    );
    let cfg = dir.0.join("cameras.toml");
    std::fs::write(&cfg, toml).unwrap();
    let gw = Proc(
        Command::new(env!("CARGO_BIN_EXE_camgate"))
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait(Duration::from_secs(30), || cameras_playing(http) > 0);

    // The baseline: GStreamer re-serving the same camera.
    let mut relay = gst_server(&["--relay", &cam_url]);
    let relay_port = ready_port(&mut relay.0, Duration::from_secs(20)).expect("relay server up");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The rate every client should get, read from the camera itself.
    let reference = rt.block_on(async {
        Client::start(
            cam_url.clone(),
            Ipv4Addr::new(127, 0, 0, 1),
            Arc::new(AtomicUsize::new(0)),
        )
    });

    let (jb, jt) = machine_jiffies();
    println!(
        "rtsp_clients bench: 1 camera 1280x720 25 fps ~4 Mbit/s, RTSP over TCP interleaved; \
         {} s warm-up, {} s window per point; {} cores; load average {:.2}",
        warm_up.as_secs(),
        measure.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!(
        "{:>9} {:>5} {:>8} {:>8} {:>12} {:>9} {:>9} {:>10} {:>10} {:>13} {:>8} {:>9}",
        "server",
        "N",
        "playing",
        "cpu %",
        "clients/core",
        "RSS MiB",
        "KiB/clnt",
        "pkt/s/clnt",
        "camera pkt/s",
        "delivery min/mean %",
        "gaps",
        "machine %"
    );
    let mut rows = Vec::new();
    for &n in &ns {
        let a = point(
            &rt,
            "camgate",
            gw.0.id(),
            &format!("rtsp://127.0.0.1:{rtsp}/cam"),
            n,
            &reference,
            ticks,
            warm_up,
            measure,
        );
        let b = point(
            &rt,
            "gstreamer",
            relay.0.id(),
            &format!("rtsp://127.0.0.1:{relay_port}/test"),
            n,
            &reference,
            ticks,
            warm_up,
            measure,
        );
        rows.push((n, a, b));
    }
    let (jb2, jt2) = machine_jiffies();
    println!();
    println!(
        "{:>5} {:>14} {:>14} {:>16} {:>16} {:>10} {:>12}",
        "N",
        "camgate cpu %",
        "gst cpu %",
        "camgate clnt/core",
        "gst clnt/core",
        "ratio",
        "target 500"
    );
    for (n, a, b) in &rows {
        let ratio = a.per_core / b.per_core;
        println!(
            "{:>5} {:>14.1} {:>14.1} {:>16.0} {:>16.0} {:>9.2}x {:>12}",
            n,
            a.cpu * 100.0,
            b.cpu * 100.0,
            a.per_core,
            b.per_core,
            ratio,
            if a.per_core >= 500.0 { "met" } else { "missed" }
        );
    }
    println!(
        "ratio = camgate clients per core / GStreamer clients per core (higher is better); \
         machine busy over the run {:.0}% of all cores, load average now {:.2}",
        100.0 * (jb2 - jb) as f64 / (jt2 - jt).max(1) as f64,
        load_average()
    );
    if !bench {
        for (_, a, b) in &rows {
            assert_eq!(a.playing, a.n, "camgate: not every client playing");
            assert_eq!(b.playing, b.n, "gstreamer: not every client playing");
            assert!(
                a.delivery_min > 0.8,
                "camgate delivered {:?}",
                a.delivery_min
            );
        }
    }
    rt.block_on(async move { reference.stop().await });
    drop(rt);
    drop(relay);
    drop(gw);
    drop(camera);
}

/// One server's figures at one N.
struct Row {
    n: usize,
    playing: usize,
    /// Cores used (1.0 = one core).
    cpu: f64,
    per_core: f64,
    delivery_min: f64,
}

/// Plays `n` clients from `url` (served by process `pid`), measures, prints
/// a row, stops the clients.
#[allow(clippy::too_many_arguments)]
fn point(
    rt: &tokio::runtime::Runtime,
    what: &str,
    pid: u32,
    url: &str,
    n: usize,
    reference: &Client,
    ticks: u64,
    warm_up: Duration,
    measure: Duration,
) -> Row {
    let setups = Arc::new(AtomicUsize::new(0));
    let clients: Vec<Client> = rt.block_on(async {
        (0..n)
            .map(|i| Client::start(url.to_string(), source_address(i), setups.clone()))
            .collect()
    });
    // Every client playing and fed (or given up on).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let done = clients.iter().filter(|c| c.finished_setup()).count();
        let fed = clients.iter().filter(|c| c.packets() > 0).count();
        if done == n && fed == clients.iter().filter(|c| c.playing()).count() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(warm_up);
    let playing = clients.iter().filter(|c| c.playing()).count();
    let before: Vec<(u64, u64)> = clients.iter().map(|c| (c.packets(), c.payload())).collect();
    let ref0 = (reference.packets(), reference.payload());
    let gaps0: u64 = clients.iter().map(|c| c.gaps()).sum();
    let cpu0 = cpu_ticks(pid);
    let me0 = cpu_ticks(std::process::id());
    let (jb, jt) = machine_jiffies();
    let t0 = Instant::now();
    std::thread::sleep(measure);
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - cpu0) as f64 / ticks as f64 / secs;
    let me = (cpu_ticks(std::process::id()) - me0) as f64 / ticks as f64 / secs;
    let (jb2, jt2) = machine_jiffies();
    let rss = rss_kib(pid);
    let after: Vec<(u64, u64)> = clients.iter().map(|c| (c.packets(), c.payload())).collect();
    let gaps = clients.iter().map(|c| c.gaps()).sum::<u64>() - gaps0;
    let ref_pkts = (reference.packets() - ref0.0) as f64 / secs;
    let ref_bytes = (reference.payload() - ref0.1) as f64 / secs;
    let failures: Vec<String> = clients.iter().filter_map(|c| c.error()).collect();
    rt.block_on(async {
        for c in clients {
            c.stop().await;
        }
    });
    // The server notices the closed connections.
    std::thread::sleep(Duration::from_secs(1));

    let rates: Vec<(f64, f64)> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| ((a.0 - b.0) as f64 / secs, (a.1 - b.1) as f64 / secs))
        .collect();
    let pkt_mean = rates.iter().map(|r| r.0).sum::<f64>() / n.max(1) as f64;
    let delivery: Vec<f64> = rates.iter().map(|r| r.1 / ref_bytes.max(1.0)).collect();
    let delivery_min = delivery.iter().copied().fold(f64::INFINITY, f64::min);
    let delivery_mean = delivery.iter().sum::<f64>() / n.max(1) as f64;
    let per_core = if cpu > 0.0 {
        n as f64 / cpu
    } else {
        f64::INFINITY
    };
    let machine = 100.0 * (jb2 - jb) as f64 / (jt2 - jt).max(1) as f64;
    println!(
        "{:>9} {:>5} {:>8} {:>8.1} {:>12.0} {:>9.1} {:>9.0} {:>10.0} {:>10.0} {:>6.1}/{:>6.1} {:>8} {:>9.0}",
        what,
        n,
        playing,
        cpu * 100.0,
        per_core,
        rss as f64 / 1024.0,
        rss as f64 / n as f64,
        pkt_mean,
        ref_pkts,
        delivery_min * 100.0,
        delivery_mean * 100.0,
        gaps,
        machine
    );
    println!(
        "{:>9} {:>5} clients (this process) {:.0}% cpu; camera {:.2} Mbit/s payload",
        "",
        "",
        me * 100.0,
        ref_bytes * 8.0 / 1e6
    );
    if let Some(first) = failures.first() {
        println!(
            "{:>9} {:>5} {} clients failed, first: {first}",
            "",
            "",
            failures.len()
        );
    }
    Row {
        n,
        playing,
        cpu,
        per_core,
        delivery_min,
    }
}

/// Client `i`'s source address: one per client on 127/8, as recorders on
/// separate hosts (camgate admits at most 32 connections per address).
fn source_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// What a client task shares with the bench.
#[derive(Default)]
struct Counters {
    /// 0 setting up, 1 playing, 2 failed.
    state: AtomicUsize,
    packets: AtomicU64,
    payload: AtomicU64,
    /// Missing RTP sequence numbers.
    gaps: AtomicU64,
    error: std::sync::Mutex<Option<String>>,
}

/// One RTSP client over TCP interleaved.
struct Client {
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    /// Starts a client task: OPTIONS, DESCRIBE, SETUP (video, interleaved
    /// 0-1), PLAY, then counting; `setups` bounds how many set up at once.
    fn start(url: String, from: Ipv4Addr, setups: Arc<AtomicUsize>) -> Client {
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let task = tokio::spawn(async move {
            while setups.fetch_add(1, Relaxed) >= CONCURRENT_SETUPS {
                setups.fetch_sub(1, Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let conn = tokio::time::timeout(Duration::from_secs(30), setup(&url, from)).await;
            setups.fetch_sub(1, Relaxed);
            match conn {
                Ok(Ok((rd, wr, pending, session))) => {
                    c.state.store(1, Relaxed);
                    let r = receive(rd, wr, pending, &url, &session, &c).await;
                    if let Err(e) = r {
                        *c.error.lock().unwrap() = Some(e);
                    }
                    c.state.store(2, Relaxed);
                }
                Ok(Err(e)) => {
                    *c.error.lock().unwrap() = Some(e);
                    c.state.store(2, Relaxed);
                }
                Err(_) => {
                    *c.error.lock().unwrap() = Some("set-up took over 30 s".into());
                    c.state.store(2, Relaxed);
                }
            }
        });
        Client { counters, task }
    }

    fn finished_setup(&self) -> bool {
        self.counters.state.load(Relaxed) != 0
    }

    fn playing(&self) -> bool {
        self.counters.state.load(Relaxed) == 1
    }

    fn packets(&self) -> u64 {
        self.counters.packets.load(Relaxed)
    }

    fn payload(&self) -> u64 {
        self.counters.payload.load(Relaxed)
    }

    fn gaps(&self) -> u64 {
        self.counters.gaps.load(Relaxed)
    }

    fn error(&self) -> Option<String> {
        self.counters.error.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The RTSP exchange up to PLAY: the connection's halves, bytes read past
/// the PLAY answer, the session id.
async fn setup(
    url: &str,
    from: Ipv4Addr,
) -> Result<(OwnedReadHalf, OwnedWriteHalf, Vec<u8>, String), String> {
    let hostport = url
        .strip_prefix("rtsp://")
        .and_then(|r| r.split('/').next())
        .ok_or("bad url")?;
    let to: SocketAddr = hostport.parse().map_err(|e| format!("{hostport}: {e}"))?;
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(from.into(), 0))
        .map_err(|e| format!("bind {from}: {e}"))?;
    let stream = socket
        .connect(to)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut rd, mut wr) = stream.into_split();
    let mut pending = Vec::new();
    let mut cseq = 0;
    let mut ask = |method: &str, uri: &str, extra: &str| {
        cseq += 1;
        format!(
            "{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: camgate-bench\r\n{extra}\r\n"
        )
    };
    let r = exchange(&mut rd, &mut wr, &mut pending, ask("OPTIONS", url, "")).await?;
    check(&r, "OPTIONS")?;
    let r = exchange(
        &mut rd,
        &mut wr,
        &mut pending,
        ask("DESCRIBE", url, "Accept: application/sdp\r\n"),
    )
    .await?;
    check(&r, "DESCRIBE")?;
    let base = header(&r.head, "Content-Base").unwrap_or_else(|| format!("{url}/"));
    let sdp = String::from_utf8_lossy(&r.body).into_owned();
    let (session_control, video_control) = controls(&sdp);
    let video = resolve(&base, video_control.as_deref().ok_or("no video track")?);
    let aggregate = match session_control.as_deref() {
        Some("*") | None => base.clone(),
        Some(c) => resolve(&base, c),
    };
    let r = exchange(
        &mut rd,
        &mut wr,
        &mut pending,
        ask(
            "SETUP",
            &video,
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        ),
    )
    .await?;
    check(&r, "SETUP")?;
    let session = header(&r.head, "Session")
        .ok_or("no Session")?
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let r = exchange(
        &mut rd,
        &mut wr,
        &mut pending,
        ask(
            "PLAY",
            &aggregate,
            &format!("Session: {session}\r\nRange: npt=0.000-\r\n"),
        ),
    )
    .await?;
    check(&r, "PLAY")?;
    Ok((rd, wr, pending, session))
}

/// An RTSP answer.
struct Answer {
    head: String,
    body: Vec<u8>,
}

fn check(a: &Answer, what: &str) -> Result<(), String> {
    let status = a.head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!(
            "{what}: {status} {}",
            header(&a.head, "X-Reason").unwrap_or_default()
        ))
    }
}

/// Sends a request, reads its answer; bytes past it stay in `pending`.
async fn exchange(
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    pending: &mut Vec<u8>,
    request: String,
) -> Result<Answer, String> {
    wr.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut chunk = [0u8; 8192];
    loop {
        // Interleaved data before the answer (none expected) is skipped.
        while pending.first() == Some(&b'$') && pending.len() >= 4 {
            let len = 4 + u16::from_be_bytes([pending[2], pending[3]]) as usize;
            if pending.len() < len {
                break;
            }
            pending.drain(..len);
        }
        if pending.first() != Some(&b'$') {
            if let Some(end) = find(pending, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                let len: usize = header(&head, "Content-Length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if pending.len() >= end + 4 + len {
                    let body = pending[end + 4..end + 4 + len].to_vec();
                    pending.drain(..end + 4 + len);
                    return Ok(Answer { head, body });
                }
            }
        }
        let n = rd.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        pending.extend_from_slice(&chunk[..n]);
    }
}

/// Reads the stream, counting RTP on channel 0, until the task is stopped;
/// an OPTIONS every 20 s keeps the session (timeout 60 s) alive.
async fn receive(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    pending: Vec<u8>,
    url: &str,
    session: &str,
    c: &Counters,
) -> Result<(), String> {
    let mut buf = vec![0u8; 256 * 1024];
    buf[..pending.len()].copy_from_slice(&pending);
    let (mut lo, mut hi) = (0usize, pending.len());
    let mut last_seq: Option<u16> = None;
    let mut keepalive = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(20),
        Duration::from_secs(20),
    );
    let mut cseq = 100u32;
    loop {
        let (mut packets, mut payload, mut gaps) = (0u64, 0u64, 0u64);
        loop {
            let avail = &buf[lo..hi];
            if avail.is_empty() {
                break;
            }
            if avail[0] == b'$' {
                if avail.len() < 4 {
                    break;
                }
                let len = u16::from_be_bytes([avail[2], avail[3]]) as usize;
                if avail.len() < 4 + len {
                    break;
                }
                let pkt = &avail[4..4 + len];
                if avail[1] == 0 && pkt.len() >= 12 {
                    let csrc = usize::from(pkt[0] & 0x0f) * 4;
                    let mut header = 12 + csrc;
                    if pkt[0] & 0x10 != 0 && pkt.len() >= header + 4 {
                        header +=
                            4 + 4 * u16::from_be_bytes([pkt[header + 2], pkt[header + 3]]) as usize;
                    }
                    let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
                    if let Some(last) = last_seq {
                        gaps += u64::from(seq.wrapping_sub(last).wrapping_sub(1).min(1000));
                    }
                    last_seq = Some(seq);
                    packets += 1;
                    payload += pkt.len().saturating_sub(header) as u64;
                }
                lo += 4 + len;
            } else {
                // An RTSP message (an answer to the keepalive, or a request).
                let Some(end) = find(avail, b"\r\n\r\n") else {
                    if avail.len() > 64 * 1024 {
                        return Err("lost the interleaved framing".into());
                    }
                    break;
                };
                let head = String::from_utf8_lossy(&avail[..end]);
                let len: usize = header(&head, "Content-Length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if avail.len() < end + 4 + len {
                    break;
                }
                lo += end + 4 + len;
            }
        }
        if packets > 0 {
            c.packets.fetch_add(packets, Relaxed);
            c.payload.fetch_add(payload, Relaxed);
            c.gaps.fetch_add(gaps, Relaxed);
        }
        if lo == hi {
            (lo, hi) = (0, 0);
        } else if buf.len() - hi < 70 * 1024 {
            buf.copy_within(lo..hi, 0);
            (lo, hi) = (0, hi - lo);
        }
        tokio::select! {
            r = rd.read(&mut buf[hi..]) => match r {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => hi += n,
                Err(e) => return Err(e.to_string()),
            },
            _ = keepalive.tick() => {
                cseq += 1;
                let req = format!("OPTIONS {url} RTSP/1.0\r\nCSeq: {cseq}\r\nSession: {session}\r\n\r\n");
                wr.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The SDP's session-level `a=control` and the first video track's.
fn controls(sdp: &str) -> (Option<String>, Option<String>) {
    let mut session = None;
    let mut video = None;
    let mut section = "";
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(m) = line.strip_prefix("m=") {
            section = if m.starts_with("video") {
                "video"
            } else {
                "other"
            };
        } else if let Some(c) = line.strip_prefix("a=control:") {
            match section {
                "" => session = Some(c.to_string()),
                "video" if video.is_none() => video = Some(c.to_string()),
                _ => {}
            }
        }
    }
    (session, video)
}

fn resolve(base: &str, control: &str) -> String {
    if control.starts_with("rtsp://") {
        control.to_string()
    } else if base.ends_with('/') {
        format!("{base}{control}")
    } else {
        format!("{base}/{control}")
    }
}

/// tests/support/gst_rtsp_server.py with `extra` options, unauthenticated.
fn gst_server(extra: &[&str]) -> Proc {
    Proc(
        Command::new("/usr/bin/python3")
            .args([GST_SERVER, "user", "password", "0", "--no-auth"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs"),
    )
}
