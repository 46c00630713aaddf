//! SDP (RFC 8866) as an RTSP DESCRIBE answer: the streams a camera offers and
//! their control URLs (RFC 2326 appendix C.1.1 with Content-Base rules).

use bytes::Bytes;
use url::Url;

/// What the camera offers, from its DESCRIBE answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presentation {
    /// Base for relative control URLs (Content-Base, Content-Location or the
    /// request URL), without credentials.
    pub base_url: Url,
    /// Aggregate control URL for PLAY/TEARDOWN (session-level `a=control`,
    /// else `base_url`).
    pub control: Url,
    /// Media sections in SDP order.
    pub streams: Vec<StreamDesc>,
    /// `s=` / `a=tool:` / the `Server` header, for `probe`.
    pub tool: Option<String>,
    /// The SDP body exactly as received.
    pub sdp: Bytes,
}

/// One `m=` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDesc {
    /// `video`, `audio`, `application`, ...
    pub media: String,
    /// Resolved control URL for SETUP.
    pub control: Url,
    /// First payload type of the `m=` line.
    pub payload_type: u8,
    /// Encoding name from `a=rtpmap`, upper-cased (`H264`, `H265`,
    /// `MPEG4-GENERIC`, `PCMU`, ...), or a static payload type's name.
    pub encoding: String,
    /// Clock rate from `a=rtpmap` or the static payload type.
    pub clock_rate: u32,
    /// Audio channels from `a=rtpmap`, if given.
    pub channels: Option<u16>,
    /// `a=fmtp` parameters for the payload type (after the payload type).
    pub fmtp: Option<String>,
    /// `a=framerate`, if given.
    pub framerate: Option<f64>,
}

impl StreamDesc {
    /// The value of one `a=fmtp` parameter (case-insensitive key).
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp.as_deref()?.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then_some(v.trim())
        })
    }
}
