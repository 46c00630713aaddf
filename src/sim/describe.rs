//! Pure helpers of the sim's RTSP server: SDP (RFC 4566; RFC 6184 section
//! 8 for H.264, RFC 7798 section 7 for H.265), `Transport` parsing (RFC
//! 2326 section 12.39), control URLs and what a camera URL's query asks
//! for.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::clip::{Clip, FPS};
use super::stream::{Track, AUDIO_PT, VIDEO_PT};
use crate::camera::codec::VideoCodec;

/// A transport the client asked for in SETUP that the sim can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestedTransport {
    /// `RTP/AVP/TCP;interleaved=a-b`; channels chosen by the server if absent.
    Tcp {
        /// `(rtp, rtcp)` channels, if the client named them.
        channels: Option<(u8, u8)>,
    },
    /// `RTP/AVP;unicast;client_port=a-b`.
    Udp {
        /// `(rtp, rtcp)` ports of the client.
        client_ports: (u16, u16),
    },
}

/// The first acceptable transport of a `Transport` header value (a comma
/// separated list of alternatives). Multicast is not offered.
pub(crate) fn parse_transport(value: &str) -> Option<RequestedTransport> {
    value.split(',').find_map(parse_one_transport)
}

fn parse_one_transport(spec: &str) -> Option<RequestedTransport> {
    let mut parts = spec.split(';').map(str::trim);
    let proto = parts.next()?.to_ascii_uppercase();
    let tcp = match proto.as_str() {
        "RTP/AVP" | "RTP/AVP/UDP" => false,
        "RTP/AVP/TCP" => true,
        _ => return None,
    };
    let mut channels = None;
    let mut client_ports = None;
    for p in parts {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        match k.to_ascii_lowercase().as_str() {
            "multicast" => return None,
            "interleaved" => channels = Some(parse_pair::<u8>(v)?),
            "client_port" => client_ports = Some(parse_pair::<u16>(v)?),
            _ => {}
        }
    }
    if tcp {
        Some(RequestedTransport::Tcp { channels })
    } else {
        client_ports.map(|client_ports| RequestedTransport::Udp { client_ports })
    }
}

/// `a-b` or `a` (then `b = a + 1`).
fn parse_pair<T>(v: &str) -> Option<(T, T)>
where
    T: std::str::FromStr + Copy + TryFrom<u32> + Into<u32>,
{
    let (a, b) = match v.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let a: T = v.trim().parse().ok()?;
            (a, T::try_from(a.into() + 1).ok()?)
        }
    };
    Some((a, b))
}

/// The track a control URL names (`.../trackID=N`), if any.
pub(crate) fn track_of(url: &str) -> Option<Track> {
    let at = url.rfind("trackID=")?;
    let digits: String = url[at + "trackID=".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Track::from_id(digits.parse().ok()?)
}

/// Whether the URL's query keeps the audio track (`?audio=0` drops it).
pub(crate) fn audio_enabled(url: &url::Url) -> bool {
    !url.query_pairs()
        .any(|(k, v)| k == "audio" && (v == "0" || v == "false" || v == "off"))
}

/// The camera a URL names: its path without slashes at either end and
/// without a `trackID=N` last segment (`rtsp://h/cam/trackID=0` → `cam`).
pub(crate) fn camera_name(url: &url::Url) -> String {
    let path = url.path().trim_matches('/');
    let path = match path.rsplit_once('/') {
        Some((head, last)) if last.starts_with("trackID=") => head,
        _ if path.starts_with("trackID=") => "",
        _ => path,
    };
    path.trim_end_matches('/').to_owned()
}

/// Query keys that shape the camera rather than its faults.
const CAMERA_KEYS: [&str; 2] = ["audio", "codec"];

/// A URL's query without a `/trackID=N` that naive clients append after it.
fn query_of(url: &url::Url) -> Option<&str> {
    let query = url.query()?;
    Some(query.split_once("/trackID=").map_or(query, |(q, _)| q))
}

/// The fault keys of a URL's query (everything but `audio` and `codec`),
/// without a `/trackID=N` that naive clients append after the query;
/// `None` when there are none.
pub(crate) fn fault_query(url: &url::Url) -> Option<String> {
    let kept: Vec<&str> = query_of(url)?
        .split('&')
        .filter(|kv| !kv.is_empty() && !CAMERA_KEYS.contains(&kv.split('=').next().unwrap_or("")))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The video codec a URL's query asks for (`codec=h264` or `codec=h265`,
/// any case; the last one wins), else `default`. The error is a sentence
/// naming the bad value, for a 400 answer.
pub(crate) fn codec_query(url: &url::Url, default: VideoCodec) -> Result<VideoCodec, String> {
    let Some(query) = query_of(url) else {
        return Ok(default);
    };
    let mut codec = default;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key == "codec" {
            codec = parse_codec(&value).ok_or_else(|| {
                format!("key `codec` has value `{value}`; it must be h264 or h265")
            })?;
        }
    }
    Ok(codec)
}

/// `h264` or `h265` (any case) as a codec.
pub(crate) fn parse_codec(value: &str) -> Option<VideoCodec> {
    match value.trim().to_ascii_lowercase().as_str() {
        "h264" => Some(VideoCodec::H264),
        "h265" => Some(VideoCodec::H265),
        _ => None,
    }
}

/// `Content-Base` for a DESCRIBE of `url`: the URL without its query and
/// with a trailing `/`, so that both naive clients (which append
/// `/trackID=0`) and RFC 3986 resolvers (which replace the last segment of
/// a base without `/`) reach the same track URL. The query is dropped
/// because it only shapes the SDP.
pub(crate) fn content_base(url: &url::Url) -> String {
    let mut base = url.clone();
    base.set_query(None);
    base.set_fragment(None);
    let mut s = base.to_string();
    if !s.ends_with('/') {
        s.push('/');
    }
    s
}

/// The SDP of a sim camera.
pub(crate) fn sdp(clip: &Clip, audio: bool, origin: IpAddr, session_id: u64) -> String {
    let ip_ver = if origin.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = String::with_capacity(512);
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        "v=0\r\n\
         o=- {session_id} 1 IN {ip_ver} {origin}\r\n\
         s=camgate sim\r\n\
         c=IN {ip_ver} {unspec}\r\n\
         t=0 0\r\n\
         a=tool:camgate\r\n\
         a=range:npt=0-\r\n\
         m=video 0 RTP/AVP {VIDEO_PT}\r\n\
         a=rtpmap:{VIDEO_PT} {encoding}/90000\r\n\
         a=fmtp:{VIDEO_PT} {fmtp}\r\n\
         a=framerate:{FPS}\r\n\
         a=control:trackID=0\r\n",
        unspec = if origin.is_ipv4() { "0.0.0.0" } else { "::" },
        encoding = clip.codec().encoding(),
        fmtp = clip.fmtp,
    );
    if audio {
        let _ = write!(
            s,
            "m=audio 0 RTP/AVP {AUDIO_PT}\r\n\
             a=rtpmap:{AUDIO_PT} PCMU/8000\r\n\
             a=control:trackID=1\r\n"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports() {
        use RequestedTransport::*;
        assert_eq!(
            parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1"),
            Some(Tcp {
                channels: Some((0, 1))
            })
        );
        assert_eq!(
            parse_transport("RTP/AVP/TCP;unicast"),
            Some(Tcp { channels: None })
        );
        assert_eq!(
            parse_transport("RTP/AVP;unicast;client_port=5000-5001"),
            Some(Udp {
                client_ports: (5000, 5001)
            })
        );
        assert_eq!(
            parse_transport("RTP/AVP;multicast, RTP/AVP/UDP;unicast;client_port=7000"),
            Some(Udp {
                client_ports: (7000, 7001)
            })
        );
        for bad in [
            "",
            "RTP/SAVP;unicast;client_port=1-2",
            "RTP/AVP;unicast",
            "RTP/AVP/TCP;interleaved=300-301",
            "RTP/AVP;client_port=65535",
            ";;;,,",
        ] {
            assert_eq!(parse_transport(bad), None, "{bad}");
        }
    }

    #[test]
    fn control_urls() {
        assert_eq!(track_of("rtsp://h/cam/trackID=1"), Some(Track::Audio));
        assert_eq!(
            track_of("rtsp://h/cam?audio=0/trackID=0"),
            Some(Track::Video)
        );
        assert_eq!(track_of("rtsp://h/cam/trackID=7"), None);
        assert_eq!(track_of("rtsp://h/cam/"), None);
        let u = url::Url::parse("rtsp://127.0.0.1:8554/cam?audio=0").unwrap();
        assert!(!audio_enabled(&u));
        assert_eq!(content_base(&u), "rtsp://127.0.0.1:8554/cam/");
        let u = url::Url::parse("rtsp://127.0.0.1:8554/cam/").unwrap();
        assert!(audio_enabled(&u));
        assert_eq!(camera_name(&u), "cam");
        assert_eq!(fault_query(&u), None);
        for (url, name, query) in [
            ("rtsp://h/cam/trackID=0", "cam", None),
            ("rtsp://h/a/b?audio=0&seed=7", "a/b", Some("seed=7")),
            (
                "rtsp://h/cam?seed=7&audio=0/trackID=1",
                "cam",
                Some("seed=7"),
            ),
            (
                "rtsp://h/cam?truncate=0.1/trackID=0",
                "cam",
                Some("truncate=0.1"),
            ),
            ("rtsp://h/trackID=0", "", None),
            ("rtsp://h/cam?audio=0", "cam", None),
        ] {
            let u = url::Url::parse(url).unwrap();
            assert_eq!(camera_name(&u), name, "{url}");
            assert_eq!(fault_query(&u).as_deref(), query, "{url}");
        }
        assert_eq!(content_base(&u), "rtsp://127.0.0.1:8554/cam/");
    }

    #[test]
    fn codec_from_the_query() {
        let url = |q: &str| url::Url::parse(&format!("rtsp://h/cam{q}")).unwrap();
        for (q, default, want) in [
            ("", VideoCodec::H264, Ok(VideoCodec::H264)),
            ("", VideoCodec::H265, Ok(VideoCodec::H265)),
            ("?codec=h265", VideoCodec::H264, Ok(VideoCodec::H265)),
            ("?codec=H265&seed=3", VideoCodec::H264, Ok(VideoCodec::H265)),
            ("?codec=h264", VideoCodec::H265, Ok(VideoCodec::H264)),
            (
                "?audio=0&codec=h265/trackID=0",
                VideoCodec::H264,
                Ok(VideoCodec::H265),
            ),
            (
                "?codec=h265&codec=h264",
                VideoCodec::H265,
                Ok(VideoCodec::H264),
            ),
            ("?seed=3", VideoCodec::H265, Ok(VideoCodec::H265)),
        ] {
            assert_eq!(codec_query(&url(q), default), want, "{q}");
        }
        for q in ["?codec=vp8", "?codec=", "?codec=hevc"] {
            let e = codec_query(&url(q), VideoCodec::H264).unwrap_err();
            assert!(e.contains("`codec`") && e.contains("h265"), "{q}: {e}");
        }
        // `codec` is no fault key.
        let u = url("?codec=h265&truncate=0.02&audio=0");
        assert_eq!(fault_query(&u).as_deref(), Some("truncate=0.02"));
        assert_eq!(fault_query(&url("?codec=h265")), None);
    }

    /// The SDP of each codec as camgate's own RTSP client reads it: the
    /// encoding and clock rate, and parameter sets that give back the
    /// clip's own.
    #[test]
    fn sdp_of_each_codec() {
        use super::super::clip::clip;
        use crate::camera::codec::VideoParams;
        use crate::rtsp::sdp::Presentation;
        let base = url::Url::parse("rtsp://127.0.0.1:8555/cam/").unwrap();
        for codec in [VideoCodec::H264, VideoCodec::H265] {
            let clip = clip(codec);
            let text = sdp(clip, true, "127.0.0.1".parse().unwrap(), 7);
            let p = Presentation::parse(text.clone().into(), base.clone(), None)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(p.streams.len(), 2);
            let video = &p.streams[0];
            assert_eq!(
                (video.media.as_str(), video.payload_type, video.clock_rate),
                ("video", 96, 90_000)
            );
            assert_eq!(video.encoding, codec.encoding());
            assert_eq!(video.framerate, Some(25.0));
            assert_eq!(
                video.control.as_str(),
                "rtsp://127.0.0.1:8555/cam/trackID=0"
            );
            let fmtp = video.fmtp.as_deref().expect("fmtp");
            match (&clip.info.params, codec) {
                (VideoParams::H264(params), VideoCodec::H264) => {
                    assert_eq!(video.fmtp_param("packetization-mode"), Some("1"));
                    assert_eq!(
                        crate::h264::ParameterSets::from_sprop(
                            video.fmtp_param("sprop-parameter-sets").expect("sprop")
                        )
                        .as_ref(),
                        Ok(params)
                    );
                }
                (VideoParams::H265(params), VideoCodec::H265) => {
                    assert_eq!(
                        crate::h265::ParameterSets::from_fmtp(fmtp),
                        Ok(Some(params.clone()))
                    );
                    assert_eq!(video.fmtp_param("profile-id"), Some("1"));
                    assert_eq!(video.fmtp_param("tier-flag"), Some("0"));
                    assert!(video.fmtp_param("sprop-max-don-diff").is_none());
                }
                (params, _) => panic!("{codec:?} clip with {params:?}"),
            }
            assert_eq!(p.streams[1].encoding, "PCMU");
            let video_only = sdp(clip, false, "127.0.0.1".parse().unwrap(), 7);
            assert!(!video_only.contains("m=audio"));
            assert!(video_only.contains(&format!("a=rtpmap:96 {}/90000\r\n", codec.encoding())));
        }
    }
}
