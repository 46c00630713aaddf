//! WebRTC egress: browsers watch cameras over WHEP (RFC 9725). The camera's
//! H.264 is passed through, re-packetized to the path MTU, never
//! transcoded; PCMU, PCMA and Opus audio pass through too, and an AAC
//! camera's audio is sent as Opus, transcoded once per camera while it has
//! viewers (`opus_feed`).
//!
//! The `webrtc` crate (the 0.17 line) is used behind this module only: the
//! HTTP layer hands it an offer and a camera and gets an answer or a
//! [`WhepError`]. The 0.17 line is used because its ICE agent has the UDP
//! mux, which puts every viewer on one UDP port (`[webrtc] udp_listen`),
//! the one port a site has to open; the rewritten sans-IO line has none.

pub mod negotiate;
mod opus_feed;
mod packets;
mod rtp_index;
mod tap;
mod udp_queue;
mod viewer;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use webrtc::api::media_engine::MediaEngine;
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice::udp_mux::{UDPMux, UDPMuxDefault, UDPMuxParams};
use webrtc::ice::udp_network::UDPNetwork;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::TrackLocal;

use crate::camera::codec::VideoParams;
use crate::camera::consumers::new_consumer_id;
use crate::camera::{CameraHandle, CameraState, Consumer, ConsumerKind};
use crate::config::WebrtcConfig;
use crate::egress::places::{Names, Places};
use negotiate::{CameraVideo, NegotiationError, Profile};

/// Send buffer of the UDP socket (bytes; the kernel doubles it and caps it
/// at net.core.wmem_max).
const SEND_BUFFER: usize = 4 << 20;
/// How long an offer for an on-demand camera waits for its stream.
const ON_DEMAND_WAIT: Duration = Duration::from_secs(15);
/// How long ICE gathering may take before the answer goes out with what
/// it found (on the UDP mux it takes milliseconds).
const GATHERING_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an offer was not answered; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum WhepError {
    /// 400: not an SDP offer we can read.
    #[error("{0}")]
    Malformed(String),
    /// 422: nothing in the offer the camera can feed.
    #[error("{0}")]
    Incompatible(String),
    /// 503: the camera cannot play now.
    #[error("{0}")]
    Unavailable(String),
    /// 503: a viewer limit is reached.
    #[error("{0}")]
    Full(String),
    /// 500.
    #[error("WebRTC failure: {0}")]
    Internal(String),
}

/// A viewer's answer.
#[derive(Debug)]
pub struct Answer {
    /// The session id (for the resource URL).
    pub session: String,
    /// The SDP answer.
    pub sdp: String,
    /// Notes such as "video only".
    pub notes: Vec<String>,
}

/// Per-offer options.
#[derive(Debug, Clone, Default)]
pub struct OfferOptions {
    /// Overrides `[webrtc] fast_start`.
    pub fast_start: Option<bool>,
    /// The viewer's HTTP address (shown in the API until ICE tells more).
    pub remote: Option<SocketAddr>,
}

/// The WebRTC side of the gateway: one UDP socket, every viewer.
pub struct WebrtcEgress {
    config: WebrtcConfig,
    mux: Arc<UDPMuxDefault>,
    local_addr: SocketAddr,
    /// Viewers per camera and overall, under `max_viewers_per_camera` and
    /// `max_viewers`.
    places: Arc<Places>,
    tasks: TaskTracker,
    /// AAC-to-Opus transcoders, one per camera that has viewers needing it.
    opus_feeds: opus_feed::OpusFeeds,
    /// Each camera's pictures cut into RTP payloads once for its viewers.
    pictures: packets::PictureLogs,
}

impl WebrtcEgress {
    /// Binds `[webrtc] udp_listen`.
    pub async fn bind(config: &WebrtcConfig) -> Result<Arc<WebrtcEgress>, String> {
        let socket = tokio::net::UdpSocket::bind(config.udp_listen)
            .await
            .map_err(|e| format!("cannot bind the WebRTC UDP port {}: {e}", config.udp_listen))?;
        let local_addr = socket.local_addr().map_err(|e| e.to_string())?;
        // Room for a picture to every viewer at once; the kernel caps it at
        // net.core.wmem_max.
        let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER);
        let mux = UDPMuxDefault::new(UDPMuxParams::new(udp_queue::UdpQueue::new(socket)));
        tracing::info!(udp = %local_addr, "WebRTC viewers share this UDP port");
        Ok(Arc::new(WebrtcEgress {
            config: config.clone(),
            mux,
            local_addr,
            places: Places::new(
                config.max_viewers,
                config.max_viewers_per_camera,
                Names {
                    what: "viewers",
                    total_key: "max_viewers",
                    camera_key: "max_viewers_per_camera",
                },
            ),
            tasks: TaskTracker::new(),
            opus_feeds: Default::default(),
            pictures: Default::default(),
        }))
    }

    /// The UDP address viewers' media uses.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration.
    pub fn config(&self) -> &WebrtcConfig {
        &self.config
    }

    /// Viewers over all cameras.
    pub fn viewers(&self) -> usize {
        self.places.total()
    }

    /// Waits for every viewer task (after their cameras were cancelled),
    /// then closes the UDP socket.
    pub async fn shutdown(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        if let Err(e) = self.mux.close().await {
            tracing::debug!(error = %e, "closing the WebRTC UDP mux");
        }
    }

    /// Answers a viewer's offer for `cam` and starts the viewer.
    pub async fn offer(
        &self,
        cam: &CameraHandle,
        offer: String,
        options: OfferOptions,
    ) -> Result<Answer, WhepError> {
        // Cheap checks first: a flood of bad offers costs no WebRTC setup.
        negotiate::parse_offer(&offer).map_err(|e| WhepError::Malformed(e.to_string()))?;
        // Counted before anything awaits, and checked with the count in
        // one step: concurrent offers cannot overshoot the limits.
        let place = self
            .places
            .try_take(&cam.config.id)
            .map_err(|e| WhepError::Full(e.to_string()))?;
        let id = new_consumer_id();
        let cancel = cam.cancel.child_token();
        let guard = cam.consumers.register(Consumer::new(
            id.clone(),
            ConsumerKind::Viewer,
            cam.config.id.clone(),
            Some(offer.clone()),
            cancel.clone(),
        ));
        if let Some(remote) = options.remote {
            guard.consumer().set_remote(remote.to_string());
        }
        let info = self.stream_info(cam).await?;
        let camera_video = info
            .video_params
            .as_ref()
            .filter(|p| p.codec() == info.video_codec)
            .and_then(|p| match p {
                VideoParams::H264(p) => Profile::from_sps(&p.sps).map(CameraVideo::H264),
                VideoParams::H265(p) => p.profile_tier_level().map(CameraVideo::H265),
            })
            .ok_or_else(|| {
                WhepError::Unavailable(format!(
                    "camera {:?} has sent no {} parameter sets yet",
                    cam.config.id, info.video_codec
                ))
            })?;
        let choice =
            negotiate::choose(&offer, camera_video, info.audio.as_ref()).map_err(|e| match e {
                NegotiationError::Malformed(m) => WhepError::Malformed(m),
                NegotiationError::Incompatible(m) => {
                    WhepError::Incompatible(format!("camera {:?}: {m}", cam.config.id))
                }
            })?;

        let video_codec = RTCRtpCodecCapability {
            mime_type: info.video_codec.mime_type().into(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: choice.video.fmtp.clone(),
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
        };
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters {
                    capability: video_codec.clone(),
                    payload_type: choice.video.payload_type,
                    ..Default::default()
                },
                RTPCodecType::Video,
            )
            .map_err(|e| WhepError::Internal(e.to_string()))?;
        let audio_codec = choice.audio.as_ref().map(|a| RTCRtpCodecCapability {
            mime_type: a.mime_type.clone(),
            clock_rate: a.clock_rate,
            channels: a.channels,
            sdp_fmtp_line: a.fmtp.clone(),
            rtcp_feedback: vec![],
        });
        if let (Some(a), Some(codec)) = (&choice.audio, &audio_codec) {
            media
                .register_codec(
                    RTCRtpCodecParameters {
                        capability: codec.clone(),
                        payload_type: a.payload_type,
                        ..Default::default()
                    },
                    RTPCodecType::Audio,
                )
                .map_err(|e| WhepError::Internal(e.to_string()))?;
        }
        // One interceptor, which only hands the viewer task the crate's
        // SRTP writer: NACKs and sender reports are the viewer task's (see
        // `viewer`), and the crate's tracks carry nothing.
        let tap = Arc::new(tap::Tap::default());
        let mut registry = Registry::new();
        registry.add(Box::new(tap::TapBuilder(tap.clone())));

        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(self.setting_engine())
            .build();
        let pc = Arc::new(
            api.new_peer_connection(RTCConfiguration::default())
                .await
                .map_err(|e| WhepError::Internal(e.to_string()))?,
        );
        // From here on, a failure must close `pc`.
        let result = self
            .answer(&pc, &offer, &video_codec, audio_codec.as_ref())
            .await;
        let (sdp, video_sender, audio_sender) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = pc.close().await;
                return Err(e);
            }
        };
        let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
        pc.on_peer_connection_state_change(Box::new(move |s| {
            let _ = state_tx.send(s);
            Box::pin(async {})
        }));
        let session = guard.consumer().clone();
        *session.answer.lock().unwrap_or_else(|e| e.into_inner()) = Some(sdp.clone());
        for note in &choice.notes {
            tracing::info!(session = %id, "{note}");
        }
        let ssrc = |sender: &Arc<webrtc::rtp_transceiver::rtp_sender::RTCRtpSender>| {
            let sender = sender.clone();
            async move {
                sender
                    .get_parameters()
                    .await
                    .encodings
                    .first()
                    .map_or(0, |e| e.ssrc)
            }
        };
        let video = viewer::StreamId {
            ssrc: ssrc(&video_sender).await,
            payload_type: choice.video.payload_type,
        };
        let audio = match (audio_sender, &choice.audio) {
            (Some(sender), Some(a)) => {
                let id = viewer::StreamId {
                    ssrc: ssrc(&sender).await,
                    payload_type: a.payload_type,
                };
                Some((sender, id, a.clock_rate))
            }
            _ => None,
        };
        let viewer = viewer::Viewer {
            pc,
            video_sender,
            video,
            audio,
            opus: choice.audio.as_ref().filter(|a| a.from_aac).map(|_| {
                self.opus_feeds
                    .subscribe(&cam.config.id, &cam.hub, &cam.cancel, &self.tasks)
            }),
            state: state_rx,
            guard,
            hub: cam.hub.clone(),
            stats: cam.stats.clone(),
            pictures: self
                .pictures
                .get(&cam.config.id, &cam.hub, self.config.payload_size),
            tap,
            fast_start: options.fast_start.unwrap_or(self.config.fast_start),
            connect_timeout: self.config.connect_timeout,
            disconnect_timeout: self.config.disconnect_timeout,
            _place: place,
        };
        crate::camera::CameraStats::add(&cam.stats.viewer_sessions, 1);
        let span = tracing::info_span!("camera", id = %cam.config.id);
        self.tasks.spawn(viewer.run().instrument(span));
        Ok(Answer {
            session: id,
            sdp,
            notes: choice.notes,
        })
    }

    /// The camera's streams, waiting for an on-demand camera to start.
    async fn stream_info(
        &self,
        cam: &CameraHandle,
    ) -> Result<crate::camera::StreamInfo, WhepError> {
        let unavailable = |cam: &CameraHandle| {
            let st = cam.status.borrow();
            let mut msg = format!("camera {:?} is {}", cam.config.id, st.state.as_str());
            if let Some(e) = &st.last_error {
                msg.push_str(": ");
                msg.push_str(e);
            }
            WhepError::Unavailable(msg)
        };
        let playing = |cam: &CameraHandle| cam.status.borrow().state == CameraState::Playing;
        if playing(cam) {
            let info = cam.hub.info();
            if info.video_params.is_some() {
                return Ok(info);
            }
        }
        if !cam.config.on_demand {
            return Err(unavailable(cam));
        }
        // The session registered above is the demand that starts it.
        let mut info = cam.hub.watch_info();
        let mut status = cam.status.clone();
        let wait = async {
            loop {
                status.borrow_and_update();
                if playing(cam) && info.borrow_and_update().video_params.is_some() {
                    return;
                }
                // The stream info comes before the state turns playing:
                // wake on either.
                tokio::select! {
                    r = info.changed() => if r.is_err() { std::future::pending::<()>().await },
                    r = status.changed() => if r.is_err() { std::future::pending::<()>().await },
                }
            }
        };
        match tokio::time::timeout(ON_DEMAND_WAIT, wait).await {
            Ok(()) => Ok(cam.hub.info()),
            Err(_) => Err(unavailable(cam)),
        }
    }

    fn setting_engine(&self) -> SettingEngine {
        let mut s = SettingEngine::default();
        s.set_udp_network(UDPNetwork::Muxed(
            self.mux.clone() as Arc<dyn UDPMux + Send + Sync>
        ));
        s.set_network_types(vec![NetworkType::Udp4, NetworkType::Udp6]);
        // Browsers hide their addresses behind mDNS names; their checks
        // reach us anyway (peer-reflexive), so no multicast queries.
        s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
        let bind_ip = self.local_addr.ip();
        if bind_ip.is_loopback() {
            s.set_include_loopback_candidate(true);
        }
        if !bind_ip.is_unspecified() {
            // Offer only the address the socket is bound to.
            s.set_ip_filter(Box::new(move |ip: IpAddr| ip == bind_ip));
        }
        // The profile every WebRTC endpoint must support (RFC 8827 6.5).
        // The crate's AES-GCM path copies each packet's ciphertext into the
        // output byte by byte (a third of camgate's CPU with 200 viewers);
        // its AES-CM path encrypts in place and authenticates with
        // HMAC-SHA1, both in hardware here.
        s.set_srtp_protection_profiles(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80]);
        s.set_ice_timeouts(
            Some(Duration::from_secs(3)),
            Some(self.config.disconnect_timeout),
            Some(Duration::from_secs(2)),
        );
        s
    }

    /// Offer in, answer out, on a new peer connection.
    #[allow(clippy::type_complexity)]
    async fn answer(
        &self,
        pc: &Arc<webrtc::peer_connection::RTCPeerConnection>,
        offer: &str,
        video_codec: &RTCRtpCodecCapability,
        audio_codec: Option<&RTCRtpCodecCapability>,
    ) -> Result<
        (
            String,
            Arc<webrtc::rtp_transceiver::rtp_sender::RTCRtpSender>,
            Option<Arc<webrtc::rtp_transceiver::rtp_sender::RTCRtpSender>>,
        ),
        WhepError,
    > {
        // The tracks are for negotiation only (their SSRCs go in the
        // answer): nothing is ever written to them.
        let video = Arc::new(TrackLocalStaticRTP::new(
            video_codec.clone(),
            "video".into(),
            "camgate".into(),
        ));
        let video_sender = pc
            .add_track(video.clone() as Arc<dyn TrackLocal + Send + Sync>)
            .await
            .map_err(|e| WhepError::Internal(e.to_string()))?;
        let audio = match audio_codec {
            Some(codec) => {
                let track = Arc::new(TrackLocalStaticRTP::new(
                    codec.clone(),
                    "audio".into(),
                    "camgate".into(),
                ));
                let sender = pc
                    .add_track(track.clone() as Arc<dyn TrackLocal + Send + Sync>)
                    .await
                    .map_err(|e| WhepError::Internal(e.to_string()))?;
                Some(sender)
            }
            None => None,
        };
        // Tracks first: the offer's recvonly sections then pair with them.
        let desc = RTCSessionDescription::offer(offer.to_string())
            .map_err(|e| WhepError::Malformed(e.to_string()))?;
        pc.set_remote_description(desc)
            .await
            .map_err(|e| WhepError::Malformed(format!("the offer was refused: {e}")))?;
        let answer = pc
            .create_answer(None)
            .await
            .map_err(|e| WhepError::Incompatible(format!("cannot answer the offer: {e}")))?;
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(answer)
            .await
            .map_err(|e| WhepError::Internal(e.to_string()))?;
        let complete = tokio::time::timeout(GATHERING_TIMEOUT, gathered.recv())
            .await
            .is_ok();
        let local = pc
            .local_description()
            .await
            .ok_or_else(|| WhepError::Internal("no local description".into()))?;
        if let Err(e) = check_candidates(&local.sdp, complete, self.local_addr) {
            // The operator's problem more than the viewer's.
            tracing::warn!(error = %e, "WebRTC answer refused");
            return Err(e);
        }
        let extra: Vec<IpAddr> = self
            .config
            .public_ips
            .iter()
            .chain(&self.config.additional_hosts)
            .copied()
            .collect();
        let sdp = add_host_candidates(&local.sdp, &extra, self.local_addr.port());
        Ok((sdp, video_sender, audio))
    }
}

/// Refuses an answer that holds no ICE candidate (gathering timed out, or
/// found no address of the UDP socket): a viewer could never reach us, so
/// it gets a 503 with the reason instead of a session that cannot connect.
/// `complete` is whether gathering finished within [`GATHERING_TIMEOUT`].
fn check_candidates(sdp: &str, complete: bool, udp: SocketAddr) -> Result<(), WhepError> {
    if sdp.lines().any(|l| l.starts_with("a=candidate:")) {
        return Ok(());
    }
    Err(WhepError::Unavailable(if complete {
        format!(
            "no ICE candidate: the WebRTC UDP port {udp} ([webrtc] udp_listen) has no usable address \
             (a loopback address is offered only when udp_listen is one)"
        )
    } else {
        format!(
            "no ICE candidate: gathering on the WebRTC UDP port {udp} did not finish within {} s",
            GATHERING_TIMEOUT.as_secs()
        )
    }))
}

/// Adds a host candidate for each of `ips` on `port` to every media section
/// of `sdp` (after its own candidates): public addresses behind NAT 1:1 and
/// other addresses the UDP socket receives on.
pub fn add_host_candidates(sdp: &str, ips: &[IpAddr], port: u16) -> String {
    if ips.is_empty() {
        return sdp.to_string();
    }
    let lines: Vec<&str> = sdp.lines().collect();
    let mut out = String::with_capacity(sdp.len() + ips.len() * 80);
    let extra = |out: &mut String| {
        for (i, ip) in ips.iter().enumerate() {
            // Below the local host candidates' priority.
            let priority = 2_113_937_151u32 - 256 * (i as u32 + 1);
            out.push_str(&format!(
                "a=candidate:camgate{i} 1 udp {priority} {ip} {port} typ host\r\n"
            ));
        }
    };
    let mut in_media = false;
    let mut added = false;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("m=") {
            if in_media && !added {
                extra(&mut out);
            }
            in_media = true;
            added = false;
        }
        if in_media && !added && *line == "a=end-of-candidates" {
            extra(&mut out);
            added = true;
        }
        out.push_str(line);
        out.push_str("\r\n");
        let next_is_candidate = lines
            .get(i + 1)
            .is_some_and(|l| l.starts_with("a=candidate:") || *l == "a=end-of-candidates");
        if in_media && !added && line.starts_with("a=candidate:") && !next_is_candidate {
            extra(&mut out);
            added = true;
        }
    }
    if in_media && !added {
        extra(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_without_candidates_is_refused_with_the_reason() {
        let udp: SocketAddr = "0.0.0.0:8189".parse().unwrap();
        let without = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\n\
a=end-of-candidates\r\n";
        let Err(WhepError::Unavailable(msg)) = check_candidates(without, true, udp) else {
            panic!("accepted an answer without candidates");
        };
        assert!(msg.contains("no usable address"), "{msg}");
        assert!(msg.contains("0.0.0.0:8189"), "{msg}");
        let Err(WhepError::Unavailable(msg)) = check_candidates(without, false, udp) else {
            panic!("accepted an answer without candidates");
        };
        assert!(msg.contains("did not finish within 5 s"), "{msg}");
        // One candidate is enough, even when gathering did not finish.
        let with = without.replace(
            "a=end-of-candidates",
            "a=candidate:1 1 udp 2130706431 127.0.0.1 8189 typ host",
        );
        assert!(check_candidates(&with, false, udp).is_ok());
        assert!(check_candidates(&with, true, udp).is_ok());
    }

    #[test]
    fn extra_candidates_follow_each_sections_own() {
        let sdp = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\n\
a=candidate:1 1 udp 2130706431 127.0.0.1 8189 typ host\r\na=end-of-candidates\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\n";
        let out = add_host_candidates(sdp, &["203.0.113.7".parse().unwrap()], 8189);
        let lines: Vec<&str> = out.lines().collect();
        let extra = "a=candidate:camgate0 1 udp 2113936895 203.0.113.7 8189 typ host";
        assert_eq!(lines.iter().filter(|l| **l == extra).count(), 2, "{out}");
        let pos = lines.iter().position(|l| *l == extra).unwrap();
        assert!(lines[pos - 1].starts_with("a=candidate:1"), "{out}");
        assert_eq!(lines[pos + 1], "a=end-of-candidates");
        assert_eq!(*lines.last().unwrap(), extra);
        assert_eq!(add_host_candidates(sdp, &[], 1), sdp);
    }
}
