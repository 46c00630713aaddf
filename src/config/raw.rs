//! The file as serde sees it: TOML types only, every value with its byte
//! span so that validation can name a line. Also turns toml's errors into
//! messages that say which table and field they are about.

use serde::Deserialize;
use toml::Spanned;

use super::TransportMode;

/// The top level of `cameras.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    /// `[server]`; optional, every key has a default.
    pub server: Option<Spanned<RawServer>>,
    /// `[defaults]`; optional.
    pub defaults: Option<Spanned<RawDefaults>>,
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
}

/// `[defaults]`: values for cameras that do not set them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    /// Transport for every camera without its own.
    pub transport: Option<Spanned<TransportMode>>,
    /// Range-checked later, so a wrong value gets our message, not serde's.
    pub rtp_payload_size: Option<Spanned<i64>>,
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
    /// Overrides `[defaults] rtp_payload_size`.
    pub rtp_payload_size: Option<Spanned<i64>>,
    /// `[[camera.rtp_out]]`.
    #[serde(default)]
    pub rtp_out: Vec<Spanned<RawRtpOut>>,
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
        if field == "password" {
            // serde would quote the wrong value, which may be the password.
            format!("field `password` {}: must be a string", section(table))
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
/// "in [[camera]]", "in [[camera.rtp_out]]", or "at the top level".
fn section(keys: &[String]) -> String {
    match keys.first().map(String::as_str) {
        None => "at the top level".to_owned(),
        Some("camera") => format!("in [[{}]]", keys.join(".")),
        Some(_) => format!("in [{}]", keys.join(".")),
    }
}
