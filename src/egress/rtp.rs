//! Plain RTP egress (RFC 3550, RFC 6184): each `rtp_out` destination gets the
//! camera's video on its port and audio on port + 2, with one SSRC per stream
//! and sequence numbers and timestamps that continue across camera
//! reconnects, plus the SDP file a consumer needs.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::broadcast::error::RecvError;

use crate::camera::codec::{VideoCodec, VideoPacketizer};
use crate::camera::hub::{AudioInfo, StreamInfo};
use crate::camera::{CameraStats, Consumer, ConsumerGuard, Hub, MediaEvent};
use crate::config::RtpOut;
use crate::h264::packetizer::Payload;
use crate::rtp::packet::FIXED_HEADER_LEN;
use crate::rtp::RtpPacket;

use super::udp_batch::UdpBatch;

/// Dynamic payload type of the H.264 stream we send.
pub const VIDEO_PAYLOAD_TYPE: u8 = 96;
/// Dynamic payload type for audio with no static number.
pub const AUDIO_DYNAMIC_PAYLOAD_TYPE: u8 = 97;

/// Maps one input timeline (which restarts with each camera session) onto a
/// continuous output timeline.
#[derive(Debug)]
pub struct Timeline {
    /// Output clock rate in Hz.
    clock_rate: u32,
    /// The input timeline number (see [`crate::camera::VideoFrame::timeline`])
    /// the mapping was made for.
    input: u64,
    /// Input timestamp that maps to `out_base`.
    in_base: u32,
    /// Output timestamp of `in_base`.
    out_base: u32,
    /// Last output timestamp and when it was produced.
    last: Option<(u32, Instant)>,
}

impl Timeline {
    /// A timeline starting at a random output timestamp.
    pub fn new(clock_rate: u32) -> Self {
        Timeline {
            clock_rate,
            input: u64::MAX,
            in_base: 0,
            out_base: rand::random(),
            last: None,
        }
    }

    /// The output clock rate, Hz.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The output timestamp the first input will get (RTP-Info's `rtptime`
    /// before anything was sent).
    pub fn first_output(&self) -> u32 {
        self.out_base
    }

    /// The output timestamp `now`, extrapolated from the last one mapped at
    /// the clock rate (a sender report's RTP timestamp); `None` before any.
    pub fn now_output(&self, now: Instant) -> Option<u32> {
        let (ts, at) = self.last?;
        let elapsed = now.saturating_duration_since(at).as_secs_f64() * f64::from(self.clock_rate);
        Some(ts.wrapping_add(elapsed as u32))
    }

    /// The input timeline and timestamp that output `out` stands for (the
    /// inverse of [`Timeline::map`] on the current input timeline); `None`
    /// before any input.
    pub fn to_input(&self, out: u32) -> Option<(u64, u32)> {
        self.last?;
        Some((
            self.input,
            self.in_base.wrapping_add(out.wrapping_sub(self.out_base)),
        ))
    }

    /// The output timestamp for input `ts` of input timeline `timeline`
    /// arriving at `now`. A new input timeline continues from the last
    /// output timestamp plus the wall-clock time since, so the consumer sees
    /// no jump.
    pub fn map(&mut self, timeline: u64, ts: u32, now: Instant) -> u32 {
        if timeline != self.input {
            self.input = timeline;
            self.in_base = ts;
            if let Some((last_ts, at)) = self.last {
                let elapsed =
                    now.saturating_duration_since(at).as_secs_f64() * f64::from(self.clock_rate);
                self.out_base = last_ts.wrapping_add((elapsed as u32).max(1));
                tracing::debug!(
                    timeline,
                    elapsed_ms = (elapsed / f64::from(self.clock_rate) * 1000.0) as u64,
                    "timeline re-anchored"
                );
            }
        }
        let out = self.out_base.wrapping_add(ts.wrapping_sub(self.in_base));
        self.last = Some((out, now));
        out
    }
}

/// One outgoing RTP stream: SSRC, sequence numbers, timeline.
#[derive(Debug)]
pub(super) struct OutStream {
    /// Random at start (RFC 3550 8.1).
    pub(super) ssrc: u32,
    /// Next sequence number; random at start.
    pub(super) seq: u16,
    /// Input timestamps to output ones.
    pub(super) timeline: Timeline,
    /// Packets sent (for sender reports).
    pub(super) packets: u64,
    /// Payload octets sent (for sender reports).
    pub(super) octets: u64,
}

impl OutStream {
    pub(super) fn new(clock_rate: u32) -> Self {
        OutStream {
            ssrc: rand::random(),
            seq: rand::random(),
            timeline: Timeline::new(clock_rate),
            packets: 0,
            octets: 0,
        }
    }
}

/// The SSRC of track `track` of camera `camera` sent to `destination`:
/// derived from them (FNV-1a), so that every node of a cluster uses the
/// same one.
fn stable_ssrc(camera: &str, destination: &SocketAddr, track: u8) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let text = format!("{camera}\u{0}{destination}\u{0}{track}");
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Sends a camera's media to one destination until cancelled.
pub async fn run_rtp_out(
    out: RtpOut,
    payload_size: usize,
    hub: Arc<Hub>,
    stats: Arc<CameraStats>,
    guard: ConsumerGuard,
) {
    let session = guard.consumer().clone();
    let cancel = session.cancel.clone();
    session.set_remote(out.destination.to_string());
    let socket = match bind_sender(&out).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(destination = %out.destination, error = %e, "cannot open the RTP output socket");
            return;
        }
    };
    let video_dest = out.destination;
    let audio_dest = SocketAddr::new(out.destination.ip(), out.destination.port().wrapping_add(2));
    // An output that starts while the camera plays (a camera taken over
    // from another node of a cluster, an output added later) begins with
    // the pictures since the last keyframe, not a GOP later.
    let (gop, mut rx) = hub.subscribe_with_gop();
    let mut pending: std::collections::VecDeque<MediaEvent> =
        gop.into_iter().map(MediaEvent::Video).collect();
    let mut info_rx = hub.watch_info();
    let mut packetizer = VideoPacketizer::new(payload_size);
    let mut video = OutStream::new(90_000);
    // The same SSRCs for the same camera and destination, whichever node
    // of a cluster sends (receivers keep one stream when a camera moves).
    video.ssrc = stable_ssrc(&session.camera, &out.destination, 0);
    let mut audio: Option<(OutStream, AudioInfo)> = None;
    let mut payloads: Vec<Payload> = Vec::with_capacity(64);
    let mut buf = Vec::with_capacity(payload_size + 12);
    // The packets of a picture leave together (UDP GSO).
    let mut batch = UdpBatch::new(&socket, payload_size + FIXED_HEADER_LEN);
    // Start (and restart after lag) at a keyframe, so the consumer's decoder
    // never sees a picture whose references it lacks.
    let mut wait_keyframe = true;
    session.set_state("waiting_keyframe");
    tracing::info!(destination = %video_dest, "rtp output started");
    loop {
        let event = match pending.pop_front() {
            Some(ev) => Ok(ev),
            None => tokio::select! {
                _ = cancel.cancelled() => break,
                ev = rx.recv() => ev,
            },
        };
        match event {
            Ok(MediaEvent::Video(frame)) => {
                // Damaged pictures are the repair gate's decision
                // (`on_damage`); here only a consumer's own start or lag
                // waits for a keyframe.
                if wait_keyframe {
                    if !frame.keyframe {
                        continue;
                    }
                    wait_keyframe = false;
                    session.set_state("sending");
                }
                let ts = video
                    .timeline
                    .map(frame.timeline, frame.au.timestamp, frame.received);
                payloads.clear();
                {
                    let info = info_rx.borrow_and_update();
                    packetizer.packetize(
                        frame.codec,
                        &frame.au,
                        info.video_params.as_ref(),
                        &mut payloads,
                    );
                }
                for p in &payloads {
                    if !batch.has_room(FIXED_HEADER_LEN + p.data.len()) {
                        batch.flush(&socket, video_dest).await;
                    }
                    let len = write_packet(
                        batch.buf(),
                        &mut video,
                        VIDEO_PAYLOAD_TYPE,
                        p.marker,
                        ts,
                        &p.data,
                        &stats,
                        &session,
                    );
                    batch.appended(len);
                }
                batch.flush(&socket, video_dest).await;
            }
            Ok(MediaEvent::Audio(pkt)) => {
                let info = info_rx.borrow_and_update().audio.clone();
                let Some(info) = info else { continue };
                if audio.as_ref().is_none_or(|(_, current)| *current != info) {
                    // A new or changed audio stream starts a new RTP stream.
                    let mut stream = OutStream::new(info.clock_rate);
                    let name = format!(
                        "{}\u{0}{}/{}",
                        session.camera, info.encoding, info.clock_rate
                    );
                    stream.ssrc = stable_ssrc(&name, &out.destination, 1);
                    audio = Some((stream, info));
                }
                let (stream, info) = audio.as_mut().expect("audio is set just above");
                let pt = out_audio_payload_type(info);
                let ts = stream
                    .timeline
                    .map(pkt.timeline, pkt.timestamp, pkt.received);
                send(
                    &socket,
                    &mut buf,
                    stream,
                    pt,
                    pkt.marker,
                    ts,
                    &pkt.payload,
                    audio_dest,
                    &stats,
                    &session,
                )
                .await;
            }
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    skipped = n,
                    "rtp output fell behind; resuming at the next keyframe"
                );
                CameraStats::add(&stats.consumer_frames_skipped, n);
                session
                    .skips
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                session.set_state("waiting_keyframe");
                wait_keyframe = true;
            }
            Err(RecvError::Closed) => break,
        }
    }
    tracing::info!(destination = %video_dest, packets = video.packets, octets = video.octets, "rtp output stopped");
}

#[allow(clippy::too_many_arguments)]
async fn send(
    socket: &UdpSocket,
    buf: &mut Vec<u8>,
    stream: &mut OutStream,
    payload_type: u8,
    marker: bool,
    ts: u32,
    payload: &[u8],
    dest: SocketAddr,
    stats: &CameraStats,
    session: &Consumer,
) {
    buf.clear();
    write_packet(
        buf,
        stream,
        payload_type,
        marker,
        ts,
        payload,
        stats,
        session,
    );
    if let Err(e) = socket.send_to(buf, dest).await {
        // A consumer that is not listening yet (ICMP port unreachable) is
        // normal; RTP is fire and forget.
        tracing::trace!(error = %e, "rtp send failed");
    }
}

/// Appends the next RTP packet of `stream` to `buf`, counts it, and
/// returns its length.
#[allow(clippy::too_many_arguments)]
fn write_packet(
    buf: &mut Vec<u8>,
    stream: &mut OutStream,
    payload_type: u8,
    marker: bool,
    ts: u32,
    payload: &[u8],
    stats: &CameraStats,
    session: &Consumer,
) -> usize {
    let start = buf.len();
    RtpPacket::write(
        buf,
        marker,
        payload_type,
        stream.seq,
        ts,
        stream.ssrc,
        payload,
    );
    let len = buf.len() - start;
    stream.seq = stream.seq.wrapping_add(1);
    stream.packets += 1;
    stream.octets += payload.len() as u64;
    CameraStats::add(&stats.egress_packets, 1);
    CameraStats::add(&stats.egress_bytes, len as u64);
    session.count_packet(len);
    len
}

/// Static payload types keep their number; others get a dynamic one.
pub(super) fn out_audio_payload_type(info: &AudioInfo) -> u8 {
    if info.payload_type < 96 {
        info.payload_type
    } else {
        AUDIO_DYNAMIC_PAYLOAD_TYPE
    }
}

async fn bind_sender(out: &RtpOut) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = match out.destination.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => (Ipv4Addr::LOCALHOST, 0).into(),
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(ip) if ip.is_loopback() => (Ipv6Addr::LOCALHOST, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    if out.destination.ip().is_multicast() {
        match out.destination.ip() {
            IpAddr::V4(_) => socket.set_multicast_ttl_v4(out.ttl)?,
            IpAddr::V6(_) => socket2::SockRef::from(&socket).set_multicast_hops_v6(out.ttl)?,
        }
    }
    Ok(socket)
}

/// The SDP (RFC 8866) a consumer opens to receive `out` of `camera_id`.
pub fn consumer_sdp(camera_id: &str, out: &RtpOut, info: &StreamInfo) -> String {
    let ip = out.destination.ip();
    let (net, origin) = match ip {
        IpAddr::V4(_) => ("IP4", "127.0.0.1"),
        IpAddr::V6(_) => ("IP6", "::1"),
    };
    let conn = if ip.is_multicast() && ip.is_ipv4() {
        format!("{ip}/{}", out.ttl)
    } else {
        ip.to_string()
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "v=0\r\no=- 0 0 IN {net} {origin}\r\ns=camgate {camera_id}\r\nc=IN {net} {conn}\r\nt=0 0\r\n"
    );
    let port = out.destination.port();
    write_media(&mut s, info, [port, port.wrapping_add(2)], false);
    s
}

/// Appends the `m=` sections of `info` (video, then audio when there is
/// one) on `ports`; with `control`, each names its track as
/// `a=control:trackID=N` (RTSP DESCRIBE answers).
pub(super) fn write_media(s: &mut String, info: &StreamInfo, ports: [u16; 2], control: bool) {
    let _ = write!(
        s,
        "m=video {} RTP/AVP {VIDEO_PAYLOAD_TYPE}\r\na=rtpmap:{VIDEO_PAYLOAD_TYPE} {}/90000\r\n",
        ports[0],
        info.video_codec.encoding()
    );
    let fmtp = match info
        .video_params
        .as_ref()
        .filter(|p| p.codec() == info.video_codec)
    {
        Some(p) => p.fmtp(),
        None if info.video_codec == VideoCodec::H264 => "packetization-mode=1".to_string(),
        None => String::new(),
    };
    if !fmtp.is_empty() {
        let _ = write!(s, "a=fmtp:{VIDEO_PAYLOAD_TYPE} {fmtp}\r\n");
    }
    if control {
        s.push_str("a=control:trackID=0\r\n");
    }
    s.push_str("a=recvonly\r\n");
    if let Some(a) = &info.audio {
        let pt = out_audio_payload_type(a);
        let _ = write!(s, "m=audio {} RTP/AVP {pt}\r\n", ports[1]);
        let _ = write!(s, "a=rtpmap:{pt} {}/{}", a.encoding, a.clock_rate);
        if let Some(ch) = a.channels {
            let _ = write!(s, "/{ch}");
        }
        s.push_str("\r\n");
        if let Some(f) = &a.fmtp {
            let _ = write!(s, "a=fmtp:{pt} {f}\r\n");
        }
        if control {
            s.push_str("a=control:trackID=1\r\n");
        }
        s.push_str("a=recvonly\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timeline_continues_across_input_timelines() {
        let mut t = Timeline::new(90_000);
        let t0 = Instant::now();
        let a = t.map(1, 1000, t0);
        let b = t.map(1, 4600, t0 + Duration::from_millis(40));
        assert_eq!(b.wrapping_sub(a), 3600);
        // The camera restarts with an unrelated timestamp 200 ms later.
        let c = t.map(2, 77, t0 + Duration::from_millis(240));
        assert_eq!(c.wrapping_sub(b), 18_000);
        let d = t.map(2, 77 + 3600, t0 + Duration::from_millis(280));
        assert_eq!(d.wrapping_sub(c), 3600);
    }

    #[test]
    fn timeline_wraps() {
        let mut t = Timeline::new(90_000);
        let t0 = Instant::now();
        let a = t.map(1, u32::MAX - 100, t0);
        let b = t.map(1, 3499, t0);
        assert_eq!(b.wrapping_sub(a), 3600);
    }

    #[test]
    fn sdp_names_ports_and_audio() {
        let out = RtpOut {
            destination: "127.0.0.1:5004".parse().unwrap(),
            ttl: 1,
        };
        let info = StreamInfo {
            video_codec: VideoCodec::H264,
            video_params: None,
            audio: Some(AudioInfo {
                encoding: "PCMU".into(),
                clock_rate: 8000,
                channels: None,
                payload_type: 0,
                fmtp: None,
            }),
        };
        let sdp = consumer_sdp("lobby", &out, &info);
        assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"), "{sdp}");
        assert!(sdp.contains("m=video 5004 RTP/AVP 96\r\n"), "{sdp}");
        assert!(
            sdp.contains("m=audio 5006 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"),
            "{sdp}"
        );
        let mc = RtpOut {
            destination: "239.1.2.3:5004".parse().unwrap(),
            ttl: 4,
        };
        assert!(consumer_sdp("x", &mc, &StreamInfo::default()).contains("c=IN IP4 239.1.2.3/4\r\n"));
    }

    #[test]
    fn h265_sdp_names_the_codec_its_parameter_sets_and_profile() {
        let aus = crate::h265::tests::clip("p.h265");
        let params = crate::h265::tests::clip_params(&aus);
        let out = RtpOut {
            destination: "127.0.0.1:5004".parse().unwrap(),
            ttl: 1,
        };
        let mut info = StreamInfo {
            video_codec: VideoCodec::H265,
            video_params: None,
            audio: None,
        };
        let sdp = consumer_sdp("cam", &out, &info);
        assert!(sdp.contains("a=rtpmap:96 H265/90000\r\n"), "{sdp}");
        assert!(!sdp.contains("a=fmtp"), "no parameter sets yet: {sdp}");
        info.video_params = Some(crate::camera::codec::VideoParams::H265(params.clone()));
        let sdp = consumer_sdp("cam", &out, &info);
        let fmtp = sdp.lines().find(|l| l.starts_with("a=fmtp:96 ")).unwrap();
        assert!(
            fmtp.contains("profile-id=1;tier-flag=0;level-id="),
            "{fmtp}"
        );
        assert!(fmtp.contains(&params.to_fmtp()), "{fmtp}");
        // What ffmpeg and other receivers read back is what camgate has.
        let back = crate::h265::ParameterSets::from_fmtp(&fmtp["a=fmtp:96 ".len()..])
            .unwrap()
            .unwrap();
        assert_eq!(back, params);
    }
}
