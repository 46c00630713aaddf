//! One viewer's life: wait for ICE and DTLS, start from the cached GOP (fast
//! start), pass the camera's pictures through, answer its keyframe requests
//! from the cache, and end on DELETE, ICE failure, a disconnect that lasts,
//! camera removal or shutdown, closing the peer connection so every task
//! and socket it held is freed.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, watch};
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp;
use webrtc::rtp;
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocalWriter;

use super::opus_feed::{OpusPacket, OpusSubscription};
use crate::camera::codec::VideoPacketizer;
use crate::camera::hub::{MediaEvent, StreamInfo, VideoFrame};
use crate::camera::{CameraStats, Consumer, ConsumerGuard, Hub};
use crate::egress::clock::ViewerClock;
use crate::egress::rtp::Timeline;
use crate::h264::packetizer::Payload;

/// A viewer's keyframe requests are answered from the cache at most this
/// often.
const MIN_BURST_GAP: Duration = Duration::from_secs(1);
/// Pace of a replayed GOP, bytes per second (40 Mbit/s): a 2 s GOP of a
/// 2 Mbit/s camera goes out in about 100 ms instead of at once, which
/// would overflow the viewer's receive buffer and lose packets.
const BURST_RATE: f64 = 5_000_000.0;

/// What a viewer asks for over RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Feedback {
    /// PLI or FIR.
    Keyframe,
}

/// Everything a viewer task owns.
pub(super) struct Viewer {
    pub pc: Arc<RTCPeerConnection>,
    pub video: Arc<TrackLocalStaticRTP>,
    pub video_sender: Arc<RTCRtpSender>,
    pub audio: Option<(Arc<TrackLocalStaticRTP>, Arc<RTCRtpSender>, u32)>,
    /// Opus made from the camera's AAC, when that is the audio sent (the
    /// camera's own audio packets are then not).
    pub opus: Option<OpusSubscription>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
    pub guard: ConsumerGuard,
    pub hub: Arc<Hub>,
    pub stats: Arc<CameraStats>,
    pub fast_start: bool,
    pub payload_size: usize,
    pub connect_timeout: Duration,
    pub disconnect_timeout: Duration,
    /// Given back when the task ends (the viewer counts).
    pub _place: crate::egress::places::Place,
}

/// The video sender's state.
struct VideoOut {
    track: Arc<TrackLocalStaticRTP>,
    /// The camera's parameter sets, sent before each keyframe.
    info: watch::Receiver<StreamInfo>,
    packetizer: VideoPacketizer,
    payloads: Vec<Payload>,
    seq: u16,
    clock: ViewerClock,
    /// The last picture sent (to cut the cached GOP at it).
    last_sent: Option<Arc<VideoFrame>>,
    wait_keyframe: bool,
    last_burst: Option<Instant>,
}

impl VideoOut {
    async fn send(
        &mut self,
        frame: &Arc<VideoFrame>,
        ts: u32,
        session: &Consumer,
        stats: &CameraStats,
    ) -> bool {
        self.payloads.clear();
        {
            // Borrowed, not cloned: this runs for every picture of every
            // viewer.
            let info = self.info.borrow_and_update();
            self.packetizer.packetize(
                frame.codec,
                &frame.au,
                info.video_params.as_ref(),
                &mut self.payloads,
            );
        }
        for p in &self.payloads {
            let pkt = rtp::packet::Packet {
                header: rtp::header::Header {
                    version: 2,
                    marker: p.marker,
                    sequence_number: self.seq,
                    timestamp: ts,
                    ..Default::default()
                },
                payload: p.data.clone(),
            };
            self.seq = self.seq.wrapping_add(1);
            let len = 12 + p.data.len();
            if let Err(e) = self.track.write_rtp(&pkt).await {
                tracing::debug!(error = %e, "viewer write failed");
                return false;
            }
            session.count_packet(len);
            CameraStats::add(&stats.viewer_packets, 1);
            CameraStats::add(&stats.viewer_bytes, len as u64);
        }
        session.frames_sent.fetch_add(1, Relaxed);
        self.last_sent = Some(frame.clone());
        true
    }

    /// Replays `frames` compressed in time.
    async fn burst(&mut self, frames: &[Arc<VideoFrame>], session: &Consumer, stats: &CameraStats) {
        let start = Instant::now();
        let mut bytes = 0usize;
        for f in frames {
            let ts = self.clock.burst(f);
            if !self.send(f, ts, session, stats).await {
                return;
            }
            bytes += f.au.len_bytes();
            let due = start + Duration::from_secs_f64(bytes as f64 / BURST_RATE);
            tokio::time::sleep_until(due.into()).await;
        }
        self.last_burst = Some(Instant::now());
    }
}

/// The audio sender's state.
struct AudioOut {
    track: Arc<TrackLocalStaticRTP>,
    seq: u16,
    timeline: Timeline,
}

impl AudioOut {
    /// Sends one payload whose input timestamp `ts` is on input timeline
    /// `timeline`.
    async fn send(
        &mut self,
        payload: &Bytes,
        timeline: u64,
        ts: u32,
        received: Instant,
        marker: bool,
        session: &Consumer,
    ) {
        let ts = self.timeline.map(timeline, ts, received);
        let p = rtp::packet::Packet {
            header: rtp::header::Header {
                version: 2,
                marker,
                sequence_number: self.seq,
                timestamp: ts,
                ..Default::default()
            },
            payload: payload.clone(),
        };
        self.seq = self.seq.wrapping_add(1);
        if self.track.write_rtp(&p).await.is_ok() {
            session.count_packet(12 + payload.len());
        }
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
            video,
            video_sender,
            audio,
            mut opus,
            mut state,
            guard,
            hub,
            stats,
            fast_start,
            payload_size,
            connect_timeout,
            disconnect_timeout,
            _place,
        } = self;
        let session = guard.consumer().clone();
        let cancel = session.cancel.clone();
        let (fb_tx, mut fb_rx) = mpsc::channel::<Feedback>(8);
        // RTCP from the viewer must be read for the interceptors (NACK
        // answers, reports) to work; PLI/FIR and reports are ours.
        let rtcp_task = tokio::spawn(read_rtcp(
            video_sender.clone(),
            fb_tx,
            session.clone(),
            stats.clone(),
        ));
        let audio_rtcp_task = audio
            .as_ref()
            .map(|(_, sender, _)| tokio::spawn(drain_rtcp(sender.clone())));

        let started = Instant::now();
        let mut connected_once = false;
        let mut disconnected_since: Option<Instant> = None;
        let mut rx: Option<broadcast::Receiver<MediaEvent>> = None;
        let mut out = VideoOut {
            track: video,
            info: hub.watch_info(),
            packetizer: VideoPacketizer::new(payload_size),
            payloads: Vec::with_capacity(64),
            seq: rand::random(),
            clock: ViewerClock::new(),
            last_sent: None,
            wait_keyframe: true,
            last_burst: None,
        };
        // The camera's own audio packets are sent only when they are the
        // audio negotiated (not when it is Opus made from them).
        let audio_is_opus = opus.is_some();
        let mut audio_out = audio.map(|(track, _, rate)| AudioOut {
            track,
            seq: rand::random(),
            timeline: Timeline::new(rate),
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
                                tracing::info!(session = %session.id, after_ms = started.elapsed().as_millis() as u64, "viewer connected");
                                let (gop, live) = hub.subscribe_with_gop();
                                rx = Some(live);
                                if fast_start && !gop.is_empty() {
                                    out.wait_keyframe = false;
                                    out.burst(&gop, &session, &stats).await;
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
                Some(fb) = fb_rx.recv() => match fb {
                    Feedback::Keyframe => {
                        answer_keyframe_request(&mut out, &hub, &session, &stats).await;
                    }
                },
                frame = recv_opus(&mut opus) => match frame {
                    Ok(f) => {
                        // Frames before the first picture are dropped, as
                        // the camera's own audio is: they would only delay
                        // the sound behind the picture.
                        let Some(a) = audio_out.as_mut() else { continue };
                        if out.last_sent.is_none() {
                            continue;
                        }
                        a.send(&f.data, f.timeline, f.timestamp, f.received, false, &session).await;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => opus = None,
                },
                ev = recv_opt(&mut rx) => match ev {
                    Ok(MediaEvent::Video(frame)) => {
                        if out.wait_keyframe {
                            if !frame.keyframe {
                                continue;
                            }
                            out.wait_keyframe = false;
                            session.set_state("sending");
                        }
                        let ts = out.clock.live(&frame);
                        out.send(&frame, ts, &session, &stats).await;
                    }
                    Ok(MediaEvent::Audio(pkt)) => {
                        let Some(a) = audio_out.as_mut().filter(|_| !audio_is_opus) else {
                            continue;
                        };
                        if out.last_sent.is_none() {
                            continue;
                        }
                        a.send(&pkt.payload, pkt.timeline, pkt.timestamp, pkt.received, pkt.marker, &session).await;
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

/// A viewer lost its picture (PLI/FIR): replay the cached GOP up to the
/// last picture it got, at once; ask the camera too (rate-limited by the
/// hub) in case the cache cannot help.
async fn answer_keyframe_request(
    out: &mut VideoOut,
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
        Some(i) => out.burst(&gop[..=i], session, stats).await,
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
                // The NACK responder interceptor resends from its history;
                // count what was asked for.
                let asked: u64 = nack
                    .nacks
                    .iter()
                    .map(|n| 1 + u64::from(n.lost_packets.count_ones()))
                    .sum();
                session.retransmitted.fetch_add(asked, Relaxed);
                CameraStats::add(&stats.viewer_retransmits, asked);
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
