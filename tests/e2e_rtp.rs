//! End to end: a camera (camgate's simulator or GStreamer's RTSP server) →
//! the camgate binary → plain RTP → ffmpeg or a raw RTP receiver.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;

/// A gateway config with one camera and one rtp_out.
fn one_camera(http: u16, url: &str, transport: &str, rtp: u16, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{http}\"\n\n[[camera]]\nid = \"cam\"\nurl = \"{url}\"\ntransport = \"{transport}\"\n{extra}\n[[camera.rtp_out]]\ndestination = \"127.0.0.1:{rtp}\"\n"
    )
}

/// Pulls a sim camera over `transport`, restarts the camera so the stream
/// begins at a keyframe while ffmpeg already listens, and decodes 10 s.
fn sim_to_ffmpeg(transport: &str) {
    require_tool("ffmpeg");
    let dir = temp_dir();
    let (http, sim_port, rtp) = (free_tcp_port(), free_tcp_port(), free_rtp_port());
    let mut sim = spawn_sim(dir.path(), sim_port, None);
    let toml = one_camera(
        http,
        &format!("rtsp://127.0.0.1:{sim_port}/cam"),
        transport,
        rtp,
        "",
    );
    let gw = spawn_gateway(dir.path(), &toml, http);
    let status = wait_state(http, "cam", "playing", Duration::from_secs(15));
    assert_eq!(status["transport"], transport);
    assert_eq!(status["audio"], "PCMU/8000");

    // The SDP is complete now (sprop, audio). A consumer joining mid-GOP
    // would see references it lacks, so restart the camera with ffmpeg
    // already listening: the new session starts at an IDR.
    sim.terminate(Duration::from_secs(2));
    wait_for(Duration::from_secs(10), || {
        camera_json(http, "cam")["state"] != "playing"
    });
    let sdp_url = format!("http://127.0.0.1:{http}/cameras/cam.sdp");
    let ffmpeg = spawn_ffmpeg_decode(
        &sdp_url,
        10,
        &["-protocol_whitelist", "file,http,udp,rtp,tcp"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let _sim = spawn_sim(dir.path(), sim_port, None);
    let decoded = wait_decode(ffmpeg, Duration::from_secs(60));
    let after = camera_json(http, "cam");
    assert_eq!(after["state"], "playing", "{}", gw.log_text());
    assert!(
        decoded.errors.is_empty(),
        "ffmpeg decoder errors: {:#?}",
        decoded.errors
    );
    // 10 s at 25 fps.
    assert!(
        decoded.video_frames >= 238,
        "decoded only {} of 250 video frames",
        decoded.video_frames
    );
    assert!(decoded.audio_frames > 0, "no audio decoded");
    assert!(decoded.success);
}

#[test]
fn sim_over_tcp_to_rtp_decodes_cleanly() {
    sim_to_ffmpeg("tcp");
}

#[test]
fn sim_over_udp_to_rtp_decodes_cleanly() {
    sim_to_ffmpeg("udp");
}

/// GStreamer's RTSP server with Digest auth, over `transport`.
fn gstreamer_to_ffmpeg(transport: &str) {
    require_tool("ffmpeg");
    let dir = temp_dir();
    let (http, gst_port, rtp) = (free_tcp_port(), free_tcp_port(), free_rtp_port());
    let mut gst = spawn_gst_server(dir.path(), gst_port, "viewer", "s3cr3t-pw");
    let toml = one_camera(
        http,
        &format!("rtsp://viewer:s3cr3t-pw@127.0.0.1:{gst_port}/test"),
        transport,
        rtp,
        "",
    );
    let gw = spawn_gateway(dir.path(), &toml, http);
    let status = wait_state(http, "cam", "playing", Duration::from_secs(20));
    assert!(
        status["video"].as_str().unwrap_or("").contains("640x360"),
        "{status}"
    );
    assert!(
        !status.to_string().contains("s3cr3t-pw"),
        "the password leaked into the API: {status}"
    );

    gst.terminate(Duration::from_secs(2));
    wait_for(Duration::from_secs(10), || {
        camera_json(http, "cam")["state"] != "playing"
    });
    let ffmpeg = spawn_ffmpeg_decode(
        &format!("http://127.0.0.1:{http}/cameras/cam.sdp"),
        8,
        &["-protocol_whitelist", "file,http,udp,rtp,tcp"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let _gst = spawn_gst_server(dir.path(), gst_port, "viewer", "s3cr3t-pw");
    let decoded = wait_decode(ffmpeg, Duration::from_secs(60));
    assert!(
        decoded.errors.is_empty(),
        "ffmpeg decoder errors: {:#?}\n{}",
        decoded.errors,
        gw.log_text()
    );
    assert!(
        decoded.video_frames >= 190,
        "decoded only {} of 200 video frames",
        decoded.video_frames
    );
    assert!(decoded.audio_frames > 0, "no audio decoded");
    assert!(
        !gw.log_text().contains("s3cr3t-pw"),
        "the password leaked into the log"
    );
}

/// A GStreamer camera sending AAC (`--audio aac`: RFC 3640 mpeg4-generic;
/// `--audio latm`: RFC 6416 MP4A-LATM): the RTP output carries the
/// camera's AAC unchanged, with its fmtp in the SDP, and ffmpeg decodes it.
fn gstreamer_aac_to_ffmpeg(audio: &str, encoding: &str) {
    require_tool("ffmpeg");
    let dir = temp_dir();
    let (http, gst_port, rtp) = (free_tcp_port(), free_tcp_port(), free_rtp_port());
    let args = ["--audio", audio];
    let mut gst = spawn_gst_server_with(dir.path(), gst_port, "viewer", "s3cr3t-pw", &args);
    let toml = one_camera(
        http,
        &format!("rtsp://viewer:s3cr3t-pw@127.0.0.1:{gst_port}/test"),
        "tcp",
        rtp,
        "",
    );
    let gw = spawn_gateway(dir.path(), &toml, http);
    let status = wait_state(http, "cam", "playing", Duration::from_secs(20));
    assert_eq!(status["audio"], format!("{encoding}/48000"), "{status}");
    let (code, sdp) = http_get(http, "/cameras/cam.sdp");
    assert_eq!(code, 200);
    let config = match audio {
        "aac" => "config=1188",
        _ => "config=40002310",
    };
    assert!(
        sdp.contains(&format!("a=rtpmap:97 {encoding}/48000")) && sdp.contains(config),
        "{sdp}"
    );

    gst.terminate(Duration::from_secs(2));
    wait_for(Duration::from_secs(10), || {
        camera_json(http, "cam")["state"] != "playing"
    });
    let ffmpeg = spawn_ffmpeg_decode(
        &format!("http://127.0.0.1:{http}/cameras/cam.sdp"),
        6,
        &["-protocol_whitelist", "file,http,udp,rtp,tcp"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let _gst = spawn_gst_server_with(dir.path(), gst_port, "viewer", "s3cr3t-pw", &args);
    let decoded = wait_decode(ffmpeg, Duration::from_secs(60));
    assert!(
        decoded.errors.is_empty(),
        "ffmpeg decoder errors: {:#?}\n{}",
        decoded.errors,
        gw.log_text()
    );
    // 6 s of 1024-sample AAC frames at 48 kHz is 281.
    assert!(
        decoded.audio_frames >= 250,
        "decoded only {} AAC frames",
        decoded.audio_frames
    );
    assert!(
        decoded.video_frames >= 140,
        "{} video frames",
        decoded.video_frames
    );
}

#[test]
fn gstreamer_aac_hbr_passes_through_to_rtp() {
    gstreamer_aac_to_ffmpeg("aac", "MPEG4-GENERIC");
}

#[test]
fn gstreamer_aac_latm_passes_through_to_rtp() {
    gstreamer_aac_to_ffmpeg("latm", "MP4A-LATM");
}

#[test]
fn gstreamer_digest_over_tcp_to_rtp_decodes_cleanly() {
    gstreamer_to_ffmpeg("tcp");
}

#[test]
fn gstreamer_digest_over_udp_to_rtp_decodes_cleanly() {
    gstreamer_to_ffmpeg("udp");
}

/// One RTP header as a consumer sees it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    seq: u16,
    ts: u32,
    ssrc: u32,
    at: Instant,
}

fn receive(sock: &UdpSocket, until: Instant, out: &mut Vec<Seen>) {
    let mut buf = [0u8; 2048];
    while Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf) {
            if n >= 12 && buf[0] >> 6 == 2 {
                out.push(Seen {
                    seq: u16::from_be_bytes([buf[2], buf[3]]),
                    ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                    ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                    at: Instant::now(),
                });
            }
        }
    }
}

#[test]
fn consumer_stream_continues_across_camera_restart() {
    let dir = temp_dir();
    let (http, sim_port, rtp) = (free_tcp_port(), free_tcp_port(), free_rtp_port());
    let mut sim = spawn_sim(dir.path(), sim_port, None);
    let consumer = UdpSocket::bind(("127.0.0.1", rtp)).unwrap();
    consumer
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let toml = one_camera(
        http,
        &format!("rtsp://127.0.0.1:{sim_port}/cam?audio=0"),
        "tcp",
        rtp,
        "",
    );
    let gw = spawn_gateway(dir.path(), &toml, http);
    wait_state(http, "cam", "playing", Duration::from_secs(15));

    // Receive in the background so arrival times are true while the test
    // restarts the camera.
    let receiver = std::thread::spawn(move || {
        let mut seen = Vec::new();
        receive(
            &consumer,
            Instant::now() + Duration::from_secs(10),
            &mut seen,
        );
        seen
    });
    std::thread::sleep(Duration::from_secs(3));
    sim.terminate(Duration::from_secs(2));
    let down_at = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let _sim = spawn_sim(dir.path(), sim_port, None);
    // Backoff starts at 1 s (±20 %), then 2 s: the camera is back well
    // within 5 s.
    let seen = receiver.join().unwrap();
    let before = seen.iter().filter(|s| s.at < down_at).count();
    assert!(before > 50, "too few packets before the restart: {before}");
    let status = camera_json(http, "cam");
    assert_eq!(status["state"], "playing", "{}", gw.log_text());
    assert!(status["stats"]["reconnects"].as_u64().unwrap() >= 1);
    assert!(seen.len() > before + 20, "no packets after the restart");
    let resumed = seen[before..]
        .iter()
        .find(|s| s.at > down_at)
        .expect("packets after the restart");
    assert!(resumed.at.duration_since(down_at) < Duration::from_secs(5));

    let ssrc = seen[0].ssrc;
    for pair in seen.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert_eq!(b.ssrc, ssrc, "SSRC changed");
        assert_eq!(b.seq, a.seq.wrapping_add(1), "sequence gap: {a:?} -> {b:?}");
        let dts = b.ts.wrapping_sub(a.ts);
        assert!(dts < 1 << 31, "timestamp went backwards: {a:?} -> {b:?}");
    }
    // Across the outage the timestamp advanced about as much as wall time.
    let gap = seen
        .windows(2)
        .max_by_key(|p| p[1].at.duration_since(p[0].at))
        .unwrap();
    let media = f64::from(gap[1].ts.wrapping_sub(gap[0].ts)) / 90_000.0;
    let wall = gap[1].at.duration_since(gap[0].at).as_secs_f64();
    assert!(wall > 0.5, "no outage seen: longest gap {wall:.2} s");
    assert!(
        (media - wall).abs() < 0.5,
        "timestamp jump {media:.2} s for a {wall:.2} s outage\n{}",
        gw.log_text()
    );
}

#[test]
fn wrong_password_is_unauthorized_with_backoff() {
    let dir = temp_dir();
    let (http, sim_port, rtp) = (free_tcp_port(), free_tcp_port(), free_rtp_port());
    let _sim = spawn_sim(dir.path(), sim_port, Some(("admin", "right-pw")));
    let toml = one_camera(
        http,
        &format!("rtsp://admin:wrong-pw@127.0.0.1:{sim_port}/cam"),
        "tcp",
        rtp,
        "",
    );
    let gw = spawn_gateway(dir.path(), &toml, http);
    let status = wait_state(http, "cam", "unauthorized", Duration::from_secs(10));
    assert!(
        status["last_error"].as_str().unwrap().contains("401"),
        "{status}"
    );
    std::thread::sleep(Duration::from_secs(6));
    let status = camera_json(http, "cam");
    assert_eq!(status["state"], "unauthorized");
    // 1 s, 2 s, 4 s: at most four attempts in seven seconds, not a hot loop.
    let reconnects = status["stats"]["reconnects"].as_u64().unwrap();
    assert!(
        (1..=4).contains(&reconnects),
        "{reconnects} reconnects in 7 s"
    );
    assert!(!status.to_string().contains("wrong-pw") && !gw.log_text().contains("wrong-pw"));
}

#[test]
fn right_password_plays_from_a_sim_with_digest() {
    let dir = temp_dir();
    let (http, sim_port, rtp) = (free_tcp_port(), free_tcp_port(), free_rtp_port());
    let _sim = spawn_sim(dir.path(), sim_port, Some(("admin", "right-pw")));
    let toml = one_camera(
        http,
        &format!("rtsp://127.0.0.1:{sim_port}/cam"),
        "udp",
        rtp,
        "username = \"admin\"\npassword_env = \"CAMGATE_TEST_SIM_PW\"\n",
    );
    std::env::set_var("CAMGATE_TEST_SIM_PW", "right-pw");
    let _gw = spawn_gateway(dir.path(), &toml, http);
    wait_state(http, "cam", "playing", Duration::from_secs(15));
}

#[test]
fn a_camera_sending_garbage_affects_only_itself() {
    use std::io::Write;
    let dir = temp_dir();
    let (http, sim_port, rtp, rtp2) = (
        free_tcp_port(),
        free_tcp_port(),
        free_rtp_port(),
        free_rtp_port(),
    );
    let _sim = spawn_sim(dir.path(), sim_port, None);
    // A "camera" that answers every connection with endless garbage.
    let garbage = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage_port = garbage.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in garbage.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let junk: Vec<u8> = (0..65536u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                    .collect();
                for _ in 0..200 {
                    if conn.write_all(&junk).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let toml = format!(
        "{}\n[[camera]]\nid = \"junk\"\nurl = \"rtsp://127.0.0.1:{garbage_port}/x\"\n[[camera.rtp_out]]\ndestination = \"127.0.0.1:{rtp2}\"\n",
        one_camera(http, &format!("rtsp://127.0.0.1:{sim_port}/cam"), "tcp", rtp, "")
    );
    let gw = spawn_gateway(dir.path(), &toml, http);
    wait_state(http, "cam", "playing", Duration::from_secs(15));
    let frames0 = camera_json(http, "cam")["stats"]["frames_received"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let cam = camera_json(http, "cam");
    let junk = camera_json(http, "junk");
    assert_eq!(cam["state"], "playing", "{}", gw.log_text());
    let frames = cam["stats"]["frames_received"].as_u64().unwrap() - frames0;
    assert!(
        frames >= 90,
        "the good camera got only {frames} frames in 4 s"
    );
    assert_ne!(junk["state"], "playing");
    assert!(junk["last_error"].is_string(), "{junk}");
}

#[test]
fn sigterm_stops_cleanly_within_two_seconds() {
    let dir = temp_dir();
    let (http, sim_port, rtp) = (free_tcp_port(), free_tcp_port(), free_rtp_port());
    let _sim = spawn_sim(dir.path(), sim_port, None);
    let toml = one_camera(
        http,
        &format!("rtsp://127.0.0.1:{sim_port}/cam"),
        "tcp",
        rtp,
        "",
    );
    let mut gw = spawn_gateway(dir.path(), &toml, http);
    wait_state(http, "cam", "playing", Duration::from_secs(15));
    let took = gw
        .terminate(Duration::from_secs(3))
        .expect("camgate did not stop within 3 s");
    assert!(took < Duration::from_millis(2500), "stopping took {took:?}");
    let status = gw.child.try_wait().unwrap().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        gw.log_text().contains("TEARDOWN answered"),
        "{}",
        gw.log_text()
    );
}

#[test]
fn check_names_the_line_of_a_bad_config() {
    let dir = temp_dir();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:8080\"\n\n[[camera]]\nid = \"a\"\nurl = \"rtsp://h/x\"\ntrasport = \"tcp\"\n").unwrap();
    let out = std::process::Command::new(camgate_bin())
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:7"), "{err}");
    assert!(err.contains("trasport"), "{err}");

    std::fs::write(&path, "[[camera]]\nid = \"a\"\nurl = \"sim://a\"\n").unwrap();
    let out = std::process::Command::new(camgate_bin())
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn probe_reports_the_sim_camera() {
    let out = std::process::Command::new(camgate_bin())
        .args(["probe", "sim://lobby", "--seconds", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("640x360"), "{text}");
    assert!(text.contains("b-frames:    no"), "{text}");
    assert!(
        text.contains("camgate-sim") || text.contains("camgate sim"),
        "{text}"
    );
    let fps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("fps:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("an fps line");
    assert!((fps - 25.0).abs() < 1.0, "{text}");

    let closed = free_tcp_port();
    let out = std::process::Command::new(camgate_bin())
        .args([
            "probe",
            &format!("rtsp://u:topsecret@127.0.0.1:{closed}/x"),
            "--seconds",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(!err.contains("topsecret"), "{err}");
}
