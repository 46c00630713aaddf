//! The RTSP `Transport` header (RFC 2326 section 12.39), tolerant of camera
//! quirks such as `ssrc=` in decimal, with spaces or with a `0x` prefix;
//! also `RTP-Info` (section 12.33) and `Session` (section 12.37).
//!
//! These parsers never fail: a malformed parameter is left out (and, for the
//! SSRC, recorded as a named [`TransportQuirk`]).

use std::time::Duration;

/// A camera quirk met while parsing a `Transport` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportQuirk {
    /// `ssrc=` value with spaces around it (Hikvision: `ssrc= d6d6627`).
    SsrcPadded,
    /// `ssrc=` value with a `0x` prefix (Rubetek: `ssrc=0x6f7c`).
    SsrcHexPrefix,
    /// `ssrc=` with 5 to 7 hex digits: leading zeros dropped (Hikvision);
    /// the value is used.
    SsrcLeadingZerosDropped,
    /// `ssrc=` with 4 hex digits or fewer (`ssrc=A046`, `ssrc=0x6f7c`):
    /// such cameras send a different 32-bit SSRC in their packets, so the
    /// value is ignored and the SSRC is learned from the first packet.
    SsrcTooShortIgnored,
    /// `ssrc=` that is not hexadecimal at all; ignored.
    SsrcUnparseable,
}

/// A parsed `Transport` header (the first transport spec if several).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transport {
    /// `RTP/AVP`, `RTP/AVP/TCP`, `RTP/AVP/UDP`, ...
    pub profile: String,
    /// `interleaved=a-b` (a single `a` means `a-(a+1)`).
    pub interleaved: Option<(u8, u8)>,
    /// `client_port=a-b`.
    pub client_port: Option<(u16, u16)>,
    /// `server_port=a-b`.
    pub server_port: Option<(u16, u16)>,
    /// `source=`.
    pub source: Option<String>,
    /// `destination=`.
    pub destination: Option<String>,
    /// `ssrc=` when trustworthy (see [`TransportQuirk`]).
    pub ssrc: Option<u32>,
    /// `mode=`, without quotes.
    pub mode: Option<String>,
    /// Quirks met, for logging and metrics.
    pub quirks: Vec<TransportQuirk>,
}

impl Transport {
    /// Parses a `Transport` header value. Never fails; see the module doc.
    pub fn parse(value: &str) -> Transport {
        let spec = value.split(',').next().unwrap_or_default();
        let mut parts = spec.split(';');
        let mut t = Transport {
            profile: parts.next().unwrap_or_default().trim().to_string(),
            ..Default::default()
        };
        for part in parts {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            let key = key.trim().to_ascii_lowercase();
            match key.as_str() {
                "interleaved" => t.interleaved = parse_pair(value, u8::saturating_add),
                "client_port" => t.client_port = parse_pair(value, u16::saturating_add),
                "server_port" => t.server_port = parse_pair(value, u16::saturating_add),
                "source" => t.source = non_empty(value),
                "destination" => t.destination = non_empty(value),
                "mode" => t.mode = non_empty(value.trim().trim_matches('"')),
                "ssrc" => t.ssrc = parse_transport_ssrc(value, &mut t.quirks),
                _ => {}
            }
        }
        t
    }
}

fn non_empty(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// `a-b` or `a` (meaning `a-(a+1)`).
fn parse_pair<T: std::str::FromStr + Copy + From<u8>>(
    v: &str,
    next: fn(T, T) -> T,
) -> Option<(T, T)> {
    let v = v.trim();
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: T = v.parse().ok()?;
            Some((a, next(a, T::from(1))))
        }
    }
}

fn parse_transport_ssrc(v: &str, quirks: &mut Vec<TransportQuirk>) -> Option<u32> {
    let trimmed = v.trim();
    if trimmed.len() != v.len() {
        quirks.push(TransportQuirk::SsrcPadded);
    }
    let digits = match trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
    {
        Some(d) => {
            quirks.push(TransportQuirk::SsrcHexPrefix);
            d
        }
        None => trimmed,
    };
    let Ok(ssrc) = u32::from_str_radix(digits, 16) else {
        quirks.push(TransportQuirk::SsrcUnparseable);
        return None;
    };
    match digits.len() {
        0..=4 => {
            quirks.push(TransportQuirk::SsrcTooShortIgnored);
            None
        }
        5..=7 => {
            quirks.push(TransportQuirk::SsrcLeadingZerosDropped);
            Some(ssrc)
        }
        _ => Some(ssrc),
    }
}

/// One stream's entry of an `RTP-Info` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RtpInfo {
    /// `url=` as sent (absolute, or relative to the presentation base).
    pub url: String,
    /// `seq=`, if a valid 16-bit number.
    pub seq: Option<u16>,
    /// `rtptime=`, if a valid 32-bit number (`rtptime=-1`, seen from Wowza,
    /// is treated as absent).
    pub rtptime: Option<u32>,
    /// `ssrc=` (an RTSP 2.0 parameter some RTSP 1.0 servers send), only
    /// when its radix is unambiguous: Reolink writes hex (`dcc4a0d8`), some
    /// Dahua firmware decimal (`4294962989`). A value of at most 8 decimal
    /// digits could be either, so it is left out.
    pub ssrc: Option<u32>,
}

/// Parses an `RTP-Info` header value. Never fails; entries without `url=`
/// are dropped.
pub fn parse_rtp_info(value: &str) -> Vec<RtpInfo> {
    // A ',' separates streams, but could appear inside a URL: split only
    // before a piece that begins with `url=`.
    let mut specs: Vec<String> = Vec::new();
    for piece in value.split(',') {
        match specs.last_mut() {
            Some(last) if !piece.trim_start().starts_with("url=") => {
                last.push(',');
                last.push_str(piece);
            }
            _ => specs.push(piece.to_string()),
        }
    }
    specs
        .iter()
        .filter_map(|spec| {
            let mut info = RtpInfo::default();
            let mut has_url = false;
            for part in spec.split(';') {
                let Some((key, v)) = part.split_once('=') else {
                    continue;
                };
                let v = v.trim();
                match key.trim().to_ascii_lowercase().as_str() {
                    "url" => {
                        info.url = v.to_string();
                        has_url = true;
                    }
                    "seq" => info.seq = v.parse().ok(),
                    "rtptime" => info.rtptime = v.parse().ok(),
                    "ssrc" => info.ssrc = parse_rtp_info_ssrc(v),
                    _ => {}
                }
            }
            has_url.then_some(info)
        })
        .collect()
}

fn parse_rtp_info_ssrc(v: &str) -> Option<u32> {
    let v = v.strip_prefix("0x").unwrap_or(v);
    if v.bytes().all(|b| b.is_ascii_digit()) {
        // More than 8 digits cannot be hex for a u32: decimal.
        return if v.len() > 8 { v.parse().ok() } else { None };
    }
    if v.len() <= 8 {
        u32::from_str_radix(v, 16).ok()
    } else {
        None
    }
}

/// A parsed `Session` header: `id[;timeout=N]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionHeader {
    /// The session identifier, to echo in later requests.
    pub id: String,
    /// `timeout=` in seconds, if given and above zero.
    pub timeout: Option<Duration>,
}

impl SessionHeader {
    /// Parses a `Session` header value; `None` if the id is empty.
    pub fn parse(value: &str) -> Option<SessionHeader> {
        let mut parts = value.split(';');
        let id = parts.next()?.trim();
        if id.is_empty() {
            return None;
        }
        let timeout = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("timeout"))
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
            .filter(|&s| s > 0)
            .map(Duration::from_secs);
        Some(SessionHeader {
            id: id.to_string(),
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::framer::{Framer, Item};
    use crate::rtsp::message::Response;

    macro_rules! fixture {
        ($name:literal) => {
            response(include_bytes!(concat!(
                "../../tests/fixtures/camera-rtsp/",
                $name
            )))
        };
    }

    /// Parses a fixture through the framer, as on the wire.
    pub(crate) fn response(raw: &[u8]) -> Response {
        let mut f = Framer::new();
        f.push(raw);
        match f.poll() {
            Some(Item::Response(r)) => r,
            other => panic!("not a response: {other:?}"),
        }
    }

    fn transport(r: &Response) -> Transport {
        Transport::parse(r.headers.get("Transport").expect("fixture has Transport"))
    }

    #[test]
    fn setup_fixtures() {
        use TransportQuirk::*;
        let t = transport(&fixture!("hikvision_setup.txt"));
        assert_eq!(
            (t.interleaved, t.ssrc, t.mode.as_deref()),
            (Some((0, 1)), Some(0x4cacc3d1), Some("play"))
        );
        assert!(t.quirks.is_empty());

        let t = transport(&fixture!("hikvision_setup_ssrc_space.txt"));
        assert_eq!(t.ssrc, Some(0x0d6d6627));
        assert_eq!(t.quirks, [SsrcPadded, SsrcLeadingZerosDropped]);

        let t = transport(&fixture!("rubetek_setup_ssrc_0x.txt"));
        assert_eq!(
            (t.interleaved, t.ssrc, t.mode.as_deref()),
            (Some((0, 1)), None, Some("PLAY"))
        );
        assert_eq!(t.quirks, [SsrcHexPrefix, SsrcTooShortIgnored]);

        let t = transport(&fixture!("setup_ssrc_4_hex_digits.txt"));
        assert_eq!((t.interleaved, t.ssrc), (Some((0, 1)), None));
        assert_eq!(t.quirks, [SsrcTooShortIgnored]);

        let t = transport(&fixture!("dahua_setup.txt"));
        assert_eq!((t.interleaved, t.ssrc), (Some((0, 1)), Some(0x30A98EE7)));

        let t = transport(&fixture!("reolink_setup.txt"));
        assert_eq!(
            (t.interleaved, t.source.as_deref(), t.ssrc),
            (Some((0, 1)), Some("192.168.5.206"), None)
        );
        assert_eq!(t.destination.as_deref(), Some("192.168.1.210"));

        let t = transport(&fixture!("bunny_setup.txt"));
        assert_eq!(
            (t.profile.as_str(), t.interleaved),
            ("RTP/AVP/TCP", Some((0, 1)))
        );

        let t = transport(&fixture!("luckfox_rkipc_setup_tcp.txt"));
        assert_eq!((t.interleaved, t.ssrc), (Some((0, 1)), Some(0x22345684)));

        let t = transport(&fixture!("luckfox_rkipc_setup_udp.txt"));
        assert_eq!(t.profile, "RTP/AVP");
        assert_eq!(
            (t.client_port, t.server_port),
            (Some((54060, 54061)), Some((49152, 49153)))
        );
        assert_eq!((t.interleaved, t.ssrc), (None, Some(0x22345685)));
    }

    #[test]
    fn odd_transport_values() {
        let t = Transport::parse(
            "RTP/AVP/TCP;interleaved=4;ssrc=zz;server_port=x-1,RTP/AVP;interleaved=9",
        );
        assert_eq!(
            (t.interleaved, t.ssrc, t.server_port),
            (Some((4, 5)), None, None)
        );
        assert_eq!(t.quirks, [TransportQuirk::SsrcUnparseable]);
        assert_eq!(Transport::parse("").interleaved, None);
        assert_eq!(
            Transport::parse("X;interleaved=255").interleaved,
            Some((255, 255))
        );
    }

    #[test]
    fn session_headers() {
        let s = |r: &Response| SessionHeader::parse(r.headers.get("Session").unwrap()).unwrap();
        let h = s(&fixture!("hikvision_setup.txt"));
        assert_eq!(
            (h.id.as_str(), h.timeout),
            ("708345999", Some(Duration::from_secs(60)))
        );
        assert_eq!(
            s(&fixture!("reolink_setup.txt")),
            SessionHeader {
                id: "F8F8E425".into(),
                timeout: None
            }
        );
        assert_eq!(
            s(&fixture!("rubetek_setup_ssrc_0x.txt")).id,
            "5657612475258969210"
        );
        let h = SessionHeader::parse("abc; Timeout = 30").unwrap();
        assert_eq!(h.timeout, Some(Duration::from_secs(30)));
        assert_eq!(SessionHeader::parse(" ;timeout=5"), None);
        assert_eq!(SessionHeader::parse("a;timeout=0").unwrap().timeout, None);
    }

    fn rtp_info(r: &Response) -> Vec<RtpInfo> {
        parse_rtp_info(r.headers.get("RTP-Info").expect("fixture has RTP-Info"))
    }

    #[test]
    fn rtp_info_fixtures() {
        let i = rtp_info(&fixture!("bad_rtptime.txt"));
        assert_eq!(i.len(), 2);
        assert_eq!(
            (i[0].url.as_str(), i[0].seq, i[0].rtptime),
            ("trackID=1", Some(1), None)
        );
        assert_eq!(
            i[1].url,
            "rtsp://wowzaec2demo.streamlock.net/vod/mp4:BigBuckBunny_115k.mov/trackID=2"
        );
        assert_eq!((i[1].seq, i[1].rtptime), (Some(1), None));

        let i = rtp_info(&fixture!("bunny_play.txt"));
        assert_eq!(
            (i[0].seq, i[0].rtptime, i[1].rtptime),
            (Some(1), Some(0), Some(0))
        );

        let i = rtp_info(&fixture!("dahua_play.txt"));
        let got: Vec<_> = i
            .iter()
            .map(|i| (i.url.as_str(), i.seq, i.rtptime))
            .collect();
        assert_eq!(
            got,
            [
                ("trackID=0", Some(47121), Some(3475222385)),
                ("trackID=1", Some(45186), Some(2234446919)),
                ("trackID=4", Some(36583), Some(816418535))
            ]
        );

        // ssrc in RTP-Info (RTSP 2.0) written in decimal: 4294962989 = 0xffffef2d.
        let i = rtp_info(&fixture!("dahua_play_decimal_ssrc.txt"));
        assert_eq!(
            (i[0].seq, i[0].rtptime, i[0].ssrc),
            (Some(13210), Some(1067824145), Some(0xffffef2d))
        );

        let i = rtp_info(&fixture!("reolink_play.txt"));
        assert_eq!(
            (i[0].seq, i[0].rtptime, i[0].ssrc),
            (Some(16852), Some(1070938629), Some(0xdcc4a0d8))
        );
        assert_eq!(i[1].ssrc, Some(0x9fc9fff8));

        let i = rtp_info(&fixture!("hikvision_play.txt"));
        assert_eq!(i.len(), 1);
        assert_eq!(
            i[0].url,
            "rtsp://192.168.5.106:554/Streaming/Channels/101/trackID=1?transportmode=unicast&profile=Profile_1"
        );
        assert_eq!((i[0].seq, i[0].rtptime), (Some(24104), Some(1270711678)));
    }

    #[test]
    fn rtp_info_odd_values() {
        assert_eq!(parse_rtp_info(""), []);
        let i = parse_rtp_info("url=a,b;seq=99999;rtptime=x;ssrc=12345678,seq=1");
        assert_eq!(i.len(), 1);
        assert_eq!(
            (i[0].url.as_str(), i[0].seq, i[0].rtptime, i[0].ssrc),
            ("a,b", None, None, None)
        );
    }
}
