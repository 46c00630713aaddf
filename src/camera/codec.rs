//! The video codecs a camera may send, H.264 (RFC 6184) and H.265
//! (RFC 7798): one switch over the two sans-IO cores, so that the session,
//! the hub and every egress handle pictures without naming a codec.
//!
//! Each core keeps its own depacketizer, analyzer, repair gate and
//! packetizer (the NAL header, the parameter sets and the slice checks
//! differ); what they share (the access unit, the damage kinds, the gate's
//! decisions and counters) is one type already, and this module adds the
//! dispatch: [`VideoCodec`], [`VideoParams`], [`VideoPipeline`] and
//! [`VideoPacketizer`].

use crate::codec_info::fmtp_param;
use bytes::Bytes;

use crate::h264::analyzer::Damage;
use crate::h264::packetizer::Payload;
use crate::h264::repair::{GateOutput, OnDamage};
use crate::h264::AccessUnit;
use crate::rtp::RtpPacket;
use crate::{h264, h265};

/// The video codec of a camera's stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 / AVC (RFC 6184).
    #[default]
    H264,
    /// H.265 / HEVC (RFC 7798).
    H265,
}

impl VideoCodec {
    /// The codec named by an SDP `a=rtpmap` encoding (any case).
    pub fn from_encoding(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "H264" => Some(VideoCodec::H264),
            "H265" => Some(VideoCodec::H265),
            _ => None,
        }
    }

    /// The SDP encoding name: `H264` or `H265`.
    pub fn encoding(self) -> &'static str {
        match self {
            VideoCodec::H264 => "H264",
            VideoCodec::H265 => "H265",
        }
    }

    /// The WebRTC MIME type: `video/H264` or `video/H265`.
    pub fn mime_type(self) -> &'static str {
        match self {
            VideoCodec::H264 => "video/H264",
            VideoCodec::H265 => "video/H265",
        }
    }

    /// True when `au` is a keyframe of this codec: an IDR picture (H.264),
    /// an IRAP picture (H.265: IDR, CRA, BLA).
    pub fn is_keyframe(self, au: &AccessUnit) -> bool {
        match self {
            VideoCodec::H264 => au.is_idr(),
            VideoCodec::H265 => h265::is_irap(au),
        }
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encoding())
    }
}

/// The parameter sets a decoder needs before the first keyframe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoParams {
    /// SPS and PPS.
    H264(h264::ParameterSets),
    /// VPS, SPS and PPS.
    H265(h265::ParameterSets),
}

impl VideoParams {
    /// The codec these belong to.
    pub fn codec(&self) -> VideoCodec {
        match self {
            VideoParams::H264(_) => VideoCodec::H264,
            VideoParams::H265(_) => VideoCodec::H265,
        }
    }

    /// The parameter sets of a camera's `a=fmtp` value: `Ok(None)` when it
    /// names none (they come in band then). For H.265, a stream that needs
    /// DONL is refused with the reason.
    pub fn from_fmtp(codec: VideoCodec, fmtp: Option<&str>) -> Result<Option<Self>, String> {
        match codec {
            VideoCodec::H264 => Ok(fmtp
                .and_then(|f| fmtp_param(f, "sprop-parameter-sets"))
                .and_then(|v| h264::ParameterSets::from_sprop(v).ok())
                .map(VideoParams::H264)),
            VideoCodec::H265 => match fmtp {
                None => Ok(None),
                Some(f) => match h265::ParameterSets::from_fmtp(f) {
                    Ok(p) => Ok(p.map(VideoParams::H265)),
                    // Refusing DONL is a decision; a bad sprop only means
                    // the parameter sets must come in band.
                    Err(e @ h265::H265Error::DonlNotSupported(_)) => Err(e.to_string()),
                    Err(_) => Ok(None),
                },
            },
        }
    }

    /// The H.264 parameter sets, if these are.
    pub fn h264(&self) -> Option<&h264::ParameterSets> {
        match self {
            VideoParams::H264(p) => Some(p),
            VideoParams::H265(_) => None,
        }
    }

    /// The H.265 parameter sets, if these are.
    pub fn h265(&self) -> Option<&h265::ParameterSets> {
        match self {
            VideoParams::H265(p) => Some(p),
            VideoParams::H264(_) => None,
        }
    }

    /// The `a=fmtp` parameters of an SDP camgate writes (without the
    /// payload type): H.264 `packetization-mode=1;profile-level-id=..;
    /// sprop-parameter-sets=..`, H.265 `profile-id=..;tier-flag=..;
    /// level-id=..;sprop-vps=..;sprop-sps=..;sprop-pps=..`.
    pub fn fmtp(&self) -> String {
        match self {
            VideoParams::H264(p) => {
                let mut s = String::from("packetization-mode=1");
                if let Some(plid) = p.profile_level_id() {
                    s.push_str(";profile-level-id=");
                    s.push_str(&plid);
                }
                s.push_str(";sprop-parameter-sets=");
                s.push_str(&p.to_sprop());
                s
            }
            VideoParams::H265(p) => match p.profile_tier_level() {
                Some(ptl) => format!("{};{}", ptl.to_fmtp(), p.to_fmtp()),
                None => p.to_fmtp(),
            },
        }
    }

    /// The picture size in pixels, from the SPS.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        match self {
            VideoParams::H264(p) => {
                crate::codec_info::parse_sps(&p.sps).map(|i| (i.width, i.height))
            }
            VideoParams::H265(p) => h265::params::parse_sps(&p.sps).and_then(|(_, f)| f.resolution),
        }
    }

    /// `H264 640x360 Main 3.0`, `H265 1280x720 Main L4 Main-tier`: codec,
    /// size, profile and level as the SPS gives them.
    pub fn describe(&self) -> String {
        match self {
            VideoParams::H264(p) => match crate::codec_info::parse_sps(&p.sps) {
                Some(info) => format!(
                    "H264 {}x{} {} {}",
                    info.width, info.height, info.profile, info.level
                ),
                None => "H264".to_string(),
            },
            VideoParams::H265(p) => {
                let mut s = String::from("H265");
                if let Some((w, h)) = self.resolution() {
                    s.push_str(&format!(" {w}x{h}"));
                }
                if let Some(ptl) = p.profile_tier_level() {
                    s.push_str(&format!(
                        " {} {} {}",
                        h265_profile_name(ptl.profile_id),
                        h265_level_name(ptl.level_id),
                        if ptl.tier_flag {
                            "High tier"
                        } else {
                            "Main tier"
                        }
                    ));
                }
                s
            }
        }
    }

    /// The parameter set NAL units, in the order a decoder needs them.
    pub fn nal_units(&self) -> Vec<Bytes> {
        match self {
            VideoParams::H264(p) => vec![p.sps.clone(), p.pps.clone()],
            VideoParams::H265(p) => vec![p.vps.clone(), p.sps.clone(), p.pps.clone()],
        }
    }
}

/// `codec` alone when the parameter sets are not known yet, else
/// [`VideoParams::describe`].
pub fn describe(codec: VideoCodec, params: Option<&VideoParams>) -> String {
    match params.filter(|p| p.codec() == codec) {
        Some(p) => p.describe(),
        None => codec.encoding().to_string(),
    }
}

/// An H.265 `general_profile_idc` by name (H.265 Annex A).
pub fn h265_profile_name(profile_id: u8) -> String {
    match profile_id {
        1 => "Main".into(),
        2 => "Main 10".into(),
        3 => "Main Still Picture".into(),
        4 => "Range Extensions".into(),
        5 => "High Throughput".into(),
        9 => "Screen Content".into(),
        n => format!("profile {n}"),
    }
}

/// An H.265 `general_level_idc` (30 times the level) as `L4`, `L3.1`.
pub fn h265_level_name(level_id: u8) -> String {
    let tenths = u32::from(level_id) / 3;
    if tenths % 10 == 0 {
        format!("L{}", tenths / 10)
    } else {
        format!("L{}.{}", tenths / 10, tenths % 10)
    }
}

/// What the pipeline made of one picture.
#[derive(Debug)]
pub struct Checked {
    /// RTP timestamp of the picture.
    pub timestamp: u32,
    /// The picture is a keyframe (IDR; IRAP for H.265).
    pub keyframe: bool,
    /// Every damage found, each kind once.
    pub damage: Vec<Damage>,
    /// The picture has B slices.
    pub b_frame: bool,
    /// Parameter sets the gate put in front of this picture.
    pub params_inserted: u64,
    /// The repair gate's decision.
    pub out: GateOutput,
}

/// Depacketizer, analyzer and repair gate of one codec.
pub enum VideoPipeline {
    /// H.264.
    H264 {
        depacketizer: h264::Depacketizer,
        analyzer: h264::analyzer::Analyzer,
        gate: h264::repair::RepairGate,
    },
    /// H.265.
    H265 {
        depacketizer: h265::Depacketizer,
        analyzer: h265::analyzer::Analyzer,
        gate: h265::repair::RepairGate,
    },
}

impl VideoPipeline {
    /// A pipeline for `codec`, with the SDP's parameter sets if any (ones
    /// of another codec are ignored).
    pub fn new(codec: VideoCodec, params: Option<VideoParams>, policy: OnDamage) -> Self {
        match codec {
            VideoCodec::H264 => {
                let p = params.and_then(|p| p.h264().cloned());
                VideoPipeline::H264 {
                    depacketizer: h264::Depacketizer::new(p.clone()),
                    analyzer: h264::analyzer::Analyzer::new(p.as_ref()),
                    gate: h264::repair::RepairGate::new(policy, p),
                }
            }
            VideoCodec::H265 => {
                let p = params.and_then(|p| p.h265().cloned());
                VideoPipeline::H265 {
                    depacketizer: h265::Depacketizer::new(p.clone()),
                    analyzer: h265::analyzer::Analyzer::new(p.as_ref()),
                    gate: h265::repair::RepairGate::new(policy, p),
                }
            }
        }
    }

    /// The codec.
    pub fn codec(&self) -> VideoCodec {
        match self {
            VideoPipeline::H264 { .. } => VideoCodec::H264,
            VideoPipeline::H265 { .. } => VideoCodec::H265,
        }
    }

    /// Feeds one RTP packet, in sequence order.
    pub fn push(&mut self, pkt: &RtpPacket) {
        match self {
            VideoPipeline::H264 { depacketizer, .. } => depacketizer.push(pkt),
            VideoPipeline::H265 { depacketizer, .. } => depacketizer.push(pkt),
        }
    }

    /// The next complete picture, analyzed and passed through the gate.
    pub fn pull(&mut self) -> Option<Checked> {
        match self {
            VideoPipeline::H264 {
                depacketizer,
                analyzer,
                gate,
            } => {
                let au = depacketizer.pull()?;
                let a = analyzer.analyze(&au);
                let before = gate.stats().sps_pps_inserted;
                let timestamp = au.timestamp;
                let out = gate.process(au, &a);
                Some(Checked {
                    timestamp,
                    keyframe: a.idr,
                    damage: a.damage,
                    b_frame: a.b_frame,
                    params_inserted: gate.stats().sps_pps_inserted - before,
                    out,
                })
            }
            VideoPipeline::H265 {
                depacketizer,
                analyzer,
                gate,
            } => {
                let au = depacketizer.pull()?;
                let a = analyzer.analyze(&au);
                let before = gate.stats().sps_pps_inserted;
                let timestamp = au.timestamp;
                let out = gate.process(au, &a);
                Some(Checked {
                    timestamp,
                    keyframe: a.irap,
                    damage: a.damage,
                    b_frame: a.b_frame,
                    params_inserted: gate.stats().sps_pps_inserted - before,
                    out,
                })
            }
        }
    }

    /// The parameter sets in use (the SDP's, or the last complete set seen
    /// in band), when they differ from `published`.
    pub fn new_parameter_sets(&self, published: Option<&VideoParams>) -> Option<VideoParams> {
        match self {
            VideoPipeline::H264 { depacketizer, .. } => {
                let p = depacketizer.parameter_sets()?;
                (published.and_then(VideoParams::h264) != Some(p))
                    .then(|| VideoParams::H264(p.clone()))
            }
            VideoPipeline::H265 { depacketizer, .. } => {
                let p = depacketizer.parameter_sets()?;
                (published.and_then(VideoParams::h265) != Some(p))
                    .then(|| VideoParams::H265(p.clone()))
            }
        }
    }
}

/// Packetizes pictures of either codec into payloads of at most one size.
#[derive(Debug, Clone)]
pub struct VideoPacketizer {
    h264: h264::Packetizer,
    h265: h265::Packetizer,
}

impl VideoPacketizer {
    /// Payloads of at most `max_payload` bytes (at least 100).
    pub fn new(max_payload: usize) -> Self {
        VideoPacketizer {
            h264: h264::Packetizer::new(max_payload),
            h265: h265::Packetizer::new(max_payload),
        }
    }

    /// The largest payload produced.
    pub fn max_payload(&self) -> usize {
        self.h264.max_payload()
    }

    /// Appends the payloads of `au`, a picture of `codec`, to `out`, with
    /// `params` in front of a keyframe that lacks them (parameter sets of
    /// another codec are ignored).
    pub fn packetize(
        &mut self,
        codec: VideoCodec,
        au: &AccessUnit,
        params: Option<&VideoParams>,
        out: &mut Vec<Payload>,
    ) {
        match codec {
            VideoCodec::H264 => self
                .h264
                .packetize(au, params.and_then(VideoParams::h264), out),
            VideoCodec::H265 => self
                .h265
                .packetize(au, params.and_then(VideoParams::h265), out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names() {
        assert_eq!(h265_level_name(120), "L4");
        assert_eq!(h265_level_name(93), "L3.1");
        assert_eq!(h265_level_name(153), "L5.1");
    }

    #[test]
    fn encodings_round_trip() {
        for c in [VideoCodec::H264, VideoCodec::H265] {
            assert_eq!(VideoCodec::from_encoding(c.encoding()), Some(c));
        }
        assert_eq!(VideoCodec::from_encoding("h265"), Some(VideoCodec::H265));
        assert_eq!(VideoCodec::from_encoding("VP8"), None);
    }

    #[test]
    fn h265_fmtp_needing_donl_is_refused_and_bad_sprop_is_not() {
        let err =
            VideoParams::from_fmtp(VideoCodec::H265, Some("sprop-max-don-diff=2")).unwrap_err();
        assert!(err.contains("DONL"), "{err}");
        assert_eq!(
            VideoParams::from_fmtp(VideoCodec::H265, Some("sprop-vps=%%%")),
            Ok(None)
        );
        assert_eq!(VideoParams::from_fmtp(VideoCodec::H265, None), Ok(None));
    }
}
