//! `cameras.toml`: the schema, its defaults and validation. Parsed once into
//! typed values; every error names the file, the line and the field.
//!
//! The reference for users is `docs/config.md`. Parsing happens in two
//! steps: serde reads the text into span-carrying raw structs (`raw`), then
//! `validate` turns them into the typed values below or the first error.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use url::Url;

mod raw;
#[cfg(test)]
mod tests;
mod validate;

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
    /// `[[camera]]` entries, in file order, with `[defaults]` applied.
    pub cameras: Vec<CameraConfig>,
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// HTTP listener (API, SDP files, metrics). Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
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
/// `Debug` prints the password as `***`, so a `Config` can be logged whole.
#[derive(Clone, PartialEq)]
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
    pub credentials: Option<(String, String)>,
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
}

impl fmt::Debug for CameraConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let CameraConfig {
            id,
            url,
            credentials,
            transport,
            enabled,
            rtp_out,
            rtp_payload_size,
            line,
        } = self;
        let credentials = credentials.as_ref().map(|(user, _)| (user, "***"));
        f.debug_struct("CameraConfig")
            .field("id", id)
            .field("url", &url.as_str())
            .field("credentials", &credentials)
            .field("transport", transport)
            .field("enabled", enabled)
            .field("rtp_out", rtp_out)
            .field("rtp_payload_size", rtp_payload_size)
            .field("line", line)
            .finish()
    }
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
