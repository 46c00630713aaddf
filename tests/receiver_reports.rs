//! Issue 10, receiver reports every 5 s: a simulated camera with
//! `require_rr_s = 8` ends sessions that send no RTCP receiver report for
//! 8 s, as some firmware does. camgate keeps one session playing with it,
//! over TCP and over UDP, for well over 8 s; a raw RTSP client that never
//! sends RTCP is cut off, over TCP and over UDP, so the fault is real.
//! Everything on 127.0.0.1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use camgate::camera::{CameraHandle, CameraState, Supervisor};
use camgate::config::Config;
use camgate::sim::{Faults, SimOptions, SimServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

/// The simulator's limit.
const REQUIRE_RR: Duration = Duration::from_secs(8);

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Camera `id` pulled from the sim over `transport`, playing.
async fn pull(supervisor: &Supervisor, sim: SocketAddr, id: &str, transport: &str) -> CameraHandle {
    let text = format!(
        "[[camera]]\nid = \"{id}\"\nurl = \"rtsp://{sim}/{id}\"\ntransport = \"{transport}\"\n"
    );
    let cfg = Config::parse(&text, "test.toml").unwrap().cameras.remove(0);
    let cam = supervisor.add(cfg).await.unwrap();
    wait_until(&format!("{id} playing"), Duration::from_secs(20), || {
        let s = cam.status.borrow();
        s.state == CameraState::Playing && cam.stats.snapshot().frames_received > 0
    })
    .await;
    cam
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camgate_keeps_a_session_that_requires_receiver_reports() {
    let root = CancellationToken::new();
    let options = SimOptions {
        faults: Faults {
            require_rr_s: REQUIRE_RR.as_secs_f64(),
            ..Faults::default()
        },
        ..SimOptions::default()
    };
    let sim = SimServer::bind(([127, 0, 0, 1], 0).into(), options)
        .await
        .unwrap();
    let sim_addr = sim.local_addr();
    let stats = sim.fault_stats();
    let sim_task = tokio::spawn(sim.run(root.clone()));
    let supervisor = Supervisor::new(&root);

    let tcp = pull(&supervisor, sim_addr, "viatcp", "tcp").await;
    let udp = pull(&supervisor, sim_addr, "viaudp", "udp").await;
    let c = stats.snapshot();
    assert_eq!((c.tcp_sessions, c.udp_sessions), (1, 1));

    // 20 s, over twice the limit: the same sessions, pictures all along.
    let end = Instant::now() + Duration::from_secs(20);
    let mut last = [0, 0];
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for (n, cam) in [&tcp, &udp].into_iter().enumerate() {
            let id = &cam.config.id;
            let frames = cam.stats.snapshot().frames_received;
            assert!(frames > last[n], "{id}: no new picture in 2 s");
            last[n] = frames;
            assert_eq!(cam.status.borrow().state, CameraState::Playing, "{id}");
            assert_eq!(cam.stats.snapshot().reconnects, 0, "{id}");
        }
        let c = stats.snapshot();
        assert_eq!((c.tcp_sessions, c.udp_sessions, c.rr_timeouts), (1, 1, 0));
    }

    root.cancel();
    tokio::time::timeout(Duration::from_secs(5), supervisor.join())
        .await
        .unwrap();
    let _ = sim_task.await;
}

/// Sends `request` and reads until a whole RTSP answer has come; returns
/// its head (what follows it, media over TCP, is not needed).
async fn exchange(conn: &mut TcpStream, request: String) -> String {
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "the sim closed the connection");
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end + 4]).into_owned();
            let body: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + body {
                return head;
            }
        }
    }
}

/// The session id of a SETUP answer.
fn session_id(answer: &str) -> String {
    let value = answer
        .lines()
        .find_map(|l| l.strip_prefix("Session:"))
        .expect("Session header");
    value.split(';').next().unwrap().trim().to_owned()
}

/// A raw client that sets up the video of `camera` over UDP (`udp`) or TCP
/// interleaved, plays, never sends RTCP, and reads media until none comes
/// for 2 s or the connection closes; returns how long media came after
/// PLAY.
async fn play_without_rtcp(sim: SocketAddr, camera: &str, udp: bool) -> Duration {
    let url = format!("rtsp://{sim}/{camera}");
    let mut conn = TcpStream::connect(sim).await.unwrap();
    let answer = exchange(
        &mut conn,
        format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("RTSP/1.0 200"), "{answer}");
    let media = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = media.local_addr().unwrap().port();
    let transport = if udp {
        // RTCP would go to port + 1; nothing listens there.
        format!("RTP/AVP;unicast;client_port={port}-{}", port + 1)
    } else {
        "RTP/AVP/TCP;unicast;interleaved=0-1".to_owned()
    };
    let answer = exchange(
        &mut conn,
        format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: {transport}\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("RTSP/1.0 200"), "{answer}");
    let session = session_id(&answer);
    let answer = exchange(
        &mut conn,
        format!("PLAY {url}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("RTSP/1.0 200"), "{answer}");
    let played = Instant::now();
    let mut last_media = played;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = if udp {
            tokio::time::timeout(Duration::from_secs(2), media.recv(&mut buf)).await
        } else {
            tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf)).await
        };
        match read {
            Ok(Ok(n)) if n > 0 => last_media = Instant::now(),
            // Closed, failed, or silent for 2 s.
            _ => return last_media - played,
        }
        // Never more than a minute, whatever the sim does.
        if played.elapsed() > Duration::from_secs(60) {
            return played.elapsed();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_receiver_reports_is_cut_off() {
    let root = CancellationToken::new();
    let sim = SimServer::bind(([127, 0, 0, 1], 0).into(), SimOptions::default())
        .await
        .unwrap();
    let sim_addr = sim.local_addr();
    let stats = sim.fault_stats();
    let sim_task = tokio::spawn(sim.run(root.clone()));

    // The same limit, asked for in the URL this time.
    let (tcp, udp) = tokio::join!(
        play_without_rtcp(sim_addr, "cam?require_rr_s=8", false),
        play_without_rtcp(sim_addr, "cam?require_rr_s=8", true),
    );
    for (what, lasted) in [("TCP", tcp), ("UDP", udp)] {
        // The sim counts frames, so the cut comes at 8 s of media; the
        // upper bound only says it came, long before the 60 s UDP expiry.
        assert!(
            lasted >= REQUIRE_RR - Duration::from_millis(500) && lasted < Duration::from_secs(30),
            "{what}: media for {lasted:?} without any receiver report (limit {REQUIRE_RR:?})"
        );
    }
    let c = stats.snapshot();
    assert_eq!((c.tcp_sessions, c.udp_sessions, c.rr_timeouts), (1, 1, 2));

    root.cancel();
    let _ = sim_task.await;
}
