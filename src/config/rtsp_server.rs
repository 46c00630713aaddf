//! `[rtsp_server]`: where recorders and video management systems pull the
//! repaired stream of every camera (`rtsp://HOST:PORT/{camera_id}`), and
//! how many may.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::raw::Number;
use super::validate::Source;
use super::ConfigError;

/// `[rtsp_server]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRtspServer {
    pub enabled: Option<Spanned<bool>>,
    pub listen: Option<Spanned<String>>,
    pub rtsps_listen: Option<Spanned<String>>,
    pub udp_port_range: Option<Spanned<String>>,
    pub max_rtsp_clients: Option<Spanned<i64>>,
    pub max_rtsp_clients_per_camera: Option<Spanned<i64>>,
    pub max_connections_per_address: Option<Spanned<i64>>,
    pub session_timeout: Option<Spanned<Number>>,
}

/// `[rtsp_server]`, checked, with defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtspServerConfig {
    /// Serve RTSP at all. Default true.
    pub enabled: bool,
    /// RTSP over TCP. Default `127.0.0.1:8554`, the port users expect of an
    /// RTSP server in front of their cameras.
    pub listen: SocketAddr,
    /// RTSP over TLS (`rtsps://`) with the `[server]` certificate; off when
    /// absent. Needs `[server] tls_cert` and `tls_key`.
    pub rtsps_listen: Option<SocketAddr>,
    /// Local UDP ports for clients that play over UDP: one even/odd pair
    /// per track. Default 20000..=20999.
    pub udp_ports: (u16, u16),
    /// RTSP clients (sessions) over all cameras. Default 500.
    pub max_rtsp_clients: usize,
    /// RTSP clients of one camera. Default 100.
    pub max_rtsp_clients_per_camera: usize,
    /// Connections from one address (IPv6: one /64) at once. Default 256:
    /// a recorder opens one per camera it pulls.
    pub max_connections_per_address: usize,
    /// A session with no request and no RTCP from its client this long is
    /// ended, and announced as `timeout=` in `Session`. Default 60 s.
    pub session_timeout: Duration,
}

impl Default for RtspServerConfig {
    fn default() -> Self {
        RtspServerConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8554)),
            rtsps_listen: None,
            udp_ports: (20000, 20999),
            max_rtsp_clients: 500,
            max_rtsp_clients_per_camera: 100,
            max_connections_per_address: 256,
            session_timeout: Duration::from_secs(60),
        }
    }
}

const WHO: &str = "[rtsp_server] ";

fn address(v: &Spanned<String>, field: &str, src: &Source<'_>) -> Result<SocketAddr, ConfigError> {
    v.get_ref().parse().map_err(|_| {
        src.field(
            v,
            WHO,
            field,
            &format!("{:?} is not IP:port (e.g. 0.0.0.0:8554)", v.get_ref()),
        )
    })
}

fn count(v: &Spanned<i64>, field: &str, src: &Source<'_>) -> Result<usize, ConfigError> {
    let n = *v.get_ref();
    if !(0..=100_000).contains(&n) {
        return Err(src.field(v, WHO, field, &format!("{n} is out of range 0..=100000")));
    }
    Ok(n as usize)
}

/// Checks `[rtsp_server]`; `tls` says whether `[server]` has a certificate,
/// `guarded` whether `[auth]` has credentials or `[server]
/// allow_unauthenticated` is set (as for the HTTP listener, a listener
/// reachable from other hosts needs one of them).
pub(super) fn rtsp_server(
    raw: Option<&RawRtspServer>,
    tls: bool,
    guarded: bool,
    src: &Source<'_>,
) -> Result<RtspServerConfig, ConfigError> {
    let mut c = RtspServerConfig::default();
    let Some(raw) = raw else { return Ok(c) };
    if let Some(v) = &raw.enabled {
        c.enabled = *v.get_ref();
    }
    let reachable = |v: &Spanned<String>, addr: SocketAddr, field: &str| {
        if addr.ip().is_loopback() || guarded {
            Ok(addr)
        } else {
            Err(src.field(
                v,
                WHO,
                field,
                &format!(
                    "{addr} is reachable from other hosts and no credentials are configured; \
                     add [[auth.token]] or [[auth.user]] entries, or set `[server] allow_unauthenticated = true`"
                ),
            ))
        }
    };
    if let Some(v) = &raw.listen {
        c.listen = reachable(v, address(v, "listen", src)?, "listen")?;
    }
    if let Some(v) = &raw.rtsps_listen {
        if !tls {
            return Err(src.field(
                v,
                WHO,
                "rtsps_listen",
                "needs a certificate: set [server] tls_cert and tls_key",
            ));
        }
        c.rtsps_listen = Some(reachable(
            v,
            address(v, "rtsps_listen", src)?,
            "rtsps_listen",
        )?);
    }
    if let Some(v) = &raw.udp_port_range {
        let bad = || {
            src.field(
                v,
                WHO,
                "udp_port_range",
                &format!(
                    "{:?} is not FIRST-LAST with an even FIRST and at least one port pair (e.g. \"20000-20999\")",
                    v.get_ref()
                ),
            )
        };
        let (a, b) = v.get_ref().split_once('-').ok_or_else(bad)?;
        let (a, b): (u16, u16) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a == 0 || a % 2 != 0 || b <= a {
            return Err(bad());
        }
        c.udp_ports = (a, b);
    }
    if let Some(v) = &raw.max_rtsp_clients {
        c.max_rtsp_clients = count(v, "max_rtsp_clients", src)?;
    }
    if let Some(v) = &raw.max_rtsp_clients_per_camera {
        c.max_rtsp_clients_per_camera = count(v, "max_rtsp_clients_per_camera", src)?;
    }
    if let Some(v) = &raw.max_connections_per_address {
        c.max_connections_per_address = count(v, "max_connections_per_address", src)?.max(1);
    }
    if let Some(v) = &raw.session_timeout {
        let secs = v.get_ref().0;
        if !(5.0..=3600.0).contains(&secs) {
            return Err(src.field(
                v,
                WHO,
                "session_timeout",
                &format!("{secs} s is out of range 5..=3600"),
            ));
        }
        c.session_timeout = Duration::from_secs_f64(secs);
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "cameras.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_keys() {
        assert_eq!(parse("").unwrap().rtsp_server, RtspServerConfig::default());
        let c = parse(
            "[rtsp_server]\nlisten = \"127.0.0.1:9554\"\nudp_port_range = \"30000-30099\"\n\
             max_rtsp_clients = 7\nmax_rtsp_clients_per_camera = 3\nsession_timeout = 20\nenabled = false\n\
             max_connections_per_address = 9\n",
        )
        .unwrap()
        .rtsp_server;
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 9554)));
        assert_eq!(c.udp_ports, (30000, 30099));
        assert_eq!((c.max_rtsp_clients, c.max_rtsp_clients_per_camera), (7, 3));
        assert_eq!(c.session_timeout, Duration::from_secs(20));
        assert_eq!(c.max_connections_per_address, 9);
        assert!(!c.enabled);
    }

    #[test]
    fn errors_name_the_line_and_field() {
        for (text, want) in [
            (
                "[rtsp_server]\nlisten = \"nowhere\"\n",
                "cameras.toml:2: [rtsp_server] field `listen`",
            ),
            (
                "[rtsp_server]\n\nudp_port_range = \"20001-20999\"\n",
                "cameras.toml:3: [rtsp_server] field `udp_port_range`",
            ),
            (
                "[rtsp_server]\nudp_port_range = \"9-3\"\n",
                "field `udp_port_range`",
            ),
            (
                "[rtsp_server]\nrtsps_listen = \"127.0.0.1:322\"\n",
                "needs a certificate",
            ),
            (
                "[rtsp_server]\nlisten = \"0.0.0.0:8554\"\n",
                "reachable from other hosts",
            ),
            (
                "[rtsp_server]\nsession_timeout = 1\n",
                "field `session_timeout`",
            ),
            (
                "[rtsp_server]\nmax_rtsp_clients = -1\n",
                "field `max_rtsp_clients`",
            ),
            ("[rtsp_server]\nport = 1\n", "cameras.toml:2"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let open = "[server]\nallow_unauthenticated = true\nlisten = \"0.0.0.0:8080\"\n[rtsp_server]\nlisten = \"0.0.0.0:8554\"\n";
        assert!(parse(open).is_ok(), "{:?}", parse(open));
    }
}
