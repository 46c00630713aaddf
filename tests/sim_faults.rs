//! Fault injection of the simulated camera, observed from the wire: a raw
//! RTSP client on loopback (TCP interleaved or UDP) checks that each fault
//! shows the way a real camera's does and that the sim's counters agree.

use std::net::SocketAddr;
use std::time::Duration;

use camgate::sim::{FaultCounts, FaultStats, Faults, KeyframeTrigger, SimOptions, SimServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

/// A running sim server.
struct Sim {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    stats: FaultStats,
    trigger: KeyframeTrigger,
}

impl Sim {
    async fn start(faults: Faults) -> Sim {
        let options = SimOptions {
            faults,
            ..Default::default()
        };
        let server = SimServer::bind("127.0.0.1:0".parse().unwrap(), options)
            .await
            .expect("bind sim");
        let addr = server.local_addr();
        let stats = server.fault_stats();
        let trigger = server.keyframe_trigger();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Sim {
            addr,
            shutdown,
            task,
            stats,
            trigger,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("rtsp://{}/{path}", self.addr)
    }

    /// Stops the server; the counters are final afterwards.
    async fn stop(self) -> FaultCounts {
        self.shutdown.cancel();
        timeout(Duration::from_secs(5), self.task)
            .await
            .expect("sim stops")
            .expect("sim does not panic");
        self.stats.snapshot()
    }
}

/// A raw RTSP client connection.
struct Rtsp {
    stream: TcpStream,
    /// Bytes read past the last response (interleaved data after PLAY).
    buf: Vec<u8>,
    cseq: u32,
}

/// Status line and headers of a response, and its body.
struct Answer {
    head: String,
    body: String,
}

impl Answer {
    fn status(&self) -> u16 {
        self.head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

impl Rtsp {
    async fn connect(addr: SocketAddr) -> Rtsp {
        Rtsp {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
            cseq: 0,
        }
    }

    async fn request(&mut self, method: &str, url: &str, extra: &str) -> Answer {
        self.cseq += 1;
        let req = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {}\r\n{extra}\r\n",
            self.cseq
        );
        self.stream.write_all(req.as_bytes()).await.expect("write");
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).into();
                    self.buf.drain(..end + 4 + len);
                    return Answer { head, body };
                }
            }
            self.read_more().await;
        }
    }

    async fn read_more(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        let n = timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
            .await
            .expect("server answers")
            .expect("read");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// DESCRIBE, SETUP of the video track over TCP, PLAY; returns the SSRC
    /// the SETUP announced.
    async fn play_tcp(&mut self, url: &str) -> u32 {
        let d = self
            .request("DESCRIBE", url, "Accept: application/sdp\r\n")
            .await;
        assert_eq!(d.status(), 200, "{}", d.head);
        let base = d.header("Content-Base").expect("Content-Base").to_owned();
        let s = self
            .request(
                "SETUP",
                &format!("{base}trackID=0"),
                "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
            )
            .await;
        assert_eq!(s.status(), 200, "{}", s.head);
        let session = session_id(&s);
        let ssrc = ssrc_of(&s);
        let p = self
            .request("PLAY", &base, &format!("Session: {session}\r\n"))
            .await;
        assert_eq!(p.status(), 200, "{}", p.head);
        ssrc
    }

    /// Reads for `d`, recording when each chunk came.
    async fn read_for(&mut self, d: Duration) -> Vec<(Instant, usize)> {
        let end = Instant::now() + d;
        let mut arrivals = Vec::new();
        let mut chunk = [0u8; 65536];
        while let Ok(r) = tokio::time::timeout_at(end, self.stream.read(&mut chunk)).await {
            let n = r.expect("read");
            if n == 0 {
                break;
            }
            arrivals.push((Instant::now(), self.buf.len() + n));
            self.buf.extend_from_slice(&chunk[..n]);
        }
        arrivals
    }

    /// Reads everything up to the server's close.
    async fn read_to_end(&mut self) {
        let _ = timeout(
            Duration::from_secs(5),
            self.stream.read_to_end(&mut self.buf),
        )
        .await;
    }
}

fn session_id(a: &Answer) -> String {
    let v = a.header("Session").expect("Session");
    v.split(';').next().unwrap().to_owned()
}

fn ssrc_of(a: &Answer) -> u32 {
    let t = a.header("Transport").expect("Transport");
    let hex = t.split("ssrc=").nth(1).expect("ssrc in Transport");
    u32::from_str_radix(hex.trim(), 16).expect("hex ssrc")
}

/// One RTP packet as seen by the tests.
#[derive(Debug, Clone)]
struct Rtp {
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: Vec<u8>,
}

fn parse_rtp(p: &[u8]) -> Option<Rtp> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    Some(Rtp {
        marker: p[1] & 0x80 != 0,
        seq: u16::from_be_bytes([p[2], p[3]]),
        ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        payload: p[12..].to_vec(),
    })
}

/// Strict parse of interleaved data: RTP packets of channel 0, stops at the
/// first byte that is not a `$` frame.
fn strict_packets(buf: &[u8]) -> Vec<Rtp> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos + 4 <= buf.len() {
        assert_eq!(buf[pos], b'$', "interleaved frame at {pos}");
        let len = usize::from(u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]));
        let Some(body) = buf.get(pos + 4..pos + 4 + len) else {
            break;
        };
        if buf[pos + 1] == 0 {
            out.extend(parse_rtp(body));
        }
        pos += 4 + len;
    }
    out
}

/// What a resynchronising reader finds in interleaved data of one video
/// stream with a known SSRC.
#[derive(Debug, Default)]
struct Scan {
    /// Whole RTP packets.
    packets: Vec<Rtp>,
    /// Sequence numbers of packets whose declared length swallowed the
    /// next `$` header, where the next packet is another one.
    truncated: Vec<u16>,
    /// The same, where the next packet is the same one again.
    resent: Vec<u16>,
    /// Runs of bytes between frames that are not a `$` header.
    garbage_runs: usize,
}

/// True when a plausible interleaved frame of our stream starts at `q`.
fn frame_at(buf: &[u8], q: usize, ssrc: u32) -> bool {
    let Some(h) = buf.get(q..q + 16) else {
        return false;
    };
    let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let ssrc_at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    h[0] == b'$'
        && (12..=1500).contains(&len)
        && h[4] >> 6 == 2
        && match h[1] {
            // RTP: SSRC after sequence number and timestamp.
            0 => h[5] & 0x7f == 96 && ssrc_at(12) == ssrc,
            // RTCP sender report: SSRC after the length.
            1 => h[5] == 200 && ssrc_at(8) == ssrc,
            _ => false,
        }
}

fn scan(buf: &[u8], ssrc: u32) -> Scan {
    let mut s = Scan::default();
    let mut pos = 0;
    while pos + 16 <= buf.len() {
        if !frame_at(buf, pos, ssrc) {
            s.garbage_runs += 1;
            match (pos + 1..buf.len()).find(|&q| frame_at(buf, q, ssrc)) {
                Some(q) => pos = q,
                None => break,
            }
            continue;
        }
        let len = usize::from(u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]));
        let end = pos + 4 + len;
        let seq = u16::from_be_bytes([buf[pos + 6], buf[pos + 7]]);
        let inner = (pos + 16..end.min(buf.len())).find(|&q| frame_at(buf, q, ssrc));
        if let Some(q) = inner {
            let next_seq = u16::from_be_bytes([buf[q + 6], buf[q + 7]]);
            if buf[pos + 1] == 0 && buf[q + 1] == 0 && next_seq == seq {
                s.resent.push(seq);
            } else {
                s.truncated.push(seq);
            }
            pos = q;
            continue;
        }
        if end > buf.len() {
            break;
        }
        if buf[pos + 1] == 0 {
            s.packets.extend(parse_rtp(&buf[pos + 4..end]));
        }
        pos = end;
    }
    s
}

/// Groups packets into frames (by marker): (first packet, last packet).
fn frames(packets: &[Rtp]) -> Vec<Vec<Rtp>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for p in packets {
        cur.push(p.clone());
        if p.marker {
            out.push(std::mem::take(&mut cur));
        }
    }
    out
}

/// NAL unit types carried in an RTP payload (RFC 6184): the NAL itself,
/// the units of a STAP-A, or the unit an FU-A start fragment begins.
fn nal_types(payload: &[u8]) -> Vec<u8> {
    let Some(&h) = payload.first() else {
        return Vec::new();
    };
    match h & 0x1f {
        24 => {
            let mut rest = &payload[1..];
            let mut v = Vec::new();
            while rest.len() >= 3 {
                let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                v.push(rest[2] & 0x1f);
                rest = rest.get(2 + n..).unwrap_or(&[]);
            }
            v
        }
        28 => payload
            .get(1)
            .filter(|b| *b & 0x80 != 0)
            .map(|b| vec![b & 0x1f])
            .unwrap_or_default(),
        t => vec![t],
    }
}

fn is_idr(frame: &[Rtp]) -> bool {
    frame.iter().any(|p| nal_types(&p.payload).contains(&5))
}

/// Plays `query` over TCP for `secs`, stops the server, reads to the end.
async fn tcp_capture(query: &str, secs: f64) -> (Vec<u8>, u32, FaultCounts) {
    let sim = Sim::start(Faults::default()).await;
    let mut c = Rtsp::connect(sim.addr).await;
    let ssrc = c.play_tcp(&sim.url(&format!("cam?audio=0&{query}"))).await;
    c.read_for(Duration::from_secs_f64(secs)).await;
    let counts = sim.stop().await;
    c.read_to_end().await;
    (c.buf, ssrc, counts)
}

#[tokio::test]
async fn truncation_swallows_the_next_header() {
    let (buf, ssrc, counts) = tcp_capture("truncate=0.05&seed=3", 2.0).await;
    let s = scan(&buf, ssrc);
    eprintln!("{counts:?}, seen {} truncated", s.truncated.len());
    assert!(!s.truncated.is_empty());
    assert!(s.resent.is_empty());
    assert_eq!(s.garbage_runs, 0);
    // The very last packet written may be cut with nothing after it.
    let seen = s.truncated.len() as u64;
    assert!(counts.truncated == seen || counts.truncated == seen + 1);
    // The lost packets are gaps in the sequence numbers.
    let gaps: usize = s
        .packets
        .windows(2)
        .map(|w| usize::from(w[1].seq.wrapping_sub(w[0].seq)) - 1)
        .sum();
    assert_eq!(gaps, s.truncated.len());
}

#[tokio::test]
async fn truncation_then_resend() {
    let (buf, ssrc, counts) = tcp_capture("truncate_resend=0.05&seed=4", 2.0).await;
    let s = scan(&buf, ssrc);
    assert!(!s.resent.is_empty());
    assert!(s.truncated.is_empty());
    assert_eq!(s.resent.len() as u64, counts.truncated_resent);
    // Nothing is lost: every sequence number comes once, whole.
    assert!(s
        .packets
        .windows(2)
        .all(|w| w[1].seq == w[0].seq.wrapping_add(1)));
}

#[tokio::test]
async fn garbage_between_frames() {
    let (buf, ssrc, counts) = tcp_capture("garbage=0.05&seed=5", 2.0).await;
    let s = scan(&buf, ssrc);
    assert!(s.garbage_runs > 0);
    assert_eq!(s.garbage_runs as u64, counts.garbage_bursts);
    assert!(counts.garbage_bytes >= counts.garbage_bursts);
    assert!(s.truncated.is_empty() && s.resent.is_empty());
    assert!(s
        .packets
        .windows(2)
        .all(|w| w[1].seq == w[0].seq.wrapping_add(1)));
}

#[tokio::test]
async fn stall_then_burst_with_timestamps_kept() {
    let sim = Sim::start(Faults::default()).await;
    let mut c = Rtsp::connect(sim.addr).await;
    c.play_tcp(&sim.url("cam?audio=0&stall_every_s=0.6&stall_ms=400"))
        .await;
    let arrivals = c.read_for(Duration::from_millis(1600)).await;
    let counts = sim.stop().await;
    assert!(counts.stalls >= 1, "{counts:?}");
    // A gap of about stall_ms, then a burst: the frames missed meanwhile
    // (10 at 25 fps) within a few ms.
    let at = arrivals
        .windows(2)
        .position(|w| w[1].0 - w[0].0 >= Duration::from_millis(380))
        .expect("a stall of at least 380 ms");
    let (t_burst, _) = arrivals[at + 1];
    let before = arrivals[at].1;
    let burst_end = arrivals
        .iter()
        .take_while(|(t, _)| *t - t_burst < Duration::from_millis(30))
        .last()
        .map_or(before, |a| a.1);
    let burst = frames(&strict_packets(&c.buf[..burst_end])).len()
        - frames(&strict_packets(&c.buf[..before])).len();
    assert!(burst >= 8, "burst of {burst} frames after the stall");
    let fr = frames(&strict_packets(&c.buf));
    for w in fr.windows(2) {
        assert_eq!(w[1][0].ts.wrapping_sub(w[0][0].ts), 3600);
    }
}

#[tokio::test]
async fn ssrc_change_restarts_at_an_idr() {
    let (buf, ssrc, counts) = tcp_capture("ssrc_change_every_s=0.8", 2.0).await;
    let packets = strict_packets(&buf);
    assert_eq!(packets[0].ssrc, ssrc);
    let mut changes = 0;
    for w in packets.windows(2) {
        if w[1].ssrc != w[0].ssrc {
            changes += 1;
            assert_ne!(w[1].seq, w[0].seq.wrapping_add(1), "sequence jumps too");
            assert!(w[0].marker, "changes between frames");
            let first = packets.iter().find(|p| p.ssrc == w[1].ssrc).unwrap();
            let kinds = nal_types(&first.payload);
            assert!(
                kinds.contains(&7) || kinds.contains(&5),
                "new SSRC starts with an IDR: {kinds:?}"
            );
        } else {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        }
    }
    assert!(changes >= 2);
    assert_eq!(changes, counts.ssrc_changes);
}

#[tokio::test]
async fn timestamp_jumps_ten_seconds() {
    let (buf, _, counts) = tcp_capture("timestamp_jump_every_s=0.8", 2.0).await;
    let fr = frames(&strict_packets(&buf));
    let jumps = fr
        .windows(2)
        .filter(|w| {
            let d = w[1][0].ts.wrapping_sub(w[0][0].ts);
            assert!(d == 3600 || d == 3600 + 900_000, "delta {d}");
            d != 3600
        })
        .count() as u64;
    assert!(jumps >= 2);
    assert_eq!(jumps, counts.timestamp_jumps);
}

#[tokio::test]
async fn reboot_drops_the_connection() {
    let sim = Sim::start(Faults::default()).await;
    let mut c = Rtsp::connect(sim.addr).await;
    c.play_tcp(&sim.url("cam?reboot_every_s=0.5")).await;
    let t0 = Instant::now();
    let mut chunk = [0u8; 65536];
    loop {
        let n = timeout(Duration::from_secs(3), c.stream.read(&mut chunk))
            .await
            .expect("connection closes within 3 s")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
    }
    assert!(t0.elapsed() < Duration::from_millis(1500));
    assert_eq!(sim.stop().await.reboots, 1);
}

#[tokio::test]
async fn sprop_only_has_no_in_band_parameter_sets() {
    let (buf, _, _) = tcp_capture("sprop_only=1", 2.2).await;
    let fr = frames(&strict_packets(&buf));
    assert!(fr.len() >= 50);
    assert!(is_idr(&fr[0]));
    for f in &fr {
        for p in f {
            let k = nal_types(&p.payload);
            assert!(!k.contains(&7) && !k.contains(&8), "{k:?}");
        }
    }
    // The SDP still carries them.
    let sim = Sim::start(Faults::default()).await;
    let mut c = Rtsp::connect(sim.addr).await;
    let d = c
        .request("DESCRIBE", &sim.url("cam?sprop_only=1"), "")
        .await;
    assert!(d.body.contains("sprop-parameter-sets="));
    sim.stop().await;
}

/// Plays over TCP and sends a PLI (or triggers a keyframe) after frame 5;
/// returns the frame indexes that were IDRs and the final counters.
async fn keyframe_after_frame_5(query: &str, by_trigger: bool) -> (Vec<usize>, FaultCounts) {
    let sim = Sim::start(Faults::default()).await;
    let mut c = Rtsp::connect(sim.addr).await;
    let ssrc = c.play_tcp(&sim.url(&format!("cam?audio=0&{query}"))).await;
    let mut sent = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while frames(&strict_packets(&c.buf)).len() < 30 && Instant::now() < deadline {
        c.read_more().await;
        if !sent && frames(&strict_packets(&c.buf)).len() >= 6 {
            sent = true;
            if by_trigger {
                sim.trigger.request("cam");
            } else {
                let mut pli = vec![b'$', 1, 0, 12, 0x81, 206, 0, 2];
                pli.extend_from_slice(&1u32.to_be_bytes());
                pli.extend_from_slice(&ssrc.to_be_bytes());
                c.stream.write_all(&pli).await.expect("send PLI");
            }
        }
    }
    let counts = sim.stop().await;
    let fr = frames(&strict_packets(&c.buf));
    // Timestamps and sequence numbers go on as if nothing happened.
    for w in fr.windows(2) {
        assert_eq!(w[1][0].ts.wrapping_sub(w[0][0].ts), 3600);
    }
    let idrs = fr
        .iter()
        .enumerate()
        .filter(|(_, f)| is_idr(f))
        .map(|(i, _)| i)
        .collect();
    (idrs, counts)
}

#[tokio::test]
async fn pli_is_honoured_at_once() {
    let (idrs, counts) = keyframe_after_frame_5("", false).await;
    assert_eq!(idrs[0], 0);
    let next = idrs[1];
    assert!((6..=8).contains(&next), "IDRs at {idrs:?}");
    assert!(next + 40 <= 50);
    assert_eq!(counts.keyframe_requests_honoured, 1);
}

#[tokio::test]
async fn pli_ignored_when_not_honoured() {
    let (idrs, counts) = keyframe_after_frame_5("honour_pli=0", false).await;
    assert_eq!(idrs, [0]);
    assert_eq!(counts.keyframe_requests_honoured, 0);
}

#[tokio::test]
async fn keyframe_trigger_reaches_the_camera() {
    let (idrs, counts) = keyframe_after_frame_5("", true).await;
    assert!((6..=8).contains(&idrs[1]), "IDRs at {idrs:?}");
    assert_eq!(counts.keyframe_requests_honoured, 1);
    // Cameras that ignore RTCP may still obey ONVIF.
    let (idrs, _) = keyframe_after_frame_5("honour_pli=0", true).await;
    assert!((6..=8).contains(&idrs[1]), "IDRs at {idrs:?}");
}

/// Plays the video of `query` over UDP for `secs` (sending a PLI to the
/// RTCP port after `pli_after` packets if set); returns the sequence
/// numbers received as offsets from `RTP-Info`'s, and the counters.
async fn udp_capture(
    query: &str,
    secs: f64,
    pli_after: Option<usize>,
) -> (Vec<u16>, Vec<Rtp>, FaultCounts) {
    let sim = Sim::start(Faults::default()).await;
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (p0, p1) = (
        rtp.local_addr().unwrap().port(),
        rtcp.local_addr().unwrap().port(),
    );
    let mut c = Rtsp::connect(sim.addr).await;
    let url = sim.url(&format!("cam?audio=0&{query}"));
    let d = c.request("DESCRIBE", &url, "").await;
    assert_eq!(d.status(), 200);
    let base = d.header("Content-Base").unwrap().to_owned();
    let s = c
        .request(
            "SETUP",
            &format!("{base}trackID=0"),
            &format!("Transport: RTP/AVP;unicast;client_port={p0}-{p1}\r\n"),
        )
        .await;
    assert_eq!(s.status(), 200, "{}", s.head);
    let t = s.header("Transport").unwrap();
    let server_rtcp: u16 = t
        .split("server_port=")
        .nth(1)
        .and_then(|v| v.split(['-', ';']).nth(1))
        .and_then(|v| v.parse().ok())
        .expect("server_port");
    let session = session_id(&s);
    let p = c
        .request("PLAY", &base, &format!("Session: {session}\r\n"))
        .await;
    let info = p.header("RTP-Info").unwrap();
    let seq0: u16 = info
        .split("seq=")
        .nth(1)
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.parse().ok())
        .expect("seq in RTP-Info");
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while let Ok(r) = tokio::time::timeout_at(end, rtp.recv(&mut buf)).await {
        let n = r.unwrap();
        got.extend(parse_rtp(&buf[..n]));
        if pli_after == Some(got.len()) {
            let mut pli = vec![0x81, 206, 0, 2];
            pli.extend_from_slice(&1u32.to_be_bytes());
            pli.extend_from_slice(&got[0].ssrc.to_be_bytes());
            rtcp.send_to(&pli, ("127.0.0.1", server_rtcp))
                .await
                .unwrap();
        }
    }
    let counts = sim.stop().await;
    while let Ok(Ok(n)) = timeout(Duration::from_millis(100), rtp.recv(&mut buf)).await {
        got.extend(parse_rtp(&buf[..n]));
    }
    let offsets = got.iter().map(|p| p.seq.wrapping_sub(seq0)).collect();
    (offsets, got, counts)
}

#[tokio::test]
async fn udp_loss_reorder_duplicate_in_sequence_numbers() {
    let (seqs, _, counts) = udp_capture(
        "udp_loss=0.05&udp_reorder=0.05&udp_duplicate=0.05&seed=9",
        2.0,
        None,
    )
    .await;
    let mut seen = std::collections::HashSet::new();
    let (mut dups, mut late, mut max) = (0u64, 0u64, 0u16);
    for &s in &seqs {
        if !seen.insert(s) {
            dups += 1;
        } else if s < max {
            late += 1;
        }
        max = max.max(s);
    }
    let missing = u64::from(max) + 1 - seen.len() as u64;
    eprintln!("{counts:?}: dups {dups} late {late} missing {missing}");
    assert!(dups > 0 && late > 0 && missing > 0);
    assert_eq!(dups, counts.udp_duplicated);
    // Packets lost or held back at the very end are not seen as such.
    assert!(late <= counts.udp_reordered && counts.udp_reordered <= late + 3);
    assert!(
        missing.abs_diff(counts.udp_lost) <= 3,
        "{missing} vs {counts:?}"
    );
}

#[tokio::test]
async fn udp_pli_is_honoured() {
    let (_, got, counts) = udp_capture("", 0.8, Some(30)).await;
    let fr = frames(&got);
    let idrs: Vec<usize> = fr
        .iter()
        .enumerate()
        .filter(|(_, f)| is_idr(f))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(idrs[0], 0);
    assert!(idrs.len() >= 2 && idrs[1] < 15, "IDRs at {idrs:?}");
    assert_eq!(counts.keyframe_requests_honoured, 1);
}

#[tokio::test]
async fn same_seed_and_name_repeat() {
    let q = "udp_loss=0.05&udp_reorder=0.05&udp_duplicate=0.05&seed=11";
    let ((a, _, _), (b, _, _)) = tokio::join!(udp_capture(q, 1.5, None), udp_capture(q, 1.5, None));
    let n = a.len().min(b.len()).saturating_sub(20);
    assert!(n > 100);
    assert_eq!(a[..n], b[..n]);
    let (c, _, _) = udp_capture(
        "udp_loss=0.05&udp_reorder=0.05&udp_duplicate=0.05&seed=12",
        1.5,
        None,
    )
    .await;
    assert_ne!(a[..n], c[..n]);

    // TCP: the same packets are cut short.
    let q = "truncate=0.05&truncate_resend=0.05&seed=3";
    let (ta, tb) = tokio::join!(tcp_capture(q, 1.5), tcp_capture(q, 1.5));
    let offsets = |(buf, ssrc, _): &(Vec<u8>, u32, FaultCounts)| {
        let s = scan(buf, *ssrc);
        let seq0 = s.packets[0].seq;
        let rel = |v: &[u16]| v.iter().map(|x| x.wrapping_sub(seq0)).collect::<Vec<_>>();
        (rel(&s.truncated), rel(&s.resent))
    };
    let (oa, ob) = (offsets(&ta), offsets(&tb));
    let k = oa.0.len().min(ob.0.len()).saturating_sub(1);
    assert!(k >= 2);
    assert_eq!(oa.0[..k], ob.0[..k]);
    let k = oa.1.len().min(ob.1.len()).saturating_sub(1);
    assert_eq!(oa.1[..k], ob.1[..k]);
}

#[tokio::test]
async fn bad_fault_query_is_a_400_naming_the_key() {
    let sim = Sim::start(Faults::default()).await;
    let mut c = Rtsp::connect(sim.addr).await;
    let a = c
        .request("DESCRIBE", &sim.url("cam?trunkate=0.1"), "")
        .await;
    assert_eq!(a.status(), 400);
    assert!(a.head.contains("trunkate") && a.body.contains("trunkate"));
    let a = c.request("DESCRIBE", &sim.url("cam?udp_loss=2"), "").await;
    assert_eq!(a.status(), 400);
    assert!(a.head.contains("udp_loss"));
    let a = c
        .request("DESCRIBE", &sim.url("cam?audio=0&udp_loss=0.5"), "")
        .await;
    assert_eq!(a.status(), 200);
    sim.stop().await;
}
