//! What to send a viewer, decided from its SDP offer and what the camera
//! sends, before any WebRTC machinery runs (sans-IO, so every rule has a
//! unit test). Video is passed through, never transcoded: for an H.264
//! camera the offer must hold an H.264 format whose decoder can take the
//! camera's stream, with `packetization-mode=1` (we send FU-A); for an
//! H.265 camera an H265 format with the camera's `profile-id` and
//! `tier-flag` (its `level-id` is what the browser decodes at most, and
//! browsers list one level per profile, so it is not compared: the W3C
//! correction of RFC 7798's offer/answer rule that Pion follows too).
//! Audio: PCMU, PCMA and Opus pass through; AAC (`mpeg4-generic`,
//! `MP4A-LATM`), which browsers do not decode, is sent as Opus (the
//! offer's opus/48000/2), transcoded once per camera (`opus_feed`) and
//! mono: the answer names opus/48000/2 as RFC 7587 section 7 wants for any
//! Opus stream, without `sprop-stereo` (default 0, a mono sender).

use crate::codec_info::fmtp_param;
use std::io::Cursor;

use webrtc::sdp::SessionDescription;

use crate::aac::{AacFormat, OPUS_CLOCK_RATE};
use crate::camera::hub::AudioInfo;

/// A video format chosen from the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoChoice {
    /// The offer's payload type for it.
    pub payload_type: u8,
    /// The offer's `a=fmtp` line for it, kept verbatim so the answer carries
    /// the same configuration (RFC 6184 §8.2.2).
    pub fmtp: String,
    /// The offer's `a=rtcp-fb` values for it (`nack`, `nack pli`, ...).
    pub rtcp_fb: Vec<String>,
}

/// An audio format chosen from the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioChoice {
    /// The offer's payload type for it.
    pub payload_type: u8,
    /// MIME type, e.g. `audio/PCMU`.
    pub mime_type: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channels (0 when the offer leaves it out).
    pub channels: u16,
    /// The offer's `a=fmtp` line for it, if any.
    pub fmtp: String,
    /// Opus transcoded from the camera's AAC, not the camera's own audio.
    pub from_aac: bool,
}

/// The outcome of negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The video format.
    pub video: VideoChoice,
    /// The audio format, when the camera sends audio the offer accepts.
    pub audio: Option<AudioChoice>,
    /// Sentences for the session and the log (e.g. why there is no audio).
    pub notes: Vec<String>,
}

/// Why an offer cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// Not SDP we can read.
    #[error("malformed SDP offer: {0}")]
    Malformed(String),
    /// Readable, but nothing the camera can feed.
    #[error("{0}")]
    Incompatible(String),
}

/// The camera's H.264 profile: `profile_idc`, constraint flags, `level_idc`
/// (the three bytes after the SPS NAL header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub idc: u8,
    pub constraints: u8,
    pub level: u8,
}

impl Profile {
    /// From an SPS NAL unit (with its header byte).
    pub fn from_sps(sps: &[u8]) -> Option<Profile> {
        match sps {
            [_, idc, constraints, level, ..] => Some(Profile {
                idc: *idc,
                constraints: *constraints,
                level: *level,
            }),
            _ => None,
        }
    }

    /// From an SDP `profile-level-id` (6 hex digits).
    pub fn from_hex(s: &str) -> Option<Profile> {
        if s.len() != 6 || !s.is_ascii() {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&s[i..i + 2], 16).ok();
        Some(Profile {
            idc: byte(0)?,
            constraints: byte(2)?,
            level: byte(4)?,
        })
    }

    /// As `profile-level-id`.
    pub fn hex(self) -> String {
        format!("{:02x}{:02x}{:02x}", self.idc, self.constraints, self.level)
    }

    /// Constrained Baseline: Baseline with constraint_set1, or any profile
    /// with constraint_set0 and constraint_set1 set.
    fn constrained_baseline(self) -> bool {
        (self.idc == 66 && self.constraints & 0x40 != 0)
            || (self.idc == 77 && self.constraints & 0x80 != 0)
    }

    /// A name for messages.
    pub fn name(self) -> String {
        let name = match self.idc {
            66 if self.constrained_baseline() => "Constrained Baseline",
            66 => "Baseline",
            77 => "Main",
            88 => "Extended",
            100 if self.constraints & 0x0c == 0x0c => "Constrained High",
            100 => "High",
            110 => "High 10",
            122 => "High 4:2:2",
            244 => "High 4:4:4 Predictive",
            _ => "unknown profile",
        };
        format!("H.264 {name} ({})", self.hex())
    }
}

/// What the camera sends, as negotiation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraVideo {
    /// H.264 of this profile.
    H264(Profile),
    /// H.265 of this profile, tier and level.
    H265(crate::h265::ProfileTierLevel),
}

impl CameraVideo {
    /// A name for messages.
    pub fn name(self) -> String {
        match self {
            CameraVideo::H264(p) => p.name(),
            CameraVideo::H265(p) => format!(
                "H.265 {} profile, {} tier, level {}",
                crate::camera::codec::h265_profile_name(p.profile_id),
                if p.tier_flag { "High" } else { "Main" },
                crate::camera::codec::h265_level_name(p.level_id).trim_start_matches('L')
            ),
        }
    }

    /// The SDP encoding name.
    fn encoding(self) -> &'static str {
        match self {
            CameraVideo::H264(_) => "H264",
            CameraVideo::H265(_) => "H265",
        }
    }
}

/// How well an offered H265 format takes the camera's H.265 stream: `None`
/// when it cannot (another `profile-id`, a tier below the stream's),
/// otherwise a preference (lower is better). `profile-id` defaults to 1
/// (Main) and `tier-flag` to 0 (RFC 7798 7.1); `profile-space` must match.
pub fn h265_compatibility(stream: crate::h265::ProfileTierLevel, fmtp: &str) -> Option<u8> {
    let num = |key: &str, default: u8| -> Option<u8> {
        match fmtp_param(fmtp, key) {
            Some(v) => v.parse().ok(),
            None => Some(default),
        }
    };
    if num("profile-space", 0)? != stream.profile_space
        || num("profile-id", 1)? != stream.profile_id
    {
        return None;
    }
    match (num("tier-flag", 0)?, stream.tier_flag) {
        (1, true) | (0, false) => Some(0),
        (1, false) => Some(1),
        _ => None,
    }
}

/// Rank of the High family, whose decoders take the lower members.
fn high_rank(idc: u8) -> Option<u8> {
    match idc {
        100 => Some(1),
        110 => Some(2),
        122 => Some(3),
        244 => Some(4),
        _ => None,
    }
}

/// How well a decoder of profile `decoder` (from the offer) takes a stream
/// of profile `stream`: `None` when it cannot, otherwise a preference (lower
/// is better). The level is not compared: offers carry
/// `level-asymmetry-allowed=1` and browsers decode any level in software.
pub fn compatibility(stream: Profile, decoder: Profile) -> Option<u8> {
    // Constraint flags the decoder's profile asserts must hold for the
    // stream (flags 0..=5; the reserved bits are ignored).
    let demanded = decoder.constraints & 0xfc & !stream.constraints;
    if decoder.idc == stream.idc {
        return (demanded == 0).then_some(if decoder.constraints == stream.constraints {
            0
        } else {
            1
        });
    }
    // A Constrained Baseline stream conforms to Baseline, Main and High.
    if stream.constrained_baseline() {
        return match decoder.idc {
            66 | 77 if decoder.constraints & 0x20 == 0 => Some(2),
            _ if high_rank(decoder.idc).is_some() && decoder.constraints & 0x0c == 0 => Some(3),
            _ => None,
        };
    }
    // A Main stream, and a lower High-family stream, decode with a High-family
    // decoder (not a Constrained High one: Main may have B slices).
    let decoder_rank = high_rank(decoder.idc)?;
    if decoder.constraints & 0x0c != 0 {
        return None;
    }
    match (stream.idc, high_rank(stream.idc)) {
        (77, _) => Some(3 + decoder_rank),
        (_, Some(r)) if r <= decoder_rank => Some(3 + decoder_rank - r),
        _ => None,
    }
}

/// The offer's Opus parameters for the answer when camgate sends its own
/// mono Opus (`aac::Transcoder`): `sprop-stereo` says what the sender
/// sends, so the offer's is dropped and the default, 0 (mono), stands
/// (RFC 7587 section 7.1). The rest (`stereo`, `useinbandfec`, `minptime`)
/// is the browser's, kept as it offered them; a `stereo=1` there is a
/// preference, and every Opus decoder plays mono.
fn without_sprop_stereo(fmtp: &str) -> String {
    fmtp.split(';')
        .map(str::trim)
        .filter(|p| {
            let key = p.split('=').next().unwrap_or_default().trim();
            !p.is_empty() && !key.eq_ignore_ascii_case("sprop-stereo")
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// One format of an offered media section.
#[derive(Debug, Default)]
struct Format {
    payload_type: u8,
    encoding: String,
    clock_rate: u32,
    channels: u16,
    fmtp: String,
    rtcp_fb: Vec<String>,
}

/// The formats of an `m=` section.
fn formats(media: &webrtc::sdp::MediaDescription) -> Vec<Format> {
    let mut out: Vec<Format> = media
        .media_name
        .formats
        .iter()
        .filter_map(|f| f.parse().ok())
        .map(|payload_type| Format {
            payload_type,
            ..Default::default()
        })
        .collect();
    for attr in &media.attributes {
        let Some(value) = attr.value.as_deref() else {
            continue;
        };
        let Some((pt, rest)) = value.split_once(' ') else {
            continue;
        };
        let Ok(pt) = pt.parse::<u8>() else { continue };
        let Some(f) = out.iter_mut().find(|f| f.payload_type == pt) else {
            continue;
        };
        match attr.key.as_str() {
            "rtpmap" => {
                let mut parts = rest.trim().split('/');
                f.encoding = parts.next().unwrap_or_default().to_ascii_uppercase();
                f.clock_rate = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
                f.channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            }
            "fmtp" => f.fmtp = rest.trim().to_string(),
            "rtcp-fb" => f.rtcp_fb.push(rest.trim().to_string()),
            _ => {}
        }
    }
    // Static payload types need no rtpmap.
    for f in &mut out {
        if f.encoding.is_empty() {
            (f.encoding, f.clock_rate, f.channels) = match f.payload_type {
                0 => ("PCMU".into(), 8000, 1),
                8 => ("PCMA".into(), 8000, 1),
                _ => continue,
            };
        }
    }
    out
}

/// Parses an offer (for `webrtc` and for us).
pub fn parse_offer(offer: &str) -> Result<SessionDescription, NegotiationError> {
    if !offer.trim_start().starts_with("v=0") {
        return Err(NegotiationError::Malformed(
            "an SDP offer starts with \"v=0\"".into(),
        ));
    }
    SessionDescription::unmarshal(&mut Cursor::new(offer.as_bytes()))
        .map_err(|e| NegotiationError::Malformed(e.to_string()))
}

/// Chooses what to send for `offer`, given the camera's video and audio.
pub fn choose(
    offer: &str,
    camera: CameraVideo,
    camera_audio: Option<&AudioInfo>,
) -> Result<Choice, NegotiationError> {
    let sdp = parse_offer(offer)?;
    let mut notes = Vec::new();
    let video_sections: Vec<_> = sdp
        .media_descriptions
        .iter()
        .filter(|m| m.media_name.media == "video")
        .collect();
    if video_sections.is_empty() {
        return Err(NegotiationError::Incompatible(format!(
            "the camera sends {} video but the offer has no video section",
            camera.name()
        )));
    }
    let mut offered = Vec::new();
    let mut best: Option<(u8, VideoChoice)> = None;
    for f in video_sections.iter().flat_map(|m| formats(m)) {
        if matches!(f.encoding.as_str(), "RTX" | "RED" | "ULPFEC" | "FLEXFEC-03") {
            continue;
        }
        let plid = fmtp_param(&f.fmtp, "profile-level-id");
        let mode = fmtp_param(&f.fmtp, "packetization-mode").unwrap_or("0");
        let desc = match (f.encoding.as_str(), plid) {
            ("H264", Some(p)) => format!("H264 {p} packetization-mode={mode}"),
            ("H264", None) => format!("H264 packetization-mode={mode}"),
            ("H265", _) => format!(
                "H265 profile-id={} tier-flag={}",
                fmtp_param(&f.fmtp, "profile-id").unwrap_or("1"),
                fmtp_param(&f.fmtp, "tier-flag").unwrap_or("0")
            ),
            (enc, _) => enc.to_string(),
        };
        if !offered.contains(&desc) {
            offered.push(desc);
        }
        if f.encoding != camera.encoding() {
            continue;
        }
        let rank = match camera {
            CameraVideo::H264(profile) => {
                if mode != "1" {
                    continue;
                }
                // RFC 6184: no profile-level-id means Baseline level 1 (42000a).
                let decoder = Profile::from_hex(plid.unwrap_or("42000a"));
                decoder.and_then(|d| compatibility(profile, d))
            }
            CameraVideo::H265(ptl) => h265_compatibility(ptl, &f.fmtp),
        };
        let Some(rank) = rank else {
            continue;
        };
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((
                rank,
                VideoChoice {
                    payload_type: f.payload_type,
                    fmtp: f.fmtp.clone(),
                    rtcp_fb: f.rtcp_fb.clone(),
                },
            ));
        }
    }
    let Some((_, video)) = best else {
        let offers_h265 = offered.iter().any(|o| o.starts_with("H265"));
        let offered = if offered.is_empty() {
            "no formats".to_string()
        } else {
            offered.join(", ")
        };
        return Err(NegotiationError::Incompatible(match camera {
            CameraVideo::H264(_) => format!(
                "the camera sends {} with packetization-mode=1, which the offer cannot receive; \
                 the offer had: {offered}",
                camera.name()
            ),
            CameraVideo::H265(_) if !offers_h265 => format!(
                "the camera sends {} video, which this browser cannot decode (its offer has no H265, \
                 only: {offered}); watch the camera's H.264 substream instead (add it as a camera \
                 with the substream's URL, or set the camera's main stream to H.264)",
                camera.name()
            ),
            CameraVideo::H265(_) => format!(
                "the camera sends {} video, which the offer cannot receive (the offer had: {offered}); \
                 watch the camera's H.264 substream instead",
                camera.name()
            ),
        }));
    };

    let audio = match camera_audio {
        None => None,
        Some(a) if AacFormat::is_aac(&a.encoding) => {
            match crate::aac::webrtc_audio(&a.encoding, a.clock_rate, a.fmtp.as_deref()) {
                Err(e) => {
                    notes.push(format!(
                        "the camera's {} audio cannot be sent over WebRTC ({e}): video only",
                        a.encoding
                    ));
                    None
                }
                Ok(_) => {
                    let found = sdp
                        .media_descriptions
                        .iter()
                        .filter(|m| m.media_name.media == "audio")
                        .flat_map(formats)
                        .find(|f| f.encoding == "OPUS" && f.clock_rate == OPUS_CLOCK_RATE);
                    if found.is_none() {
                        notes.push(format!(
                            "the offer cannot receive Opus, which the camera's {} audio is sent as: \
                             video only",
                            a.encoding
                        ));
                    }
                    found.map(|f| AudioChoice {
                        payload_type: f.payload_type,
                        mime_type: "audio/opus".into(),
                        clock_rate: OPUS_CLOCK_RATE,
                        channels: 2,
                        fmtp: without_sprop_stereo(&f.fmtp),
                        from_aac: true,
                    })
                }
            }
        }
        Some(a) => {
            let encoding = a.encoding.to_ascii_uppercase();
            if !matches!(encoding.as_str(), "PCMU" | "PCMA" | "OPUS") {
                notes.push(format!(
                    "the camera's {} audio cannot be sent over WebRTC: video only",
                    a.encoding
                ));
                None
            } else {
                let found = sdp
                    .media_descriptions
                    .iter()
                    .filter(|m| m.media_name.media == "audio")
                    .flat_map(formats)
                    .find(|f| f.encoding == encoding && f.clock_rate == a.clock_rate);
                if found.is_none() {
                    notes.push(format!(
                        "the offer cannot receive the camera's {}/{} audio: video only",
                        a.encoding, a.clock_rate
                    ));
                }
                found.map(|f| AudioChoice {
                    payload_type: f.payload_type,
                    mime_type: format!(
                        "audio/{}",
                        if encoding == "OPUS" {
                            "opus"
                        } else {
                            &encoding
                        }
                    ),
                    clock_rate: f.clock_rate,
                    channels: f.channels,
                    fmtp: f.fmtp,
                    from_aac: false,
                })
            }
        }
    };
    Ok(Choice {
        video,
        audio,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The media sections of a Chromium WHEP offer (recvonly video and
    /// audio), cut to the formats that matter.
    const CHROME_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 45 46 98 99 100 101\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\n\
a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=rtcp-fb:102 goog-remb\r\n\
a=rtcp-fb:102 nack\r\n\
a=rtcp-fb:102 nack pli\r\n\
a=rtcp-fb:102 ccm fir\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n\
a=rtpmap:104 H264/90000\r\n\
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
a=rtpmap:105 rtx/90000\r\n\
a=fmtp:105 apt=104\r\n\
a=rtpmap:106 H264/90000\r\n\
a=rtcp-fb:106 nack pli\r\n\
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:107 rtx/90000\r\n\
a=fmtp:107 apt=106\r\n\
a=rtpmap:108 H264/90000\r\n\
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
a=rtpmap:109 rtx/90000\r\n\
a=fmtp:109 apt=108\r\n\
a=rtpmap:127 H264/90000\r\n\
a=rtcp-fb:127 nack\r\n\
a=rtcp-fb:127 nack pli\r\n\
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
a=rtpmap:125 rtx/90000\r\n\
a=fmtp:125 apt=127\r\n\
a=rtpmap:39 H264/90000\r\n\
a=fmtp:39 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f\r\n\
a=rtpmap:40 rtx/90000\r\n\
a=fmtp:40 apt=39\r\n\
a=rtpmap:45 AV1/90000\r\n\
a=rtpmap:46 rtx/90000\r\n\
a=fmtp:46 apt=45\r\n\
a=rtpmap:98 VP9/90000\r\n\
a=rtpmap:99 rtx/90000\r\n\
a=rtpmap:100 H264/90000\r\n\
a=fmtp:100 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=f4001f\r\n\
a=rtpmap:101 rtx/90000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n";

    fn p(hex: &str) -> Profile {
        Profile::from_hex(hex).unwrap()
    }

    fn pcmu() -> AudioInfo {
        AudioInfo {
            encoding: "PCMU".into(),
            clock_rate: 8000,
            channels: None,
            payload_type: 0,
            fmtp: None,
        }
    }

    #[test]
    fn main_profile_camera_gets_the_offers_main_format() {
        // x264's Main sets constraint_set1 (4d40..); Chromium offers 4d001f.
        let c = choose(CHROME_OFFER, CameraVideo::H264(p("4d401e")), Some(&pcmu())).unwrap();
        assert_eq!(c.video.payload_type, 127);
        assert!(c.video.fmtp.contains("profile-level-id=4d001f"));
        assert!(c.video.rtcp_fb.iter().any(|f| f == "nack pli"));
        let audio = c.audio.unwrap();
        assert_eq!((audio.payload_type, audio.clock_rate), (0, 8000));
        assert_eq!(audio.mime_type, "audio/PCMU");
        assert!(c.notes.is_empty());
    }

    #[test]
    fn constrained_baseline_prefers_the_exact_profile() {
        let c = choose(CHROME_OFFER, CameraVideo::H264(p("42e01f")), None).unwrap();
        assert_eq!(c.video.payload_type, 106);
    }

    #[test]
    fn baseline_without_constraints_is_not_sent_as_constrained_baseline() {
        let c = choose(CHROME_OFFER, CameraVideo::H264(p("420028")), None).unwrap();
        assert_eq!(c.video.payload_type, 102, "plain Baseline 42001f");
    }

    #[test]
    fn high_profile_camera_decodes_with_high_444() {
        let c = choose(CHROME_OFFER, CameraVideo::H264(p("640028")), None).unwrap();
        assert_eq!(c.video.payload_type, 100);
    }

    #[test]
    fn aac_audio_is_sent_as_the_offers_opus() {
        let mut aac = AudioInfo {
            encoding: "MPEG4-GENERIC".into(),
            clock_rate: 16000,
            channels: Some(1),
            payload_type: 97,
            fmtp: Some(
                "streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1408;sizelength=13;\
                 indexlength=3;indexdeltalength=3"
                    .into(),
            ),
        };
        let c = choose(CHROME_OFFER, CameraVideo::H264(p("4d401e")), Some(&aac)).unwrap();
        let audio = c.audio.unwrap();
        assert_eq!(
            (audio.payload_type, audio.clock_rate, audio.channels),
            (111, 48_000, 2)
        );
        assert_eq!(
            (audio.mime_type.as_str(), audio.from_aac),
            ("audio/opus", true)
        );
        assert_eq!(audio.fmtp, "minptime=10;useinbandfec=1");
        assert!(c.notes.is_empty(), "{:?}", c.notes);
        // camgate's Opus is mono: an offer's sprop-stereo is not echoed
        // (the answer's default, 0, says mono); its receiver preferences
        // stay. An offer without the channel count still gets /2.
        let stereo_offer = CHROME_OFFER
            .replace(
                "minptime=10;useinbandfec=1",
                "minptime=10;stereo=1; sprop-stereo=1;useinbandfec=1",
            )
            .replace("opus/48000/2", "opus/48000");
        let c = choose(&stereo_offer, CameraVideo::H264(p("4d401e")), Some(&aac)).unwrap();
        let audio = c.audio.unwrap();
        assert_eq!(audio.fmtp, "minptime=10;stereo=1;useinbandfec=1");
        assert_eq!(audio.channels, 2);
        // LATM too.
        let latm = AudioInfo {
            encoding: "MP4A-LATM".into(),
            clock_rate: 48000,
            channels: Some(1),
            payload_type: 96,
            fmtp: Some("cpresent=0;config=40002310".into()),
        };
        let c = choose(CHROME_OFFER, CameraVideo::H264(p("4d401e")), Some(&latm)).unwrap();
        assert!(c.audio.unwrap().from_aac);
        // An offer without Opus.
        let no_opus = CHROME_OFFER.replace("opus/48000/2", "foo/48000/2");
        let c = choose(&no_opus, CameraVideo::H264(p("4d401e")), Some(&aac)).unwrap();
        assert!(c.audio.is_none());
        assert!(c.notes[0].contains("cannot receive Opus"), "{:?}", c.notes);
        // AAC the decoder cannot read (AAC Main) says why.
        aac.fmtp = Some("mode=AAC-hbr;config=0988".into());
        let c = choose(CHROME_OFFER, CameraVideo::H264(p("4d401e")), Some(&aac)).unwrap();
        assert!(c.audio.is_none());
        assert!(c.notes[0].contains("AAC Main"), "{:?}", c.notes);
    }

    #[test]
    fn g711_passes_through() {
        let c = choose(CHROME_OFFER, CameraVideo::H264(p("4d401e")), Some(&pcmu())).unwrap();
        let audio = c.audio.unwrap();
        assert_eq!(
            (audio.mime_type.as_str(), audio.from_aac),
            ("audio/PCMU", false)
        );
    }

    #[test]
    fn offer_without_h264_names_both_sides() {
        let offer = CHROME_OFFER
            .lines()
            .filter(|l| !l.contains("H264") && !l.contains("profile-level-id"))
            .map(|l| format!("{l}\r\n"))
            .collect::<String>()
            .replace(
                "96 97 102 103 104 105 106 107 108 109 127 125 39 40 45 46 98 99 100 101",
                "96 97 45 46 98 99",
            );
        let e = choose(&offer, CameraVideo::H264(p("4d401e")), None).unwrap_err();
        let NegotiationError::Incompatible(msg) = e else {
            panic!("{e:?}")
        };
        assert!(msg.contains("H.264 Main (4d401e)"), "{msg}");
        assert!(msg.contains("VP8"), "{msg}");
        assert!(msg.contains("AV1"), "{msg}");
        assert!(!msg.contains("RTX"), "{msg}");
    }

    #[test]
    fn packetization_mode_0_only_is_refused() {
        let offer = CHROME_OFFER.replace("packetization-mode=1", "packetization-mode=0");
        let e = choose(&offer, CameraVideo::H264(p("42e01f")), None).unwrap_err();
        assert!(e.to_string().contains("packetization-mode=0"), "{e}");
    }

    #[test]
    fn audio_only_offer_is_refused() {
        let start = CHROME_OFFER.find("m=video").unwrap();
        let end = CHROME_OFFER.find("m=audio").unwrap();
        let offer = format!("{}{}", &CHROME_OFFER[..start], &CHROME_OFFER[end..]);
        let e = choose(&offer, CameraVideo::H264(p("42e01f")), None).unwrap_err();
        assert!(e.to_string().contains("no video section"), "{e}");
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in ["", "hello", "v=0\r\nm=video x\r\n", "\u{0}\u{1}"] {
            assert!(
                matches!(
                    choose(bad, CameraVideo::H264(p("42e01f")), None),
                    Err(NegotiationError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn compatibility_rules() {
        // Same profile: the decoder's constraints must hold for the stream.
        assert_eq!(compatibility(p("42e01f"), p("42e01f")), Some(0));
        assert_eq!(compatibility(p("420028"), p("42e01f")), None);
        // Constrained Baseline goes anywhere but Constrained High.
        assert!(compatibility(p("42c01e"), p("4d001f")).is_some());
        assert!(compatibility(p("42e01e"), p("64001f")).is_some());
        assert_eq!(compatibility(p("42e01e"), p("640c1f")), None);
        // Main needs Main or a High-family decoder.
        assert_eq!(compatibility(p("4d401e"), p("42e01f")), None);
        assert!(compatibility(p("4d401e"), p("64001f")).is_some());
        assert_eq!(compatibility(p("4d401e"), p("640c1f")), None);
        // High needs High or above.
        assert_eq!(compatibility(p("640028"), p("4d001f")), None);
        assert_eq!(compatibility(p("6e0028"), p("64001f")), None);
        assert!(compatibility(p("640028"), p("f4001f")).is_some());
    }

    #[test]
    fn profile_parsing() {
        assert_eq!(Profile::from_hex("zz0011"), None);
        assert_eq!(Profile::from_hex("4d001"), None);
        assert_eq!(Profile::from_hex("é4d001"), None);
        assert_eq!(
            Profile::from_sps(&[0x67, 0x4d, 0x40, 0x1e, 0xaa]),
            Some(p("4d401e"))
        );
        assert_eq!(Profile::from_sps(&[0x67, 0x4d]), None);
    }

    fn main_tier(level_id: u8) -> CameraVideo {
        CameraVideo::H265(crate::h265::ProfileTierLevel {
            profile_space: 0,
            tier_flag: false,
            profile_id: 1,
            level_id,
        })
    }

    /// Chrome 136+ with a hardware H.265 decoder adds these (one level per
    /// profile: what it decodes at most).
    fn offer_with_h265(fmtp: &str) -> String {
        CHROME_OFFER
            .replace(
                "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102",
                "m=video 9 UDP/TLS/RTP/SAVPF 49 96 97 102",
            )
            .replace(
                "a=rtpmap:96 VP8/90000\r\n",
                &format!(
                    "a=rtpmap:49 H265/90000\r\na=rtcp-fb:49 nack\r\na=rtcp-fb:49 nack pli\r\n\
                 a=fmtp:49 {fmtp}\r\na=rtpmap:96 VP8/90000\r\n"
                ),
            )
    }

    #[test]
    fn h265_camera_takes_the_offers_h265_whatever_its_level() {
        let offer = offer_with_h265("level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST");
        assert!(offer.contains("a=rtpmap:49 H265/90000"), "{offer}");
        // Level 5.1 camera, level 3.1 offer: not compared.
        let c = choose(&offer, main_tier(153), None).unwrap();
        assert_eq!(c.video.payload_type, 49);
        assert_eq!(
            c.video.fmtp,
            "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"
        );
        assert_eq!(c.video.rtcp_fb, ["nack", "nack pli"]);
    }

    #[test]
    fn h265_profile_and_tier_must_match() {
        let main10 = offer_with_h265("level-id=93;profile-id=2;tier-flag=0");
        let e = choose(&main10, main_tier(120), None).unwrap_err();
        assert!(e.to_string().contains("profile-id=2"), "{e}");
        let high = CameraVideo::H265(crate::h265::ProfileTierLevel {
            profile_space: 0,
            tier_flag: true,
            profile_id: 1,
            level_id: 120,
        });
        let main_tier_offer = offer_with_h265("profile-id=1");
        assert!(choose(&main_tier_offer, high, None).is_err());
        // A High-tier decoder takes a Main-tier stream.
        let high_offer = offer_with_h265("profile-id=1;tier-flag=1");
        assert!(choose(&high_offer, main_tier(120), None).is_ok());
        assert!(choose(&high_offer, high, None).is_ok());
    }

    #[test]
    fn h265_camera_and_an_offer_without_h265_get_a_sentence() {
        let e = choose(CHROME_OFFER, main_tier(120), None).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, NegotiationError::Incompatible(_)));
        assert!(
            msg.contains("H.265 Main profile, Main tier, level 4"),
            "{msg}"
        );
        assert!(msg.contains("this browser cannot decode"), "{msg}");
        assert!(msg.contains("H.264 substream"), "{msg}");
    }
}
