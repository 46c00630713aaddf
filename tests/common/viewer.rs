//! WebRTC test helpers: a network namespace with only loopback for the test
//! body, and a WHEP viewer made with the `webrtc` crate that depacketizes
//! what it receives with camgate's own depacketizer and counts pictures,
//! and keeps, with their arrival times, the pictures' and the audio
//! packets' RTP timestamps and the sender reports of both tracks (what a
//! browser synchronizes audio and video with).
//! Include with `#[path = "common/viewer.rs"] mod viewer;`.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::util::marshal::Marshal;

/// The runtime a WebRTC or browser test body runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the calling test again inside a new network namespace that has
/// only loopback (ICE gathers every interface otherwise), and returns true
/// in the outer process once that run passed; returns false inside, where
/// the test body runs. Needs root (CAP_SYS_ADMIN), as CI has.
pub fn in_loopback_netns(test_name: &str) -> bool {
    if std::env::var_os("CAMGATE_IN_NETNS").is_some() {
        return false;
    }
    let ns = format!("camgate-{}-{}", std::process::id(), test_name.len() % 97);
    let ip = |args: &[&str]| {
        let out = Command::new("ip")
            .args(args)
            .output()
            .expect("run `ip` (Debian package iproute2)");
        assert!(
            out.status.success(),
            "ip {args:?} failed (WebRTC tests need root to make a loopback-only network namespace): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    ip(&["netns", "add", &ns]);
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("CAMGATE_IN_NETNS", &ns)
        .status()
        .expect("run the test inside the namespace");
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    assert!(status.success(), "{test_name} failed inside netns {ns}");
    true
}

/// Most audio packets a viewer keeps (10 minutes of 20 ms frames).
const MAX_AUDIO_KEPT: usize = 30_000;

/// One audio RTP packet as it arrived.
#[derive(Debug, Clone)]
pub struct AudioRtp {
    pub seq: u16,
    pub timestamp: u32,
    pub payload: Bytes,
    /// When it arrived.
    pub at: Instant,
}

/// One RTCP sender report (RFC 3550 6.4.1) as it arrived: the sender's
/// wall clock (NTP) at the instant its RTP clock read `rtp`.
#[derive(Debug, Clone, Copy)]
pub struct SenderReportSeen {
    pub ssrc: u32,
    /// NTP timestamp, 32.32 fixed point seconds since 1900.
    pub ntp: u64,
    pub rtp: u32,
    /// When it arrived.
    pub at: Instant,
}

impl SenderReportSeen {
    /// The sender's wall-clock time, in seconds, of RTP timestamp `ts` on
    /// a clock of `rate` Hz (within 2^31 ticks of the report's).
    pub fn wall_clock(&self, ts: u32, rate: u32) -> f64 {
        let ntp = (self.ntp >> 32) as f64 + (self.ntp & 0xffff_ffff) as f64 / 4_294_967_296.0;
        ntp + f64::from(ts.wrapping_sub(self.rtp) as i32) / f64::from(rate)
    }
}

/// What a viewer received.
#[derive(Debug, Default)]
pub struct Received {
    /// Access units reassembled.
    pub frames: AtomicUsize,
    /// Access units holding an IDR.
    pub keyframes: AtomicUsize,
    /// Whether the first access unit was an IDR (1), not (2), or none yet (0).
    pub first_was_idr: AtomicUsize,
    /// Damaged access units (lost packets inside).
    pub damaged: AtomicUsize,
    /// Audio RTP packets.
    pub audio_packets: AtomicUsize,
    /// Microseconds from the offer to the first access unit.
    pub first_frame_us: AtomicU64,
    /// When the first access unit arrived.
    pub first_frame_at: Mutex<Option<Instant>>,
    /// RTP timestamps of the video pictures, in order.
    pub timestamps: Mutex<Vec<u32>>,
    /// When each picture of `timestamps` was complete (its last packet
    /// arrived), in the same order.
    pub arrivals: Mutex<Vec<Instant>>,
    /// Audio RTP packets in arrival order, up to `MAX_AUDIO_KEPT`.
    pub audio: Mutex<Vec<AudioRtp>>,
    /// The audio stream's SSRC, once a packet arrived.
    pub audio_ssrc: AtomicU64,
    /// Sender reports of both tracks, in arrival order.
    pub sender_reports: Mutex<Vec<SenderReportSeen>>,
    /// The video stream's SSRC, once a packet arrived.
    pub video_ssrc: AtomicU64,
    /// Every picture received, as an Annex B byte stream (for decoding it
    /// with ffmpeg), up to 64 MiB.
    pub annex_b: Mutex<Vec<u8>>,
    /// Video sequence numbers seen, and how many arrived twice.
    pub seqs: Mutex<std::collections::HashSet<u16>>,
    pub duplicates: AtomicUsize,
    /// The last video sequence number.
    pub last_seq: AtomicU64,
    /// Video packets missing (sequence gaps), after the first packet.
    pub gaps: AtomicU64,
}

/// A WHEP viewer.
pub struct Viewer {
    pub pc: Arc<RTCPeerConnection>,
    pub location: String,
    pub received: Arc<Received>,
    pub answer: String,
    port: u16,
}

/// camgate's depacketizer of one codec (no analysis: the viewer sees what
/// camgate sent).
enum Depack {
    H264(camgate::h264::Depacketizer),
    H265(camgate::h265::Depacketizer),
}

impl Depack {
    fn new(codec: camgate::camera::codec::VideoCodec) -> Self {
        match codec {
            camgate::camera::codec::VideoCodec::H264 => {
                Depack::H264(camgate::h264::Depacketizer::new(None))
            }
            camgate::camera::codec::VideoCodec::H265 => {
                Depack::H265(camgate::h265::Depacketizer::new(None))
            }
        }
    }

    fn push(&mut self, p: &camgate::rtp::RtpPacket) {
        match self {
            Depack::H264(d) => d.push(p),
            Depack::H265(d) => d.push(p),
        }
    }

    fn pull(&mut self) -> Option<camgate::h264::AccessUnit> {
        match self {
            Depack::H264(d) => d.pull(),
            Depack::H265(d) => d.pull(),
        }
    }
}

/// How the viewer's offer is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferKind {
    /// The `webrtc` crate's default codecs (H.264 among them), audio too.
    Default,
    /// VP8 only: no H.264.
    Vp8Only,
    /// The default codecs and H265 (Main profile, Main tier, level 3.1 as
    /// Chrome 136+ lists it when the machine decodes H.265 in hardware).
    H265,
}

fn api(kind: OfferKind) -> webrtc::api::API {
    let mut media = MediaEngine::default();
    match kind {
        OfferKind::Default => media.register_default_codecs().unwrap(),
        OfferKind::H265 => {
            use webrtc::rtp_transceiver::rtp_codec::{
                RTCRtpCodecCapability, RTCRtpCodecParameters,
            };
            use webrtc::rtp_transceiver::RTCPFeedback;
            media
                .register_codec(
                    RTCRtpCodecParameters {
                        capability: RTCRtpCodecCapability {
                            mime_type: "video/H265".into(),
                            clock_rate: 90000,
                            sdp_fmtp_line: "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"
                                .into(),
                            rtcp_feedback: ["nack", "nack pli", "ccm fir"]
                                .iter()
                                .map(|f| {
                                    let (typ, parameter) = f.split_once(' ').unwrap_or((f, ""));
                                    RTCPFeedback {
                                        typ: typ.into(),
                                        parameter: parameter.into(),
                                    }
                                })
                                .collect(),
                            ..Default::default()
                        },
                        payload_type: 118,
                        ..Default::default()
                    },
                    RTPCodecType::Video,
                )
                .unwrap();
            media.register_default_codecs().unwrap();
        }
        OfferKind::Vp8Only => {
            use webrtc::rtp_transceiver::rtp_codec::{
                RTCRtpCodecCapability, RTCRtpCodecParameters,
            };
            media
                .register_codec(
                    RTCRtpCodecParameters {
                        capability: RTCRtpCodecCapability {
                            mime_type: "video/VP8".into(),
                            clock_rate: 90000,
                            ..Default::default()
                        },
                        payload_type: 96,
                        ..Default::default()
                    },
                    RTPCodecType::Video,
                )
                .unwrap();
        }
    }
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let mut s = SettingEngine::default();
    s.set_include_loopback_candidate(true);
    s.set_ip_filter(Box::new(|ip| ip.is_loopback()));
    s.set_network_types(vec![NetworkType::Udp4]);
    s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    // So a packet resent in answer to a NACK reaches the test (SRTP would
    // drop it as a replay of one already received).
    s.disable_srtp_replay_protection(true);
    APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(s)
        .build()
}

/// Makes an offer (all candidates gathered).
pub async fn make_offer(kind: OfferKind) -> (Arc<RTCPeerConnection>, String) {
    let pc = Arc::new(
        api(kind)
            .new_peer_connection(RTCConfiguration::default())
            .await
            .unwrap(),
    );
    let kinds: &[RTPCodecType] = match kind {
        OfferKind::Default | OfferKind::H265 => &[RTPCodecType::Video, RTPCodecType::Audio],
        OfferKind::Vp8Only => &[RTPCodecType::Video],
    };
    for k in kinds {
        pc.add_transceiver_from_kind(
            *k,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                send_encodings: vec![],
            }),
        )
        .await
        .unwrap();
    }
    let offer = pc.create_offer(None).await.unwrap();
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(offer).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), gathered.recv()).await;
    let sdp = pc.local_description().await.unwrap().sdp;
    (pc, sdp)
}

/// POSTs `offer` to `/whep/{camera}{query}`; returns (status, headers, body).
pub async fn post_offer(port: u16, camera: &str, query: &str, offer: &str) -> super::common::Reply {
    let path = format!("/whep/{camera}{query}");
    let offer = offer.to_string();
    tokio::task::spawn_blocking(move || {
        super::common::request(
            port,
            "POST",
            &path,
            &[("Content-Type", "application/sdp")],
            offer.as_bytes(),
        )
    })
    .await
    .unwrap()
}

/// A viewer whose offer is made, not yet sent: for tests that send many
/// offers at the same moment.
pub struct PendingViewer {
    pc: Arc<RTCPeerConnection>,
    offer: String,
    received: Arc<Received>,
    /// When the offer was made ([`Received::first_frame_us`] counts from
    /// here).
    pub start: Instant,
}

impl PendingViewer {
    /// Sends the offer to `camera`: the viewer when the answer is 201,
    /// otherwise the reply (the peer connection is closed then).
    pub async fn post(
        self,
        port: u16,
        camera: &str,
        query: &str,
    ) -> Result<Viewer, super::common::Reply> {
        let reply = post_offer(port, camera, query, &self.offer).await;
        if reply.status != 201 {
            let _ = self.pc.close().await;
            return Err(reply);
        }
        let location = reply.header("Location").expect("Location header");
        self.pc
            .set_remote_description(RTCSessionDescription::answer(reply.body.clone()).unwrap())
            .await
            .unwrap();
        Ok(Viewer {
            pc: self.pc,
            location,
            received: self.received,
            answer: reply.body,
            port,
        })
    }
}

impl Viewer {
    /// Connects a viewer to `camera`; panics unless the answer is 201.
    pub async fn connect(port: u16, camera: &str, query: &str) -> Viewer {
        match Viewer::prepare().await.post(port, camera, query).await {
            Ok(v) => v,
            Err(reply) => panic!("WHEP answer {}: {}", reply.status, reply.body),
        }
    }

    /// Makes a viewer's offer, ready to [`PendingViewer::post`].
    pub async fn prepare() -> PendingViewer {
        Viewer::prepare_kind(OfferKind::Default).await
    }

    /// Makes a viewer's offer of `kind`; what it receives is depacketized
    /// with camgate's depacketizer of the negotiated codec.
    pub async fn prepare_kind(kind: OfferKind) -> PendingViewer {
        use camgate::camera::codec::VideoCodec;
        let start = Instant::now();
        let (pc, offer) = make_offer(kind).await;
        let received = Arc::new(Received::default());
        let r = received.clone();
        pc.on_track(Box::new(move |track, receiver, _| {
            let r = r.clone();
            let reports = r.clone();
            tokio::spawn(async move {
                use webrtc::rtcp::sender_report::SenderReport;
                while let Ok((packets, _)) = receiver.read_rtcp().await {
                    for p in packets {
                        if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
                            reports
                                .sender_reports
                                .lock()
                                .unwrap()
                                .push(SenderReportSeen {
                                    ssrc: sr.ssrc,
                                    ntp: sr.ntp_time,
                                    rtp: sr.rtp_time,
                                    at: Instant::now(),
                                });
                        }
                    }
                }
            });
            tokio::spawn(async move {
                if track.kind() == RTPCodecType::Audio {
                    while let Ok((pkt, _)) = track.read_rtp().await {
                        r.audio_packets.fetch_add(1, Ordering::Relaxed);
                        r.audio_ssrc
                            .store(u64::from(pkt.header.ssrc), Ordering::Relaxed);
                        let mut audio = r.audio.lock().unwrap();
                        if audio.len() < MAX_AUDIO_KEPT {
                            audio.push(AudioRtp {
                                seq: pkt.header.sequence_number,
                                timestamp: pkt.header.timestamp,
                                payload: pkt.payload,
                                at: Instant::now(),
                            });
                        }
                    }
                    return;
                }
                let codec = if track
                    .codec()
                    .capability
                    .mime_type
                    .eq_ignore_ascii_case("video/H265")
                {
                    VideoCodec::H265
                } else {
                    VideoCodec::H264
                };
                let mut depack = Depack::new(codec);
                while let Ok((pkt, _)) = track.read_rtp().await {
                    r.video_ssrc
                        .store(u64::from(pkt.header.ssrc), Ordering::Relaxed);
                    r.last_seq
                        .store(u64::from(pkt.header.sequence_number), Ordering::Relaxed);
                    if !r.seqs.lock().unwrap().insert(pkt.header.sequence_number) {
                        r.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    let raw = Bytes::from(pkt.marshal().unwrap().to_vec());
                    let Ok(p) = camgate::rtp::RtpPacket::parse(raw) else {
                        continue;
                    };
                    depack.push(&p);
                    while let Some(au) = depack.pull() {
                        let n = r.frames.fetch_add(1, Ordering::Relaxed);
                        let keyframe = codec.is_keyframe(&au);
                        {
                            let mut annex_b = r.annex_b.lock().unwrap();
                            if annex_b.len() < 64 << 20 {
                                for nal in &au.nals {
                                    annex_b.extend_from_slice(&[0, 0, 0, 1]);
                                    annex_b.extend_from_slice(nal);
                                }
                            }
                        }
                        if n == 0 {
                            r.first_was_idr
                                .store(if keyframe { 1 } else { 2 }, Ordering::Relaxed);
                            r.first_frame_us
                                .store(start.elapsed().as_micros() as u64, Ordering::Relaxed);
                            *r.first_frame_at.lock().unwrap() = Some(Instant::now());
                        }
                        if keyframe {
                            r.keyframes.fetch_add(1, Ordering::Relaxed);
                        }
                        if au.damaged {
                            r.damaged.fetch_add(1, Ordering::Relaxed);
                        }
                        r.timestamps.lock().unwrap().push(au.timestamp);
                        r.arrivals.lock().unwrap().push(Instant::now());
                    }
                }
            });
            Box::pin(async {})
        }));
        PendingViewer {
            pc,
            offer,
            received,
            start,
        }
    }

    /// Pictures received so far.
    pub fn frames(&self) -> usize {
        self.received.frames.load(Ordering::Relaxed)
    }

    /// Waits until the peer connection is connected.
    pub async fn wait_connected(&self, limit: Duration) {
        let start = Instant::now();
        while self.pc.connection_state() != RTCPeerConnectionState::Connected {
            assert!(
                start.elapsed() < limit,
                "not connected within {limit:?}: {}",
                self.pc.connection_state()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether `n` pictures arrived within `limit`.
    pub async fn frames_within(&self, n: usize, limit: Duration) -> bool {
        let start = Instant::now();
        while self.frames() < n {
            if start.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Waits until `n` pictures arrived.
    pub async fn wait_frames(&self, n: usize, limit: Duration) {
        let start = Instant::now();
        while self.frames() < n {
            assert!(
                start.elapsed() < limit,
                "{} of {n} pictures within {limit:?} (peer connection {}, {} audio packets)",
                self.frames(),
                self.pc.connection_state(),
                self.received.audio_packets.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends the session with DELETE, then closes the peer connection.
    pub async fn delete(self) -> u16 {
        let (port, location) = (self.port, self.location.clone());
        let status = tokio::task::spawn_blocking(move || {
            super::common::request(port, "DELETE", &location, &[], b"").status
        })
        .await
        .unwrap();
        let _ = self.pc.close().await;
        status
    }

    /// Closes the peer connection without telling the gateway.
    pub async fn abandon(self) {
        let _ = self.pc.close().await;
    }
}

impl Viewer {
    /// Sends a PLI for the video stream.
    pub async fn send_pli(&self) {
        use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
        let media_ssrc = self.received.video_ssrc.load(Ordering::Relaxed) as u32;
        self.pc
            .write_rtcp(&[Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            })])
            .await
            .unwrap();
    }

    /// Sends a NACK for video packet `seq`.
    pub async fn send_nack(&self, seq: u16) {
        use webrtc::rtcp::transport_feedbacks::transport_layer_nack::{
            NackPair, TransportLayerNack,
        };
        let media_ssrc = self.received.video_ssrc.load(Ordering::Relaxed) as u32;
        self.pc
            .write_rtcp(&[Box::new(TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc,
                nacks: vec![NackPair {
                    packet_id: seq,
                    lost_packets: 0,
                }],
            })])
            .await
            .unwrap();
    }
}
