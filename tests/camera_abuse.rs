//! A camera that abuses the RTSP connection affects only itself: an
//! endless header section, a DESCRIBE answer announcing (and streaming)
//! 100 MB, and a storm of 64 KiB interleaved frames after PLAY, all in one
//! gateway beside a healthy simulated camera. The healthy camera keeps
//! playing, the bad ones end in backoff with a sentence saying why, and
//! the gateway's memory stays bounded.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::*;

/// How a fake camera misbehaves.
#[derive(Clone, Copy, Debug)]
enum Abuse {
    /// Answers the first request with a header section that never ends.
    EndlessHeader,
    /// Answers DESCRIBE with `Content-Length: 104857600` and streams it.
    HugeSdp,
    /// Plays normally, then sends 64 KiB `$` frames as fast as it can.
    FrameStorm,
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=storm\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:track1\r\n";

/// Reads one request head; returns its CSeq and method, `None` at EOF.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u32, String)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let method = head.split_whitespace().next().unwrap_or("").to_string();
            let cseq = head
                .lines()
                .find_map(|l| l.strip_prefix("CSeq:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            return Some((cseq, method));
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One connection of a fake camera. Returns when camgate hangs up.
async fn serve(mut s: TcpStream, abuse: Abuse) {
    let mut buf = Vec::new();
    let junk = vec![b'a'; 64 * 1024];
    loop {
        let Some((cseq, method)) = read_request(&mut s, &mut buf).await else {
            return;
        };
        let ok = |extra: &str| format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n");
        match (abuse, method.as_str()) {
            (Abuse::EndlessHeader, _) => {
                let start = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nX-Padding: ");
                if s.write_all(start.as_bytes()).await.is_err() {
                    return;
                }
                while s.write_all(&junk).await.is_ok() {}
                return;
            }
            (Abuse::HugeSdp, "DESCRIBE") => {
                let head = format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: 104857600\r\n\r\n{SDP}"
                );
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut sent = SDP.len();
                while sent < 104_857_600 && s.write_all(&junk).await.is_ok() {
                    sent += junk.len();
                }
                return;
            }
            (_, "DESCRIBE") => {
                let msg = format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
                    SDP.len()
                );
                if s.write_all(msg.as_bytes()).await.is_err() {
                    return;
                }
            }
            (_, "SETUP") => {
                let msg = ok("Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1234ABCD\r\nSession: 77;timeout=60\r\n");
                if s.write_all(msg.as_bytes()).await.is_err() {
                    return;
                }
            }
            (Abuse::FrameStorm, "PLAY") => {
                if s.write_all(ok("Session: 77\r\n").as_bytes()).await.is_err() {
                    return;
                }
                // RTP on the negotiated channel: valid headers, 64 KiB each,
                // FU-A fragments of one endless picture.
                let mut seq = 0u16;
                loop {
                    let mut frame = Vec::with_capacity(4 + 0xffff);
                    frame.extend_from_slice(&[b'$', 0, 0xff, 0xff]);
                    frame.extend_from_slice(&[0x80, 96]);
                    frame.extend_from_slice(&seq.to_be_bytes());
                    frame.extend_from_slice(&0u32.to_be_bytes());
                    frame.extend_from_slice(&0x1234_abcdu32.to_be_bytes());
                    frame.extend_from_slice(&[0x7c, 0x05]);
                    frame.resize(4 + 0xffff, 0x55);
                    seq = seq.wrapping_add(1);
                    // Read whatever camgate sends (RTCP) so writes never
                    // block on our side.
                    let mut scratch = [0u8; 4096];
                    while let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::ZERO, s.read(&mut scratch)).await
                    {
                        if n == 0 {
                            return;
                        }
                    }
                    if s.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            }
            _ => {
                let msg = ok("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n");
                if s.write_all(msg.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Starts the fake cameras on a runtime of their own (two threads, as
/// the storm keeps one busy); returns their addresses.
fn start_fake_cameras() -> (tokio::runtime::Runtime, Vec<(Abuse, SocketAddr)>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut cams = Vec::new();
    for abuse in [Abuse::EndlessHeader, Abuse::HugeSdp, Abuse::FrameStorm] {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        cams.push((abuse, listener.local_addr().unwrap()));
        rt.spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s, abuse));
            }
        });
    }
    (rt, cams)
}

/// Resident memory of `pid` in MiB.
#[test]
fn abusive_cameras_affect_only_themselves() {
    let (_rt, cams) = start_fake_cameras();
    let dir = temp_dir();
    let http = free_tcp_port();
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:{http}\"\n\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n\n[[camera]]\nid = \"healthy\"\nurl = \"sim://healthy\"\n"
    );
    let ids = ["endless-header", "huge-sdp", "frame-storm"];
    for ((_, addr), id) in cams.iter().zip(ids) {
        toml.push_str(&format!(
            "\n[[camera]]\nid = \"{id}\"\nurl = \"rtsp://{addr}/s\"\ntransport = \"tcp\"\n"
        ));
    }
    let gw = spawn_gateway(dir.path(), &toml, http);
    let pid = gw.child.id();
    wait_state(http, "healthy", "playing", Duration::from_secs(15));

    // 15 s of abuse: each bad camera fails, backs off and comes back to
    // fail again.
    let start = Instant::now();
    let mut last_frames = 0;
    let mut samples = Vec::new();
    let mut max_rss = 0;
    let mut errors: std::collections::BTreeMap<&str, String> = Default::default();
    let mut backoff_seen: std::collections::BTreeSet<&str> = Default::default();
    while start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_secs(1));
        let healthy = camera_json(http, "healthy");
        assert_eq!(healthy["state"], "playing", "{healthy}\n{}", gw.log_text());
        let frames = healthy["stats"]["frames_received"].as_u64().unwrap();
        samples.push(frames - last_frames);
        last_frames = frames;
        max_rss = max_rss.max(rss_kib(pid) / 1024);
        for id in ids {
            let cam = camera_json(http, id);
            if let Some(e) = cam["last_error"].as_str() {
                errors.insert(id, e.to_string());
            }
            if cam["state"] == "backoff" {
                backoff_seen.insert(id);
            }
        }
    }
    eprintln!("healthy frames per second: {samples:?}; gateway RSS peak {max_rss} MiB");
    // 25 fps, give or take scheduling on a loaded machine: never stalled.
    let worst = samples[1..].iter().min().copied().unwrap_or(0);
    assert!(worst >= 15, "healthy camera frames per second: {samples:?}");
    assert!(max_rss < 300, "gateway RSS reached {max_rss} MiB");

    let expect = [
        (
            "endless-header",
            "waiting for the answer to OPTIONS (CSeq 1): RTSP header section longer than 65536 bytes",
        ),
        (
            "huge-sdp",
            "waiting for the answer to DESCRIBE (CSeq 2): RTSP body of 104857600 bytes exceeds the 4194304 byte limit",
        ),
        // Past 64 MiB/s the flood limit ends it; slower (a debug build on a
        // busy machine), no picture ever completes and that ends it.
        ("frame-storm", "a flood, not a video stream|no complete video picture for 5 s"),
    ];
    for (id, want) in expect {
        let error = errors.get(id).cloned().unwrap_or_default();
        assert!(
            want.split('|').any(|w| error.contains(w)),
            "{id}: last_error {error:?}, expected {want:?}\n{}\n{}",
            camera_json(http, id),
            gw.log_text()
        );
        let cam = camera_json(http, id);
        assert!(backoff_seen.contains(id), "{id} never in backoff: {cam}");
        assert!(cam["stats"]["reconnects"].as_u64().unwrap() >= 1, "{cam}");
    }
    let storm = camera_json(http, "frame-storm");
    let bytes = storm["stats"]["bytes_received"].as_u64().unwrap();
    assert!(bytes > 50 << 20, "the storm sent only {bytes} bytes");
}
