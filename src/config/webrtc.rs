//! `[webrtc]`: how browsers reach camgate (ICE), and viewer limits.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::raw::Number;
use super::validate::Source;
use super::ConfigError;

/// `[webrtc]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebrtc {
    pub udp_listen: Option<Spanned<String>>,
    pub public_ips: Option<Vec<Spanned<String>>>,
    pub additional_hosts: Option<Vec<Spanned<String>>>,
    pub ice_servers: Option<Vec<Spanned<RawIceServer>>>,
    pub disconnect_timeout: Option<Spanned<Number>>,
    pub connect_timeout: Option<Spanned<Number>>,
    pub max_viewers: Option<Spanned<i64>>,
    pub max_viewers_per_camera: Option<Spanned<i64>>,
    pub fast_start: Option<Spanned<bool>>,
    pub payload_size: Option<Spanned<i64>>,
    pub cors_origins: Option<Vec<Spanned<String>>>,
}

/// One `[[webrtc.ice_servers]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIceServer {
    pub urls: Vec<Spanned<String>>,
    pub username: Option<String>,
    pub credential: Option<String>,
}

/// A STUN or TURN server for viewers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    pub username: Option<String>,
    /// TURN credential.
    pub credential: Option<crate::credentials::Secret>,
}

/// `[webrtc]`, checked, with defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct WebrtcConfig {
    /// The one UDP socket every viewer's media uses (ICE UDP mux).
    /// Default `0.0.0.0:8189`.
    pub udp_listen: SocketAddr,
    /// Public addresses of this host (NAT 1:1), offered to viewers as host
    /// candidates on the `udp_listen` port besides the local addresses.
    pub public_ips: Vec<IpAddr>,
    /// More addresses to offer the same way (e.g. a VPN address).
    pub additional_hosts: Vec<IpAddr>,
    /// STUN/TURN servers, passed to viewers in `Link` headers of the WHEP
    /// answer (RFC 9725 §4.6).
    pub ice_servers: Vec<IceServer>,
    /// A viewer whose ICE stays disconnected this long is ended. Default 10 s.
    pub disconnect_timeout: Duration,
    /// A viewer that does not connect within this is ended. Default 30 s.
    pub connect_timeout: Duration,
    /// Viewers over all cameras. Default 500.
    pub max_viewers: usize,
    /// Viewers of one camera. Default 100.
    pub max_viewers_per_camera: usize,
    /// Start viewers from the cached GOP. Default true.
    pub fast_start: bool,
    /// Largest RTP payload sent to viewers, bytes. Default 1200.
    pub payload_size: usize,
    /// Origins allowed to call WHEP from other sites (`*` for any). Default
    /// none (same origin only).
    pub cors_origins: Vec<String>,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        WebrtcConfig {
            udp_listen: SocketAddr::from(([0, 0, 0, 0], 8189)),
            public_ips: Vec::new(),
            additional_hosts: Vec::new(),
            ice_servers: Vec::new(),
            disconnect_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(30),
            max_viewers: 500,
            max_viewers_per_camera: 100,
            fast_start: true,
            payload_size: 1200,
            cors_origins: Vec::new(),
        }
    }
}

const WHO: &str = "[webrtc] ";

fn ips(
    list: &Option<Vec<Spanned<String>>>,
    field: &str,
    src: &Source<'_>,
) -> Result<Vec<IpAddr>, ConfigError> {
    list.iter()
        .flatten()
        .map(|s| {
            s.get_ref().parse().map_err(|_| {
                src.field(
                    s,
                    WHO,
                    field,
                    &format!("{:?} is not an IP address", s.get_ref()),
                )
            })
        })
        .collect()
}

fn seconds(v: &Spanned<Number>, field: &str, src: &Source<'_>) -> Result<Duration, ConfigError> {
    let secs = v.get_ref().0;
    if !(0.1..=3600.0).contains(&secs) {
        return Err(src.field(
            v,
            WHO,
            field,
            &format!("{secs} s is out of range 0.1..=3600"),
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn count(
    v: &Spanned<i64>,
    field: &str,
    range: std::ops::RangeInclusive<i64>,
    src: &Source<'_>,
) -> Result<usize, ConfigError> {
    let n = *v.get_ref();
    if !range.contains(&n) {
        return Err(src.field(
            v,
            WHO,
            field,
            &format!("{n} is out of range {}..={}", range.start(), range.end()),
        ));
    }
    Ok(n as usize)
}

/// Checks `[webrtc]`.
pub(super) fn webrtc(
    raw: Option<&RawWebrtc>,
    src: &Source<'_>,
) -> Result<WebrtcConfig, ConfigError> {
    let mut c = WebrtcConfig::default();
    let Some(raw) = raw else { return Ok(c) };
    if let Some(l) = &raw.udp_listen {
        c.udp_listen = l.get_ref().parse().map_err(|_| {
            src.field(
                l,
                WHO,
                "udp_listen",
                &format!("{:?} is not IP:port (e.g. 0.0.0.0:8189)", l.get_ref()),
            )
        })?;
    }
    c.public_ips = ips(&raw.public_ips, "public_ips", src)?;
    c.additional_hosts = ips(&raw.additional_hosts, "additional_hosts", src)?;
    for server in raw.ice_servers.iter().flatten() {
        let s = server.get_ref();
        if s.urls.is_empty() {
            return Err(src.field(server, WHO, "ice_servers", "an ICE server needs `urls`"));
        }
        for url in &s.urls {
            let u = url.get_ref();
            if !["stun:", "stuns:", "turn:", "turns:"]
                .iter()
                .any(|p| u.starts_with(p))
            {
                return Err(src.field(
                    url,
                    WHO,
                    "ice_servers.urls",
                    &format!("{u:?} is not a stun:, stuns:, turn: or turns: URL"),
                ));
            }
            if u.starts_with("turn") && (s.username.is_none() || s.credential.is_none()) {
                return Err(src.field(
                    url,
                    WHO,
                    "ice_servers",
                    "a TURN server needs `username` and `credential`",
                ));
            }
        }
        c.ice_servers.push(IceServer {
            urls: s.urls.iter().map(|u| u.get_ref().clone()).collect(),
            username: s.username.clone(),
            credential: s.credential.clone().map(crate::credentials::Secret::new),
        });
    }
    if let Some(v) = &raw.disconnect_timeout {
        c.disconnect_timeout = seconds(v, "disconnect_timeout", src)?;
    }
    if let Some(v) = &raw.connect_timeout {
        c.connect_timeout = seconds(v, "connect_timeout", src)?;
    }
    if let Some(v) = &raw.max_viewers {
        c.max_viewers = count(v, "max_viewers", 0..=100_000, src)?;
    }
    if let Some(v) = &raw.max_viewers_per_camera {
        c.max_viewers_per_camera = count(v, "max_viewers_per_camera", 0..=100_000, src)?;
    }
    if let Some(v) = &raw.fast_start {
        c.fast_start = *v.get_ref();
    }
    if let Some(v) = &raw.payload_size {
        c.payload_size = count(v, "payload_size", 400..=1400, src)?;
    }
    c.cors_origins = raw
        .cors_origins
        .iter()
        .flatten()
        .map(|o| o.get_ref().trim_end_matches('/').to_string())
        .collect();
    Ok(c)
}
