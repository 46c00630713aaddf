//! SDP (RFC 8866) as an RTSP DESCRIBE answer: the streams a camera offers and
//! their control URLs (RFC 2326 appendix C.1.1 with Content-Base rules).
//!
//! Parsed here rather than with `sdp-types` or webrtc-rs's `sdp`: those
//! reject SDPs that real cameras send and players accept (TP-Link's
//! `m=application/TP-LINK 0 ...`, bare `\n` line ends, folded or
//! misordered lines; see `tests/fixtures/camera-rtsp/`), while camgate reads
//! only the few lines it needs and must tolerate the rest.

use bytes::Bytes;
use url::Url;

/// Why a DESCRIBE body is not a usable presentation.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    /// No `m=` section with a payload type.
    #[error("SDP has no usable media section")]
    NoMedia,
    /// A control URL could not be resolved against the base.
    #[error("cannot resolve control URL {control:?} against {base}")]
    BadControl {
        /// The `a=control` value.
        control: String,
        /// The base URL (without credentials).
        base: String,
    },
}

/// What the camera offers, from its DESCRIBE answer.
#[derive(Clone, Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
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
        crate::codec_info::fmtp_param(self.fmtp.as_deref()?, key)
    }
}

/// Static RTP payload types (RFC 3551 section 6): encoding, clock rate,
/// audio channels.
fn static_payload_type(pt: u8) -> Option<(&'static str, u32, Option<u16>)> {
    Some(match pt {
        0 => ("PCMU", 8000, Some(1)),
        3 => ("GSM", 8000, Some(1)),
        4 => ("G723", 8000, Some(1)),
        5 => ("DVI4", 8000, Some(1)),
        6 => ("DVI4", 16000, Some(1)),
        7 => ("LPC", 8000, Some(1)),
        8 => ("PCMA", 8000, Some(1)),
        9 => ("G722", 8000, Some(1)),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, Some(1)),
        12 => ("QCELP", 8000, Some(1)),
        13 => ("CN", 8000, Some(1)),
        14 => ("MPA", 90000, None),
        15 => ("G728", 8000, Some(1)),
        16 => ("DVI4", 11025, Some(1)),
        17 => ("DVI4", 22050, Some(1)),
        18 => ("G729", 8000, Some(1)),
        25 => ("CELB", 90000, None),
        26 => ("JPEG", 90000, None),
        28 => ("NV", 90000, None),
        31 => ("H261", 90000, None),
        32 => ("MPV", 90000, None),
        33 => ("MP2T", 90000, None),
        34 => ("H263", 90000, None),
        _ => return None,
    })
}

/// Removes `user:password@` from a URL.
pub fn strip_credentials(url: &mut Url) {
    // Both fail only for URLs that cannot have credentials at all, which
    // then have none to remove.
    let _ = url.set_username("");
    let _ = url.set_password(None);
}

/// The base for relative control URLs (RFC 2326 appendix C.1.1):
/// `Content-Base`, else `Content-Location`, else the request URL; always
/// without credentials. A header value without a scheme
/// (`192.168.1.10:554/stream0/`, seen from Anjvision) gets the request
/// URL's scheme; an unparseable one is skipped.
pub fn base_url(
    request_url: &Url,
    content_base: Option<&str>,
    content_location: Option<&str>,
) -> Url {
    let parse = |v: &str| {
        let v = v.trim();
        Url::parse(v)
            .ok()
            .filter(|u| u.has_host())
            .or_else(|| Url::parse(&format!("{}://{v}", request_url.scheme())).ok())
    };
    let mut url = content_base
        .and_then(parse)
        .or_else(|| content_location.and_then(parse))
        .unwrap_or_else(|| request_url.clone());
    strip_credentials(&mut url);
    url
}

/// Resolves an `a=control` value: `*` (or empty) is the base, an absolute
/// `rtsp://` URL is used as is, anything else is appended to the base with
/// exactly one `/` between (cameras expect `.../stream/` + `trackID=1`, even
/// when the base has a query, as Dahua's does; `Url::join` would drop the
/// last path segment).
pub fn join_control(base: &Url, control: &str) -> Result<Url, SdpError> {
    let control = control.trim();
    let bad = || SdpError::BadControl {
        control: super::framer::quote_limit(control),
        base: super::framer::quote_limit(base.as_str()),
    };
    if control.is_empty() || control == "*" {
        return Ok(base.clone());
    }
    let mut url = match Url::parse(control) {
        Ok(u) if u.scheme().starts_with("rtsp") => u,
        _ if control.starts_with('/') => base.join(control).map_err(|_| bad())?,
        _ => {
            let sep = if base.as_str().ends_with('/') {
                ""
            } else {
                "/"
            };
            Url::parse(&format!("{base}{sep}{control}")).map_err(|_| bad())?
        }
    };
    strip_credentials(&mut url);
    Ok(url)
}

/// An `a=rtpmap` value: payload type, encoding, clock rate, channels.
fn parse_rtpmap(v: &str) -> Option<(u8, String, u32, Option<u16>)> {
    let (pt, rest) = v.trim().split_once(char::is_whitespace)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.trim().to_ascii_uppercase();
    let clock_rate = parts.next()?.trim().parse().ok()?;
    let channels = parts.next().and_then(|c| c.trim().parse().ok());
    Some((pt.parse().ok()?, encoding, clock_rate, channels))
}

/// One media section as read, before resolution.
#[derive(Default)]
struct RawMedia {
    media: String,
    /// Payload types of the `m=` line that are numbers.
    formats: Vec<u8>,
    control: Option<String>,
    rtpmaps: Vec<(u8, String, u32, Option<u16>)>,
    fmtps: Vec<(u8, String)>,
    framerate: Option<f64>,
}

impl Presentation {
    /// Parses a DESCRIBE answer body. `base_url` comes from [`base_url`];
    /// `server` is the answer's `Server` header, used as
    /// [`Presentation::tool`] when the SDP has no `a=tool`.
    ///
    /// A tolerant line parser: lines that are not `x=value` are skipped, `\n`
    /// line ends are fine, non-UTF-8 bytes are replaced. A media section
    /// without a numeric payload type takes the one of its first `a=rtpmap`
    /// (TP-Link writes `m=application/TP-LINK 0 RTP/AVP smart/1/90000`) and
    /// is left out if it has none.
    pub fn parse(
        body: Bytes,
        base_url: Url,
        server: Option<&str>,
    ) -> Result<Presentation, SdpError> {
        let text = String::from_utf8_lossy(&body).into_owned();
        let mut session_control = None;
        let mut a_tool = None;
        let mut session_name = None;
        let mut medias: Vec<RawMedia> = Vec::new();
        for line in text.lines() {
            let line = line.trim_end();
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            match (kind.trim(), medias.last_mut()) {
                ("m", _) => {
                    let mut fields = value.split_whitespace();
                    let media = fields.next().unwrap_or_default().to_string();
                    let formats = fields
                        .skip(2)
                        .filter_map(|f| f.parse().ok())
                        .filter(|&pt: &u8| pt < 128)
                        .collect();
                    medias.push(RawMedia {
                        media,
                        formats,
                        ..Default::default()
                    });
                }
                ("s", None) => session_name = Some(value.trim().to_string()),
                ("a", m) => {
                    let (attr, v) = value.split_once(':').unwrap_or((value, ""));
                    match (attr.trim(), m) {
                        ("control", None) => session_control = Some(v.to_string()),
                        ("tool", None) => a_tool = Some(v.trim().to_string()),
                        ("control", Some(m)) => m.control = Some(v.to_string()),
                        ("rtpmap", Some(m)) => m.rtpmaps.extend(parse_rtpmap(v)),
                        ("fmtp", Some(m)) => {
                            let v = v.trim();
                            let (pt, params) = v.split_once(char::is_whitespace).unwrap_or((v, ""));
                            if let Ok(pt) = pt.parse() {
                                m.fmtps.push((pt, params.trim().to_string()));
                            }
                        }
                        ("framerate", Some(m)) => {
                            m.framerate = v
                                .trim()
                                .parse()
                                .ok()
                                .filter(|f: &f64| f.is_finite() && *f > 0.0);
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        let control = match &session_control {
            Some(c) => join_control(&base_url, c)?,
            None => base_url.clone(),
        };
        let mut streams = Vec::with_capacity(medias.len());
        for m in medias {
            let Some(payload_type) = m
                .formats
                .first()
                .copied()
                .or_else(|| m.rtpmaps.first().map(|r| r.0))
            else {
                continue;
            };
            let (encoding, clock_rate, channels) =
                match m.rtpmaps.iter().find(|r| r.0 == payload_type) {
                    Some((_, e, r, c)) => (e.clone(), *r, *c),
                    None => match static_payload_type(payload_type) {
                        Some((e, r, c)) => (e.to_string(), r, c),
                        // A dynamic type without rtpmap: unknown codec.
                        None => (String::new(), 0, None),
                    },
                };
            let fmtp = m
                .fmtps
                .into_iter()
                .find(|f| f.0 == payload_type)
                .map(|f| f.1)
                .filter(|f| !f.is_empty());
            let stream_control = match &m.control {
                Some(c) => join_control(&base_url, c)?,
                // RFC 2326 C.1.1: without a media-level control the
                // aggregate URL controls the stream.
                None => control.clone(),
            };
            streams.push(StreamDesc {
                media: m.media,
                control: stream_control,
                payload_type,
                encoding,
                clock_rate,
                channels,
                fmtp,
                framerate: m.framerate,
            });
        }
        if streams.is_empty() {
            return Err(SdpError::NoMedia);
        }
        let tool = a_tool
            .or_else(|| server.map(str::to_string))
            .or(session_name)
            .filter(|t| !t.is_empty());
        Ok(Presentation {
            base_url,
            control,
            streams,
            tool,
            sdp: body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::framer::{Framer, Item};

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../../tests/fixtures/camera-rtsp/", $name))
        };
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// Parses a DESCRIBE answer fixture as the client does.
    fn describe(raw: &[u8], request_url: &str) -> Presentation {
        let mut f = Framer::new();
        f.push(raw);
        let Some(Item::Response(r)) = f.poll() else {
            panic!("not a response")
        };
        let h = &r.headers;
        let base = base_url(
            &url(request_url),
            h.get("Content-Base"),
            h.get("Content-Location"),
        );
        Presentation::parse(r.body, base, h.get("Server")).unwrap()
    }

    fn controls(p: &Presentation) -> Vec<&str> {
        p.streams.iter().map(|s| s.control.as_str()).collect()
    }

    fn codecs(p: &Presentation) -> Vec<(&str, u8, &str, u32, Option<u16>)> {
        p.streams
            .iter()
            .map(|s| {
                (
                    s.media.as_str(),
                    s.payload_type,
                    s.encoding.as_str(),
                    s.clock_rate,
                    s.channels,
                )
            })
            .collect()
    }

    #[test]
    fn hikvision_absolute_controls() {
        let p = describe(
            fixture!("hikvision_describe.txt"),
            "rtsp://admin:pw@192.168.5.106:554/Streaming/Channels/101?transportmode=unicast&profile=Profile_1",
        );
        assert_eq!(
            p.base_url.as_str(),
            "rtsp://192.168.5.106:554/Streaming/Channels/101/"
        );
        assert_eq!(
            p.control.as_str(),
            "rtsp://192.168.5.106:554/Streaming/Channels/101/?transportmode=unicast&profile=Profile_1"
        );
        assert_eq!(
            controls(&p),
            [
                "rtsp://192.168.5.106:554/Streaming/Channels/101/trackID=1?transportmode=unicast&profile=Profile_1",
                "rtsp://192.168.5.106:554/Streaming/Channels/101/trackID=3?transportmode=unicast&profile=Profile_1",
            ]
        );
        assert_eq!(
            codecs(&p),
            [
                ("video", 96, "H264", 90000, None),
                ("application", 107, "VND.ONVIF.METADATA", 90000, None)
            ]
        );
        assert_eq!(p.streams[0].fmtp_param("packetization-mode"), Some("1"));
        assert_eq!(p.tool.as_deref(), Some("Media Presentation"));
        assert_eq!(p.sdp.len(), 902);
    }

    #[test]
    fn reolink_control_before_tool() {
        for raw in [
            &fixture!("reolink_describe.txt")[..],
            &fixture!("reolink_describe_control_first.txt")[..],
        ] {
            let p = describe(raw, "rtsp://192.168.5.206/h264Preview_01_main");
            assert_eq!(
                p.control.as_str(),
                "rtsp://192.168.5.206/h264Preview_01_main/"
            );
            assert_eq!(
                controls(&p),
                [
                    "rtsp://192.168.5.206/h264Preview_01_main/trackID=1",
                    "rtsp://192.168.5.206/h264Preview_01_main/trackID=2"
                ]
            );
            assert_eq!(
                p.tool.as_deref(),
                Some("LIVE555 Streaming Media v2013.04.08")
            );
            assert_eq!(codecs(&p)[1], ("audio", 97, "MPEG4-GENERIC", 16000, None));
            assert_eq!(p.streams[1].fmtp_param("profile"), Some("1"));
        }
    }

    #[test]
    fn dahua_base_with_query() {
        let p = describe(
            fixture!("dahua_describe_h264_aac_onvif.txt"),
            "rtsp://192.168.5.111:554/cam/realmonitor",
        );
        let base = "rtsp://192.168.5.111:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif/";
        assert_eq!(p.control.as_str(), base);
        let want: Vec<String> = ["trackID=0", "trackID=1", "trackID=4"]
            .iter()
            .map(|t| format!("{base}{t}"))
            .collect();
        assert_eq!(controls(&p), want);
        assert_eq!(
            codecs(&p),
            [
                ("video", 96, "H264", 90000, None),
                ("audio", 97, "MPEG4-GENERIC", 48000, None),
                ("application", 107, "VND.ONVIF.METADATA", 90000, None)
            ]
        );
        assert_eq!(p.streams[0].framerate, Some(15.0));

        let p = describe(
            fixture!("dahua_describe_h265_pcma.txt"),
            "rtsp://cam-driveway/cam/realmonitor",
        );
        assert_eq!(
            controls(&p)[1],
            "rtsp://cam-driveway/cam/realmonitor?channel=1&subtype=2/trackID=1"
        );
        assert_eq!(
            codecs(&p),
            [
                ("video", 98, "H265", 90000, None),
                ("audio", 8, "PCMA", 8000, None)
            ]
        );
        assert!(p.streams[0].fmtp_param("sprop-vps").is_some());
    }

    #[test]
    fn foscam_static_payload_type() {
        let p = describe(
            fixture!("foscam_describe.txt"),
            "rtsp://192.168.5.107:65534/videoMain",
        );
        assert_eq!(
            controls(&p),
            [
                "rtsp://192.168.5.107:65534/videoMain/track1",
                "rtsp://192.168.5.107:65534/videoMain/track2"
            ]
        );
        // `m=audio 0 RTP/AVP 0` with no rtpmap: PCMU from RFC 3551.
        assert_eq!(codecs(&p)[1], ("audio", 0, "PCMU", 8000, Some(1)));
        assert_eq!(
            p.tool.as_deref(),
            Some("LIVE555 Streaming Media v2014.02.10")
        );
    }

    #[test]
    fn missing_content_type_uses_request_url() {
        let p = describe(
            fixture!("missing_content_type_describe.txt"),
            "rtsp://u:p@192.168.1.101/live",
        );
        assert_eq!(p.base_url.as_str(), "rtsp://192.168.1.101/live");
        assert_eq!(p.control.as_str(), "rtsp://192.168.1.101/live");
        assert_eq!(
            controls(&p),
            [
                "rtsp://192.168.1.101/live/streamid=0",
                "rtsp://192.168.1.101/live/streamid=1"
            ]
        );
        assert_eq!(
            codecs(&p)[1],
            ("audio", 97, "MPEG4-GENERIC", 48000, Some(2))
        );
        assert_eq!(p.tool.as_deref(), Some("libavformat 58.25.100"));
    }

    #[test]
    fn bunny_wowza() {
        let p = describe(
            fixture!("bunny_describe.txt"),
            "rtsp://wowzaec2demo.streamlock.net/vod/mp4:BigBuckBunny_115k.mov",
        );
        assert_eq!(
            codecs(&p),
            [
                ("audio", 96, "MPEG4-GENERIC", 12000, Some(2)),
                ("video", 97, "H264", 90000, None)
            ]
        );
        assert_eq!(
            controls(&p)[0],
            "rtsp://wowzaec2demo.streamlock.net/vod/mp4:BigBuckBunny_115k.mov/trackID=1"
        );
        assert_eq!(p.streams[1].framerate, Some(24.0));
        // No a=tool: the Server header is more useful than s=.
        assert_eq!(
            p.tool.as_deref(),
            Some("Wowza Streaming Engine 4.8.10 build20210217143515")
        );
    }

    #[test]
    fn bare_sdp_fixtures() {
        let base = url("rtsp://192.168.5.237/media/video1");
        let p = Presentation::parse(
            Bytes::from_static(fixture!("geovision_sdp.txt")),
            base.clone(),
            None,
        )
        .unwrap();
        assert_eq!(
            controls(&p),
            [
                "rtsp://192.168.5.237/media/video1/video",
                "rtsp://192.168.5.237/media/video1/metadata"
            ]
        );
        assert_eq!(p.control, base);

        let p = Presentation::parse(
            Bytes::from_static(fixture!("tplink_sdp.txt")),
            url("rtsp://h/s/"),
            None,
        )
        .unwrap();
        assert_eq!(
            codecs(&p),
            [
                ("video", 96, "H265", 90000, None),
                ("audio", 8, "PCMA", 8000, None),
                // `m=application/TP-LINK 0 RTP/AVP smart/1/90000`: type from rtpmap.
                ("application/TP-LINK", 95, "TP-LINK", 90000, None)
            ]
        );
        assert_eq!(
            controls(&p),
            [
                "rtsp://h/s/track1",
                "rtsp://h/s/track2",
                "rtsp://h/s/track3"
            ]
        );

        let p = Presentation::parse(
            Bytes::from_static(fixture!("ubiquiti_sdp.txt")),
            url("rtsp://h/s"),
            None,
        )
        .unwrap();
        assert_eq!(
            codecs(&p),
            [
                ("audio", 96, "MPEG4-GENERIC", 48000, Some(1)),
                ("audio", 96, "OPUS", 48000, Some(2)),
                ("video", 97, "H264", 90000, None)
            ]
        );
        assert_eq!(p.streams[1].fmtp, None); // `a=fmtp:96` with no parameters
        assert_eq!(p.streams[0].fmtp_param("sizelength"), Some("13"));
        assert_eq!(p.tool.as_deref(), Some("68D79AE46148_0"));
    }

    #[test]
    fn control_resolution_rules() {
        let req = url("rtsp://user:pw@cam/a/b?x=1");
        let base = base_url(&req, None, Some("rtsp://user:pw@cam/loc/"));
        assert_eq!(base.as_str(), "rtsp://cam/loc/");
        assert_eq!(
            base_url(&req, Some("cam:554/base/"), None).as_str(),
            "rtsp://cam:554/base/"
        );
        assert_eq!(
            base_url(&req, Some("::"), None).as_str(),
            "rtsp://cam/a/b?x=1"
        );
        let b = url("rtsp://cam/a/b?x=1");
        assert_eq!(join_control(&b, "*").unwrap(), b);
        assert_eq!(
            join_control(&b, "t=1").unwrap().as_str(),
            "rtsp://cam/a/b?x=1/t=1"
        );
        assert_eq!(
            join_control(&b, "/other/t").unwrap().as_str(),
            "rtsp://cam/other/t"
        );
        assert_eq!(
            join_control(&b, "rtsp://u:p@other/t").unwrap().as_str(),
            "rtsp://other/t"
        );
    }

    #[test]
    fn rejects_non_sdp() {
        for body in [
            &b""[..],
            b"hello",
            b"m=video",
            b"\xff\xfe=\n=a\nm= 0 RTP/AVP x",
        ] {
            assert_eq!(
                Presentation::parse(Bytes::copy_from_slice(body), url("rtsp://h/"), None),
                Err(SdpError::NoMedia)
            );
        }
    }
}
