//! Sending one RTSP client its camera's media: RTP over the connection
//! (interleaved, RFC 2326 section 10.12) or UDP, starting at the cached
//! GOP's keyframe, sender reports every 5 s (RFC 3550 6.4.1), and what the
//! client's RTCP says (reports, PLI/FIR).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use super::PortLease;
use crate::camera::codec::VideoPacketizer;
use crate::camera::hub::{AudioInfo, MediaEvent, StreamInfo, VideoFrame};
use crate::camera::{CameraHandle, CameraStats, Consumer};
use crate::egress::clock::ViewerClock;
use crate::egress::rtp::{out_audio_payload_type, OutStream, VIDEO_PAYLOAD_TYPE};
use crate::h264::packetizer::Payload;
use crate::rtp::rtcp;
use crate::rtp::RtpPacket;

/// Sender reports go out this often.
pub(super) const SR_INTERVAL: Duration = Duration::from_secs(5);
/// A client that takes longer to accept one picture is cut off.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Interleaved packets are written in pieces of about this size (below the
/// 64 KiB a player's buffer starts with).
const WRITE_CHUNK: usize = 60 * 1024;
/// Pace of a GOP sent over UDP at once, bytes per second (40 Mbit/s), so
/// the client's receive buffer does not overflow.
const UDP_BURST_RATE: f64 = 5_000_000.0;
/// A client's keyframe requests are answered from the cache at most this
/// often.
const MIN_REPLAY_GAP: Duration = Duration::from_secs(1);

/// How a track reaches the client.
pub(super) enum Carrier {
    /// Interleaved on the RTSP connection.
    Tcp {
        /// RTP channel.
        rtp: u8,
        /// RTCP channel.
        rtcp: u8,
    },
    /// UDP from a port pair of `udp_port_range`.
    Udp {
        /// RTP socket (even port).
        rtp: UdpSocket,
        /// RTCP socket (odd port).
        rtcp: UdpSocket,
        /// The client's RTP port.
        to_rtp: SocketAddr,
        /// The client's RTCP port.
        to_rtcp: SocketAddr,
        /// Gives the ports back when the track ends.
        _lease: PortLease,
    },
}

/// One set-up track: 0 is video, 1 audio.
pub(super) struct Track {
    /// Where its packets go.
    pub carrier: Carrier,
    /// Its RTP stream (SSRC, sequence, timeline).
    pub out: OutStream,
}

impl Track {
    /// The `Transport` answer for this track.
    pub fn transport_answer(&self, server_ports: Option<(u16, u16)>) -> String {
        let ssrc = self.out.ssrc;
        match &self.carrier {
            Carrier::Tcp { rtp, rtcp } => {
                format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp};ssrc={ssrc:08X}")
            }
            Carrier::Udp {
                to_rtp, to_rtcp, ..
            } => {
                let (a, b) = server_ports.unwrap_or_default();
                format!(
                    "RTP/AVP;unicast;client_port={}-{};server_port={a}-{b};ssrc={ssrc:08X}",
                    to_rtp.port(),
                    to_rtcp.port()
                )
            }
        }
    }
}

/// A playing session's sender.
pub(super) struct Player {
    /// Live media.
    rx: broadcast::Receiver<MediaEvent>,
    /// Parameter sets and audio description.
    info: watch::Receiver<StreamInfo>,
    /// Video timestamps: continuous, strictly increasing, GOP replays
    /// compressed.
    clock: ViewerClock,
    packetizer: VideoPacketizer,
    payloads: Vec<Payload>,
    /// One picture's packets, framed for the connection or one by one.
    buf: Vec<u8>,
    /// Drop pictures until a keyframe (start without a cached GOP, or after
    /// falling behind).
    wait_keyframe: bool,
    /// The last picture sent (to cut a GOP replay at it).
    last_sent: Option<Arc<VideoFrame>>,
    /// When the GOP was last replayed for a keyframe request.
    last_replay: Option<Instant>,
    /// The audio stream description the audio track was set up with.
    audio_info: Option<AudioInfo>,
}

/// What `Player::next` yields.
pub(super) enum Next {
    /// Media to send.
    Media(MediaEvent),
    /// Fell behind by this many events: resume at a keyframe.
    Lagged(u64),
    /// The camera is gone.
    Closed,
}

impl Player {
    /// Starts playing `camera`: returns the player and the cached GOP to
    /// send first (empty when there is none: then the player waits for a
    /// keyframe and the camera is asked for one).
    pub fn start(camera: &CameraHandle) -> (Player, Vec<Arc<VideoFrame>>) {
        let (gop, rx) = camera.hub.subscribe_with_gop();
        let info = camera.hub.watch_info();
        let audio_info = info.borrow().audio.clone();
        if gop.is_empty() {
            camera.hub.request_keyframe();
        }
        let player = Player {
            rx,
            info,
            clock: ViewerClock::new(),
            packetizer: VideoPacketizer::new(camera.config.rtp_payload_size),
            payloads: Vec::with_capacity(64),
            buf: Vec::with_capacity(64 * 1024),
            wait_keyframe: gop.is_empty(),
            last_sent: None,
            last_replay: None,
            audio_info,
        };
        (player, gop)
    }

    /// The RTP timestamp the first picture will carry (RTP-Info).
    pub fn first_video_timestamp(&self) -> u32 {
        self.clock.first_output()
    }

    /// The next media event.
    pub async fn next(&mut self) -> Next {
        match self.rx.recv().await {
            Ok(ev) => Next::Media(ev),
            Err(RecvError::Lagged(n)) => Next::Lagged(n),
            Err(RecvError::Closed) => Next::Closed,
        }
    }

    /// Resume at the next keyframe (fell behind).
    pub fn skip_to_keyframe(&mut self) {
        self.wait_keyframe = true;
    }

    /// The GOP to replay for a keyframe request (PLI/FIR), up to the last
    /// picture sent; empty when the cache cannot help or a replay went out
    /// less than a second ago.
    pub fn replay(&mut self, camera: &CameraHandle) -> Vec<Arc<VideoFrame>> {
        if camera.hub.request_keyframe() {
            CameraStats::add(&camera.stats.viewer_refresh_forwarded, 1);
        }
        if self
            .last_replay
            .is_some_and(|t| t.elapsed() < MIN_REPLAY_GAP)
        {
            return Vec::new();
        }
        let gop = camera.hub.gop_frames();
        let upto = self
            .last_sent
            .as_ref()
            .and_then(|last| gop.iter().position(|f| Arc::ptr_eq(f, last)));
        match upto {
            Some(i) => {
                self.last_replay = Some(Instant::now());
                gop[..=i].to_vec()
            }
            None => Vec::new(),
        }
    }
}

/// Where a picture comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// Just published by the camera.
    Live,
    /// The cached GOP at PLAY: sent at once, with the camera's own
    /// timestamps (a recorder stores when pictures were taken).
    Cached,
    /// The cached GOP again for a keyframe request: its pictures were sent
    /// already, so their timestamps are compressed after the last one.
    Replay,
}

/// Sends one picture on the video track; `Err` when the client cannot take
/// it (then the session ends).
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_video<W: AsyncWrite + Unpin>(
    player: &mut Player,
    track: &mut Track,
    frame: &Arc<VideoFrame>,
    source: Source,
    wr: &mut W,
    consumer: &Consumer,
    stats: &CameraStats,
) -> std::io::Result<()> {
    if player.wait_keyframe {
        if !frame.keyframe {
            return Ok(());
        }
        player.wait_keyframe = false;
        consumer.set_state("playing");
    }
    let ts = match source {
        Source::Replay => player.clock.burst(frame),
        Source::Live | Source::Cached => player.clock.live(frame),
    };
    player.payloads.clear();
    {
        let info = player.info.borrow_and_update();
        player.packetizer.packetize(
            frame.codec,
            &frame.au,
            info.video_params.as_ref(),
            &mut player.payloads,
        );
    }
    let payloads = std::mem::take(&mut player.payloads);
    let sent = send_packets(
        &mut player.buf,
        track,
        VIDEO_PAYLOAD_TYPE,
        ts,
        payloads.iter().map(|p| (p.marker, &p.data[..])),
        wr,
        consumer,
        stats,
    )
    .await;
    player.payloads = payloads;
    sent?;
    consumer.frames_sent.fetch_add(1, Relaxed);
    player.last_sent = Some(frame.clone());
    if source != Source::Live && matches!(track.carrier, Carrier::Udp { .. }) {
        let bytes = frame.au.len_bytes() as f64;
        tokio::time::sleep(Duration::from_secs_f64(bytes / UDP_BURST_RATE)).await;
    }
    Ok(())
}

/// Sends one audio payload on the audio track, unless the camera's audio
/// changed since SETUP (then the client's SDP no longer describes it).
pub(super) async fn send_audio<W: AsyncWrite + Unpin>(
    player: &mut Player,
    track: &mut Track,
    pkt: &crate::camera::AudioPacket,
    wr: &mut W,
    consumer: &Consumer,
    stats: &CameraStats,
) -> std::io::Result<()> {
    let Some(info) = player.audio_info.clone() else {
        return Ok(());
    };
    if player.info.borrow().audio.as_ref() != Some(&info) {
        return Ok(());
    }
    if player.last_sent.is_none() {
        // Audio starts with the first picture, so both begin together.
        return Ok(());
    }
    let pt = out_audio_payload_type(&info);
    let ts = track
        .out
        .timeline
        .map(pkt.timeline, pkt.timestamp, pkt.received);
    send_packets(
        &mut player.buf,
        track,
        pt,
        ts,
        std::iter::once((pkt.marker, &pkt.payload[..])),
        wr,
        consumer,
        stats,
    )
    .await
}

/// Writes RTP packets with one timestamp: over TCP all in one write, over
/// UDP one datagram each.
#[allow(clippy::too_many_arguments)]
async fn send_packets<'a, W: AsyncWrite + Unpin>(
    buf: &mut Vec<u8>,
    track: &mut Track,
    payload_type: u8,
    ts: u32,
    payloads: impl Iterator<Item = (bool, &'a [u8])>,
    wr: &mut W,
    consumer: &Consumer,
    stats: &CameraStats,
) -> std::io::Result<()> {
    buf.clear();
    let mut count = 0u64;
    let mut bytes = 0u64;
    let out = &mut track.out;
    match &track.carrier {
        Carrier::Tcp { rtp, .. } => {
            // The picture goes out in pieces of WRITE_CHUNK, all within
            // WRITE_TIMEOUT: a keyframe in one piece would grow every
            // client's buffer to its size for good (measured: the heap then
            // fragments as clients come and go).
            let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
            for (marker, data) in payloads {
                if buf.len() >= WRITE_CHUNK {
                    write_until(wr, buf, deadline).await?;
                    buf.clear();
                }
                let at = buf.len();
                buf.extend_from_slice(&[b'$', *rtp, 0, 0]);
                RtpPacket::write(buf, marker, payload_type, out.seq, ts, out.ssrc, data);
                let len = (buf.len() - at - 4) as u16;
                buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
                count_out(
                    out,
                    data.len(),
                    usize::from(len),
                    consumer,
                    &mut count,
                    &mut bytes,
                );
            }
            write_until(wr, buf, deadline).await?;
        }
        Carrier::Udp {
            rtp: socket,
            to_rtp,
            ..
        } => {
            for (marker, data) in payloads {
                buf.clear();
                RtpPacket::write(buf, marker, payload_type, out.seq, ts, out.ssrc, data);
                count_out(out, data.len(), buf.len(), consumer, &mut count, &mut bytes);
                // UDP is fire and forget: a client that is not listening
                // (ICMP port unreachable) ends by its session timeout.
                let _ = socket.send_to(buf, *to_rtp).await;
            }
        }
    }
    CameraStats::add(&stats.rtsp_packets, count);
    CameraStats::add(&stats.rtsp_bytes, bytes);
    Ok(())
}

fn count_out(
    out: &mut OutStream,
    payload: usize,
    packet: usize,
    consumer: &Consumer,
    count: &mut u64,
    bytes: &mut u64,
) {
    out.seq = out.seq.wrapping_add(1);
    out.packets += 1;
    out.octets += payload as u64;
    consumer.count_packet(packet);
    *count += 1;
    *bytes += packet as u64;
}

/// Writes `data` by `deadline`.
async fn write_until<W: AsyncWrite + Unpin>(
    wr: &mut W,
    data: &[u8],
    deadline: tokio::time::Instant,
) -> std::io::Result<()> {
    match tokio::time::timeout_at(deadline, wr.write_all(data)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client did not take a picture within 10 s",
        )),
    }
}

/// Writes `data` within [`WRITE_TIMEOUT`].
pub(super) async fn write_timed<W: AsyncWrite + Unpin>(
    wr: &mut W,
    data: &[u8],
) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(data)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client did not take a picture within 10 s",
        )),
    }
}

/// Sends a sender report (with SDES) on each track that sent something.
/// Its NTP time comes from the camera's own sender report for that track
/// when the camera sent one on the current timeline (so a recorder lines up
/// audio and video as the camera meant), else from the wall clock.
pub(super) async fn send_reports<W: AsyncWrite + Unpin>(
    player: &Player,
    camera: &CameraHandle,
    tracks: &mut [Option<Track>; 2],
    wr: &mut W,
) -> std::io::Result<()> {
    let now = Instant::now();
    let wall = rtcp::ntp_timestamp(SystemTime::now());
    for (i, track) in tracks.iter_mut().enumerate() {
        let Some(track) = track else { continue };
        if track.out.packets == 0 {
            continue;
        }
        let (out, input) = if i == 0 {
            let out = player.clock.now_output(now);
            (out, out.and_then(|o| player.clock.to_input(o)))
        } else {
            let out = track.out.timeline.now_output(now);
            (out, out.and_then(|o| track.out.timeline.to_input(o)))
        };
        let Some(rtp_timestamp) = out else { continue };
        let clock_rate = if i == 0 {
            90_000
        } else {
            player.audio_info.as_ref().map_or(8000, |a| a.clock_rate)
        };
        let ntp_timestamp = match (camera.hub.clock(i), input) {
            (Some(c), Some((timeline, ts))) if c.timeline == timeline => c.ntp_at(ts, clock_rate),
            _ => wall,
        };
        let mut pkt = Vec::with_capacity(64);
        rtcp::write_sender_report(
            &mut pkt,
            &rtcp::SenderReport {
                ssrc: track.out.ssrc,
                ntp_timestamp,
                rtp_timestamp,
                packet_count: track.out.packets as u32,
                octet_count: track.out.octets as u32,
            },
        );
        rtcp::write_sdes_cname(&mut pkt, track.out.ssrc, "camgate");
        match &track.carrier {
            Carrier::Tcp { rtcp, .. } => {
                let mut framed = vec![b'$', *rtcp];
                framed.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
                framed.extend_from_slice(&pkt);
                write_timed(wr, &framed).await?;
            }
            Carrier::Udp {
                rtcp: socket,
                to_rtcp,
                ..
            } => {
                let _ = socket.send_to(&pkt, *to_rtcp).await;
            }
        }
    }
    Ok(())
}

/// Reads a client's RTCP into its consumer record; whether it asked for a
/// keyframe (PLI or FIR).
pub(super) fn on_client_rtcp(
    data: &[u8],
    tracks: &[Option<Track>; 2],
    consumer: &Consumer,
) -> bool {
    let fb = rtcp::parse_receiver_feedback(data);
    for block in &fb.reports {
        let ours = tracks.iter().flatten().any(|t| t.out.ssrc == block.ssrc);
        if !ours {
            continue;
        }
        consumer
            .fraction_lost
            .store(u64::from(block.fraction_lost), Relaxed);
        consumer
            .packets_lost
            .store(block.cumulative_lost.max(0) as u64, Relaxed);
        if block.last_sr != 0 {
            // RFC 3550 6.4.1: RTT = now - LSR - DLSR, in 1/65536 s.
            let now = rtcp::ntp_middle(SystemTime::now());
            let rtt = now
                .wrapping_sub(block.last_sr)
                .wrapping_sub(block.delay_since_last_sr);
            if rtt < 65536 * 10 {
                consumer
                    .rtt_us
                    .store(u64::from(rtt) * 1_000_000 / 65536, Relaxed);
            }
        }
    }
    if fb.pli {
        consumer.plis.fetch_add(1, Relaxed);
    }
    if fb.fir {
        consumer.firs.fetch_add(1, Relaxed);
    }
    fb.pli || fb.fir
}
