//! The HTTP listener against hostile clients: slowloris, oversized bodies
//! and headers, connection floods from one address. Each time the gateway
//! keeps serving everyone else, and the camera keeps playing to its RTP
//! consumer without losing a packet. Also the caps on connections overall
//! (`max_connections`) and on WHEP negotiations under way
//! (`max_whep_negotiations`), each set small: refused beyond, free again
//! once the holders are done.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// An RTP consumer of the camera's video: counts packets and sequence
/// gaps until [`RtpWatch::finish`]ed.
struct RtpWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
    /// Holds the audio port, so that audio packets land somewhere.
    _audio: UdpSocket,
}

impl RtpWatch {
    fn start(port: u16) -> RtpWatch {
        let video = UdpSocket::bind(("127.0.0.1", port)).unwrap();
        let audio = UdpSocket::bind(("127.0.0.1", port + 2)).unwrap();
        video
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut packets, mut gaps, mut last) = (0u64, 0u64, None::<u16>);
            let mut buf = [0u8; 2048];
            while !stopped.load(Ordering::Relaxed) {
                let Ok(n) = video.recv(&mut buf) else {
                    continue;
                };
                if n < 12 {
                    continue;
                }
                let seq = u16::from_be_bytes([buf[2], buf[3]]);
                if let Some(prev) = last {
                    let step = seq.wrapping_sub(prev);
                    if (2..0x8000).contains(&step) {
                        gaps += u64::from(step - 1);
                    }
                }
                last = Some(seq);
                packets += 1;
            }
            (packets, gaps)
        });
        RtpWatch {
            stop,
            thread,
            _audio: audio,
        }
    }

    /// (packets received, packets missing).
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// A gateway with tight limits and a playing simulated camera that sends
/// RTP to 127.0.0.1:`rtp`.
fn gateway(dir: &std::path::Path, port: u16, header_timeout: &str, rtp: u16) -> Proc {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
header_timeout = {header_timeout}
idle_timeout = 30
max_header_bytes = 8192
max_connections_per_ip = 8

[webrtc]
udp_listen = "127.0.0.1:0"

[[camera]]
id = "demo"
url = "sim://demo"
[[camera.rtp_out]]
destination = "127.0.0.1:{rtp}"
"#
    );
    let gw = spawn_gateway_checked(dir, &toml, port);
    wait_state(port, "demo", "playing", Duration::from_secs(20));
    gw
}

/// Whether the server closed `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A reply (e.g. 408) followed by the close.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn slowloris_is_cut_off_while_others_are_served() {
    let dir = temp_dir();
    let port = free_tcp_port();
    let rtp = free_rtp_port();
    let watch = RtpWatch::start(rtp);
    let _gw = gateway(dir.path(), port, "2", rtp);

    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /api/v1/cameras HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let start = Instant::now();
    let header = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut cut_off = None;
    for (i, byte) in header.iter().enumerate() {
        // Meanwhile, a normal client is served at once.
        if i == 1 {
            let t = Instant::now();
            let r = request(port, "GET", "/api/v1/cameras/demo", &[], b"");
            assert_eq!(r.status, 200, "{r:?}");
            assert!(t.elapsed() < Duration::from_secs(1));
            assert!(r.body.contains("\"playing\""), "{r:?}");
        }
        if slow.write_all(&[*byte]).is_err() {
            cut_off = Some(start.elapsed());
            break;
        }
        // One byte a second, and look whether the server hung up.
        let mut probe = slow.try_clone().unwrap();
        if closed_within(&mut probe, Duration::from_secs(1)) {
            cut_off = Some(start.elapsed());
            break;
        }
    }
    let cut_off = cut_off.expect("the slow client was never cut off");
    assert!(
        cut_off >= Duration::from_millis(1500) && cut_off < Duration::from_secs(6),
        "cut off after {cut_off:?} with header_timeout = 2 s"
    );
    // Still serving, and the consumer lost nothing meanwhile.
    assert_eq!(
        request(port, "GET", "/api/v1/cameras", &[], b"").status,
        200
    );
    let (packets, missing) = watch.finish();
    assert!(packets > 50, "{packets} RTP packets");
    assert_eq!(missing, 0, "{missing} of {packets} RTP packets lost");
}

#[test]
fn oversized_body_and_header() {
    let dir = temp_dir();
    let port = free_tcp_port();
    let rtp = free_rtp_port();
    let watch = RtpWatch::start(rtp);
    let _gw = gateway(dir.path(), port, "10", rtp);

    // Announced too large: 413 before the body is read.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"POST /api/v1/cameras HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n{\"id\":",
    )
    .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");

    // Sent chunked, without a length: cut at the limit.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /api/v1/cameras HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .unwrap();
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..8 {
        let _ = s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes());
        let _ = s.write_all(&chunk);
        let _ = s.write_all(b"\r\n");
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");

    // A 20 KiB header: 431, or the connection closed.
    let big = "b".repeat(20 * 1024);
    let r = request(port, "GET", "/api/v1/cameras", &[("X-Big", &big)], b"");
    assert!(r.status == 431 || r.status == 0, "{r:?}");

    // Within the limits, all is well.
    let r = request(port, "GET", "/api/v1/cameras", &[("X-Small", "s")], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let (packets, missing) = watch.finish();
    assert!(packets > 0, "no RTP packets");
    assert_eq!(missing, 0, "{missing} of {packets} RTP packets lost");
}

#[test]
fn connection_cap_per_address() {
    let dir = temp_dir();
    let port = free_tcp_port();
    let _gw = gateway(dir.path(), port, "20", free_rtp_port());

    // max_connections_per_ip = 8: hold eight keep-alive connections, each
    // answered once (so the gateway has surely accepted it)...
    let mut held: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET /api/v1/cameras/none HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut reply = Vec::new();
            let mut buf = [0u8; 1024];
            while !reply.ends_with(b"}") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "closed: {}", String::from_utf8_lossy(&reply));
                reply.extend_from_slice(&buf[..n]);
            }
            assert!(reply.starts_with(b"HTTP/1.1 404"));
            s
        })
        .collect();
    // ...the next ones from the same address are turned away...
    for _ in 0..5 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = request_on(&mut s, "GET", "/api/v1/cameras", &[], b"");
        assert!(r.status == 503 || r.status == 0, "{r:?}");
    }
    // ...while another address is served.
    let mut other = connect_from("127.0.0.2", port);
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let r = request_on(&mut other, "GET", "/api/v1/cameras/demo", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("\"playing\""), "{r:?}");

    // Closing them frees the places.
    held.clear();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        request(port, "GET", "/api/v1/cameras", &[], b"").status,
        200
    );
}

/// One keep-alive connection, answered once (so the gateway has surely
/// accepted it and holds it open).
fn held_connection(from: &str, port: u16) -> TcpStream {
    let mut s = connect_from(from, port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /api/v1/cameras/none HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    while !reply.ends_with(b"}") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&buf[..n]);
    }
    assert!(reply.starts_with(b"HTTP/1.1 404"));
    s
}

#[test]
fn connection_cap_overall() {
    let dir = temp_dir();
    let port = free_tcp_port();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
idle_timeout = 30
max_connections = 4
max_connections_per_ip = 32

[[camera]]
id = "demo"
url = "sim://demo"
"#
    );
    let _gw = spawn_gateway_checked(dir.path(), &toml, port);
    wait_state(port, "demo", "playing", Duration::from_secs(20));

    // max_connections = 4, held from two addresses (each far below the
    // per-address cap)...
    let mut held: Vec<TcpStream> = ["127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2"]
        .iter()
        .map(|from| held_connection(from, port))
        .collect();
    // ...turn away the next one from any address.
    for from in ["127.0.0.1", "127.0.0.3"] {
        let mut s = connect_from(from, port);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = request_on(&mut s, "GET", "/api/v1/cameras", &[], b"");
        assert!(r.status == 503 || r.status == 0, "{from}: {r:?}");
        if r.status == 503 {
            assert!(r.body.contains("too many connections"), "{r:?}");
        }
    }
    // One closed frees one place, no more.
    held.pop();
    std::thread::sleep(Duration::from_millis(300));
    held.push(held_connection("127.0.0.3", port));
    let mut s = connect_from("127.0.0.4", port);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = request_on(&mut s, "GET", "/api/v1/cameras", &[], b"");
    assert!(r.status == 503 || r.status == 0, "{r:?}");
    // All closed: served again.
    held.clear();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        request(port, "GET", "/api/v1/cameras", &[], b"").status,
        200
    );
}

/// A WHEP offer the gateway can read (it never gets as far as ICE here).
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n";

fn post_offer(port: u16, camera: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // An offer for an on-demand camera may wait 15 s for its stream.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    request_on(
        &mut s,
        "POST",
        &format!("/whep/{camera}"),
        &[("Content-Type", "application/sdp")],
        OFFER.as_bytes(),
    )
}

/// `max_whep_negotiations = 2`: two offers waiting for an on-demand camera
/// that never comes hold both places, a third offer gets 503 at once, and
/// once they are answered the next offer is negotiated again.
#[test]
fn whep_negotiation_cap() {
    let dir = temp_dir();
    let port = free_tcp_port();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
max_whep_negotiations = 2

[webrtc]
udp_listen = "127.0.0.1:0"

[[camera]]
id = "lazy"
url = "rtsp://127.0.0.1:{closed}/never"
on_demand = true

[[camera]]
id = "down"
url = "rtsp://127.0.0.1:{closed}/never"
"#,
        closed = free_tcp_port()
    );
    let _gw = spawn_gateway_checked(dir.path(), &toml, port);
    let waiting: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || post_offer(port, "lazy")))
        .collect();
    // Both negotiations under way: their viewers are registered.
    wait_for(Duration::from_secs(5), || {
        let (_, body) = http_get(port, "/api/v1/cameras/lazy/sessions");
        body.matches("\"viewer\"").count() == 2
    });
    let started = Instant::now();
    let r = post_offer(port, "down");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("too many WebRTC negotiations"), "{r:?}");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the refusal waited for a negotiation"
    );
    for w in waiting {
        let r = w.join().unwrap();
        assert_eq!(r.status, 503, "{r:?}");
        assert!(r.body.contains("camera \\\"lazy\\\" is"), "{r:?}");
    }
    // The places are free: this offer is negotiated (and refused for the
    // camera, not for the cap).
    let r = post_offer(port, "down");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("camera \\\"down\\\" is"), "{r:?}");
}
