//! H.264 over RTP (RFC 6184): access units, parameter sets, depacketizer and
//! packetizer. Sans-IO.

pub mod analyzer;
pub mod depacketizer;
pub mod packetizer;
pub mod repair;

use bytes::Bytes;

pub use depacketizer::Depacketizer;
pub use packetizer::Packetizer;

/// NAL unit types used here (H.264 table 7-1, RFC 6184 table 1).
pub mod nal_type {
    pub const SLICE: u8 = 1;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
    pub const STAP_A: u8 = 24;
    pub const FU_A: u8 = 28;
}

/// Errors of the H.264 layer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum H264Error {
    /// `sprop-parameter-sets` is not base64 or lacks an SPS or PPS.
    #[error("bad sprop-parameter-sets: {0}")]
    BadSprop(String),
}

/// One coded picture: the NAL units that share an RTP timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessUnit {
    /// RTP timestamp (90 kHz) of every packet of the picture.
    pub timestamp: u32,
    /// NAL units in decoding order, each starting with its 1-byte NAL
    /// header, without Annex B start codes.
    pub nals: Vec<Bytes>,
    /// True when packets were lost inside this picture or its RTP payload
    /// was malformed (missing FU-A start or end, bad STAP-A): the NAL units
    /// are what could be recovered and may not decode.
    pub damaged: bool,
    /// True when packets were lost between the previous access unit and
    /// this one (a sequence gap at the boundary).
    pub loss_before: bool,
}

impl AccessUnit {
    /// True when the picture holds an IDR slice (a NAL unit of type 5 whose
    /// forbidden_zero_bit is clear: one with it set is invalid, not a
    /// keyframe, as the analyzer judges it too).
    pub fn is_idr(&self) -> bool {
        self.nals.iter().any(|n| {
            n.first()
                .is_some_and(|b| b & 0x80 == 0 && b & 0x1f == nal_type::IDR)
        })
    }

    /// Total payload bytes of all NAL units.
    pub fn len_bytes(&self) -> usize {
        self.nals.iter().map(|n| n.len()).sum()
    }
}

/// The SPS and PPS a decoder needs before the first IDR.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ParameterSets {
    /// Sequence parameter set NAL unit, with its NAL header.
    pub sps: Bytes,
    /// Picture parameter set NAL unit, with its NAL header.
    pub pps: Bytes,
}

impl ParameterSets {
    /// Parses an SDP `sprop-parameter-sets` value (comma-separated base64
    /// NAL units, RFC 6184 section 8.1). The first SPS and first PPS are
    /// kept; other NAL units are ignored. Padding-less base64 is accepted.
    pub fn from_sprop(value: &str) -> Result<Self, H264Error> {
        use base64::Engine as _;
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let mut sps = None;
        let mut pps = None;
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let nal = engine
                .decode(part)
                .map_err(|e| H264Error::BadSprop(format!("{part:?}: {e}")))?;
            match nal.first().map(|b| b & 0x1f) {
                Some(nal_type::SPS) if sps.is_none() => sps = Some(Bytes::from(nal)),
                Some(nal_type::PPS) if pps.is_none() => pps = Some(Bytes::from(nal)),
                _ => {}
            }
        }
        match (sps, pps) {
            (Some(sps), Some(pps)) => Ok(ParameterSets { sps, pps }),
            (None, _) => Err(H264Error::BadSprop(format!("no SPS in {value:?}"))),
            (_, None) => Err(H264Error::BadSprop(format!("no PPS in {value:?}"))),
        }
    }

    /// The `sprop-parameter-sets` value for an SDP we write.
    pub fn to_sprop(&self) -> String {
        use base64::Engine as _;
        let b64 = &base64::engine::general_purpose::STANDARD;
        format!("{},{}", b64.encode(&self.sps), b64.encode(&self.pps))
    }

    /// The `profile-level-id` (6 lowercase hex digits: profile_idc,
    /// constraint flags, level_idc) from the SPS, if it is long enough.
    pub fn profile_level_id(&self) -> Option<String> {
        let b = self.sps.get(1..4)?;
        Some(format!("{:02x}{:02x}{:02x}", b[0], b[1], b[2]))
    }
}

/// Splits an Annex B byte stream (start codes `00 00 01` / `00 00 00 01`)
/// into NAL units without start codes. Never panics.
///
/// Bytes before the first start code are ignored; trailing zero bytes of
/// each NAL unit (`trailing_zero_8bits`, or the first byte of a 4-byte
/// start code) are removed; empty NAL units are skipped.
pub fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i + 2] > 1 {
            // No start code can begin at i, i+1 or i+2 ending here.
            i += 3;
            continue;
        }
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                push_trimmed(&mut nals, &data[s..i]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push_trimmed(&mut nals, &data[s..]);
    }
    nals
}

fn push_trimmed<'a>(nals: &mut Vec<&'a [u8]>, nal: &'a [u8]) {
    let end = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    if end > 0 {
        nals.push(&nal[..end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPROP: &str = "Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==";

    /// Found by the h264_analyzer fuzz target: a type-5 NAL unit with the
    /// forbidden bit set counted as a keyframe for consumers but not for
    /// the analyzer.
    #[test]
    fn forbidden_bit_is_not_an_idr() {
        let au = |header: u8| AccessUnit {
            timestamp: 0,
            nals: vec![Bytes::from(vec![header, 0x88])],
            damaged: false,
            loss_before: false,
        };
        assert!(au(0x65).is_idr());
        assert!(!au(0xe5).is_idr());
        assert!(!au(0x41).is_idr());
    }

    #[test]
    fn sprop_round_trip() {
        let p = ParameterSets::from_sprop(SPROP).unwrap();
        assert_eq!(p.sps[0] & 0x1f, nal_type::SPS);
        assert_eq!(&p.pps[..], &[0x68, 0xcb, 0x8c, 0xb2]);
        assert_eq!(p.to_sprop(), SPROP);
        assert_eq!(p.profile_level_id().as_deref(), Some("42c01e"));
        // Unpadded base64, spaces, extra NAL units.
        let q = ParameterSets::from_sprop(" aMuMsg , Z0LAHtkDxWhAAAADAEAAAAwDxYuS,BgUB ").unwrap();
        assert_eq!(p, q);
    }

    #[test]
    fn sprop_errors() {
        assert!(matches!(
            ParameterSets::from_sprop(""),
            Err(H264Error::BadSprop(_))
        ));
        assert!(matches!(
            ParameterSets::from_sprop("aMuMsg=="),
            Err(H264Error::BadSprop(_))
        ));
        assert!(matches!(
            ParameterSets::from_sprop("Z0LAHtkDxWhAAAADAEAAAAwDxYuS"),
            Err(H264Error::BadSprop(_))
        ));
        assert!(matches!(
            ParameterSets::from_sprop("!!,??"),
            Err(H264Error::BadSprop(_))
        ));
        let short = ParameterSets {
            sps: Bytes::from_static(&[0x67, 0x42]),
            pps: Bytes::new(),
        };
        assert_eq!(short.profile_level_id(), None);
    }

    #[test]
    fn annex_b() {
        let data = [
            0xff, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 0, 0, 3, 1, 0, 0,
            1, 0, 0, 0, 1, 0x41, 0, 0,
        ];
        let nals = split_annex_b(&data);
        assert_eq!(
            nals,
            vec![
                &[0x67, 1, 2][..],
                &[0x68, 3][..],
                &[0x65, 0, 0, 3, 1][..],
                &[0x41][..]
            ]
        );
        assert!(split_annex_b(&[]).is_empty());
        assert!(split_annex_b(&[0, 0]).is_empty());
        assert!(split_annex_b(&[0, 0, 1]).is_empty());
        assert!(split_annex_b(&[1, 2, 3, 4]).is_empty());
        assert_eq!(split_annex_b(&[0, 0, 1, 9]), vec![&[9][..]]);
        assert_eq!(
            split_annex_b(&[0, 0, 1, 0, 0, 1, 9, 0, 0, 0, 0]),
            vec![&[9][..]]
        );
    }

    proptest::proptest! {
        #[test]
        fn annex_b_never_panics(data in proptest::collection::vec(0u8..3, 0..64)) {
            for nal in split_annex_b(&data) {
                proptest::prop_assert!(!nal.is_empty());
                proptest::prop_assert!(*nal.last().unwrap() != 0);
                proptest::prop_assert!(!nal.windows(3).any(|w| w == [0, 0, 1]));
            }
        }

        #[test]
        fn annex_b_round_trip(nals in proptest::collection::vec(
            proptest::collection::vec(1u8..=255, 1..20), 0..8), long in proptest::bool::ANY) {
            let mut data = Vec::new();
            for n in &nals {
                data.extend_from_slice(if long { &[0, 0, 0, 1][..] } else { &[0, 0, 1][..] });
                data.extend_from_slice(n);
            }
            let got: Vec<Vec<u8>> = split_annex_b(&data).into_iter().map(<[u8]>::to_vec).collect();
            proptest::prop_assert_eq!(got, nals);
        }
    }
}
