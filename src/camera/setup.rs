//! Stream choice and SETUP for one RTSP session (RFC 2326 sections 10.4 and
//! 12.39): the H.264 or H.265 video stream and a pass-through audio stream are
//! picked from the camera's SDP, described in the camera's status and hub,
//! given a receive path each, and a transport (interleaved channels, or a
//! UDP port pair, RFC 3550 section 11).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::codec::{VideoCodec, VideoParams};
use super::error::SessionError;
use super::hub::{AudioInfo, StreamInfo};
use super::media::MediaPath;
use super::params::{Carrier, SessionContext, SessionParams};
use super::udp::{bind_udp_pair, record_buffer, set_receive_buffer};
use crate::redact::redact_url;
use crate::rtsp::{Presentation, StreamSetup, TransportRequest};

/// Audio encodings forwarded packet by packet as they are (an AAC access
/// unit fragmented over packets keeps its packets and marker bits).
const PASSTHROUGH_AUDIO: &[&str] = &[
    "PCMU",
    "PCMA",
    "OPUS",
    "G722",
    "MPEG4-GENERIC",
    "MP4A-LATM",
    "L16",
];

/// A media stream being received.
pub(super) struct MediaStream {
    /// Index in the presentation.
    pub index: usize,
    /// Jitter buffer, depacketizer, analyzer, repair gate.
    pub path: MediaPath,
    /// Interleaved channels (TCP), once PLAY succeeded.
    pub channels: Option<(u8, u8)>,
    /// Where to send RTCP (UDP): the camera's address and RTCP port.
    pub rtcp_dest: Option<SocketAddr>,
    /// Our RTCP socket (UDP).
    pub rtcp_socket: Option<Arc<UdpSocket>>,
}

/// What [`choose_streams`] prepared.
pub(super) struct Chosen {
    /// The streams to receive, in the order of `requests`.
    pub streams: Vec<MediaStream>,
    /// The SETUP requests: presentation index and transport.
    pub requests: Vec<(usize, TransportRequest)>,
    /// UDP only: stream number, RTP socket and RTCP socket.
    pub udp: Vec<(usize, UdpSocket, UdpSocket)>,
}

/// Picks the video stream (H.264 rather than H.265 when the camera offers
/// both, since every browser decodes it) and a pass-through audio stream of `p`,
/// publishes what they are, and prepares their receivers and SETUP
/// requests (UDP sockets bound on `local_ip`). `server` is the camera's
/// `Server` header, if any.
pub(super) async fn choose_streams(
    p: &Presentation,
    server: Option<String>,
    local_ip: IpAddr,
    params: &SessionParams,
    ctx: &SessionContext<'_>,
) -> Result<Chosen, SessionError> {
    let sdp = String::from_utf8_lossy(&p.sdp).into_owned();
    let server = server.or_else(|| p.tool.clone());
    let video = [VideoCodec::H264, VideoCodec::H265]
        .into_iter()
        .find_map(|codec| {
            p.streams
                .iter()
                .position(|s| s.media == "video" && s.encoding == codec.encoding())
                .map(|i| (i, codec))
        });
    let Some((video, codec)) = video else {
        let offered: Vec<String> = p
            .streams
            .iter()
            .map(|s| format!("{} {}", s.media, s.encoding))
            .collect();
        ctx.status.send_modify(|st| {
            st.sdp = Some(redact_url(&sdp));
            st.server = server;
        });
        return Err(SessionError::UnsupportedCodec(offered.join(", ")));
    };
    let audio = p
        .streams
        .iter()
        .position(|s| s.media == "audio" && PASSTHROUGH_AUDIO.contains(&s.encoding.as_str()));

    let vdesc = &p.streams[video];
    let params_from_sdp = match VideoParams::from_fmtp(codec, vdesc.fmtp.as_deref()) {
        Ok(p) => p,
        Err(why) => {
            ctx.status.send_modify(|st| {
                st.sdp = Some(redact_url(&sdp));
                st.server = server;
            });
            return Err(SessionError::UnsupportedStream(why));
        }
    };
    let audio_info = audio.map(|i| {
        let d = &p.streams[i];
        AudioInfo {
            encoding: d.encoding.clone(),
            clock_rate: d.clock_rate,
            channels: d.channels,
            payload_type: d.payload_type,
            fmtp: d.fmtp.clone(),
        }
    });
    // Audio WebRTC cannot carry: viewers get video only. AAC goes to
    // browsers as Opus (egress::webrtc), unless it is AAC the decoder
    // cannot read.
    let no_webrtc_audio = audio_info.as_ref().and_then(|a| {
        if crate::aac::AacFormat::is_aac(&a.encoding) {
            return crate::aac::webrtc_audio(&a.encoding, a.clock_rate, a.fmtp.as_deref())
                .err()
                .map(|e| {
                    format!(
                        "the camera's {} audio cannot be sent over WebRTC ({e}): browsers get video only",
                        a.encoding
                    )
                });
        }
        (!matches!(
            a.encoding.to_ascii_uppercase().as_str(),
            "PCMU" | "PCMA" | "OPUS"
        ))
        .then(|| {
            format!(
                "the camera's {} audio cannot be sent over WebRTC: browsers get video only",
                a.encoding
            )
        })
    });
    ctx.status.send_modify(|st| {
        if let Some(w) = &no_webrtc_audio {
            st.warn(w);
        }
        st.sdp = Some(redact_url(&sdp));
        st.server = server;
        st.video = Some(crate::camera::codec::describe(
            codec,
            params_from_sdp.as_ref(),
        ));
        st.audio = audio_info
            .as_ref()
            .map(|a| format!("{}/{}", a.encoding, a.clock_rate));
    });
    ctx.hub.set_info(StreamInfo {
        video_codec: codec,
        video_params: params_from_sdp.clone(),
        audio: audio_info,
    });

    let latency = params.network_cache;
    // Each session starts its own range of timelines, so consumers
    // re-anchor timestamps after a reconnect.
    let timeline = ctx.session_number << 20;
    let mut chosen = vec![(
        video,
        MediaPath::video(latency, codec, params_from_sdp, params.on_damage, timeline),
    )];
    if let Some(a) = audio {
        chosen.push((
            a,
            MediaPath::audio(latency, p.streams[a].clock_rate, timeline),
        ));
    }
    let mut out = Chosen {
        streams: Vec::new(),
        requests: Vec::new(),
        udp: Vec::new(),
    };
    for (n, (index, path)) in chosen.into_iter().enumerate() {
        let request = match params.carrier {
            Carrier::Tcp => TransportRequest::Tcp {
                rtp_channel: (n * 2) as u8,
            },
            Carrier::Udp => {
                let (rtp, rtcp) = bind_udp_pair(local_ip)
                    .await
                    .map_err(|e| SessionError::Io(format!("cannot bind a UDP port pair: {e}")))?;
                let granted =
                    set_receive_buffer(&socket2::SockRef::from(&rtp), params.socket_buffer_bytes);
                record_buffer(ctx.stats, params.socket_buffer_bytes, granted);
                let port = rtp
                    .local_addr()
                    .map_err(|e| SessionError::Io(e.to_string()))?
                    .port();
                out.udp.push((n, rtp, rtcp));
                TransportRequest::Udp { rtp_port: port }
            }
        };
        out.requests.push((index, request));
        out.streams.push(MediaStream {
            index,
            path,
            channels: None,
            rtcp_dest: None,
            rtcp_socket: None,
        });
    }
    Ok(out)
}

/// Records what the camera's PLAY confirmed for each stream: interleaved
/// channels (TCP), or its address and RTCP port (UDP). Returns, per UDP
/// stream number, the camera's RTP and RTCP ports when SETUP named them.
pub(super) fn apply_setups(
    streams: &mut [MediaStream],
    setups: Vec<StreamSetup>,
    camera: IpAddr,
) -> Vec<(usize, u16, u16)> {
    let mut server_ports = Vec::new();
    for setup in setups {
        let Some(n) = streams.iter().position(|s| s.index == setup.stream) else {
            continue;
        };
        let stream = &mut streams[n];
        match setup.request {
            TransportRequest::Tcp { rtp_channel } => {
                stream.channels = Some(
                    setup
                        .channels
                        .unwrap_or((rtp_channel, rtp_channel.wrapping_add(1))),
                );
            }
            TransportRequest::Udp { .. } => {
                if let Some((rtp, rtcp)) = setup.server_ports {
                    stream.rtcp_dest = Some(SocketAddr::new(camera, rtcp));
                    server_ports.push((n, rtp, rtcp));
                }
            }
        }
    }
    server_ports
}

/// The jitter buffer latency of a session over `carrier` when the camera
/// sets none (see [`crate::config::CameraConfig::network_cache`]).
pub(super) fn auto_network_cache(carrier: Carrier) -> Duration {
    match carrier {
        // UDP reorders on busy links and Wi-Fi; TCP never does.
        Carrier::Udp => crate::config::AUTO_NETWORK_CACHE_UDP,
        Carrier::Tcp => Duration::ZERO,
    }
}
