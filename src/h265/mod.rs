//! H.265 over RTP (RFC 7798): NAL unit headers, parameter sets from the SDP,
//! depacketizer, analyzer, repair gate and packetizer. Sans-IO.
//!
//! Access units, damage kinds and the gate's vocabulary are the H.264
//! core's ([`AccessUnit`], [`crate::h264::analyzer::Damage`],
//! [`crate::h264::repair`]), so one camera pipeline, hub and set of
//! metrics serve both codecs; what differs (RTP payload formats, NAL
//! headers, keyframe kinds, slice headers) lives here.
//!
//! Parameter sets are read with h264-reader's RBSP `BitReader` (already a
//! dependency: exp-Golomb and emulation prevention; H.265 shares both with
//! H.264, `ByteReader::skipping_bytes(2)` skips the 2-byte header) and not
//! with an HEVC crate, because none fits a parser fed by the network:
//! - `scuffle-h265` 0.2.2 parses the SPS only (no VPS, no PPS, whose
//!   `dependent_slice_segments_enabled_flag` and `num_extra_slice_header_bits`
//!   the slice header needs), and subtracts values read from the stream
//!   unchecked (`ctb_log2_size_y - min_tb_log2_size_y`): a crafted 25-byte
//!   SPS panics it ("attempt to subtract with overflow", tried) in debug
//!   and fuzz builds, and wraps silently in release. It would also bring
//!   seven more crates for a dozen fields.
//! - `hevc_parser` 0.6.12 parses VPS, SPS and PPS, but keeps the fields
//!   needed here `pub(crate)`, sizes a vector from an unbounded
//!   `num_short_term_ref_pic_sets` read from the stream, and returns
//!   `anyhow` errors.
//!
//! What is read is what the checks need, with the ranges H.265 section 7.4
//! gives: the SPS up to the coding block sizes (picture size in CTBs,
//! cropping, profile/tier/level), the PPS up to `tiles_enabled_flag`, the
//! VPS id, and slice segment headers up to `slice_type`.

pub mod analyzer;
pub mod depacketizer;
pub mod packetizer;
pub(crate) mod params;
pub mod repair;

use crate::codec_info::fmtp_param;
use std::num::NonZeroUsize;

use bytes::Bytes;
use h264_reader::rbsp::{BitRead, BitReader, ByteReader};

pub use crate::h264::AccessUnit;
pub use depacketizer::Depacketizer;
pub use packetizer::Packetizer;

/// NAL unit types used here (H.265 table 7-1, RFC 7798 section 4.4).
pub mod nal_type {
    pub const TRAIL_N: u8 = 0;
    pub const TRAIL_R: u8 = 1;
    pub const RADL_N: u8 = 6;
    pub const RADL_R: u8 = 7;
    pub const RASL_N: u8 = 8;
    pub const RASL_R: u8 = 9;
    pub const BLA_W_LP: u8 = 16;
    pub const BLA_W_RADL: u8 = 17;
    pub const BLA_N_LP: u8 = 18;
    pub const IDR_W_RADL: u8 = 19;
    pub const IDR_N_LP: u8 = 20;
    pub const CRA: u8 = 21;
    /// Last type of the IRAP range (`RSV_IRAP_VCL23`).
    pub const IRAP_LAST: u8 = 23;
    /// Last VCL type (`RSV_VCL31`).
    pub const VCL_LAST: u8 = 31;
    pub const VPS: u8 = 32;
    pub const SPS: u8 = 33;
    pub const PPS: u8 = 34;
    pub const AUD: u8 = 35;
    pub const PREFIX_SEI: u8 = 39;
    pub const SUFFIX_SEI: u8 = 40;
    /// Aggregation packet (RFC 7798 4.4.2).
    pub const AP: u8 = 48;
    /// Fragmentation unit (RFC 7798 4.4.3).
    pub const FU: u8 = 49;
    /// Payload content information (RFC 7798 4.4.4).
    pub const PACI: u8 = 50;
}

/// Errors of the H.265 layer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum H265Error {
    /// `sprop-vps`, `sprop-sps` or `sprop-pps` is not base64, or lacks the
    /// parameter set it names.
    #[error("bad sprop-vps/sps/pps: {0}")]
    BadSprop(String),
    /// The stream carries decoding order numbers (`sprop-max-don-diff` > 0,
    /// RFC 7798 7.1): its packets hold DONL/DOND fields and may come out of
    /// decoding order, which camgate does not reassemble.
    #[error("sprop-max-don-diff={0}: H.265 streams with DONL (interleaved decoding order) are not supported; configure the camera for sprop-max-don-diff=0")]
    DonlNotSupported(u32),
}

/// The 2-byte H.265 NAL unit header (H.265 7.3.1.2), also the RTP payload
/// header (RFC 7798 1.1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NalHeader {
    /// `forbidden_zero_bit`: set means the NAL unit is known to be damaged.
    pub forbidden: bool,
    /// `nal_unit_type`, 0..=63.
    pub nal_type: u8,
    /// `nuh_layer_id`, 0..=63; 0 for every single-layer stream.
    pub layer_id: u8,
    /// `nuh_temporal_id_plus1`, 0..=7; 0 is forbidden.
    pub tid_plus1: u8,
}

impl NalHeader {
    /// The header in the first two bytes of `nal`; `None` if shorter.
    pub fn parse(nal: &[u8]) -> Option<NalHeader> {
        let [b0, b1, ..] = *nal else {
            return None;
        };
        Some(NalHeader {
            forbidden: b0 & 0x80 != 0,
            nal_type: (b0 >> 1) & 0x3f,
            layer_id: ((b0 & 1) << 5) | (b1 >> 3),
            tid_plus1: b1 & 7,
        })
    }

    /// The two header bytes.
    pub fn to_bytes(self) -> [u8; 2] {
        [
            (u8::from(self.forbidden) << 7) | ((self.nal_type & 0x3f) << 1) | (self.layer_id >> 5),
            ((self.layer_id & 0x1f) << 3) | (self.tid_plus1 & 7),
        ]
    }

    /// Forbidden bit clear and a temporal id present: the least a NAL unit
    /// needs to be passed on.
    pub fn is_well_formed(self) -> bool {
        !self.forbidden && self.tid_plus1 != 0
    }

    /// A coded slice segment (types 0..=31).
    pub fn is_vcl(self) -> bool {
        self.nal_type <= nal_type::VCL_LAST
    }

    /// An IRAP picture's slice segment (IDR, CRA, BLA: types 16..=23).
    pub fn is_irap(self) -> bool {
        (nal_type::BLA_W_LP..=nal_type::IRAP_LAST).contains(&self.nal_type)
    }

    /// A RASL picture's slice segment (types 8 and 9).
    pub fn is_rasl(self) -> bool {
        matches!(self.nal_type, nal_type::RASL_N | nal_type::RASL_R)
    }
}

/// The H.265 header of a NAL unit held by an [`AccessUnit`]; `None` when it
/// is shorter than two bytes.
pub fn header(nal: &[u8]) -> Option<NalHeader> {
    NalHeader::parse(nal)
}

/// True when the access unit holds an IRAP slice segment with a
/// well-formed header: the H.265 keyframe test ([`AccessUnit::is_idr`] is
/// the H.264 one and never true for H.265).
pub fn is_irap(au: &AccessUnit) -> bool {
    au.nals
        .iter()
        .filter_map(|n| header(n))
        .any(|h| h.is_well_formed() && h.is_irap())
}

/// The VPS, SPS and PPS a decoder needs before the first IRAP picture.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ParameterSets {
    /// Video parameter set NAL unit, with its NAL header.
    pub vps: Bytes,
    /// Sequence parameter set NAL unit, with its NAL header.
    pub sps: Bytes,
    /// Picture parameter set NAL unit, with its NAL header.
    pub pps: Bytes,
}

/// The general profile, tier and level of an SPS (H.265 7.4.4), as the SDP
/// names them (RFC 7798 7.1: `profile-id`, `tier-flag`, `level-id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileTierLevel {
    /// `general_profile_space`: 0 for every profile defined so far.
    pub profile_space: u8,
    /// `general_tier_flag`: false Main tier, true High tier.
    pub tier_flag: bool,
    /// `general_profile_idc`: 1 Main, 2 Main 10, 3 Main Still Picture, ...
    pub profile_id: u8,
    /// `general_level_idc`: 30 times the level number (93 is level 3.1).
    pub level_id: u8,
}

impl ProfileTierLevel {
    /// The SDP fmtp parameters: `profile-space=..;` only when not 0, then
    /// `profile-id=..;tier-flag=..;level-id=..`.
    pub fn to_fmtp(&self) -> String {
        let space = if self.profile_space != 0 {
            format!("profile-space={};", self.profile_space)
        } else {
            String::new()
        };
        format!(
            "{space}profile-id={};tier-flag={};level-id={}",
            self.profile_id,
            u8::from(self.tier_flag),
            self.level_id
        )
    }
}

impl ParameterSets {
    /// Parses the SDP's `sprop-vps`, `sprop-sps` and `sprop-pps` values
    /// (each a comma-separated list of base64 NAL units, RFC 7798 7.1).
    /// The first NAL unit of the named type in each is kept, others are
    /// ignored. Padding-less base64 is accepted.
    pub fn from_sprop(vps: &str, sps: &str, pps: &str) -> Result<Self, H265Error> {
        Ok(ParameterSets {
            vps: first_of_type(vps, nal_type::VPS, "sprop-vps")?,
            sps: first_of_type(sps, nal_type::SPS, "sprop-sps")?,
            pps: first_of_type(pps, nal_type::PPS, "sprop-pps")?,
        })
    }

    /// Reads an SDP `a=fmtp` value (without the payload type): the
    /// parameter sets if `sprop-vps`, `sprop-sps` and `sprop-pps` are all
    /// there, `None` if none is. Refuses a stream that needs DONL
    /// ([`check_fmtp`]).
    pub fn from_fmtp(fmtp: &str) -> Result<Option<Self>, H265Error> {
        check_fmtp(fmtp)?;
        let (vps, sps, pps) = (
            fmtp_param(fmtp, "sprop-vps"),
            fmtp_param(fmtp, "sprop-sps"),
            fmtp_param(fmtp, "sprop-pps"),
        );
        match (vps, sps, pps) {
            (None, None, None) => Ok(None),
            (Some(v), Some(s), Some(p)) => Self::from_sprop(v, s, p).map(Some),
            _ => Err(H265Error::BadSprop(format!(
                "sprop-vps, sprop-sps and sprop-pps must come together: {fmtp:?}"
            ))),
        }
    }

    /// The `sprop-vps=..;sprop-sps=..;sprop-pps=..` fmtp parameters for an
    /// SDP we write.
    pub fn to_fmtp(&self) -> String {
        use base64::Engine as _;
        let b64 = &base64::engine::general_purpose::STANDARD;
        format!(
            "sprop-vps={};sprop-sps={};sprop-pps={}",
            b64.encode(&self.vps),
            b64.encode(&self.sps),
            b64.encode(&self.pps)
        )
    }

    /// The SPS's general profile, tier and level, if it is long enough.
    pub fn profile_tier_level(&self) -> Option<ProfileTierLevel> {
        let mut r = rbsp_reader(&self.sps);
        r.skip(8, "sps_video_parameter_set_id .. temporal_id_nesting_flag")
            .ok()?;
        let profile_space = r.read::<u8>(2, "general_profile_space").ok()?;
        let tier_flag = r.read_bool("general_tier_flag").ok()?;
        let profile_id = r.read::<u8>(5, "general_profile_idc").ok()?;
        r.skip(32 + 48, "compatibility and constraint flags").ok()?;
        let level_id = r.read::<u8>(8, "general_level_idc").ok()?;
        Some(ProfileTierLevel {
            profile_space,
            tier_flag,
            profile_id,
            level_id,
        })
    }
}

/// Refuses an fmtp that needs DONL: `sprop-max-don-diff` > 0 (RFC 7798
/// 7.1), or `sprop-depack-buf-nalus` > 0, which only such streams use.
pub fn check_fmtp(fmtp: &str) -> Result<(), H265Error> {
    for name in ["sprop-max-don-diff", "sprop-depack-buf-nalus"] {
        if let Some(v) = fmtp_param(fmtp, name) {
            // An unreadable value is taken as needing DONL: safer to refuse
            // than to misread every aggregation packet and fragment.
            let n = v.parse::<u32>().unwrap_or(u32::MAX);
            if n > 0 {
                return Err(H265Error::DonlNotSupported(n));
            }
        }
    }
    Ok(())
}

/// The first NAL unit of type `want` in a comma-separated base64 list.
fn first_of_type(value: &str, want: u8, what: &str) -> Result<Bytes, H265Error> {
    use base64::Engine as _;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let nal = engine
            .decode(part)
            .map_err(|e| H265Error::BadSprop(format!("{what} {part:?}: {e}")))?;
        if header(&nal).is_some_and(|h| h.is_well_formed() && h.nal_type == want) {
            return Ok(Bytes::from(nal));
        }
    }
    Err(H265Error::BadSprop(format!(
        "no NAL unit of type {want} in {what}={value:?}"
    )))
}

/// A bit reader over a NAL unit's RBSP: the 2-byte header skipped,
/// emulation prevention bytes removed.
pub(crate) fn rbsp_reader(nal: &[u8]) -> BitReader<ByteReader<&[u8]>> {
    let header = NonZeroUsize::new(2).expect("2 is not zero");
    BitReader::new(ByteReader::skipping_bytes(nal, header))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// RTP timestamp step of the clips (25 fps at 90 kHz).
    pub(crate) const STEP: u32 = 3600;

    /// A clip from `tests/fixtures/h265/` as access units, one every
    /// [`STEP`] in decoding order. A picture starts at a slice segment with
    /// `first_slice_segment_in_pic_flag` (the top bit after the header), or
    /// at a non-VCL NAL unit before its first slice segment.
    pub(crate) fn clip(name: &str) -> Vec<AccessUnit> {
        let path = format!("{}/tests/fixtures/h265/{name}", env!("CARGO_MANIFEST_DIR"));
        let data = std::fs::read(&path).expect("the clips are part of the repository");
        let mut aus = Vec::new();
        let mut cur: Vec<Bytes> = Vec::new();
        let mut has_slice = false;
        for nal in crate::h264::split_annex_b(&data) {
            let h = header(nal).expect("x265 writes whole headers");
            let starts_picture = if h.is_vcl() {
                nal.get(2).is_some_and(|b| b & 0x80 != 0)
            } else {
                !matches!(h.nal_type, nal_type::SUFFIX_SEI)
            };
            if has_slice && starts_picture {
                aus.push(au(aus.len() as u32 * STEP, std::mem::take(&mut cur)));
                has_slice = false;
            }
            has_slice |= h.is_vcl();
            cur.push(Bytes::copy_from_slice(nal));
        }
        if !cur.is_empty() {
            aus.push(au(aus.len() as u32 * STEP, cur));
        }
        aus
    }

    pub(crate) fn au(timestamp: u32, nals: Vec<Bytes>) -> AccessUnit {
        AccessUnit {
            timestamp,
            nals,
            damaged: false,
            loss_before: false,
        }
    }

    /// The first VPS, SPS and PPS of a clip.
    pub(crate) fn clip_params(aus: &[AccessUnit]) -> ParameterSets {
        let find = |t| {
            aus[0]
                .nals
                .iter()
                .find(|n| header(n).map(|h| h.nal_type) == Some(t))
                .expect("the clips start with VPS, SPS and PPS")
                .clone()
        };
        ParameterSets {
            vps: find(nal_type::VPS),
            sps: find(nal_type::SPS),
            pps: find(nal_type::PPS),
        }
    }

    /// The access unit without its VPS, SPS and PPS (a camera that sends
    /// them only in the SDP).
    pub(crate) fn without_params(au: &AccessUnit) -> AccessUnit {
        let mut au = au.clone();
        au.nals.retain(|n| {
            !matches!(
                header(n).map(|h| h.nal_type),
                Some(nal_type::VPS | nal_type::SPS | nal_type::PPS)
            )
        });
        au
    }

    #[test]
    fn nal_header_round_trip() {
        let h = NalHeader::parse(&[0x40, 0x01]).unwrap();
        assert_eq!(
            h,
            NalHeader {
                forbidden: false,
                nal_type: nal_type::VPS,
                layer_id: 0,
                tid_plus1: 1
            }
        );
        assert!(h.is_well_formed() && !h.is_vcl() && !h.is_irap());
        for b in [[0x26, 0x01], [0x2a, 0x01], [0x20, 0x01], [0x28, 0x01]] {
            assert!(NalHeader::parse(&b).unwrap().is_irap(), "{b:x?}");
        }
        assert!(NalHeader::parse(&[0x10, 0x01]).unwrap().is_rasl());
        assert!(!NalHeader::parse(&[0x02, 0x01]).unwrap().is_irap());
        let odd = NalHeader::parse(&[0xff, 0xf8]).unwrap();
        assert!(odd.forbidden && odd.layer_id == 63 && odd.tid_plus1 == 0);
        assert!(!odd.is_well_formed());
        for b in 0..=u16::MAX {
            let bytes = b.to_be_bytes();
            assert_eq!(NalHeader::parse(&bytes).unwrap().to_bytes(), bytes);
        }
        assert_eq!(NalHeader::parse(&[0x40]), None);
    }

    #[test]
    fn sprop_and_profile() {
        let aus = clip("p.h265");
        let p = clip_params(&aus);
        let fmtp = format!("profile-id=1;{}", p.to_fmtp());
        let q = ParameterSets::from_fmtp(&fmtp).unwrap().unwrap();
        assert_eq!(p, q);
        let ptl = p.profile_tier_level().unwrap();
        assert_eq!(
            (ptl.profile_space, ptl.profile_id, ptl.tier_flag),
            (0, 1, false)
        );
        // x265 picks level 2.1 for 640x360 at 25 fps (ffprobe agrees).
        assert_eq!(ptl.level_id, 63);
        assert_eq!(ptl.to_fmtp(), "profile-id=1;tier-flag=0;level-id=63");
        // Padding-less, spaces, extra NAL units before the right one.
        use base64::Engine as _;
        let b64 = &base64::engine::general_purpose::STANDARD_NO_PAD;
        let q = ParameterSets::from_sprop(
            &format!(" {} ", b64.encode(&p.vps)),
            &format!("{},{}", b64.encode(&p.pps), b64.encode(&p.sps)),
            &b64.encode(&p.pps),
        )
        .unwrap();
        assert_eq!(p, q);
        assert_eq!(ParameterSets::from_fmtp("profile-id=1"), Ok(None));
    }

    #[test]
    fn sprop_errors() {
        let aus = clip("p.h265");
        let p = clip_params(&aus);
        use base64::Engine as _;
        let b64 = |b: &Bytes| base64::engine::general_purpose::STANDARD.encode(b);
        let (v, s, pp) = (b64(&p.vps), b64(&p.sps), b64(&p.pps));
        for (vps, sps, pps) in [
            ("", s.as_str(), pp.as_str()),
            (v.as_str(), pp.as_str(), pp.as_str()),
            (v.as_str(), s.as_str(), "!!"),
        ] {
            assert!(matches!(
                ParameterSets::from_sprop(vps, sps, pps),
                Err(H265Error::BadSprop(_))
            ));
        }
        assert!(matches!(
            ParameterSets::from_fmtp(&format!("sprop-vps={v};sprop-sps={s}")),
            Err(H265Error::BadSprop(_))
        ));
        assert_eq!(ParameterSets::default().profile_tier_level(), None);
    }

    #[test]
    fn donl_refused_with_a_clear_error() {
        assert_eq!(check_fmtp("profile-id=1;sprop-max-don-diff=0"), Ok(()));
        let err = check_fmtp("profile-id=1; sprop-max-don-diff=2").unwrap_err();
        assert_eq!(err, H265Error::DonlNotSupported(2));
        assert!(err.to_string().contains("sprop-max-don-diff=2"));
        assert!(err.to_string().contains("DONL"));
        assert_eq!(
            check_fmtp("sprop-depack-buf-nalus=4"),
            Err(H265Error::DonlNotSupported(4))
        );
        assert_eq!(
            check_fmtp("sprop-max-don-diff=x"),
            Err(H265Error::DonlNotSupported(u32::MAX))
        );
        assert!(matches!(
            ParameterSets::from_fmtp("sprop-max-don-diff=1"),
            Err(H265Error::DonlNotSupported(1))
        ));
    }

    #[test]
    fn clips_are_what_the_tests_expect() {
        let p = clip("p.h265");
        assert_eq!(p.len(), 50);
        let irap: Vec<usize> = (0..p.len()).filter(|&i| is_irap(&p[i])).collect();
        assert_eq!(irap, [0, 25]);
        let b = clip("b.h265");
        assert_eq!(b.len(), 40);
        assert!(b
            .iter()
            .flat_map(|a| &a.nals)
            .any(|n| header(n).is_some_and(|h| h.is_rasl())));
    }
}
