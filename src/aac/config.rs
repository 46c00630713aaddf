//! What an AAC stream is, from the camera's SDP: the AudioSpecificConfig
//! (ISO/IEC 14496-3 1.6.2.1) in `mpeg4-generic`'s `config=` (RFC 3640
//! section 4.1), the StreamMuxConfig (14496-3 1.7.3) in `MP4A-LATM`'s
//! `config=` (RFC 6416 section 7.3), and the AU-header layout of RFC 3640
//! section 3.2.1.

use super::bits::Bits;
use super::AacError;
use crate::codec_info::fmtp_param;

/// Sampling frequencies by `samplingFrequencyIndex` (14496-3 Table 1.18).
const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// Audio object types that carry a GASpecificConfig (14496-3 1.6.2.1).
const GA_OBJECT_TYPES: [u8; 12] = [1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23];

/// An MPEG-4 AudioSpecificConfig, read as far as decoding needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// `audioObjectType` of the core coder (2 is AAC LC); for HE-AAC
    /// with explicit signalling, the type under the SBR/PS extension.
    pub object_type: u8,
    /// Sampling rate of the core coder, Hz.
    pub sample_rate: u32,
    /// `channelConfiguration` (1 mono, 2 stereo, ... 7; never 0 here:
    /// a program config element is not supported).
    pub channels: u8,
    /// Samples per channel in one access unit: 1024, or 960 with
    /// `frameLengthFlag`.
    pub frame_length: u16,
    /// The output sampling rate of an SBR extension (HE-AAC, explicit
    /// signalling), if any.
    pub sbr_sample_rate: Option<u32>,
    /// The config as bytes, starting on a byte boundary (what a decoder
    /// takes as its codec-specific data).
    pub bytes: Vec<u8>,
}

impl AudioSpecificConfig {
    /// Reads a config from its own bytes (mpeg4-generic `config=`); bits
    /// after it (a backward-compatible SBR sync extension) are ignored.
    pub fn parse(data: &[u8]) -> Result<Self, AacError> {
        let mut b = Bits::new(data);
        let (mut asc, bits) = read_asc(&mut b)?;
        asc.bytes = Bits::new(data).copy(0, bits).ok_or(AacError::Truncated)?;
        Ok(asc)
    }

    /// A short name for messages, e.g. `AAC LC 48000 Hz stereo`.
    pub fn describe(&self) -> String {
        let name = match (self.object_type, self.sbr_sample_rate) {
            (2, Some(_)) => "HE-AAC".to_string(),
            (1, _) => "AAC Main".to_string(),
            (2, None) => "AAC LC".to_string(),
            (4, _) => "AAC LTP".to_string(),
            (23, _) => "AAC LD".to_string(),
            (t, _) => format!("MPEG-4 audio object type {t}"),
        };
        let channels = match self.channels {
            1 => "mono".to_string(),
            2 => "stereo".to_string(),
            n => format!("{n} channels"),
        };
        format!("{name} {} Hz {channels}", self.sample_rate)
    }
}

/// `GetAudioObjectType()` (14496-3 1.6.2.1.1).
fn object_type(b: &mut Bits<'_>) -> Option<u8> {
    let t = b.read(5)? as u8;
    if t == 31 {
        Some(32 + b.read(6)? as u8)
    } else {
        Some(t)
    }
}

/// `samplingFrequencyIndex` and its escape.
fn sample_rate(b: &mut Bits<'_>) -> Result<u32, AacError> {
    let index = b.read(4).ok_or(AacError::Truncated)?;
    if index == 0xf {
        return b.read(24).ok_or(AacError::Truncated);
    }
    SAMPLE_RATES
        .get(index as usize)
        .copied()
        .ok_or(AacError::Unsupported(format!(
            "reserved sampling frequency index {index}"
        )))
}

/// Reads an AudioSpecificConfig at the reader's position; returns it
/// (without `bytes`) and its length in bits.
pub(crate) fn read_asc(b: &mut Bits<'_>) -> Result<(AudioSpecificConfig, usize), AacError> {
    let start = b.position();
    let mut ot = object_type(b).ok_or(AacError::Truncated)?;
    let rate = sample_rate(b)?;
    let channels = b.read(4).ok_or(AacError::Truncated)? as u8;
    let mut sbr_sample_rate = None;
    if ot == 5 || ot == 29 {
        sbr_sample_rate = Some(sample_rate(b)?);
        ot = object_type(b).ok_or(AacError::Truncated)?;
        if ot == 22 {
            b.skip(4).ok_or(AacError::Truncated)?;
        }
    }
    if !GA_OBJECT_TYPES.contains(&ot) {
        return Err(AacError::Unsupported(format!(
            "MPEG-4 audio object type {ot} (not an AAC general audio coder)"
        )));
    }
    // GASpecificConfig (14496-3 4.4.1).
    let frame_length = if b.bool().ok_or(AacError::Truncated)? {
        960
    } else {
        1024
    };
    if b.bool().ok_or(AacError::Truncated)? {
        // coreCoderDelay
        b.skip(14).ok_or(AacError::Truncated)?;
    }
    let extension = b.bool().ok_or(AacError::Truncated)?;
    if channels == 0 {
        return Err(AacError::Unsupported(
            "channelConfiguration 0 (a program config element)".into(),
        ));
    }
    if ot == 6 || ot == 20 {
        b.skip(3).ok_or(AacError::Truncated)?;
    }
    if extension {
        if ot == 22 {
            b.skip(16).ok_or(AacError::Truncated)?;
        }
        if matches!(ot, 17 | 19 | 20 | 23) {
            b.skip(3).ok_or(AacError::Truncated)?;
        }
        // extensionFlag3
        b.skip(1).ok_or(AacError::Truncated)?;
    }
    if ot == 17 || (19..=27).contains(&ot) {
        // epConfig
        let ep = b.read(2).ok_or(AacError::Truncated)?;
        if ep == 2 || ep == 3 {
            return Err(AacError::Unsupported(format!(
                "error protection config {ep}"
            )));
        }
    }
    if rate == 0 {
        return Err(AacError::Unsupported("a sampling rate of 0 Hz".into()));
    }
    Ok((
        AudioSpecificConfig {
            object_type: ot,
            sample_rate: rate,
            channels,
            frame_length,
            sbr_sample_rate,
            bytes: Vec::new(),
        },
        b.position() - start,
    ))
}

/// A StreamMuxConfig with one program of one layer, the only shape cameras
/// send (RFC 6416 section 6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMuxConfig {
    /// `audioMuxVersion` (0 or 1).
    pub version: u8,
    /// `numSubFrames`: each audioMuxElement holds this many plus one
    /// access units.
    pub sub_frames: u8,
    /// The one stream's config.
    pub asc: AudioSpecificConfig,
    /// `otherDataLenBits` when other data follows the payloads, else 0.
    pub other_data_bits: u32,
    /// Whether a CRC byte ends the config.
    pub crc: bool,
}

/// `LatmGetValue()` (14496-3 1.7.3).
fn latm_value(b: &mut Bits<'_>) -> Option<u32> {
    let bytes = b.read(2)?;
    let mut v: u32 = 0;
    for _ in 0..=bytes {
        v = (v << 8) | b.read(8)?;
    }
    Some(v)
}

impl StreamMuxConfig {
    /// Reads a StreamMuxConfig from its own bytes (`config=` of MP4A-LATM).
    pub fn parse(data: &[u8]) -> Result<Self, AacError> {
        Self::read(&mut Bits::new(data))
    }

    /// Reads a StreamMuxConfig at the reader's position (also in band,
    /// inside an audioMuxElement).
    pub(crate) fn read(b: &mut Bits<'_>) -> Result<Self, AacError> {
        let t = AacError::Truncated;
        let version = b.read(1).ok_or(t.clone())? as u8;
        if version == 1 && b.bool().ok_or(t.clone())? {
            return Err(AacError::Unsupported("audioMuxVersionA 1".into()));
        }
        if version == 1 {
            // taraBufferFullness
            latm_value(b).ok_or(t.clone())?;
        }
        // allStreamsSameTimeFraming
        let same_framing = b.bool().ok_or(t.clone())?;
        let sub_frames = b.read(6).ok_or(t.clone())? as u8;
        let programs = b.read(4).ok_or(t.clone())?;
        let layers = b.read(3).ok_or(t.clone())?;
        if programs != 0 || layers != 0 || !same_framing {
            return Err(AacError::Unsupported(format!(
                "a LATM multiplex of {} programs and {} layers{}",
                programs + 1,
                layers + 1,
                if same_framing {
                    ""
                } else {
                    " with separate time framing"
                }
            )));
        }
        let asc = if version == 0 {
            let start = b.position();
            let (mut asc, bits) = read_asc(b)?;
            asc.bytes = b.copy(start, bits).ok_or(t.clone())?;
            asc
        } else {
            let len = latm_value(b).ok_or(t.clone())? as usize;
            let start = b.position();
            let mut inner = b.clone();
            let (mut asc, bits) = read_asc(&mut inner)?;
            if bits > len {
                return Err(AacError::Malformed(format!(
                    "ascLen {len} bits is shorter than the config it holds ({bits} bits)"
                )));
            }
            asc.bytes = b.copy(start, len).ok_or(t.clone())?;
            b.skip(len).ok_or(t.clone())?;
            asc
        };
        if b.left() < 8 && b.clone().read(b.left() as u32) == Some(0) {
            // GStreamer's rtpmp4apay ends its config= right after the
            // AudioSpecificConfig: the defaults of a single AAC stream.
            return Ok(StreamMuxConfig {
                version,
                sub_frames,
                asc,
                other_data_bits: 0,
                crc: false,
            });
        }
        let frame_length_type = b.read(3).ok_or(t.clone())?;
        if frame_length_type != 0 {
            return Err(AacError::Unsupported(format!(
                "LATM frameLengthType {frame_length_type}"
            )));
        }
        // latmBufferFullness
        b.skip(8).ok_or(t.clone())?;
        let mut other_data_bits = 0;
        if b.bool().ok_or(t.clone())? {
            if version == 1 {
                other_data_bits = latm_value(b).ok_or(t.clone())?;
            } else {
                loop {
                    let more = b.bool().ok_or(t.clone())?;
                    let v = b.read(8).ok_or(t.clone())?;
                    other_data_bits = other_data_bits
                        .checked_mul(256)
                        .and_then(|x| x.checked_add(v))
                        .ok_or_else(|| AacError::Malformed("otherDataLenBits overflows".into()))?;
                    if !more {
                        break;
                    }
                }
            }
        }
        let crc = b.bool().ok_or(t.clone())?;
        if crc {
            b.skip(8).ok_or(t)?;
        }
        Ok(StreamMuxConfig {
            version,
            sub_frames,
            asc,
            other_data_bits,
            crc,
        })
    }
}

/// Which fields an RFC 3640 AU header has, and their widths in bits
/// (section 3.2.1; the fmtp parameters of section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuHeaderLayout {
    /// `sizeLength`: AU-size.
    pub size: u8,
    /// `indexLength`: AU-Index (first header of a packet).
    pub index: u8,
    /// `indexDeltaLength`: AU-Index-delta (the other headers).
    pub index_delta: u8,
    /// `CTSDeltaLength`: CTS-flag and CTS-delta.
    pub cts_delta: u8,
    /// `DTSDeltaLength`: DTS-flag and DTS-delta.
    pub dts_delta: u8,
    /// `randomAccessIndication`: RAP-flag.
    pub random_access: bool,
    /// `streamStateIndication`: Stream-state.
    pub stream_state: u8,
    /// `auxiliaryDataSizeLength`: the auxiliary section's size field.
    pub auxiliary_size: u8,
}

impl AuHeaderLayout {
    /// Whether packets start with an AU-headers section at all.
    pub fn has_headers(&self) -> bool {
        self.size > 0
            || self.index > 0
            || self.index_delta > 0
            || self.cts_delta > 0
            || self.dts_delta > 0
            || self.random_access
            || self.stream_state > 0
    }
}

/// How the RTP payloads of an AAC stream are framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// `mpeg4-generic` (RFC 3640) with this AU-header layout.
    Generic(AuHeaderLayout),
    /// `MP4A-LATM` (RFC 6416). `config` is the SDP's StreamMuxConfig; with
    /// `cpresent`, each audioMuxElement may carry its own.
    Latm {
        cpresent: bool,
        config: Option<StreamMuxConfig>,
    },
}

/// An AAC stream as the camera's SDP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacFormat {
    /// Payload framing.
    pub framing: Framing,
    /// The decoder config, when the SDP gives it (LATM with `cpresent=1`
    /// may give it in band only).
    pub config: Option<AudioSpecificConfig>,
    /// The RTP clock rate, Hz.
    pub clock_rate: u32,
}

fn hex(s: &str) -> Result<Vec<u8>, AacError> {
    let bad = || AacError::Malformed(format!("config={s:?} is not hexadecimal"));
    if s.len() % 2 != 0 || !s.is_ascii() {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| bad()))
        .collect()
}

impl AacFormat {
    /// Whether camgate reads this RTP encoding name as AAC.
    pub fn is_aac(encoding: &str) -> bool {
        encoding.eq_ignore_ascii_case("MPEG4-GENERIC") || encoding.eq_ignore_ascii_case("MP4A-LATM")
    }

    /// The format of an `a=rtpmap` encoding, clock rate and `a=fmtp` line.
    ///
    /// Tolerated on purpose: `mode=AAC-hbr` (or `AAC-lbr`) without the
    /// lengths it implies gets them (13/3/3, or 6/2/2), since cameras
    /// leave them out; `cpresent` absent means 1, as RFC 6416 says.
    pub fn from_sdp(encoding: &str, clock_rate: u32, fmtp: Option<&str>) -> Result<Self, AacError> {
        let fmtp = fmtp.unwrap_or("");
        let param = |k: &str| fmtp_param(fmtp, k);
        let number = |k: &str| -> Result<u8, AacError> {
            match param(k) {
                None => Ok(0),
                Some(v) => v
                    .parse::<u8>()
                    .ok()
                    .filter(|n| *n <= 32)
                    .ok_or_else(|| AacError::Malformed(format!("{k}={v:?}"))),
            }
        };
        if clock_rate == 0 {
            return Err(AacError::Malformed("an RTP clock rate of 0".into()));
        }
        if encoding.eq_ignore_ascii_case("MPEG4-GENERIC") {
            let mode = param("mode").unwrap_or("");
            let mut layout = AuHeaderLayout {
                size: number("sizeLength")?,
                index: number("indexLength")?,
                index_delta: number("indexDeltaLength")?,
                cts_delta: number("CTSDeltaLength")?,
                dts_delta: number("DTSDeltaLength")?,
                random_access: number("randomAccessIndication")? == 1,
                stream_state: number("streamStateIndication")?,
                auxiliary_size: number("auxiliaryDataSizeLength")?,
            };
            if !layout.has_headers() {
                if mode.eq_ignore_ascii_case("AAC-hbr") {
                    (layout.size, layout.index, layout.index_delta) = (13, 3, 3);
                } else if mode.eq_ignore_ascii_case("AAC-lbr") {
                    (layout.size, layout.index, layout.index_delta) = (6, 2, 2);
                }
            }
            if !mode.is_empty()
                && !["AAC-hbr", "AAC-lbr", "generic"]
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(mode))
            {
                return Err(AacError::Unsupported(format!("mpeg4-generic mode={mode}")));
            }
            let config = param("config")
                .ok_or_else(|| AacError::Malformed("mpeg4-generic without config=".into()))
                .and_then(|c| AudioSpecificConfig::parse(&hex(c)?))?;
            return Ok(AacFormat {
                framing: Framing::Generic(layout),
                config: Some(config),
                clock_rate,
            });
        }
        if encoding.eq_ignore_ascii_case("MP4A-LATM") {
            let cpresent = param("cpresent").is_none_or(|v| v != "0");
            let config = match param("config") {
                Some(c) => Some(StreamMuxConfig::parse(&hex(c)?)?),
                None if cpresent => None,
                None => {
                    return Err(AacError::Malformed(
                        "MP4A-LATM with cpresent=0 and no config=".into(),
                    ))
                }
            };
            return Ok(AacFormat {
                config: config.as_ref().map(|c| c.asc.clone()),
                framing: Framing::Latm { cpresent, config },
                clock_rate,
            });
        }
        Err(AacError::Unsupported(format!("{encoding} is not AAC")))
    }

    /// RTP clock ticks of one access unit of `config`.
    pub fn au_ticks(&self, config: &AudioSpecificConfig) -> u32 {
        let ticks = u64::from(config.frame_length) * u64::from(self.clock_rate)
            / u64::from(config.sample_rate.max(1));
        ticks.clamp(1, u64::from(u32::MAX / 64)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_common_audio_specific_configs() {
        // AAC LC, 48 kHz, mono (GStreamer's voaacenc, most cameras).
        let c = AudioSpecificConfig::parse(&[0x11, 0x88]).unwrap();
        assert_eq!(
            (c.object_type, c.sample_rate, c.channels, c.frame_length),
            (2, 48_000, 1, 1024)
        );
        assert_eq!(c.bytes, [0x11, 0x88]);
        assert_eq!(c.describe(), "AAC LC 48000 Hz mono");
        // AAC LC 44.1 kHz stereo.
        let c = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!((c.sample_rate, c.channels), (44_100, 2));
        // AAC LC 16 kHz mono with a trailing SBR sync extension (ignored).
        let c = AudioSpecificConfig::parse(&[0x14, 0x08, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!((c.sample_rate, c.channels, c.bytes.len()), (16_000, 1, 2));
        // HE-AAC explicit: object type 5, 24 kHz core, 48 kHz SBR, then LC.
        let c = AudioSpecificConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(
            (c.object_type, c.sample_rate, c.sbr_sample_rate),
            (2, 24_000, Some(48_000))
        );
        // Explicit frequency (escape 0xf).
        let c = AudioSpecificConfig::parse(&[0x17, 0x80, 0x3e, 0x80, 0x08]).unwrap();
        assert_eq!((c.sample_rate, c.channels), (32_000, 1));
    }

    #[test]
    fn refuses_what_it_cannot_decode() {
        assert_eq!(
            AudioSpecificConfig::parse(&[0x11]),
            Err(AacError::Truncated)
        );
        assert!(matches!(
            AudioSpecificConfig::parse(&[0x11, 0x80]),
            Err(AacError::Unsupported(m)) if m.contains("program config")
        ));
        // ELD (object type 39) is not a GA coder.
        assert!(matches!(
            AudioSpecificConfig::parse(&[0xf8, 0xe6, 0x20, 0x00]),
            Err(AacError::Unsupported(m)) if m.contains("39")
        ));
        // Reserved frequency index 13.
        assert!(matches!(
            AudioSpecificConfig::parse(&[0x16, 0x88]),
            Err(AacError::Unsupported(_))
        ));
    }

    #[test]
    fn reads_latm_stream_mux_configs() {
        // ffmpeg's RTP muxer, AAC LC 48 kHz mono: the whole config.
        let c = StreamMuxConfig::parse(&hex("400023103fc0").unwrap()).unwrap();
        assert_eq!((c.version, c.sub_frames, c.crc), (0, 0, false));
        assert_eq!((c.asc.sample_rate, c.asc.channels), (48_000, 1));
        assert_eq!(c.asc.bytes, [0x11, 0x88]);
        // GStreamer's rtpmp4apay stops after the AudioSpecificConfig.
        let g = StreamMuxConfig::parse(&hex("40002310").unwrap()).unwrap();
        assert_eq!(g, c);
        // 24 kHz stereo, two access units per element, with a CRC.
        let c = StreamMuxConfig::parse(&hex("410026203fd5a0").unwrap()).unwrap();
        assert_eq!(
            (c.sub_frames, c.asc.sample_rate, c.asc.channels, c.crc),
            (1, 24_000, 2, true)
        );
        assert!(matches!(
            StreamMuxConfig::parse(&hex("410026207fc0").unwrap()),
            Err(AacError::Unsupported(m)) if m.contains("frameLengthType 1")
        ));
        assert!(StreamMuxConfig::parse(&hex("4000").unwrap()).is_err());
        // Two programs.
        assert!(matches!(
            StreamMuxConfig::parse(&hex("40042310").unwrap()),
            Err(AacError::Unsupported(_))
        ));
    }

    #[test]
    fn formats_from_camera_sdps() {
        // Hikvision / Dahua / GStreamer: AAC-hbr with every length given.
        let f = AacFormat::from_sdp(
            "MPEG4-GENERIC",
            16_000,
            Some("streamtype=5;profile-level-id=15;mode=AAC-hbr;config=1408;sizelength=13;indexlength=3;indexdeltalength=3;Profile=1;"),
        )
        .unwrap();
        let Framing::Generic(l) = f.framing else {
            panic!("{f:?}")
        };
        assert_eq!((l.size, l.index, l.index_delta), (13, 3, 3));
        let c = f.config.clone().unwrap();
        assert_eq!(c.sample_rate, 16_000);
        assert_eq!(f.au_ticks(&c), 1024);
        // The lengths left out: implied by the mode.
        let f = AacFormat::from_sdp("mpeg4-generic", 48_000, Some("mode=AAC-hbr; config=1188"))
            .unwrap();
        assert_eq!(
            f.framing,
            Framing::Generic(AuHeaderLayout {
                size: 13,
                index: 3,
                index_delta: 3,
                ..Default::default()
            })
        );
        // LATM with the config out of band.
        let f = AacFormat::from_sdp(
            "MP4A-LATM",
            48_000,
            Some("profile-level-id=1;cpresent=0;config=40002310"),
        )
        .unwrap();
        assert!(matches!(
            f.framing,
            Framing::Latm {
                cpresent: false,
                config: Some(_)
            }
        ));
        assert_eq!(f.config.unwrap().channels, 1);
        // LATM in band only.
        let f = AacFormat::from_sdp("MP4A-LATM", 44_100, None).unwrap();
        assert_eq!(
            f.framing,
            Framing::Latm {
                cpresent: true,
                config: None
            }
        );
        // HE-AAC: two 1024-sample core frames' worth of ticks at the SBR rate.
        let f = AacFormat::from_sdp(
            "MPEG4-GENERIC",
            48_000,
            Some("mode=AAC-hbr;config=2b118800"),
        )
        .unwrap();
        assert_eq!(f.au_ticks(f.config.as_ref().unwrap()), 2048);
        for (enc, fmtp) in [
            ("MPEG4-GENERIC", "mode=AAC-hbr"),
            ("MPEG4-GENERIC", "mode=AAC-hbr;config=11g8"),
            ("MPEG4-GENERIC", "mode=CELP-cbr;config=1188"),
            ("MPEG4-GENERIC", "mode=AAC-hbr;config=1188;sizelength=99"),
            ("MP4A-LATM", "cpresent=0"),
            ("PCMU", ""),
        ] {
            assert!(
                AacFormat::from_sdp(enc, 48_000, Some(fmtp)).is_err(),
                "{enc} {fmtp}"
            );
        }
        assert!(AacFormat::from_sdp("MPEG4-GENERIC", 0, Some("config=1188")).is_err());
        assert!(AacFormat::is_aac("mp4a-latm") && !AacFormat::is_aac("PCMA"));
    }
}
