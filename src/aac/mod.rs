//! AAC audio from cameras (sans-IO): the stream's config from the SDP
//! (RFC 3640 `mpeg4-generic`, RFC 6416 `MP4A-LATM`), RTP payloads to
//! access units, and access units to Opus frames for WebRTC viewers.
//!
//! RTP outputs and RTSP clients get the camera's AAC payloads unchanged;
//! only browsers, which decode no AAC, need [`Transcoder`]. Nothing here
//! reads a clock or a socket: payloads and timestamps in, access units and
//! Opus frames out.

mod bits;
pub mod config;
pub mod depacketizer;
pub mod to_opus;
pub mod transcode;

pub use config::{AacFormat, AuHeaderLayout, AudioSpecificConfig, Framing, StreamMuxConfig};
pub use depacketizer::{AccessUnit, Depacketizer, DepacketizerStats};
pub use to_opus::AacToOpus;
pub use transcode::{OpusFrame, Transcoder, TranscoderStats, OPUS_CLOCK_RATE};

/// Why an AAC stream cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AacError {
    /// A config ends before its fields do.
    #[error("the AAC config is cut short")]
    Truncated,
    /// Readable, but not valid (bad hex, impossible lengths).
    #[error("malformed AAC description: {0}")]
    Malformed(String),
    /// Valid, but not something camgate decodes (the name says what).
    #[error("unsupported AAC: {0}")]
    Unsupported(String),
}

/// Whether a camera's audio stream of `encoding` (with its clock rate and
/// fmtp) can be sent to browsers as Opus: `Ok` with what it is, or why
/// not. LATM with its config in band only is taken on trust (it is
/// checked when the first config arrives).
pub fn webrtc_audio(
    encoding: &str,
    clock_rate: u32,
    fmtp: Option<&str>,
) -> Result<AacFormat, AacError> {
    let format = AacFormat::from_sdp(encoding, clock_rate, fmtp)?;
    if let Some(config) = &format.config {
        Transcoder::new(config, clock_rate)?;
    }
    Ok(format)
}

/// Test data readers shared by the module's tests.
#[cfg(test)]
pub(crate) mod testdata {
    use bytes::Bytes;

    use super::AudioSpecificConfig;

    /// The raw AAC frames of an ADTS file (14496-3 1.A.2), and its config.
    pub fn adts(data: &[u8]) -> (AudioSpecificConfig, Vec<Bytes>) {
        let mut frames = Vec::new();
        let mut config = None;
        let mut i = 0;
        while i + 7 <= data.len() {
            let h = &data[i..i + 7];
            assert_eq!((h[0], h[1] & 0xf6), (0xff, 0xf0), "ADTS sync at {i}");
            let protection_absent = h[1] & 1 == 1;
            let profile = (h[2] >> 6) + 1;
            let rate_index = (h[2] >> 2) & 0xf;
            let channels = ((h[2] & 1) << 2) | (h[3] >> 6);
            let len =
                (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
            let header = if protection_absent { 7 } else { 9 };
            frames.push(Bytes::copy_from_slice(&data[i + header..i + len]));
            if config.is_none() {
                let asc = [
                    (profile << 3) | (rate_index >> 1),
                    ((rate_index & 1) << 7) | (channels << 3),
                ];
                config = Some(AudioSpecificConfig::parse(&asc).unwrap());
            }
            i += len;
        }
        (config.unwrap(), frames)
    }

    /// The RTP packets of an RFC 4571 stream (a 16-bit length before
    /// each), as `scripts/make-aac-fixtures.sh` records them.
    pub fn rfc4571(data: &[u8]) -> Vec<crate::rtp::RtpPacket> {
        let mut out = Vec::new();
        let mut rest = data;
        while let [hi, lo, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            let (pkt, next) = tail.split_at(len);
            out.push(crate::rtp::RtpPacket::parse(Bytes::copy_from_slice(pkt)).unwrap());
            rest = next;
        }
        out
    }
}
