//! One viewer's life: wait for ICE and DTLS, start from the cached GOP (fast
//! start), pass the camera's pictures through, answer its keyframe requests
//! from the cache and its NACKs from the packets it was sent, report the
//! streams' clocks (RTCP SR), and end on DELETE, ICE failure, a disconnect
//! that lasts, camera removal or shutdown, closing the peer connection so
//! every task and socket it held is freed.
//!
//! The `webrtc` crate negotiates, runs ICE, DTLS and SRTP and reads the
//! viewer's RTCP; its tracks, interceptors and NACK buffer are not in the
//! media's path. The payloads of a picture come from the camera's shared
//! [`PictureLog`]; this task adds each packet's RTP header and writes it to
//! the crate's SRTP session (`Wire`, through [`Tap`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, watch};
use webrtc::interceptor::{Attributes, RTPWriter};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp;
use webrtc::rtp;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;

use super::opus_feed::{OpusPacket, OpusSubscription};
use super::packets::PictureLog;
use super::rtp_index::{Header, PacketIndex};
use super::tap::Tap;
use crate::camera::hub::{MediaEvent, StreamInfo, VideoFrame};
use crate::camera::{CameraStats, Consumer, ConsumerGuard, Hub};
use crate::egress::clock::ViewerClock;
use crate::egress::rtp::Timeline;

/// A viewer's keyframe requests are answered from the cache at most this
/// often.
const MIN_BURST_GAP: Duration = Duration::from_secs(1);
/// Pace of a replayed GOP, bytes per second (40 Mbit/s): a 2 s GOP of a
/// 2 Mbit/s camera goes out in about 100 ms instead of at once, which
/// would overflow the viewer's receive buffer and lose packets.
const BURST_RATE: f64 = 5_000_000.0;
/// Sent video packets kept for NACKs: 2^9 = 512 packets, 2.5 s at 2 Mbit/s.
const HISTORY: usize = 512;
/// Packets a viewer may have resent per second, and at once (a token
/// bucket): a viewer that keeps losing packets (a full receive buffer, a
/// lossy link) must not make the gateway send it several times the
/// stream, which would only make it lose more.
const RESEND_RATE: f64 = 100.0;
const RESEND_BURST: f64 = 100.0;
/// How often each stream's sender report goes out.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What a viewer asks for over RTCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Feedback {
    /// PLI or FIR.
    Keyframe,
    /// Generic NACK: these video sequence numbers again.
    Nack(Vec<u16>),
}

/// An outgoing RTP stream as negotiated.
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamId {
    /// The SSRC the crate put in the answer.
    pub ssrc: u32,
    /// The payload type the answer gives the codec.
    pub payload_type: u8,
}

/// Everything a viewer task owns.
pub(super) struct Viewer {
    pub pc: Arc<RTCPeerConnection>,
    /// Its RTCP is read for feedback.
    pub video_sender: Arc<RTCRtpSender>,
    pub video: StreamId,
    pub audio: Option<(Arc<RTCRtpSender>, StreamId, u32)>,
    /// Opus made from the camera's AAC, when that is the audio sent (the
    /// camera's own audio packets are then not).
    pub opus: Option<OpusSubscription>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
    pub guard: ConsumerGuard,
    pub hub: Arc<Hub>,
    pub stats: Arc<CameraStats>,
    /// The camera's pictures cut into payloads, shared with its viewers.
    pub pictures: Arc<PictureLog>,
    /// The crate's SRTP writer under the peer connection's tracks.
    pub tap: Arc<Tap>,
    pub fast_start: bool,
    pub connect_timeout: Duration,
    pub disconnect_timeout: Duration,
    /// Given back when the task ends (the viewer counts).
    pub _place: crate::egress::places::Place,
}

/// Where packets leave, once ICE and DTLS are up: the crate's SRTP
/// session, under its tracks (see `tap`), which protects each packet and
/// sends it to the viewer's selected ICE candidate pair from the shared UDP
/// port.
struct Wire {
    writer: Arc<dyn RTPWriter + Send + Sync>,
    /// Not one per packet: the writer only reads them.
    attributes: Attributes,
}

impl Wire {
    /// Protects and sends one packet; returns its RTP length.
    async fn put(&mut self, header: &Header, payload: &Bytes) -> usize {
        let packet = rtp::packet::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: header.marker,
                payload_type: header.payload_type,
                sequence_number: header.seq,
                timestamp: header.timestamp,
                ssrc: header.ssrc,
                ..Default::default()
            },
            // A reference to the payload the camera's viewers share.
            payload: payload.clone(),
        };
        if let Err(e) = self.writer.write(&packet, &self.attributes).await {
            tracing::trace!(error = %e, "packet not sent");
        }
        12 + payload.len()
    }
}

/// What a sender report says of a stream (RFC 3550 6.4.1): the RTP time
/// of the last packet and when it left, as the `webrtc` crate's report
/// interceptor had it.
#[derive(Debug, Default)]
struct Report {
    last: Option<(u32, SystemTime)>,
    packets: u32,
    octets: u32,
}

impl Report {
    fn sent(&mut self, ts: u32, packets: u32, octets: usize) {
        self.last = Some((ts, SystemTime::now()));
        self.packets = self.packets.wrapping_add(packets);
        self.octets = self.octets.wrapping_add(octets as u32);
    }

    fn sender_report(
        &self,
        ssrc: u32,
        clock_rate: u32,
    ) -> Option<rtcp::sender_report::SenderReport> {
        let (ts, at) = self.last?;
        let now = SystemTime::now();
        let since = now.duration_since(at).unwrap_or_default().as_secs_f64();
        Some(rtcp::sender_report::SenderReport {
            ssrc,
            ntp_time: webrtc::rtp::extension::abs_send_time_extension::unix2ntp(now),
            rtp_time: ts.wrapping_add((since * f64::from(clock_rate)) as u32),
            packet_count: self.packets,
            octet_count: self.octets,
            ..Default::default()
        })
    }
}

/// A sent video packet, for NACKs.
#[derive(Debug, Clone)]
struct Sent {
    index: u64,
    timestamp: u32,
    marker: bool,
    payload: Bytes,
}

/// The video sender's state.
struct VideoOut {
    id: StreamId,
    pictures: Arc<PictureLog>,
    /// The camera's parameter sets, sent before each keyframe.
    info: watch::Receiver<StreamInfo>,
    index: PacketIndex,
    /// The last [`HISTORY`] packets by index.
    history: Vec<Option<Sent>>,
    clock: ViewerClock,
    report: Report,
    /// Resends allowed now (up to [`RESEND_BURST`]) and when that was.
    resend_budget: (f64, Instant),
    /// The last picture sent (to cut the cached GOP at it).
    last_sent: Option<Arc<VideoFrame>>,
    wait_keyframe: bool,
    last_burst: Option<Instant>,
}

impl VideoOut {
    async fn send(
        &mut self,
        wire: &mut Wire,
        frame: &Arc<VideoFrame>,
        ts: u32,
        session: &Consumer,
        stats: &CameraStats,
    ) -> bool {
        let payloads = {
            // Borrowed, not cloned: this runs for every picture of every
            // viewer.
            let info = self.info.borrow_and_update();
            self.pictures.payloads(frame, &info)
        };
        let mut bytes = 0usize;
        for p in payloads.iter() {
            let index = self.index.peek();
            let (seq, _) = self.index.next();
            let header = Header {
                payload_type: self.id.payload_type,
                marker: p.marker,
                seq,
                timestamp: ts,
                ssrc: self.id.ssrc,
            };
            wire.put(&header, &p.data).await;
            self.history[index as usize % HISTORY] = Some(Sent {
                index,
                timestamp: ts,
                marker: p.marker,
                payload: p.data.clone(),
            });
            let len = 12 + p.data.len();
            session.count_packet(len);
            bytes += len;
        }
        let n = payloads.len();
        CameraStats::add(&stats.viewer_packets, n as u64);
        CameraStats::add(&stats.viewer_bytes, bytes as u64);
        self.report.sent(ts, n as u32, bytes - 12 * n);
        session.frames_sent.fetch_add(1, Relaxed);
        self.last_sent = Some(frame.clone());
        true
    }

    /// Sends the packets of `seqs` again, those still in the history, the
    /// newest first (the oldest are the likeliest to be too old for the
    /// viewer's SRTP replay window), within the resend budget.
    async fn resend(&mut self, wire: &mut Wire, seqs: &[u16]) {
        let now = Instant::now();
        let (tokens, since) = self.resend_budget;
        let mut tokens =
            (tokens + now.duration_since(since).as_secs_f64() * RESEND_RATE).min(RESEND_BURST);
        let mut any = false;
        for &seq in seqs.iter().rev() {
            if tokens < 1.0 {
                break;
            }
            let Some(index) = sent_index(self.index.peek(), seq) else {
                continue;
            };
            let Some(sent) = self.history[index as usize % HISTORY]
                .as_ref()
                .filter(|s| s.index == index)
            else {
                continue;
            };
            let (seq, _) = PacketIndex::split(index);
            let header = Header {
                payload_type: self.id.payload_type,
                marker: sent.marker,
                seq,
                timestamp: sent.timestamp,
                ssrc: self.id.ssrc,
            };
            let payload = sent.payload.clone();
            wire.put(&header, &payload).await;
            tokens -= 1.0;
            any = true;
        }
        self.resend_budget = (tokens, now);
        if any {}
    }

    /// Replays `frames` compressed in time.
    async fn burst(
        &mut self,
        wire: &mut Wire,
        frames: &[Arc<VideoFrame>],
        session: &Consumer,
        stats: &CameraStats,
    ) {
        let start = Instant::now();
        let mut bytes = 0usize;
        for f in frames {
            let ts = self.clock.burst(f);
            if !self.send(wire, f, ts, session, stats).await {
                return;
            }
            bytes += f.au.len_bytes();
            let due = start + Duration::from_secs_f64(bytes as f64 / BURST_RATE);
            tokio::time::sleep_until(due.into()).await;
        }
        self.last_burst = Some(Instant::now());
    }
}

/// The packet index of the newest packet sent with sequence number `seq`
/// when the next index is `next`, if within the last [`HISTORY`] packets.
fn sent_index(next: u64, seq: u16) -> Option<u64> {
    let back = u64::from((next as u16).wrapping_sub(seq));
    (back != 0 && back <= HISTORY as u64 && back <= next).then(|| next - back)
}

/// The audio sender's state.
struct AudioOut {
    id: StreamId,
    clock_rate: u32,
    index: PacketIndex,
    timeline: Timeline,
    report: Report,
}

impl AudioOut {
    /// Sends one payload whose input timestamp `ts` is on input timeline
    /// `timeline`.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &mut self,
        wire: &mut Wire,
        payload: &Bytes,
        timeline: u64,
        ts: u32,
        received: Instant,
        marker: bool,
        session: &Consumer,
    ) {
        let ts = self.timeline.map(timeline, ts, received);
        let (seq, _) = self.index.next();
        let header = Header {
            payload_type: self.id.payload_type,
            marker,
            seq,
            timestamp: ts,
            ssrc: self.id.ssrc,
        };
        wire.put(&header, payload).await;
        self.report.sent(ts, 1, payload.len());
        session.count_packet(12 + payload.len());
    }
}

/// Why a viewer ended (for the log).
fn end_reason(state: RTCPeerConnectionState) -> &'static str {
    match state {
        RTCPeerConnectionState::Failed => "ICE or DTLS failed",
        RTCPeerConnectionState::Closed => "closed by the viewer",
        _ => "ended",
    }
}

impl Viewer {
    pub async fn run(self) {
        let Viewer {
            pc,
            video_sender,
            video,
            audio,
            mut opus,
            mut state,
            guard,
            hub,
            stats,
            pictures,
            tap,
            fast_start,
            connect_timeout,
            disconnect_timeout,
            _place,
        } = self;
        let session = guard.consumer().clone();
        let cancel = session.cancel.clone();
        let (fb_tx, mut fb_rx) = mpsc::channel::<Feedback>(16);
        // RTCP from the viewer: PLI/FIR, NACKs and reports are ours.
        let rtcp_task = tokio::spawn(read_rtcp(
            video_sender.clone(),
            fb_tx,
            session.clone(),
            stats.clone(),
        ));
        let audio_rtcp_task = audio
            .as_ref()
            .map(|(sender, _, _)| tokio::spawn(drain_rtcp(sender.clone())));

        let started = Instant::now();
        let mut connected_once = false;
        let mut disconnected_since: Option<Instant> = None;
        let mut rx: Option<broadcast::Receiver<MediaEvent>> = None;
        let mut wire: Option<Wire> = None;
        let mut reports = tokio::time::interval(REPORT_INTERVAL);
        reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut out = VideoOut {
            id: video,
            pictures,
            info: hub.watch_info(),
            index: PacketIndex::new(rand::random()),
            history: vec![None; HISTORY],
            clock: ViewerClock::new(),
            report: Report::default(),
            resend_budget: (RESEND_BURST, Instant::now()),
            last_sent: None,
            wait_keyframe: true,
            last_burst: None,
        };
        // The camera's own audio packets are sent only when they are the
        // audio negotiated (not when it is Opus made from them).
        let audio_is_opus = opus.is_some();
        let mut audio_out = audio.map(|(_, id, rate)| AudioOut {
            id,
            clock_rate: rate,
            index: PacketIndex::new(rand::random()),
            timeline: Timeline::new(rate),
            report: Report::default(),
        });
        session.set_state("connecting");
        let reason: &str = loop {
            let deadline = if !connected_once {
                started + connect_timeout
            } else if let Some(since) = disconnected_since {
                since + disconnect_timeout
            } else {
                Instant::now() + Duration::from_secs(3600)
            };
            tokio::select! {
                _ = cancel.cancelled() => break "ended by the gateway or the viewer's DELETE",
                _ = tokio::time::sleep_until(deadline.into()) => {
                    break if connected_once {
                        "disconnected for too long"
                    } else {
                        "never connected"
                    };
                }
                changed = state.changed() => {
                    if changed.is_err() {
                        break "peer connection gone";
                    }
                    let s = *state.borrow_and_update();
                    match s {
                        RTCPeerConnectionState::Connected => {
                            disconnected_since = None;
                            session.set_state("connected");
                            if !connected_once {
                                connected_once = true;
                                let w = match open_wire(&tap) {
                                    Ok(w) => wire.insert(w),
                                    Err(e) => {
                                        tracing::warn!(session = %session.id, error = %e, "viewer cannot be sent to");
                                        break "no SRTP session";
                                    }
                                };
                                tracing::info!(session = %session.id, after_ms = started.elapsed().as_millis() as u64, "viewer connected");
                                let (gop, live) = hub.subscribe_with_gop();
                                rx = Some(live);
                                if fast_start && !gop.is_empty() {
                                    out.wait_keyframe = false;
                                    out.burst(w, &gop, &session, &stats).await;
                                } else if hub.request_keyframe() {
                                    CameraStats::add(&stats.viewer_refresh_forwarded, 1);
                                }
                                session.set_state("sending");
                            }
                        }
                        RTCPeerConnectionState::Disconnected => {
                            session.set_state("disconnected");
                            disconnected_since.get_or_insert_with(Instant::now);
                        }
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            break end_reason(s);
                        }
                        _ => {}
                    }
                }
                _ = reports.tick() => {
                    if wire.is_none() {
                        continue;
                    }
                    send_reports(&pc, &out, audio_out.as_ref()).await;
                }
                Some(fb) = fb_rx.recv() => {
                    let Some(w) = wire.as_mut() else { continue };
                    match fb {
                        Feedback::Keyframe => {
                            answer_keyframe_request(&mut out, w, &hub, &session, &stats).await;
                        }
                        Feedback::Nack(seqs) => out.resend(w, &seqs).await,
                    }
                }
                frame = recv_opus(&mut opus) => match frame {
                    Ok(f) => {
                        // Frames before the first picture are dropped, as
                        // the camera's own audio is: they would only delay
                        // the sound behind the picture.
                        let (Some(a), Some(w)) = (audio_out.as_mut(), wire.as_mut()) else { continue };
                        if out.last_sent.is_none() {
                            continue;
                        }
                        a.send(w, &f.data, f.timeline, f.timestamp, f.received, false, &session).await;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => opus = None,
                },
                ev = recv_opt(&mut rx) => match ev {
                    Ok(MediaEvent::Video(frame)) => {
                        let Some(w) = wire.as_mut() else { continue };
                        if out.wait_keyframe {
                            if !frame.keyframe {
                                continue;
                            }
                            out.wait_keyframe = false;
                            session.set_state("sending");
                        }
                        let ts = out.clock.live(&frame);
                        out.send(w, &frame, ts, &session, &stats).await;
                    }
                    Ok(MediaEvent::Audio(pkt)) => {
                        let (Some(a), Some(w)) = (audio_out.as_mut().filter(|_| !audio_is_opus), wire.as_mut()) else {
                            continue;
                        };
                        if out.last_sent.is_none() {
                            continue;
                        }
                        a.send(w, &pkt.payload, pkt.timeline, pkt.timestamp, pkt.received, pkt.marker, &session).await;
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Too slow for the camera: skip to the next keyframe
                        // rather than slow anyone else.
                        tracing::debug!(session = %session.id, skipped = n, "viewer fell behind");
                        session.skips.fetch_add(1, Relaxed);
                        CameraStats::add(&stats.consumer_frames_skipped, n);
                        session.set_state("waiting_keyframe");
                        out.wait_keyframe = true;
                        out.last_sent = None;
                    }
                    Err(broadcast::error::RecvError::Closed) => break "camera removed",
                },
            }
        };
        tracing::info!(session = %session.id, reason, seconds = started.elapsed().as_secs(), "viewer ended");
        session.set_state("closed");
        if let Err(e) = pc.close().await {
            tracing::debug!(error = %e, "closing the peer connection");
        }
        rtcp_task.abort();
        if let Some(t) = audio_rtcp_task {
            t.abort();
        }
        drop(guard);
    }
}

/// The crate's SRTP writer, once the peer connection has started its
/// senders (it has when it is connected).
fn open_wire(tap: &Tap) -> Result<Wire, String> {
    let writer = tap
        .writer()
        .ok_or("the peer connection started no sender")?;
    Ok(Wire {
        writer,
        attributes: Attributes::new(),
    })
}

/// Sender reports for the streams that have sent something, through the
/// crate's SRTCP.
async fn send_reports(pc: &RTCPeerConnection, video: &VideoOut, audio: Option<&AudioOut>) {
    let mut packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> = Vec::with_capacity(2);
    if let Some(sr) = video.report.sender_report(video.id.ssrc, 90_000) {
        packets.push(Box::new(sr));
    }
    if let Some(sr) = audio.and_then(|a| a.report.sender_report(a.id.ssrc, a.clock_rate)) {
        packets.push(Box::new(sr));
    }
    if packets.is_empty() {
        return;
    }
    if let Err(e) = pc.write_rtcp(&packets).await {
        tracing::debug!(error = %e, "sender report not sent");
    }
}

/// A viewer lost its picture (PLI/FIR): replay the cached GOP up to the
/// last picture it got, at once; ask the camera too (rate-limited by the
/// hub) in case the cache cannot help.
async fn answer_keyframe_request(
    out: &mut VideoOut,
    wire: &mut Wire,
    hub: &Hub,
    session: &Consumer,
    stats: &CameraStats,
) {
    if hub.request_keyframe() {
        CameraStats::add(&stats.viewer_refresh_forwarded, 1);
    }
    if out.last_burst.is_some_and(|t| t.elapsed() < MIN_BURST_GAP) {
        return;
    }
    let gop = hub.gop_frames();
    let upto = out
        .last_sent
        .as_ref()
        .and_then(|last| gop.iter().position(|f| Arc::ptr_eq(f, last)));
    tracing::debug!(session = %session.id, gop = gop.len(), replay = ?upto.map(|i| i + 1), last = ?out.last_sent.as_ref().map(|f| f.au.timestamp), first = ?gop.first().map(|f| f.au.timestamp), newest = ?gop.last().map(|f| f.au.timestamp), "viewer asked for a keyframe");
    match upto {
        Some(i) => out.burst(wire, &gop[..=i], session, stats).await,
        // A keyframe newer than the viewer's last picture is on its way to
        // it already.
        None if gop
            .first()
            .zip(out.last_sent.as_ref())
            .is_some_and(|(key, last)| key.received >= last.received) => {}
        None => {
            // The cache does not reach the viewer's position: wait for the
            // camera's next keyframe.
            out.wait_keyframe = true;
            out.last_sent = None;
        }
    }
}

/// The next event of `rx`, or never when there is none yet.
async fn recv_opt(
    rx: &mut Option<broadcast::Receiver<MediaEvent>>,
) -> Result<MediaEvent, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next Opus frame of the camera's feed, or never when there is none.
async fn recv_opus(
    sub: &mut Option<OpusSubscription>,
) -> Result<Arc<OpusPacket>, broadcast::error::RecvError> {
    match sub {
        Some(s) => s.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads the viewer's RTCP on the video sender: keyframe requests go to the
/// media loop, NACKs and reports are counted.
async fn read_rtcp(
    sender: Arc<RTCRtpSender>,
    fb: mpsc::Sender<Feedback>,
    session: Arc<Consumer>,
    stats: Arc<CameraStats>,
) {
    use rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::receiver_report::ReceiverReport;
    use rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
    while let Ok((packets, _)) = sender.read_rtcp().await {
        for p in packets {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() {
                session.plis.fetch_add(1, Relaxed);
                CameraStats::add(&stats.viewer_plis, 1);
                let _ = fb.try_send(Feedback::Keyframe);
            } else if any.is::<FullIntraRequest>() {
                session.firs.fetch_add(1, Relaxed);
                CameraStats::add(&stats.viewer_firs, 1);
                let _ = fb.try_send(Feedback::Keyframe);
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                session.nacks.fetch_add(1, Relaxed);
                CameraStats::add(&stats.viewer_nacks, 1);
                // The media loop resends from its history; count what was
                // asked for.
                let seqs: Vec<u16> = nack.nacks.iter().flat_map(|pair| *pair).collect();
                let asked = seqs.len() as u64;
                session.retransmitted.fetch_add(asked, Relaxed);
                CameraStats::add(&stats.viewer_retransmits, asked);
                let _ = fb.try_send(Feedback::Nack(seqs));
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                for r in &rr.reports {
                    session
                        .fraction_lost
                        .store(u64::from(r.fraction_lost), Relaxed);
                    session.packets_lost.store(u64::from(r.total_lost), Relaxed);
                    if r.last_sender_report != 0 {
                        let rtt = crate::rtp::rtcp::ntp_middle(SystemTime::now())
                            .wrapping_sub(r.last_sender_report)
                            .wrapping_sub(r.delay);
                        // 1/65536 s units; ignore nonsense from clock skew.
                        if rtt < 65536 * 10 {
                            let us = u64::from(rtt) * 1_000_000 / 65536;
                            session.rtt_us.store(us.max(1), Relaxed);
                        }
                    }
                }
            }
        }
    }
}

/// Reads and drops RTCP on a sender we take no feedback from.
async fn drain_rtcp(sender: Arc<RTCRtpSender>) {
    while sender.read_rtcp().await.is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NACKed sequence numbers map to the packets' indexes (so their
    /// rollover counters) across a wrap, only within the history.
    #[test]
    fn nacked_sequence_numbers_find_their_packet_index() {
        let next = (3u64 << 16) + 5; // seq 5 is next, roc 3
        assert_eq!(sent_index(next, 4), Some(next - 1));
        assert_eq!(sent_index(next, 0), Some(3 << 16));
        // Before the wrap: the previous rollover counter.
        assert_eq!(sent_index(next, 65_535), Some((3 << 16) - 1));
        assert_eq!(PacketIndex::split((3 << 16) - 1), (65_535, 2));
        assert_eq!(sent_index(next, 5), None, "not sent yet");
        assert_eq!(sent_index(next, 6), None, "too old");
        assert_eq!(
            sent_index(next, 5u16.wrapping_sub(HISTORY as u16)),
            Some(next - HISTORY as u64)
        );
        assert_eq!(sent_index(next, 4u16.wrapping_sub(HISTORY as u16)), None);
        assert_eq!(sent_index(10, 65_000), None, "before the first packet");
    }
}
