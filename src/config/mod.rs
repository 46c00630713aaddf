//! `cameras.toml`: the schema, its defaults and validation. Parsed once into
//! typed values; every error names the file, the line and the field.
//!
//! The reference for users is `docs/config.md`. Parsing happens in two
//! steps: serde reads the text into span-carrying raw structs (`raw`), then
//! `validate` turns them into the typed values below or the first error.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use url::Url;

pub use access::{AuthConfig, HttpLimits, Role, TlsFiles, TokenConfig, UserConfig};

mod access;
mod camera_auth;
mod cluster;
mod credentials;
pub mod faults;
mod raw;
mod rtsp_server;
#[cfg(test)]
mod tests;
mod validate;
mod webrtc;

pub use cluster::{ClusterConfig, EtcdTls};
pub use rtsp_server::RtspServerConfig;
pub use webrtc::{IceServer, WebrtcConfig};

/// A configuration problem, with the place it was found.
///
/// Messages never contain a password, not even a wrong one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema, or a value is
    /// invalid. `line` is 1-based.
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
}

/// The whole file.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[auth]`: who may use the HTTP listener; no credentials when absent.
    pub auth: AuthConfig,
    /// `[webrtc]`: ICE and viewer limits.
    pub webrtc: WebrtcConfig,
    /// `[rtsp_server]`: RTSP clients (recorders, VMS) pulling cameras.
    pub rtsp_server: RtspServerConfig,
    /// `[cluster]`: gateways sharing the cameras through etcd; alone when
    /// absent.
    pub cluster: Option<ClusterConfig>,
    /// `[[camera]]` entries, in file order, with `[defaults]` applied.
    pub cameras: Vec<CameraConfig>,
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// HTTP listener (API, SDP files, metrics). Default `127.0.0.1:8080`.
    /// A non-loopback address needs credentials in `[auth]` or
    /// `allow_unauthenticated`.
    pub listen: SocketAddr,
    /// Serve without credentials on a non-loopback address. Default false.
    pub allow_unauthenticated: bool,
    /// HTTPS when set: certificate and key files, reloaded on SIGHUP.
    pub tls: Option<TlsFiles>,
    /// Body, header, timeout and connection limits.
    pub limits: HttpLimits,
}

/// How to pull a camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportMode {
    /// RTSP interleaved over the TCP connection.
    Tcp,
    /// RTP over UDP port pairs.
    Udp,
    /// UDP first; TCP when no packet arrives within a few seconds (remembered
    /// for the camera until the gateway restarts).
    Auto,
}

impl TransportMode {
    /// The spelling used in `cameras.toml`: `tcp`, `udp` or `auto`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportMode::Tcp => "tcp",
            TransportMode::Udp => "udp",
            TransportMode::Auto => "auto",
        }
    }
}

impl fmt::Display for TransportMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::h264::repair::OnDamage;

/// One `[[camera.rtp_out]]` destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpOut {
    /// Where video goes (`IP:port`, port even); audio goes to port + 2.
    /// Never the unspecified address; the port is at most 65532 so that the
    /// audio port exists.
    pub destination: SocketAddr,
    /// Multicast TTL, 1..=255 (default 1); ignored for unicast.
    pub ttl: u32,
}

/// One `[[camera]]`.
///
/// `Debug` never shows the password (see [`crate::credentials`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CameraConfig {
    /// Unique id: 1 to 64 of ASCII letters, digits, `-`, `_`, `.` (not `.`
    /// or `..`); used in URLs, file names and metric labels.
    pub id: String,
    /// `rtsp://host[:port]/path` or `sim://NAME`, with credentials removed.
    pub url: Url,
    /// `(user name, password)` from the URL (percent-decoded), `username` +
    /// `password`, or `username` + `password_env` (resolved at load time).
    /// `None` when no user name is configured. The user name is non-empty
    /// and has no `:` (RFC 7617) and no control characters (a CR/LF would
    /// end the RTSP header line); the password may be empty. Never put the
    /// password in a log line or an error.
    pub credentials: Option<crate::credentials::Credentials>,
    /// Default `tcp` (from `[defaults]` when set there).
    pub transport: TransportMode,
    /// Default true. A disabled camera is listed but not pulled; it is still
    /// validated.
    pub enabled: bool,
    /// Plain RTP destinations; no two destinations of enabled cameras share
    /// a port (each uses port and port + 2).
    pub rtp_out: Vec<RtpOut>,
    /// Largest RTP payload sent to consumers, 200..=1460, default 1200
    /// (from `[defaults]` when set there).
    pub rtp_payload_size: usize,
    /// 1-based line of the `[[camera]]` header, for messages.
    pub line: usize,
    /// How long received RTP waits for reordered packets before a gap is
    /// declared lost, in ms, 0..=10000 (from `[defaults]` when set there).
    /// `None`: automatic, see [`CameraConfig::network_cache`].
    pub network_cache_ms: Option<u32>,
    /// `SO_RCVBUF` requested for the camera's UDP sockets, in bytes,
    /// 65536..=67108864, default 2 MiB (from `[defaults]` when set there).
    /// The kernel may grant less (Linux: `net.core.rmem_max`).
    pub socket_buffer_bytes: usize,
    /// What to do with damaged pictures; default drop until keyframe (from
    /// `[defaults]` when set there).
    pub on_damage: OnDamage,
    /// How long the picture may stay frozen after damage, with keyframe
    /// requests repeated meanwhile, before the session is restarted (a new
    /// session starts with a keyframe), 1..=600 s (from `[defaults]` when
    /// set there). `None`: automatic, see [`refresh_timeout_for`].
    pub refresh_timeout: Option<Duration>,
    /// The camera's ONVIF device service (`http://host[:port]/path`, no
    /// credentials: the camera's are used), to ask for a keyframe with
    /// SetSynchronizationPoint when RTCP PLI/FIR is ignored.
    pub onvif_url: Option<Url>,
    /// `[camera.faults]`: faults the simulator injects; only for `sim://`
    /// cameras, `None` when the table is absent.
    pub faults: Option<faults::Faults>,
    /// `rtsps://` only: check the camera's certificate against the system's
    /// trusted roots and its host name. Default true; false accepts any
    /// certificate (self-signed cameras).
    pub tls_verify: bool,
    /// Pull the camera only while at least one session (viewer or RTP
    /// consumer) wants it. Default false: always pulled.
    pub on_demand: bool,
    /// How long an on-demand camera keeps playing after its last session
    /// left, 1..=86400 s, default [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl CameraConfig {
    /// The reorder cache to use: `network_cache_ms` when set, else
    /// [`AUTO_NETWORK_CACHE_UDP`] when the session runs over UDP and zero
    /// over TCP (which never reorders).
    pub fn network_cache(&self, over_udp: bool) -> Duration {
        match self.network_cache_ms {
            Some(ms) => Duration::from_millis(u64::from(ms)),
            None if over_udp => AUTO_NETWORK_CACHE_UDP,
            None => Duration::ZERO,
        }
    }
}

/// The refresh timeout in force (see [`CameraConfig::refresh_timeout`]):
/// `configured` when set, else twice the measured GOP duration (when
/// known), at least [`AUTO_REFRESH_TIMEOUT_MIN`]. The one place the
/// automatic rule is written; the session watchdog calls it.
pub fn refresh_timeout_for(configured: Option<Duration>, gop: Option<Duration>) -> Duration {
    configured.unwrap_or_else(|| {
        gop.map_or(AUTO_REFRESH_TIMEOUT_MIN, |g| {
            g.saturating_mul(2).max(AUTO_REFRESH_TIMEOUT_MIN)
        })
    })
}

/// `[server] listen` when the file does not set it.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8080,
));
/// `transport` when neither the camera nor `[defaults]` sets it.
pub const DEFAULT_TRANSPORT: TransportMode = TransportMode::Tcp;
/// `rtp_payload_size` when neither the camera nor `[defaults]` sets it.
pub const DEFAULT_RTP_PAYLOAD_SIZE: usize = 1200;
/// Allowed `rtp_payload_size`: below 200 the header overhead dominates; 1460
/// plus RTP (12), UDP (8) and IPv4 (20) headers is a full 1500-byte MTU.
pub const RTP_PAYLOAD_SIZE_RANGE: std::ops::RangeInclusive<usize> = 200..=1460;
/// Allowed `network_cache_ms`.
pub const NETWORK_CACHE_MS_RANGE: std::ops::RangeInclusive<u32> = 0..=10_000;
/// The reorder cache over UDP when `network_cache_ms` is not set.
pub const AUTO_NETWORK_CACHE_UDP: Duration = Duration::from_millis(200);
/// `socket_buffer_bytes` when neither the camera nor `[defaults]` sets it:
/// 2 MiB, about a second of a 16 Mbit/s stream.
pub const DEFAULT_SOCKET_BUFFER_BYTES: usize = 2 * 1024 * 1024;
/// Allowed `socket_buffer_bytes`: 64 KiB to 64 MiB.
pub const SOCKET_BUFFER_BYTES_RANGE: std::ops::RangeInclusive<usize> = 65_536..=67_108_864;
/// Allowed `refresh_timeout`, in seconds.
pub const REFRESH_TIMEOUT_RANGE_S: std::ops::RangeInclusive<f64> = 1.0..=600.0;
/// The shortest automatic refresh timeout.
pub const AUTO_REFRESH_TIMEOUT_MIN: Duration = Duration::from_secs(4);
/// `idle_timeout` when the camera does not set it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Allowed `idle_timeout`, in seconds (up to a day).
pub const IDLE_TIMEOUT_RANGE_S: std::ops::RangeInclusive<f64> = 1.0..=86_400.0;

impl Config {
    /// The file `camgate` reads when no path is given: `cameras.toml` in the
    /// working directory.
    pub fn default_path() -> &'static Path {
        Path::new("cameras.toml")
    }

    /// Reads and validates a file. `password_env` variables are read from
    /// the process environment now.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: name.clone(),
            source,
        })?;
        Config::parse(&text, &name)
    }

    /// Validates `text`; `file` names it in errors. `password_env` variables
    /// are read from the process environment.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        validate::parse(text, file, &|name| std::env::var_os(name))
    }

    /// Validates `text` (the main file, named `file`) followed by `extra`
    /// (text, file name): a file of `[[camera]]` tables only, such as the
    /// cameras added through the HTTP API. The main file's `[defaults]`
    /// apply to them; ids and RTP ports must be unique across both files;
    /// errors name the file they are in. Its cameras come after the main
    /// file's.
    pub fn parse_layered(
        text: &str,
        file: &str,
        extra: (&str, &str),
    ) -> Result<Config, ConfigError> {
        validate::parse_layered(text, file, Some(extra), &|name| std::env::var_os(name))
    }

    /// What `camgate check` prints on success: a line for the listener, then
    /// one line per camera (id, transport, number of RTP outputs, URL with
    /// any credentials redacted, and whether it is disabled). Every line,
    /// the last too, ends in a newline.
    pub fn summary(&self) -> String {
        let enabled = self.cameras.iter().filter(|c| c.enabled).count();
        let mut out = match self.cameras.len() {
            0 => format!("HTTP on {}; no cameras configured\n", self.server.listen),
            n => format!(
                "HTTP on {}; {n} camera{} ({enabled} enabled)\n",
                self.server.listen,
                if n == 1 { "" } else { "s" }
            ),
        };
        let width = self.cameras.iter().map(|c| c.id.len()).max().unwrap_or(0);
        for c in &self.cameras {
            out.push_str(&format!(
                "  {:<width$}  {:<4}  {} rtp_out  {}{}\n",
                c.id,
                c.transport.as_str(),
                c.rtp_out.len(),
                crate::redact::redact_url(c.url.as_str()),
                if c.enabled { "" } else { "  (disabled)" },
            ));
        }
        out
    }
}
