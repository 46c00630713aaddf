//! The embedded clips: an H.264 Annex B stream (`assets/sim-clip.h264`, made
//! by `scripts/make-sim-clip.sh`, sent as RFC 6184) and an H.265 one
//! (`assets/sim-clip.h265`, made by `scripts/make-sim-clip-h265.sh`, sent
//! as RFC 7798), each parsed once into access units with pre-packetized RTP
//! payloads, plus a precomputed PCMU beep track (RFC 3551 section 4.5.14,
//! G.711 μ-law).

use std::sync::{LazyLock, OnceLock};

use bytes::Bytes;

use crate::camera::codec::{VideoCodec, VideoParams};
use crate::h264::packetizer::Payload;
use crate::h264::{split_annex_b, AccessUnit};
use crate::{h264, h265};

/// The H.264 clip, embedded so the sim needs no files at run time.
static CLIP_H264: &[u8] = include_bytes!("../../assets/sim-clip.h264");

/// The H.265 clip: the same picture, size, rate and GOP, 4 slice segments
/// per picture.
static CLIP_H265: &[u8] = include_bytes!("../../assets/sim-clip.h265");

/// Frame rate the clips were encoded at and the sim paces them at.
pub const FPS: u32 = 25;

/// RTP clock rate of H.264 and H.265 video (RFC 6184 section 8.2.1, RFC
/// 7798 section 7.1).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

/// RTP timestamp increment per video frame.
pub const VIDEO_TICKS_PER_FRAME: u32 = VIDEO_CLOCK_RATE / FPS;

/// Largest RTP payload the sim sends: a 1500-byte MTU minus IP, UDP, RTP.
pub const MAX_PAYLOAD: usize = 1400;

/// PCMU clock rate and sample rate (RFC 3551 table 4).
pub const AUDIO_CLOCK_RATE: u32 = 8_000;

/// Samples (and bytes) per PCMU packet: 20 ms at 8 kHz.
pub const AUDIO_SAMPLES_PER_PACKET: usize = 160;

/// PCMU packets per video frame (40 ms of video, 20 ms of audio each).
pub const AUDIO_PACKETS_PER_FRAME: u64 = 2;

/// What the sim sends, for tests and `camgate probe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClipInfo {
    /// The clip's video codec.
    pub codec: VideoCodec,
    /// Luma width in pixels, from the SPS.
    pub width: u32,
    /// Luma height in pixels, from the SPS (after cropping).
    pub height: u32,
    /// Frames per second the sim sends.
    pub fps: u32,
    /// Access units in one loop of the clip.
    pub frames: usize,
    /// Frames from one keyframe (H.264 IDR, H.265 IRAP) to the next.
    pub gop: usize,
    /// Size of the embedded Annex B clip in bytes.
    pub bytes: usize,
    /// Average video bit rate in bits per second over one loop.
    pub bitrate: u64,
    /// The parameter sets the stream carries (also in the SDP).
    pub params: VideoParams,
}

/// One access unit of the clip, ready to send.
#[derive(Debug)]
pub(crate) struct Frame {
    /// RTP payloads in order; the last one has the marker set.
    pub(crate) payloads: Vec<Payload>,
    /// True when the picture is a keyframe: an IDR (H.264), an IRAP
    /// (H.265).
    pub(crate) keyframe: bool,
}

/// A parsed clip shared by every session of its codec.
#[derive(Debug)]
pub(crate) struct Clip {
    /// Frames in decoding (= presentation, no B-frames) order.
    pub(crate) frames: Vec<Frame>,
    /// One second of PCMU packets (160 bytes each); repeats every second.
    pub(crate) audio: Vec<Bytes>,
    /// What tests and `probe` see.
    pub(crate) info: ClipInfo,
    /// The SDP `a=fmtp` parameters of the video (after the payload type),
    /// [`VideoParams::fmtp`]: `packetization-mode`, `profile-level-id` and
    /// `sprop-parameter-sets` (H.264); `profile-id`, `tier-flag`,
    /// `level-id` and `sprop-vps/sps/pps` (H.265).
    pub(crate) fmtp: String,
    /// `frames` without in-band parameter sets, for `sprop_only`; made on
    /// first use.
    without_params: OnceLock<Vec<Frame>>,
}

/// The clip of `codec`, parsed on first use.
pub(crate) fn clip(codec: VideoCodec) -> &'static Clip {
    // The clips are build inputs checked by this module's tests; failing
    // here means an asset was replaced by something broken.
    static H264: LazyLock<Clip> = LazyLock::new(|| {
        Clip::parse(CLIP_H264, VideoCodec::H264).expect("embedded sim clip is a valid H.264 stream")
    });
    static H265: LazyLock<Clip> = LazyLock::new(|| {
        Clip::parse(CLIP_H265, VideoCodec::H265).expect("embedded sim clip is a valid H.265 stream")
    });
    match codec {
        VideoCodec::H264 => &H264,
        VideoCodec::H265 => &H265,
    }
}

/// What a simulated camera sends by default (the H.264 clip).
pub fn clip_info() -> ClipInfo {
    clip_info_of(VideoCodec::default())
}

/// What a simulated camera sending `codec` sends.
pub fn clip_info_of(codec: VideoCodec) -> ClipInfo {
    clip(codec).info.clone()
}

/// Why a byte stream can't serve as a sim clip.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ClipError {
    /// The stream lacks a parameter set (H.264: SPS or PPS; H.265: VPS,
    /// SPS or PPS).
    #[error("clip lacks its parameter sets")]
    NoParameterSets,
    /// The SPS does not parse.
    #[error("clip SPS does not parse: {0}")]
    BadSps(String),
    /// The stream has no picture, or does not start with a keyframe.
    #[error("clip does not start with a keyframe")]
    NoLeadingKeyframe,
}

impl Clip {
    /// Parses an Annex B stream of `codec` into access units and payloads.
    pub(crate) fn parse(data: &[u8], codec: VideoCodec) -> Result<Clip, ClipError> {
        let data = Bytes::copy_from_slice(data);
        let aus = match codec {
            VideoCodec::H264 => access_units_h264(&data),
            VideoCodec::H265 => access_units_h265(&data),
        };
        let params = parameter_sets(codec, &aus).ok_or(ClipError::NoParameterSets)?;
        let (width, height) = params
            .resolution()
            .ok_or_else(|| ClipError::BadSps(format!("no picture size in {codec} SPS")))?;
        let frames = packetize(codec, aus, &params);
        if !frames.first().is_some_and(|f| f.keyframe) {
            return Err(ClipError::NoLeadingKeyframe);
        }
        let gop = frames
            .iter()
            .skip(1)
            .position(|f| f.keyframe)
            .map_or(frames.len(), |p| p + 1);
        let seconds = frames.len() as u64;
        let info = ClipInfo {
            codec,
            width,
            height,
            fps: FPS,
            frames: frames.len(),
            gop,
            bytes: data.len(),
            bitrate: data.len() as u64 * 8 * u64::from(FPS) / seconds.max(1),
            params,
        };
        Ok(Clip {
            frames,
            audio: beep_second(),
            fmtp: info.params.fmtp(),
            info,
            without_params: OnceLock::new(),
        })
    }

    /// The clip's video codec.
    pub(crate) fn codec(&self) -> VideoCodec {
        self.info.codec
    }

    /// The frames with (`in_band`) or without in-band parameter sets;
    /// without, a decoder needs the SDP's `sprop-*` parameters.
    pub(crate) fn frames(&self, in_band: bool) -> &[Frame] {
        if in_band {
            return &self.frames;
        }
        self.without_params.get_or_init(|| {
            self.frames
                .iter()
                .map(|f| Frame {
                    payloads: strip_parameter_sets(self.codec(), &f.payloads),
                    keyframe: f.keyframe,
                })
                .collect()
        })
    }
}

/// The first parameter set of each kind in `aus`, if there is one of each.
fn parameter_sets(codec: VideoCodec, aus: &[Vec<Bytes>]) -> Option<VideoParams> {
    let first_of = |kind: u8| {
        aus.iter()
            .flatten()
            .find(|n| nal_type(codec, n) == Some(kind))
            .cloned()
    };
    Some(match codec {
        VideoCodec::H264 => VideoParams::H264(h264::ParameterSets {
            sps: first_of(h264::nal_type::SPS)?,
            pps: first_of(h264::nal_type::PPS)?,
        }),
        VideoCodec::H265 => VideoParams::H265(h265::ParameterSets {
            vps: first_of(h265::nal_type::VPS)?,
            sps: first_of(h265::nal_type::SPS)?,
            pps: first_of(h265::nal_type::PPS)?,
        }),
    })
}

/// The clip's frames: RFC 6184 single NAL units, STAP-A and FU-A (H.264);
/// RFC 7798 single NAL unit packets, APs and FUs without DONL (H.265). The
/// parameter sets go before each keyframe, aggregated.
fn packetize(codec: VideoCodec, aus: Vec<Vec<Bytes>>, params: &VideoParams) -> Vec<Frame> {
    let mut h264 = h264::Packetizer::new(MAX_PAYLOAD);
    let mut h265 = h265::Packetizer::new(MAX_PAYLOAD);
    aus.into_iter()
        .enumerate()
        .map(|(i, nals)| {
            let au = access_unit(i, nals);
            let mut payloads = Vec::new();
            match params {
                VideoParams::H264(p) => h264.packetize(&au, Some(p), &mut payloads),
                VideoParams::H265(p) => h265.packetize(&au, Some(p), &mut payloads),
            }
            Frame {
                payloads,
                keyframe: codec.is_keyframe(&au),
            }
        })
        .collect()
}

/// The `i`th access unit of a clip, with its RTP timestamp from 0.
fn access_unit(i: usize, nals: Vec<Bytes>) -> AccessUnit {
    AccessUnit {
        timestamp: (i as u32).wrapping_mul(VIDEO_TICKS_PER_FRAME),
        nals,
        damaged: false,
        loss_before: false,
    }
}

/// The NAL unit type of `nal` (with its header) in `codec`'s numbering;
/// also the payload type of an RTP payload.
fn nal_type(codec: VideoCodec, nal: &[u8]) -> Option<u8> {
    match codec {
        VideoCodec::H264 => nal.first().map(|b| b & 0x1f),
        VideoCodec::H265 => h265::header(nal).map(|h| h.nal_type),
    }
}

/// True when `nal` (with its header) is a parameter set of `codec`: SPS
/// or PPS (H.264); VPS, SPS or PPS (H.265).
fn is_parameter_set(codec: VideoCodec, nal: &[u8]) -> bool {
    match codec {
        VideoCodec::H264 => matches!(
            nal_type(codec, nal),
            Some(h264::nal_type::SPS | h264::nal_type::PPS)
        ),
        VideoCodec::H265 => matches!(
            nal_type(codec, nal),
            Some(h265::nal_type::VPS | h265::nal_type::SPS | h265::nal_type::PPS)
        ),
    }
}

/// The length of the payload header when `payload` is an aggregation
/// packet of `codec` (STAP-A, RFC 6184 section 5.7.1: 1 byte; AP, RFC 7798
/// section 4.4.2: 2 bytes), each followed by 16-bit sizes and NAL units.
fn aggregation_header(codec: VideoCodec, payload: &[u8]) -> Option<usize> {
    match (codec, nal_type(codec, payload)?) {
        (VideoCodec::H264, 24) => Some(1),
        (VideoCodec::H265, h265::nal_type::AP) => Some(2),
        _ => None,
    }
}

/// `payloads` without parameter sets: single NAL units of those types and
/// aggregation packets made only of them are left out; the marker stays
/// on the last payload.
fn strip_parameter_sets(codec: VideoCodec, payloads: &[Payload]) -> Vec<Payload> {
    let mut out: Vec<Payload> = payloads
        .iter()
        .filter(|p| {
            let d = &p.data[..];
            let Some(skip) = aggregation_header(codec, d) else {
                return !is_parameter_set(codec, d);
            };
            let mut rest = &d[skip..];
            let mut only_params = true;
            while rest.len() >= 2 {
                let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(nal) = rest.get(2..2 + n) else { break };
                only_params &= is_parameter_set(codec, nal);
                rest = &rest[2 + n..];
            }
            !only_params
        })
        .cloned()
        .collect();
    let marker = payloads.last().is_some_and(|p| p.marker);
    if let Some(last) = out.last_mut() {
        last.marker = marker;
    }
    out
}

/// Groups the NAL units of an H.264 Annex B stream into access units.
fn access_units_h264(data: &Bytes) -> Vec<Vec<Bytes>> {
    use h264::nal_type;
    group_access_units(data, |nal| {
        let kind = nal.first()? & 0x1f;
        let vcl = matches!(kind, nal_type::SLICE | nal_type::IDR);
        // H.264 7.4.1.2.3: an AUD, SPS, PPS or SEI after a picture's slices,
        // or a slice with first_mb_in_slice == 0 (a ue(v) whose first bit is
        // 1), begins the next access unit.
        let starts_au = if vcl {
            nal.get(1).is_some_and(|b| b & 0x80 != 0)
        } else {
            matches!(
                kind,
                nal_type::AUD | nal_type::SPS | nal_type::PPS | nal_type::SEI
            )
        };
        Some((vcl, starts_au))
    })
}

/// Groups the NAL units of an H.265 Annex B stream into access units.
fn access_units_h265(data: &Bytes) -> Vec<Vec<Bytes>> {
    use h265::nal_type;
    group_access_units(data, |nal| {
        let h = h265::header(nal)?;
        // H.265 7.4.2.4.4: an AUD, VPS, SPS, PPS, prefix SEI or a type
        // 41..=44 or 48..=55 after a picture's slice segments, or a slice
        // segment with first_slice_segment_in_pic_flag (the first bit after
        // the 2-byte header), begins the next access unit.
        let starts_au = if h.is_vcl() {
            nal.get(2).is_some_and(|b| b & 0x80 != 0)
        } else {
            matches!(h.nal_type,
                nal_type::VPS..=nal_type::AUD | nal_type::PREFIX_SEI | 41..=44 | 48..=55)
        };
        Some((h.is_vcl(), starts_au))
    })
}

/// Groups the NAL units of an Annex B stream into access units; `kind`
/// says of a NAL unit whether it is a coded slice and whether it begins an
/// access unit when one with slices is open (`None`: too short, dropped).
fn group_access_units(
    data: &Bytes,
    kind: impl Fn(&[u8]) -> Option<(bool, bool)>,
) -> Vec<Vec<Bytes>> {
    let mut aus: Vec<Vec<Bytes>> = Vec::new();
    let mut current: Vec<Bytes> = Vec::new();
    let mut current_has_vcl = false;
    for nal in split_annex_b(data) {
        let Some((vcl, starts_au)) = kind(nal) else {
            continue;
        };
        if starts_au && current_has_vcl {
            aus.push(std::mem::take(&mut current));
            current_has_vcl = false;
        }
        current_has_vcl |= vcl;
        current.push(data.slice_ref(nal));
    }
    if current_has_vcl {
        aus.push(current);
    }
    aus
}

/// One second of PCMU: a 1 kHz tone for the first 100 ms, then silence, in
/// 20 ms packets.
fn beep_second() -> Vec<Bytes> {
    const BEEP_SAMPLES: usize = AUDIO_CLOCK_RATE as usize / 10;
    const AMPLITUDE: f64 = 0.3 * 32767.0;
    let samples: Vec<u8> = (0..AUDIO_CLOCK_RATE as usize)
        .map(|i| {
            let s = if i < BEEP_SAMPLES {
                let t = i as f64 / f64::from(AUDIO_CLOCK_RATE);
                (AMPLITUDE * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
            } else {
                0
            };
            linear_to_ulaw(s)
        })
        .collect();
    samples
        .chunks(AUDIO_SAMPLES_PER_PACKET)
        .map(Bytes::copy_from_slice)
        .collect()
}

/// G.711 μ-law encoding of one 16-bit linear sample.
pub(crate) fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = s.min(CLIP) + BIAS;
    // Segment: position of the highest set bit above bit 7.
    let exponent = (31 - (s as u32).leading_zeros()).saturating_sub(7).min(7) as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes μ-law (G.711) for the round-trip check.
    fn ulaw_to_linear(u: u8) -> i16 {
        let u = !u;
        let sign = u & 0x80;
        let exponent = i32::from((u >> 4) & 0x07);
        let mantissa = i32::from(u & 0x0f);
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
        if sign != 0 {
            -magnitude as i16
        } else {
            magnitude as i16
        }
    }

    #[test]
    fn ulaw_known_values_and_round_trip() {
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_ulaw(-1), 0x7f);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        for s in (-32000i32..32000).step_by(37) {
            let back = i32::from(ulaw_to_linear(linear_to_ulaw(s as i16)));
            // μ-law keeps about 4 bits of mantissa: error under 1/16 + bias.
            assert!((back - s).abs() <= s.abs() / 16 + 16, "{s} -> {back}");
        }
    }

    #[test]
    fn audio_is_one_second_with_a_short_beep() {
        let audio = beep_second();
        assert_eq!(audio.len(), 50);
        assert!(audio.iter().all(|p| p.len() == AUDIO_SAMPLES_PER_PACKET));
        assert!(audio[..5].iter().all(|p| p.iter().any(|&b| b != 0xff)));
        assert!(audio[5..].iter().all(|p| p.iter().all(|&b| b == 0xff)));
    }

    #[test]
    fn embedded_clip_matches_the_script() {
        let clip = clip(VideoCodec::H264);
        let info = &clip.info;
        assert_eq!(info.codec, VideoCodec::H264);
        assert_eq!((info.width, info.height, info.fps), (640, 360, 25));
        assert_eq!(info.frames, 100);
        assert_eq!(info.gop, 50);
        assert!(info.bytes < 1 << 20);
        assert!(clip.frames[0].keyframe && clip.frames[50].keyframe);
        assert_eq!(clip.frames.iter().filter(|f| f.keyframe).count(), 2);
        for f in &clip.frames {
            let (last, rest) = f.payloads.split_last().expect("frame has payloads");
            assert!(last.marker && rest.iter().all(|p| !p.marker));
            assert!(f.payloads.iter().all(|p| p.data.len() <= MAX_PAYLOAD));
        }
        let VideoParams::H264(params) = &info.params else {
            panic!("H.264 clip with {:?}", info.params);
        };
        assert_eq!(params.sps[0] & 0x1f, h264::nal_type::SPS);
        assert_eq!(params.pps[0] & 0x1f, h264::nal_type::PPS);
        let pli = params.profile_level_id().expect("profile-level-id");
        assert_eq!(pli.len(), 6);
        assert_eq!(
            clip.fmtp,
            format!(
                "packetization-mode=1;profile-level-id={pli};sprop-parameter-sets={}",
                params.to_sprop()
            )
        );
        assert!(clip.fmtp.contains(','));
        assert_eq!(clip_info(), *info);
    }

    #[test]
    fn embedded_h265_clip_matches_its_script() {
        let clip = clip(VideoCodec::H265);
        let info = &clip.info;
        assert_eq!(info.codec, VideoCodec::H265);
        assert_eq!((info.width, info.height, info.fps), (640, 360, 25));
        assert_eq!((info.frames, info.gop), (100, 50));
        assert!(info.bytes < 1 << 20 && info.bitrate > 1_000_000);
        let keyframes: Vec<usize> = (0..clip.frames.len())
            .filter(|&i| clip.frames[i].keyframe)
            .collect();
        assert_eq!(keyframes, [0, 50]);
        for f in &clip.frames {
            let (last, rest) = f.payloads.split_last().expect("frame has payloads");
            assert!(last.marker && rest.iter().all(|p| !p.marker));
            assert!(f.payloads.iter().all(|p| p.data.len() <= MAX_PAYLOAD));
        }
        let VideoParams::H265(params) = &info.params else {
            panic!("H.265 clip with {:?}", info.params);
        };
        let kind = |n: &Bytes| h265::header(n).map(|h| h.nal_type);
        assert_eq!(kind(&params.vps), Some(h265::nal_type::VPS));
        assert_eq!(kind(&params.sps), Some(h265::nal_type::SPS));
        assert_eq!(kind(&params.pps), Some(h265::nal_type::PPS));
        // The SDP's fmtp gives the same parameter sets back; Main profile,
        // Main tier, the level x265 chose (2.1).
        let from_sdp = h265::ParameterSets::from_fmtp(&clip.fmtp)
            .expect("fmtp parses")
            .expect("fmtp has sprop-vps/sps/pps");
        assert_eq!(&from_sdp, params);
        assert!(
            clip.fmtp
                .starts_with("profile-id=1;tier-flag=0;level-id=63;sprop-vps="),
            "{}",
            clip.fmtp
        );
        assert_eq!(clip_info_of(VideoCodec::H265), *info);
    }

    /// Every payload of the clip through camgate's own RFC 7798
    /// depacketizer and H.265 analyzer: clean pictures of 4 slice segments
    /// each, IRAPs with VPS/SPS/PPS at 0 and 50, no B-slices.
    #[test]
    fn h265_clip_is_clean_multi_slice_to_camgates_analyzer() {
        use crate::rtp::RtpPacket;
        let clip = clip(VideoCodec::H265);
        let mut depacketizer = h265::Depacketizer::new(None);
        let mut analyzer = h265::analyzer::Analyzer::new(None);
        let mut seq = 0u16;
        let mut analyses = Vec::new();
        for (i, f) in clip.frames.iter().enumerate() {
            let ts = (i as u32) * VIDEO_TICKS_PER_FRAME;
            for p in &f.payloads {
                let mut raw = Vec::new();
                RtpPacket::write(&mut raw, p.marker, 96, seq, ts, 1, &p.data);
                seq = seq.wrapping_add(1);
                depacketizer.push(&RtpPacket::parse(Bytes::from(raw)).expect("RTP parses"));
                while let Some(au) = depacketizer.pull() {
                    assert_eq!(h265::is_irap(&au), f.keyframe, "frame {i}");
                    analyses.push(analyzer.analyze(&au));
                }
            }
        }
        assert_eq!(analyses.len(), clip.frames.len());
        for (i, a) in analyses.iter().enumerate() {
            assert!(a.damage.is_empty(), "frame {i}: {:?}", a.damage);
            assert_eq!(a.slices, 4, "frame {i}");
            assert_eq!(a.irap, i % 50 == 0, "frame {i}");
            assert_eq!(a.has_parameter_sets, a.irap, "frame {i}");
            assert!(!a.b_frame, "frame {i}");
            assert_eq!(a.resolution, Some((640, 360)));
        }
        // Closed GOPs: the keyframes are IDRs, not CRAs.
        assert!(analyses.iter().all(|a| !a.may_have_rasl()));
    }

    #[test]
    fn frames_without_parameter_sets() {
        for codec in [VideoCodec::H264, VideoCodec::H265] {
            let clip = clip(codec);
            // Parameter sets and aggregation packets (all the clip's hold
            // parameter sets) as RTP payload types.
            let (params, aggregate): (&[u8], u8) = match codec {
                VideoCodec::H264 => (&[7, 8], 24),
                VideoCodec::H265 => (&[32, 33, 34], 48),
            };
            let kinds = |f: &Frame| -> Vec<u8> {
                f.payloads
                    .iter()
                    .map(|p| match codec {
                        VideoCodec::H264 => p.data[0] & 0x1f,
                        VideoCodec::H265 => (p.data[0] >> 1) & 0x3f,
                    })
                    .collect()
            };
            let plain = clip.frames(false);
            assert_eq!(plain.len(), clip.frames.len());
            assert!(kinds(&clip.frames[0])
                .iter()
                .any(|k| *k == aggregate || params.contains(k)));
            for (with, without) in clip.frames.iter().zip(plain) {
                assert_eq!(with.keyframe, without.keyframe);
                assert!(kinds(without)
                    .iter()
                    .all(|k| *k != aggregate && !params.contains(k)));
                assert!(without.payloads.last().is_some_and(|p| p.marker));
                if with.keyframe {
                    assert!(without.payloads.len() < with.payloads.len());
                } else {
                    assert_eq!(with.payloads, without.payloads);
                }
            }
            assert!(std::ptr::eq(clip.frames(false), plain));
        }
    }

    #[test]
    fn access_units_split_on_first_mb_zero() {
        // SPS, PPS, SEI, IDR(first_mb 0), IDR(first_mb 1), P(0), P(1), SPS, IDR(0).
        let nals: [&[u8]; 9] = [
            &[0x67, 0x4d, 0x40],
            &[0x68, 0xee],
            &[0x06, 0x05],
            &[0x65, 0x88, 1],
            &[0x65, 0x40, 2],
            &[0x41, 0x9a, 3],
            &[0x41, 0x40, 4],
            &[0x67, 0x4d, 0x40],
            &[0x65, 0x88, 5],
        ];
        let aus = access_units_h264(&annex_b(&nals));
        let sizes: Vec<usize> = aus.iter().map(Vec::len).collect();
        assert_eq!(sizes, [5, 2, 2]);
    }

    #[test]
    fn h265_access_units_split_on_first_slice_segment() {
        // VPS, SPS, PPS, prefix SEI, IDR(first), IDR, suffix SEI,
        // TRAIL_R(first), TRAIL_R, AUD, TRAIL_R(first), a 1-byte NAL unit
        // (dropped), CRA(first).
        let nals: [&[u8]; 13] = [
            &[0x40, 0x01, 0x0c],
            &[0x42, 0x01, 0x01],
            &[0x44, 0x01, 0xc1],
            &[0x4e, 0x01, 0x05],
            &[0x28, 0x01, 0xaf, 1],
            &[0x28, 0x01, 0x20, 2],
            &[0x50, 0x01, 0x84],
            &[0x02, 0x01, 0xd0, 3],
            &[0x02, 0x01, 0x40, 4],
            &[0x46, 0x01, 0x50],
            &[0x02, 0x01, 0xd0, 5],
            &[0x02],
            &[0x2a, 0x01, 0xac, 6],
        ];
        let aus = access_units_h265(&annex_b(&nals));
        let sizes: Vec<usize> = aus.iter().map(Vec::len).collect();
        assert_eq!(sizes, [7, 2, 2, 1]);
        assert_eq!(aus[3][0][0], 0x2a);
    }

    /// NAL units as an Annex B stream.
    fn annex_b(nals: &[&[u8]]) -> Bytes {
        let mut data = Vec::new();
        for nal in nals {
            data.extend_from_slice(&[0, 0, 0, 1]);
            data.extend_from_slice(nal);
        }
        Bytes::from(data)
    }

    #[test]
    fn clips_that_cannot_serve_are_refused() {
        let idr_only = annex_b(&[&[0x65, 0x88, 1]]);
        assert_eq!(
            Clip::parse(&idr_only, VideoCodec::H264).unwrap_err(),
            ClipError::NoParameterSets
        );
        let h265 = CLIP_H265;
        assert_eq!(
            Clip::parse(h265, VideoCodec::H264).unwrap_err(),
            ClipError::NoParameterSets
        );
        // The H.265 clip's parameter sets, then its pictures from the
        // second on: no leading keyframe.
        let aus = access_units_h265(&Bytes::from_static(h265));
        let mut nals: Vec<&[u8]> = aus[0]
            .iter()
            .filter(|n| is_parameter_set(VideoCodec::H265, n))
            .map(|n| &n[..])
            .collect();
        assert_eq!(nals.len(), 3);
        nals.extend(aus[1..].iter().flatten().map(|n| &n[..]));
        let cut = annex_b(&nals);
        assert_eq!(
            Clip::parse(&cut, VideoCodec::H265).unwrap_err(),
            ClipError::NoLeadingKeyframe
        );
    }
}
