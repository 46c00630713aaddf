//! The HTTP listener against hostile clients: slowloris, oversized bodies
//! and headers, connection floods from one address. Each time the gateway
//! keeps serving everyone else, and the camera keeps playing to its RTP
//! consumer without losing a packet.

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
