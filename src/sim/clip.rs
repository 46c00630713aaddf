//! The embedded clip: an H.264 Annex B stream (`assets/sim-clip.h264`, made
//! by `scripts/make-sim-clip.sh`) parsed once into access units with
//! pre-packetized RTP payloads (RFC 6184), plus a precomputed PCMU beep
//! track (RFC 3551 section 4.5.14, G.711 μ-law).

use std::sync::{LazyLock, OnceLock};

use bytes::Bytes;

use crate::h264::packetizer::Payload;
use crate::h264::{nal_type, split_annex_b, AccessUnit, Packetizer, ParameterSets};

/// The clip bytes, embedded so the sim needs no files at run time.
static CLIP_H264: &[u8] = include_bytes!("../../assets/sim-clip.h264");

/// Frame rate the clip was encoded at and the sim paces it at.
pub const FPS: u32 = 25;

/// RTP clock rate of H.264 video (RFC 6184 section 8.2.1).
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
    /// Luma width in pixels, from the SPS.
    pub width: u32,
    /// Luma height in pixels, from the SPS (after cropping).
    pub height: u32,
    /// Frames per second the sim sends.
    pub fps: u32,
    /// Access units in one loop of the clip.
    pub frames: usize,
    /// Frames from one IDR to the next.
    pub gop: usize,
    /// Size of the embedded Annex B clip in bytes.
    pub bytes: usize,
    /// Average video bit rate in bits per second over one loop.
    pub bitrate: u64,
    /// The SPS and PPS the stream carries (also in the SDP).
    pub params: ParameterSets,
}

/// One access unit of the clip, ready to send.
#[derive(Debug)]
pub(crate) struct Frame {
    /// RTP payloads in order; the last one has the marker set.
    pub(crate) payloads: Vec<Payload>,
    /// True when the picture is an IDR.
    pub(crate) idr: bool,
}

/// The parsed clip shared by every session.
#[derive(Debug)]
pub(crate) struct Clip {
    /// Frames in decoding (= presentation, no B-frames) order.
    pub(crate) frames: Vec<Frame>,
    /// One second of PCMU packets (160 bytes each); repeats every second.
    pub(crate) audio: Vec<Bytes>,
    /// What tests and `probe` see.
    pub(crate) info: ClipInfo,
    /// `sprop-parameter-sets` for the SDP.
    pub(crate) sprop: String,
    /// `profile-level-id` for the SDP.
    pub(crate) profile_level_id: String,
    /// `frames` without in-band SPS/PPS, for `sprop_only`; made on first use.
    without_params: OnceLock<Vec<Frame>>,
}

/// The clip, parsed on first use.
pub(crate) fn clip() -> &'static Clip {
    static CLIP: LazyLock<Clip> = LazyLock::new(|| {
        // The clip is a build input checked by this module's tests; failing
        // here means the asset was replaced by something broken.
        Clip::parse(CLIP_H264).expect("embedded sim clip is a valid H.264 stream")
    });
    &CLIP
}

/// What the built-in simulated camera sends.
pub fn clip_info() -> ClipInfo {
    clip().info.clone()
}

/// Why a byte stream can't serve as the sim clip.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ClipError {
    /// The stream has no SPS or no PPS.
    #[error("clip has no SPS/PPS")]
    NoParameterSets,
    /// The SPS does not parse.
    #[error("clip SPS does not parse: {0}")]
    BadSps(String),
    /// The stream has no picture, or does not start with an IDR.
    #[error("clip does not start with an IDR")]
    NoLeadingIdr,
}

impl Clip {
    /// Parses an Annex B stream into access units and payloads.
    pub(crate) fn parse(data: &[u8]) -> Result<Clip, ClipError> {
        let aus = access_units(&Bytes::copy_from_slice(data));
        let first_of = |kind: u8| {
            aus.iter()
                .flatten()
                .find(|n| n.first().map(|b| b & 0x1f) == Some(kind))
                .cloned()
        };
        let (sps, pps) = (first_of(nal_type::SPS), first_of(nal_type::PPS));
        let (Some(sps), Some(pps)) = (sps, pps) else {
            return Err(ClipError::NoParameterSets);
        };
        let params = ParameterSets { sps, pps };
        let (width, height) = dimensions(&params.sps)?;

        let mut packetizer = Packetizer::new(MAX_PAYLOAD);
        let mut frames = Vec::with_capacity(aus.len());
        for (i, nals) in aus.into_iter().enumerate() {
            let au = AccessUnit {
                timestamp: (i as u32).wrapping_mul(VIDEO_TICKS_PER_FRAME),
                nals,
                damaged: false,
                loss_before: false,
            };
            let mut payloads = Vec::new();
            packetizer.packetize(&au, Some(&params), &mut payloads);
            frames.push(Frame {
                payloads,
                idr: au.is_idr(),
            });
        }
        if !frames.first().is_some_and(|f| f.idr) {
            return Err(ClipError::NoLeadingIdr);
        }
        let gop = frames
            .iter()
            .skip(1)
            .position(|f| f.idr)
            .map_or(frames.len(), |p| p + 1);
        let seconds = frames.len() as u64;
        let info = ClipInfo {
            width,
            height,
            fps: FPS,
            frames: frames.len(),
            gop,
            bytes: data.len(),
            bitrate: data.len() as u64 * 8 * u64::from(FPS) / seconds.max(1),
            params: params.clone(),
        };
        Ok(Clip {
            frames,
            audio: beep_second(),
            sprop: params.to_sprop(),
            without_params: OnceLock::new(),
            profile_level_id: params
                .profile_level_id()
                .unwrap_or_else(|| "42e01f".to_owned()),
            info,
        })
    }
}

impl Clip {
    /// The frames with (`in_band`) or without in-band SPS and PPS; without,
    /// a decoder needs the SDP's `sprop-parameter-sets`.
    pub(crate) fn frames(&self, in_band: bool) -> &[Frame] {
        if in_band {
            return &self.frames;
        }
        self.without_params.get_or_init(|| {
            self.frames
                .iter()
                .map(|f| Frame {
                    payloads: strip_parameter_sets(&f.payloads),
                    idr: f.idr,
                })
                .collect()
        })
    }
}

/// `payloads` without SPS/PPS: single NAL units of those types and STAP-As
/// made only of them are left out; the marker stays on the last payload.
fn strip_parameter_sets(payloads: &[Payload]) -> Vec<Payload> {
    let is_params = |n: &[u8]| {
        matches!(
            n.first().map(|b| b & 0x1f),
            Some(nal_type::SPS | nal_type::PPS)
        )
    };
    let mut out: Vec<Payload> = payloads
        .iter()
        .filter(|p| {
            let d = &p.data[..];
            match d.first().map(|b| b & 0x1f) {
                Some(nal_type::SPS | nal_type::PPS) => false,
                // STAP-A (RFC 6184 section 5.7.1): 16-bit size, NAL unit, ...
                Some(24) => {
                    let mut rest = &d[1..];
                    let mut only_params = true;
                    while rest.len() >= 2 {
                        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                        let Some(nal) = rest.get(2..2 + n) else { break };
                        only_params &= is_params(nal);
                        rest = &rest[2 + n..];
                    }
                    !only_params
                }
                _ => true,
            }
        })
        .cloned()
        .collect();
    let marker = payloads.last().is_some_and(|p| p.marker);
    if let Some(last) = out.last_mut() {
        last.marker = marker;
    }
    out
}

/// Groups the NAL units of an Annex B stream into access units.
fn access_units(data: &Bytes) -> Vec<Vec<Bytes>> {
    let mut aus: Vec<Vec<Bytes>> = Vec::new();
    let mut current: Vec<Bytes> = Vec::new();
    let mut current_has_vcl = false;
    for nal in split_annex_b(data) {
        let Some(&header) = nal.first() else { continue };
        let kind = header & 0x1f;
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

/// Width and height from an SPS NAL unit (with its header).
fn dimensions(sps: &[u8]) -> Result<(u32, u32), ClipError> {
    use h264_reader::nal::sps::SeqParameterSet;
    use h264_reader::rbsp::{decode_nal, BitReader};
    let rbsp = decode_nal(sps).map_err(|e| ClipError::BadSps(e.to_string()))?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
        .map_err(|e| ClipError::BadSps(format!("{e:?}")))?;
    sps.pixel_dimensions()
        .map_err(|e| ClipError::BadSps(format!("{e:?}")))
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
        let clip = clip();
        let info = &clip.info;
        assert_eq!((info.width, info.height, info.fps), (640, 360, 25));
        assert_eq!(info.frames, 100);
        assert_eq!(info.gop, 50);
        assert!(info.bytes < 1 << 20);
        assert!(clip.frames[0].idr && clip.frames[50].idr);
        assert_eq!(clip.frames.iter().filter(|f| f.idr).count(), 2);
        for f in &clip.frames {
            let (last, rest) = f.payloads.split_last().expect("frame has payloads");
            assert!(last.marker && rest.iter().all(|p| !p.marker));
            assert!(f.payloads.iter().all(|p| p.data.len() <= MAX_PAYLOAD));
        }
        assert_eq!(info.params.sps[0] & 0x1f, nal_type::SPS);
        assert_eq!(info.params.pps[0] & 0x1f, nal_type::PPS);
        assert_eq!(clip.profile_level_id.len(), 6);
        assert!(clip.sprop.contains(','));
    }

    #[test]
    fn frames_without_parameter_sets() {
        let clip = clip();
        let plain = clip.frames(false);
        assert_eq!(plain.len(), clip.frames.len());
        let kinds =
            |f: &Frame| -> Vec<u8> { f.payloads.iter().map(|p| p.data[0] & 0x1f).collect() };
        assert!(kinds(&clip.frames[0]).iter().any(|&k| k == 24 || k == 7));
        for (with, without) in clip.frames.iter().zip(plain) {
            assert_eq!(with.idr, without.idr);
            assert!(kinds(without).iter().all(|&k| k != 7 && k != 8 && k != 24));
            assert!(without.payloads.last().is_some_and(|p| p.marker));
            if !with.idr {
                assert_eq!(with.payloads, without.payloads);
            }
        }
        assert!(std::ptr::eq(clip.frames(false), plain));
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
        let mut data = Vec::new();
        for nal in nals {
            data.extend_from_slice(&[0, 0, 0, 1]);
            data.extend_from_slice(nal);
        }
        let aus = access_units(&Bytes::from(data));
        let sizes: Vec<usize> = aus.iter().map(Vec::len).collect();
        assert_eq!(sizes, [5, 2, 2]);
    }
}
