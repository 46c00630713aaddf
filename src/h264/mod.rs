//! H.264 over RTP (RFC 6184): access units, parameter sets, depacketizer and
//! packetizer. Sans-IO.

pub mod depacketizer;
pub mod packetizer;

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
    /// True when the picture holds an IDR slice.
    pub fn is_idr(&self) -> bool {
        self.nals.iter().any(|n| n.first().map(|b| b & 0x1f) == Some(nal_type::IDR))
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
    /// NAL units, RFC 6184 section 8.1).
    pub fn from_sprop(value: &str) -> Result<Self, H264Error> {
        let _ = value;
        todo!("h264 helper")
    }

    /// The `sprop-parameter-sets` value for an SDP we write.
    pub fn to_sprop(&self) -> String {
        todo!("h264 helper")
    }

    /// The `profile-level-id` (6 hex digits) from the SPS, if it is long enough.
    pub fn profile_level_id(&self) -> Option<String> {
        todo!("h264 helper")
    }
}

/// Splits an Annex B byte stream (start codes `00 00 01` / `00 00 00 01`)
/// into NAL units without start codes. Never panics.
pub fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let _ = data;
    todo!("h264 helper")
}
