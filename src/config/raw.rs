//! The file as serde sees it: TOML types only, every value with its byte
//! span so that validation can name a line. Also turns toml's errors into
//! messages that say which table and field they are about.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::access::Role;
use super::{OnDamage, TransportMode};

/// The top level of `cameras.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    /// `[server]`; optional, every key has a default.
    pub server: Option<Spanned<RawServer>>,
    /// `[defaults]`; optional.
    pub defaults: Option<Spanned<RawDefaults>>,
    /// `[auth]`; optional, no credentials when absent.
    pub auth: Option<Spanned<RawAuth>>,
    /// `[webrtc]`; optional.
    pub webrtc: Option<Spanned<super::webrtc::RawWebrtc>>,
    /// `[rtsp_server]`; optional.
    pub rtsp_server: Option<Spanned<super::rtsp_server::RawRtspServer>>,
    /// `[cluster]`; optional (camgate runs alone without it).
    pub cluster: Option<Spanned<super::cluster::RawCluster>>,
    /// `[[camera]]`; none is a valid (if idle) gateway.
    #[serde(default)]
    pub camera: Vec<Spanned<RawCamera>>,
}

/// `[server]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    /// `IP:port` of the HTTP listener.
    pub listen: Option<Spanned<String>>,
    /// Serve without credentials on a non-loopback address.
    pub allow_unauthenticated: Option<Spanned<bool>>,
    /// PEM certificate chain; needs `tls_key`.
    pub tls_cert: Option<Spanned<String>>,
    /// PEM private key; needs `tls_cert`.
    pub tls_key: Option<Spanned<String>>,
    /// Bytes; range-checked later.
    pub max_body_bytes: Option<Spanned<i64>>,
    /// Bytes; range-checked later.
    pub max_header_bytes: Option<Spanned<i64>>,
    /// Seconds; range-checked later.
    pub header_timeout: Option<Spanned<Number>>,
    /// Seconds; range-checked later.
    pub idle_timeout: Option<Spanned<Number>>,
    /// Seconds; range-checked later.
    pub request_timeout: Option<Spanned<Number>>,
    /// Range-checked later.
    pub max_connections: Option<Spanned<i64>>,
    /// Range-checked later.
    pub max_connections_per_ip: Option<Spanned<i64>>,
    /// Range-checked later.
    pub max_whep_negotiations: Option<Spanned<i64>>,
}

/// `[auth]`: credentials for the HTTP listener.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    /// `/metrics` without credentials.
    pub public_metrics: Option<bool>,
    /// Range-checked later.
    pub max_failures: Option<Spanned<i64>>,
    /// Seconds; range-checked later.
    pub lockout: Option<Spanned<Number>>,
    /// `[[auth.token]]`.
    #[serde(default)]
    pub token: Vec<Spanned<RawToken>>,
    /// `[[auth.user]]`.
    #[serde(default)]
    pub user: Vec<Spanned<RawUser>>,
}

/// One `[[auth.token]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    /// For logs; default `token #N`.
    pub name: Option<Spanned<String>>,
    /// The secret; excludes `token_env`.
    pub token: Option<Spanned<String>>,
    /// Name of an environment variable holding the secret.
    pub token_env: Option<Spanned<String>>,
    /// Required.
    pub role: Spanned<Role>,
    /// Viewer only; default all cameras.
    pub cameras: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One `[[auth.user]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    /// Required.
    pub name: Spanned<String>,
    /// Required; a PHC string.
    pub password_hash: Spanned<String>,
    /// Required.
    pub role: Spanned<Role>,
    /// Viewer only; default all cameras.
    pub cameras: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[defaults]`: values for cameras that do not set them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    /// Transport for every camera without its own.
    pub transport: Option<Spanned<TransportMode>>,
    /// Range-checked later, so a wrong value gets our message, not serde's.
    pub rtp_payload_size: Option<Spanned<i64>>,
    /// Milliseconds; range-checked later.
    pub network_cache_ms: Option<Spanned<i64>>,
    /// Bytes; range-checked later.
    pub socket_buffer_bytes: Option<Spanned<i64>>,
    /// What to do with damaged pictures.
    pub on_damage: Option<Spanned<OnDamage>>,
    /// Seconds; range-checked later.
    pub refresh_timeout: Option<Spanned<Number>>,
}

/// One `[[camera]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCamera {
    /// Required.
    pub id: Spanned<String>,
    /// Required; may carry credentials.
    pub url: Spanned<String>,
    /// Overrides `[defaults] transport`.
    pub transport: Option<Spanned<TransportMode>>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Alternative to credentials in the URL.
    pub username: Option<Spanned<String>>,
    /// Needs `username`; excludes `password_env`.
    pub password: Option<Spanned<String>>,
    /// Name of an environment variable holding the password.
    pub password_env: Option<Spanned<String>>,
    /// A file holding `username:password`, mode 0600, owned by the user
    /// camgate runs as; excludes every other way of giving credentials.
    pub credentials_file: Option<Spanned<String>>,
    /// Overrides `[defaults] rtp_payload_size`.
    pub rtp_payload_size: Option<Spanned<i64>>,
    /// Overrides `[defaults] network_cache_ms`.
    pub network_cache_ms: Option<Spanned<i64>>,
    /// Overrides `[defaults] socket_buffer_bytes`.
    pub socket_buffer_bytes: Option<Spanned<i64>>,
    /// Overrides `[defaults] on_damage`.
    pub on_damage: Option<Spanned<OnDamage>>,
    /// Overrides `[defaults] refresh_timeout`.
    pub refresh_timeout: Option<Spanned<Number>>,
    /// ONVIF device service URL; checked later.
    pub onvif_url: Option<Spanned<String>>,
    /// `rtsps://` only; default true.
    pub tls_verify: Option<Spanned<bool>>,
    /// Pull the camera only while a viewer or consumer wants it.
    pub on_demand: Option<bool>,
    /// Seconds an on-demand camera keeps playing with nobody watching;
    /// range-checked later.
    pub idle_timeout: Option<Spanned<Number>>,
    /// `[[camera.rtp_out]]`.
    #[serde(default)]
    pub rtp_out: Vec<Spanned<RawRtpOut>>,
    /// `[camera.faults]`; only for `sim://` cameras.
    pub faults: Option<Spanned<RawFaults>>,
}

/// `[camera.faults]`: every key optional, each overriding
/// `Faults::default()`. Ranges are checked later.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFaults {
    pub seed: Option<Spanned<i64>>,
    pub truncate: Option<Spanned<Number>>,
    pub truncate_resend: Option<Spanned<Number>>,
    pub garbage: Option<Spanned<Number>>,
    pub udp_loss: Option<Spanned<Number>>,
    pub udp_reorder: Option<Spanned<Number>>,
    pub udp_duplicate: Option<Spanned<Number>>,
    pub stall_every_s: Option<Spanned<Number>>,
    pub ssrc_change_every_s: Option<Spanned<Number>>,
    pub timestamp_jump_every_s: Option<Spanned<Number>>,
    pub reboot_every_s: Option<Spanned<Number>>,
    pub require_rr_s: Option<Spanned<Number>>,
    pub stall_ms: Option<Spanned<i64>>,
    pub sprop_only: Option<bool>,
    pub honour_pli: Option<bool>,
}

/// A TOML integer or float, as `f64` (`refresh_timeout = 5` and `= 2.5`
/// both work). Not necessarily finite: TOML has `inf` and `nan`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Number(pub f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number (integer or float)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                // Exact for every value a range check can accept.
                Ok(Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

/// One `[[camera.rtp_out]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRtpOut {
    /// Required; `IP:port`.
    pub destination: Spanned<String>,
    /// Range-checked later.
    pub ttl: Option<Spanned<i64>>,
}

/// Rewrites a toml/serde error message so that it names its table and
/// field, and never repeats a password value. Returns the message and the
/// byte offset it is about. `text` is the parsed document.
pub(super) fn describe(err: &toml::de::Error, text: &str) -> (String, Option<usize>) {
    let offset = err.span().map(|s| s.start);
    let keys = keys_of(err);
    let message = err.message();
    let text = if let Some(rest) = message.strip_prefix("unknown field `") {
        // "unknown field `x`, expected one of `a`, `b`": put the table in.
        match rest.find("`, ") {
            Some(end) => format!(
                "unknown field `{}` {}, {}",
                &rest[..end],
                section(&keys),
                &rest[end + 3..]
            ),
            None => format!("{message} {}", section(&keys)),
        }
    } else if message.starts_with("missing field `") {
        format!("{message} {}", section(&keys))
    } else if message == "duplicate key" {
        // toml points at the repeated key but does not name it.
        match err.span().and_then(|s| text.get(s)) {
            Some(key) => format!("duplicate key `{key}` (a key or table may appear only once)"),
            None => message.to_owned(),
        }
    } else if let Some((field, table)) = keys.split_last() {
        if field == "password" || field == "token" {
            // serde would quote the wrong value, which may be the password.
            format!("field `{field}` {}: must be a string", section(table))
        } else {
            format!("field `{field}` {}: {message}", section(table))
        }
    } else {
        message.to_owned()
    };
    (text, offset)
}

/// The dotted key path toml records for an error (`camera.rtp_out.ttl`).
///
/// toml 0.9 only shows it through `Display`, and only when the error has no
/// input attached, so this asks for exactly that. Keys containing `.` are
/// split wrongly; that only makes a message less precise.
fn keys_of(err: &toml::de::Error) -> Vec<String> {
    let mut bare = err.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    shown
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("in `"))
        .and_then(|l| l.strip_suffix('`'))
        .map(|path| path.split('.').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Where a table path is, as written in the file: "in [server]",
/// "in [[camera]]", "in [[camera.rtp_out]]", "in [camera.faults]", or "at
/// the top level".
fn section(keys: &[String]) -> String {
    /// The arrays of tables of the schema.
    const ARRAYS: [&[&str]; 4] = [
        &["camera"],
        &["camera", "rtp_out"],
        &["auth", "token"],
        &["auth", "user"],
    ];
    if keys.is_empty() {
        "at the top level".to_owned()
    } else if ARRAYS
        .iter()
        .any(|a| keys.iter().map(String::as_str).eq(a.iter().copied()))
    {
        format!("in [[{}]]", keys.join("."))
    } else {
        format!("in [{}]", keys.join("."))
    }
}
