//! End-to-end tests of the simulated camera (`camgate::sim`) on loopback:
//! ffmpeg and retina as independent clients, over TCP and UDP, with and
//! without Digest authentication, plus raw RTSP for the error paths.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use camgate::credentials::Credentials;
use camgate::sim::{clip_info, SimOptions, SimServer};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running sim server; stops (and checks it stopped) on `stop`.
struct Sim {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Sim {
    async fn start(options: SimOptions) -> Sim {
        let server = SimServer::bind("127.0.0.1:0".parse().unwrap(), options)
            .await
            .expect("bind sim");
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Sim {
            addr,
            shutdown,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://{}/{path}", self.addr)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("sim server stops within 5 s of shutdown")
            .expect("sim server task does not panic");
    }
}

/// Result of one ffmpeg pull.
struct FfmpegRun {
    success: bool,
    video_frames: usize,
    audio_frames: usize,
    stderr: String,
}

/// Pulls `url` with ffmpeg for `seconds` and counts decoded frames per
/// stream with `framemd5`. Panics (fails the test) if ffmpeg is missing.
async fn ffmpeg_pull(url: &str, transport: &str, seconds: u32) -> FfmpegRun {
    let child = tokio::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-i",
            url,
        ])
        .args(["-t", &seconds.to_string(), "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "ffmpeg is required for these tests and could not be started ({e}); install ffmpeg"
            )
        });
    let out = tokio::time::timeout(
        Duration::from_secs(u64::from(seconds) + 20),
        child.wait_with_output(),
    )
    .await
    .expect("ffmpeg finishes in time")
    .expect("ffmpeg runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let count = |prefix: &str| stdout.lines().filter(|l| l.starts_with(prefix)).count();
    FfmpegRun {
        success: out.status.success(),
        video_frames: count("0,"),
        audio_frames: count("1,"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_clean_pull(run: &FfmpegRun, seconds: u32, audio: bool) {
    let info = clip_info();
    let expected = (seconds * info.fps) as usize;
    eprintln!(
        "ffmpeg: {} video, {} audio frames in {seconds} s",
        run.video_frames, run.audio_frames
    );
    assert!(run.success, "ffmpeg failed: {}", run.stderr);
    assert!(
        run.stderr.trim().is_empty(),
        "ffmpeg reported errors:\n{}",
        run.stderr
    );
    assert!(
        run.video_frames * 100 >= expected * 95,
        "decoded {} video frames of {expected} expected",
        run.video_frames
    );
    if audio {
        // ffmpeg decodes PCMU in 20 ms packets: 50 per second.
        assert!(
            run.audio_frames as u32 >= seconds * 50 * 9 / 10,
            "audio frames: {}",
            run.audio_frames
        );
    } else {
        assert_eq!(run.audio_frames, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_pulls_over_tcp_and_udp() {
    let sim = Sim::start(SimOptions::default()).await;
    let (cam, other, no_audio) = (sim.url("cam"), sim.url("other"), sim.url("cam?audio=0"));
    let (tcp, udp, tcp_no_audio) = tokio::join!(
        ffmpeg_pull(&cam, "tcp", 5),
        ffmpeg_pull(&other, "udp", 5),
        ffmpeg_pull(&no_audio, "tcp", 3),
    );
    assert_clean_pull(&tcp, 5, true);
    assert_clean_pull(&udp, 5, true);
    assert_clean_pull(&tcp_no_audio, 3, false);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_digest_auth() {
    let options = SimOptions {
        credentials: Some(Credentials::new("admin", "s3cret")),
        ..Default::default()
    };
    let sim = Sim::start(options).await;
    let good = format!("rtsp://admin:s3cret@{}/cam", sim.addr);
    let bad = format!("rtsp://admin:wrong@{}/cam", sim.addr);
    let none = sim.url("cam");
    let (good, bad, none) = tokio::join!(
        ffmpeg_pull(&good, "tcp", 2),
        ffmpeg_pull(&bad, "tcp", 2),
        ffmpeg_pull(&none, "tcp", 2)
    );
    assert_clean_pull(&good, 2, true);
    for run in [bad, none] {
        assert!(!run.success, "ffmpeg played without valid credentials");
        assert!(
            run.stderr.contains("401"),
            "expected a 401, got: {}",
            run.stderr
        );
        assert_eq!(run.video_frames, 0);
    }
    sim.stop().await;
}

async fn retina_session(
    url: &str,
    creds: Option<retina::client::Credentials>,
    streams: &[usize],
) -> retina::client::Session<retina::client::Playing> {
    use retina::client::{PlayOptions, Session, SessionOptions, SetupOptions, Transport};
    let url = url::Url::parse(url).unwrap();
    let mut session = Session::describe(url, SessionOptions::default().creds(creds))
        .await
        .expect("DESCRIBE");
    for &i in streams {
        session
            .setup(
                i,
                SetupOptions::default().transport(Transport::Tcp(Default::default())),
            )
            .await
            .expect("SETUP");
    }
    session.play(PlayOptions::default()).await.expect("PLAY")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_gets_keyframe_first_and_steady_timestamps() {
    let options = SimOptions {
        credentials: Some(Credentials::new("u", "p")),
        ..Default::default()
    };
    let sim = Sim::start(options).await;
    let creds = retina::client::Credentials {
        username: "u".into(),
        password: "p".into(),
    };
    let session = retina_session(&sim.url("cam"), Some(creds), &[0]).await;
    let stream = &session.streams()[0];
    assert_eq!(stream.encoding_name(), "h264");
    assert_eq!(stream.clock_rate_hz(), 90_000);
    let mut demuxed = session.demuxed().expect("demuxed");
    let mut last_ts: Option<i64> = None;
    let mut frames = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while frames < 30 {
        let item = tokio::time::timeout_at(deadline, demuxed.next())
            .await
            .expect("30 frames within 10 s")
            .expect("stream continues")
            .expect("no retina error");
        if let retina::codec::CodecItem::VideoFrame(f) = item {
            let ts = f.timestamp().timestamp();
            match last_ts {
                None => assert!(f.is_random_access_point(), "first frame is a keyframe"),
                Some(prev) => assert_eq!(ts - prev, 3600, "frame {frames}"),
            }
            assert_eq!(f.loss(), 0);
            last_ts = Some(ts);
            frames += 1;
        }
    }
    drop(demuxed);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_sequence_and_timestamps_continue_across_the_loop() {
    use retina::client::PacketItem;
    let sim = Sim::start(SimOptions::default()).await;
    let mut session = retina_session(&sim.url("cam"), None, &[0, 1]).await;
    let info = clip_info();
    // One clip loop plus a second's margin.
    let wanted_frames = info.frames + info.fps as usize;
    let mut last: [Option<(u16, u32)>; 2] = [None, None];
    let mut video_frames = 0usize;
    let mut sender_reports = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while video_frames < wanted_frames {
        let item = tokio::time::timeout_at(deadline, session.next())
            .await
            .expect("a loop of the clip within 15 s")
            .expect("stream continues")
            .expect("no retina error");
        match item {
            PacketItem::Rtp(p) => {
                let i = p.stream_id();
                let (seq, ts) = (p.sequence_number(), p.timestamp().timestamp() as u32);
                if let Some((prev_seq, prev_ts)) = last[i] {
                    assert_eq!(seq, prev_seq.wrapping_add(1), "stream {i} sequence gap");
                    let step = ts.wrapping_sub(prev_ts);
                    match i {
                        0 => assert!(step == 0 || step == 3600, "video timestamp step {step}"),
                        _ => assert_eq!(step, 160, "audio timestamp step"),
                    }
                }
                if i == 0 && p.mark() {
                    video_frames += 1;
                }
                last[i] = Some((seq, ts));
            }
            PacketItem::Rtcp(_) => sender_reports += 1,
            _ => {}
        }
    }
    assert!(last[1].is_some(), "audio packets arrived");
    assert!(
        sender_reports >= 2,
        "a sender report per stream at the start"
    );
    drop(session);
    sim.stop().await;
}

/// Sends raw bytes on a fresh connection and reads until `want` answers
/// (counted by status lines) or the server closes.
async fn raw_exchange(addr: SocketAddr, request: &[u8], want: usize) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got);
        if text.matches("RTSP/1.0 ").count() >= want && text.ends_with("\r\n\r\n") {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "no answer within 5 s; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn rtsp_error_paths_answer_without_panicking() {
    let sim = Sim::start(SimOptions {
        credentials: Some(Credentials::new("a", "b")),
        ..Default::default()
    })
    .await;
    let url = sim.url("cam");
    let text = raw_exchange(
        sim.addr,
        format!(
            "OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n\
             DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\n\r\n\
             DESCRIBE {url} RTSP/1.0\r\nCSeq: 3\r\nAuthorization: Basic YTpi\r\n\r\n\
             PLAY {url} RTSP/1.0\r\nCSeq: 4\r\nSession: 1234\r\nAuthorization: Basic YTpi\r\n\r\n\
             FOO {url} RTSP/1.0\r\nCSeq: 5\r\n\r\n\
             RECORD {url} RTSP/1.0\r\nCSeq: 6\r\n\r\n"
        )
        .as_bytes(),
        6,
    )
    .await;
    let statuses: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("RTSP/1.0 "))
        .collect();
    assert_eq!(statuses.len(), 6, "{text}");
    assert!(statuses[0].starts_with("RTSP/1.0 200"));
    assert!(statuses[1].starts_with("RTSP/1.0 401"));
    assert!(statuses[2].starts_with("RTSP/1.0 200"));
    assert!(statuses[3].starts_with("RTSP/1.0 454"));
    assert!(statuses[4].starts_with("RTSP/1.0 501"));
    assert!(statuses[5].starts_with("RTSP/1.0 405"));
    assert!(
        text.contains("WWW-Authenticate: Digest realm=\"camgate-sim\""),
        "{text}"
    );
    assert!(text.contains("Public: OPTIONS, DESCRIBE, SETUP"), "{text}");
    assert_eq!(text.matches("Server: camgate-sim").count(), 6);
    assert!(
        text.contains("Content-Base: ") && text.contains("/cam/\r\n"),
        "{text}"
    );
    assert!(text.contains("a=rtpmap:96 H264/90000"));
    assert!(text.contains("a=rtpmap:0 PCMU/8000"));

    // Garbage gets a 400 and the connection closes.
    let text = raw_exchange(sim.addr, b"\x00\x01GARBAGE \xff\xfe\r\n\r\n", 1).await;
    assert!(text.starts_with("RTSP/1.0 400"), "{text:?}");

    // An endless header is cut off at 64 KiB.
    let mut huge = b"OPTIONS * RTSP/1.0\r\nX-Junk: ".to_vec();
    huge.resize(70 * 1024, b'a');
    let text = raw_exchange(sim.addr, &huge, 1).await;
    assert!(text.starts_with("RTSP/1.0 413"), "{text:?}");

    // The server still serves after all that.
    let text = raw_exchange(
        sim.addr,
        format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 9\r\n\r\n").as_bytes(),
        1,
    )
    .await;
    assert!(text.starts_with("RTSP/1.0 200"), "{text}");
    sim.stop().await;
}

#[tokio::test]
async fn shutdown_ends_playing_sessions() {
    let sim = Sim::start(SimOptions::default()).await;
    let session = retina_session(&sim.url("cam"), None, &[0, 1]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // `stop` asserts that `run` returns promptly with a session playing.
    sim.stop().await;
    drop(session);
}

/// The value of header `name` in an RTSP answer.
fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
        .map(str::trim)
}

/// SETUP (UDP, video) and PLAY over raw RTSP; returns the session id, the
/// server's RTCP port and the first sequence number from `RTP-Info`.
async fn udp_setup_play(sim: &Sim, client_port: u16) -> (String, u16, u16) {
    let url = sim.url("cam");
    let answer = raw_exchange(
        sim.addr,
        format!(
            "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\n\
             Transport: RTP/AVP;unicast;client_port={client_port}-{}\r\n\r\n",
            client_port + 1
        )
        .as_bytes(),
        1,
    )
    .await;
    assert!(answer.starts_with("RTSP/1.0 200"), "{answer}");
    let session = header(&answer, "Session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let transport = header(&answer, "Transport").unwrap();
    assert!(transport.contains(";ssrc="), "{transport}");
    let server_ports = transport
        .split("server_port=")
        .nth(1)
        .expect("server_port")
        .split(';')
        .next()
        .unwrap();
    let (rtp_port, rtcp_port) = server_ports.split_once('-').unwrap();
    let (rtp_port, rtcp_port): (u16, u16) = (rtp_port.parse().unwrap(), rtcp_port.parse().unwrap());
    assert_eq!(
        (rtp_port % 2, rtcp_port),
        (0, rtp_port + 1),
        "even/odd server ports"
    );
    let play = format!("PLAY {url}/ RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n");
    let answer = raw_exchange(sim.addr, play.as_bytes(), 1).await;
    assert!(answer.starts_with("RTSP/1.0 200"), "{answer}");
    let rtp_info = header(&answer, "RTP-Info").unwrap();
    let seq = rtp_info
        .split("seq=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (session, rtcp_port, seq)
}

/// GET_PARAMETER on `session` over a fresh connection; the status line.
async fn keepalive(sim: &Sim, session: &str) -> String {
    let url = sim.url("cam");
    let req = format!("GET_PARAMETER {url}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n");
    raw_exchange(sim.addr, req.as_bytes(), 1)
        .await
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn udp_sessions_live_on_rtcp_and_expire_without_it() {
    let options = SimOptions {
        session_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let sim = Sim::start(options).await;
    let quiet = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let chatty = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (quiet_session, _, seq) = udp_setup_play(&sim, quiet.local_addr().unwrap().port()).await;
    let (chatty_session, rtcp_port, _) =
        udp_setup_play(&sim, chatty.local_addr().unwrap().port()).await;
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(2), quiet.recv(&mut buf))
        .await
        .expect("RTP over UDP")
        .unwrap();
    assert!(n > 12 && buf[0] >> 6 == 2);
    assert_eq!(
        u16::from_be_bytes([buf[2], buf[3]]),
        seq,
        "first packet has the RTP-Info seq"
    );
    // An empty receiver report (RFC 3550 6.4.2) every 300 ms from `chatty`.
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
    for _ in 0..6 {
        chatty.send_to(&rr, ("127.0.0.1", rtcp_port)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(keepalive(&sim, &quiet_session)
        .await
        .starts_with("RTSP/1.0 454"));
    assert!(keepalive(&sim, &chatty_session)
        .await
        .starts_with("RTSP/1.0 200"));
    sim.stop().await;
}

#[tokio::test]
async fn slow_tcp_reader_is_dropped() {
    let sim = Sim::start(SimOptions::default()).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(32 * 1024).unwrap();
    let mut s = socket.connect(sim.addr).await.unwrap();
    let url = sim.url("cam");
    s.write_all(
        format!(
            "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    let session = header(&answer, "Session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    s.write_all(
        format!("PLAY {url}/ RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    // Stop reading: the server's buffers fill (~1 s of video), then its
    // 2 s write deadline passes.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the server kept streaming to a client that stopped reading"
    );
    sim.stop().await;
}

/// One item of an RTSP connection's byte stream, as a client sees it.
#[derive(Debug)]
enum Incoming {
    /// A `$` frame: channel and packet.
    Data(u8, Vec<u8>),
    /// A response's header block (the sim's non-DESCRIBE answers have no body).
    Response(String),
}

/// Reads the next item from a TCP interleaved connection.
async fn next_incoming(s: &mut TcpStream, buf: &mut Vec<u8>) -> Incoming {
    loop {
        if buf.first() == Some(&b'$') && buf.len() >= 4 {
            let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if buf.len() >= len {
                let item = Incoming::Data(buf[1], buf[4..len].to_vec());
                buf.drain(..len);
                return item;
            }
        } else if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            buf.drain(..end + 4);
            return Incoming::Response(text);
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut chunk))
            .await
            .expect("data within 3 s")
            .unwrap();
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn tcp_pause_stops_and_play_resumes_the_sequence() {
    let sim = Sim::start(SimOptions::default()).await;
    let url = sim.url("cam");
    let mut s = TcpStream::connect(sim.addr).await.unwrap();
    let mut buf = Vec::new();
    let setup = format!(
        "SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=4-5\r\n\r\n"
    );
    s.write_all(setup.as_bytes()).await.unwrap();
    let Incoming::Response(answer) = next_incoming(&mut s, &mut buf).await else {
        panic!("data before SETUP answer")
    };
    assert!(answer.contains("interleaved=4-5"), "{answer}");
    let session = header(&answer, "Session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let request = |method: &str, cseq: u32| {
        format!("{method} {url}/ RTSP/1.0\r\nCSeq: {cseq}\r\nSession: {session}\r\n\r\n")
    };
    s.write_all(request("PLAY", 2).as_bytes()).await.unwrap();
    let Incoming::Response(answer) = next_incoming(&mut s, &mut buf).await else {
        panic!("data before PLAY answer")
    };
    assert!(answer.starts_with("RTSP/1.0 200"), "{answer}");
    let mut last_seq = None;
    let mut video_packets = 0;
    while video_packets < 50 {
        if let Incoming::Data(4, pkt) = next_incoming(&mut s, &mut buf).await {
            last_seq = Some(u16::from_be_bytes([pkt[2], pkt[3]]));
            video_packets += 1;
        }
    }
    s.write_all(request("PAUSE", 3).as_bytes()).await.unwrap();
    loop {
        match next_incoming(&mut s, &mut buf).await {
            Incoming::Data(4, pkt) => last_seq = Some(u16::from_be_bytes([pkt[2], pkt[3]])),
            Incoming::Data(..) => {}
            Incoming::Response(answer) => {
                assert!(answer.starts_with("RTSP/1.0 200"), "{answer}");
                break;
            }
        }
    }
    // Paused: nothing more arrives.
    let mut chunk = [0u8; 1024];
    let quiet = tokio::time::timeout(Duration::from_millis(300), s.read(&mut chunk)).await;
    assert!(quiet.is_err() && buf.is_empty(), "data after PAUSE");
    s.write_all(request("PLAY", 4).as_bytes()).await.unwrap();
    let Incoming::Response(answer) = next_incoming(&mut s, &mut buf).await else {
        panic!("data before PLAY answer")
    };
    let rtp_info = header(&answer, "RTP-Info").unwrap();
    let seq: u16 = rtp_info
        .split("seq=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let expected = last_seq.unwrap().wrapping_add(1);
    assert_eq!(seq, expected, "RTP-Info seq continues after PAUSE");
    loop {
        if let Incoming::Data(4, pkt) = next_incoming(&mut s, &mut buf).await {
            assert_eq!(u16::from_be_bytes([pkt[2], pkt[3]]), expected);
            break;
        }
    }
    sim.stop().await;
}
