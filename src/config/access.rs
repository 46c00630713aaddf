//! Who may use the HTTP listener and how much of it: the `[server]` keys
//! for TLS and abuse limits, and `[auth]` (bearer tokens and users with
//! Argon2 password hashes, RFC 6750 and RFC 7617). Typed values and their
//! validation; `crate::http::auth` enforces them.

use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawAuth, RawServer, RawToken, RawUser};
use super::validate::{id_problem, int_in, number_where, EnvLookup, Source};
use super::ConfigError;

/// `[server] tls_cert` and `tls_key`: PEM files, read at start and again on
/// SIGHUP. Relative paths are resolved against the configuration file's
/// directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Limits that keep slow or hostile HTTP clients from exhausting the
/// gateway. Each default is on its field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body, `max_body_bytes`, default 64 KiB (WHEP offers
    /// and API bodies are far smaller); larger gets 413.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers), `max_header_bytes`,
    /// default 16 KiB; larger gets 431.
    pub max_header_bytes: usize,
    /// `header_timeout`, default 10 s: the whole request head (and the TLS
    /// handshake) must arrive within this; also how long an idle keep-alive
    /// connection waits for its next request.
    pub header_timeout: Duration,
    /// `idle_timeout`, default 60 s: a connection on which no byte moves in
    /// either direction this long is closed (slow readers, stalled bodies).
    pub idle_timeout: Duration,
    /// `request_timeout`, default 30 s: a handler that has not answered by
    /// then gets 408 sent instead (covers bodies sent byte by byte).
    pub request_timeout: Duration,
    /// `max_connections`, default 512: connections open at once; more are
    /// closed as soon as they are accepted.
    pub max_connections: usize,
    /// `max_connections_per_ip`, default 32: connections open at once from
    /// one address (IPv6: one /64).
    pub max_connections_per_ip: usize,
    /// `max_whep_negotiations`, default 8: WebRTC offers being answered at
    /// once; more get 503.
    pub max_whep_negotiations: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_connections_per_ip: 32,
            max_whep_negotiations: 8,
        }
    }
}

/// What a credential may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// List cameras and watch the ones allowed (WHEP, SDP files, the
    /// dashboard).
    Viewer,
    /// Everything: also add, remove and restart cameras, end sessions, read
    /// `/metrics`.
    Admin,
    /// `/metrics` only (a Prometheus scraper).
    Metrics,
}

impl Role {
    /// The spelling in `cameras.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Metrics => "metrics",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[auth]`. With neither tokens nor users, the listener is open (and must
/// then listen on loopback, or say `allow_unauthenticated`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AuthConfig {
    /// `[[auth.token]]`, in file order.
    pub tokens: Vec<TokenConfig>,
    /// `[[auth.user]]`, in file order.
    pub users: Vec<UserConfig>,
    /// `public_metrics`, default false: `/metrics` without credentials even
    /// when credentials are configured.
    pub public_metrics: bool,
    /// `max_failures`, default 10: failed authentications from one address
    /// within a minute before it is locked out.
    pub max_failures: u32,
    /// `lockout`, default 60 s: how long a locked-out address gets 429.
    pub lockout: Duration,
}

impl AuthConfig {
    /// Whether any credential is configured, i.e. whether requests must
    /// authenticate.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || !self.users.is_empty()
    }
}

/// `max_failures` when `[auth]` does not set it.
pub const DEFAULT_MAX_FAILURES: u32 = 10;
/// `lockout` when `[auth]` does not set it.
pub const DEFAULT_LOCKOUT: Duration = Duration::from_secs(60);

/// One `[[auth.token]]`: a bearer token.
///
/// `Debug` prints the token as `***`.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenConfig {
    /// For logs: `name`, else `token #N`.
    pub name: String,
    /// The secret, from `token` or `token_env`: at least 16 characters of
    /// the RFC 6750 token alphabet.
    pub token: crate::credentials::Secret,
    /// What it may do.
    pub role: Role,
    /// The cameras a viewer may watch; `None`: all.
    pub cameras: Option<Vec<String>>,
}

/// One `[[auth.user]]`: a user name and an Argon2 password hash, for HTTP
/// Basic authentication (browsers ask for it natively).
#[derive(Clone, Debug, PartialEq)]
pub struct UserConfig {
    /// The user name: non-empty, no `:` and no control characters.
    pub name: String,
    /// A PHC string (`$argon2id$v=19$m=...`), as `camgate hash-password`
    /// prints it; checked to parse when the file is loaded.
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
    /// The cameras a viewer may watch; `None`: all.
    pub cameras: Option<Vec<String>>,
}

/// Shortest accepted token: 16 characters of the token alphabet are about
/// 95 bits when random.
const MIN_TOKEN_LEN: usize = 16;
/// Allowed `max_body_bytes`.
const BODY_RANGE: RangeInclusive<i64> = 1024..=16 * 1024 * 1024;
/// Allowed `max_header_bytes`; hyper needs at least 8 KiB of read buffer.
const HEADER_RANGE: RangeInclusive<i64> = 8192..=1024 * 1024;
/// Allowed `max_connections` and `max_connections_per_ip`.
const CONNECTIONS_RANGE: RangeInclusive<i64> = 1..=65_536;
/// Allowed `max_whep_negotiations`.
const NEGOTIATIONS_RANGE: RangeInclusive<i64> = 1..=1024;
/// Allowed timeouts, in seconds.
const TIMEOUT_RANGE_S: RangeInclusive<f64> = 0.1..=3600.0;
/// Allowed `max_failures`.
const FAILURES_RANGE: RangeInclusive<i64> = 1..=10_000;
/// Allowed `lockout`, in seconds.
const LOCKOUT_RANGE_S: RangeInclusive<f64> = 1.0..=86_400.0;

/// The `[server]` keys besides `listen`, checked against `[auth]`: a
/// listener reachable from other hosts needs credentials unless
/// `allow_unauthenticated` says otherwise.
pub(super) fn server(
    raw: Option<&RawServer>,
    listen: SocketAddr,
    auth: &AuthConfig,
    src: &Source<'_>,
) -> Result<(bool, Option<TlsFiles>, HttpLimits), ConfigError> {
    let who = "[server] ";
    let mut limits = HttpLimits::default();
    let Some(raw) = raw else {
        open_listener_check(None, listen, false, auth, src)?;
        return Ok((false, None, limits));
    };
    let allow_unauthenticated = raw
        .allow_unauthenticated
        .as_ref()
        .is_some_and(|a| *a.get_ref());
    open_listener_check(
        raw.listen.as_ref(),
        listen,
        allow_unauthenticated,
        auth,
        src,
    )?;

    let tls = match (&raw.tls_cert, &raw.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: file_path(cert, who, "tls_cert", src)?,
            key: file_path(key, who, "tls_key", src)?,
        }),
        (Some(cert), None) => {
            return Err(src.field(cert, who, "tls_cert", "needs `tls_key` too"));
        }
        (None, Some(key)) => {
            return Err(src.field(key, who, "tls_key", "needs `tls_cert` too"));
        }
    };

    let ints = [
        (
            &raw.max_body_bytes,
            "max_body_bytes",
            &BODY_RANGE,
            &mut limits.max_body_bytes,
        ),
        (
            &raw.max_header_bytes,
            "max_header_bytes",
            &HEADER_RANGE,
            &mut limits.max_header_bytes,
        ),
        (
            &raw.max_connections,
            "max_connections",
            &CONNECTIONS_RANGE,
            &mut limits.max_connections,
        ),
        (
            &raw.max_connections_per_ip,
            "max_connections_per_ip",
            &CONNECTIONS_RANGE,
            &mut limits.max_connections_per_ip,
        ),
        (
            &raw.max_whep_negotiations,
            "max_whep_negotiations",
            &NEGOTIATIONS_RANGE,
            &mut limits.max_whep_negotiations,
        ),
    ];
    for (value, field, range, slot) in ints {
        if let Some(v) = value {
            *slot = int_in(v, range, who, field, src)?;
        }
    }
    let timeouts = [
        (
            &raw.header_timeout,
            "header_timeout",
            &mut limits.header_timeout,
        ),
        (&raw.idle_timeout, "idle_timeout", &mut limits.idle_timeout),
        (
            &raw.request_timeout,
            "request_timeout",
            &mut limits.request_timeout,
        ),
    ];
    for (value, field, slot) in timeouts {
        if let Some(v) = value {
            *slot = seconds(v, &TIMEOUT_RANGE_S, who, field, src)?;
        }
    }
    Ok((allow_unauthenticated, tls, limits))
}

/// Refuses a listener reachable from other hosts without credentials,
/// unless `allow_unauthenticated` is set.
fn open_listener_check(
    value: Option<&Spanned<String>>,
    listen: SocketAddr,
    allow_unauthenticated: bool,
    auth: &AuthConfig,
    src: &Source<'_>,
) -> Result<(), ConfigError> {
    if listen.ip().is_loopback() || auth.enabled() || allow_unauthenticated {
        return Ok(());
    }
    let what = format!(
        "{listen} is reachable from other hosts and no credentials are configured; \
         add [[auth.token]] or [[auth.user]] entries, or set `[server] allow_unauthenticated = true` \
         to serve the API and video to anyone who can reach it"
    );
    match value {
        Some(v) => Err(src.field(v, "[server] ", "listen", &what)),
        None => Err(src.invalid(0, format!("[server] field `listen`: {what}"))),
    }
}

/// A path key, resolved against the configuration file's directory.
fn file_path(
    value: &Spanned<String>,
    who: &str,
    field: &str,
    src: &Source<'_>,
) -> Result<PathBuf, ConfigError> {
    let path = Path::new(value.get_ref());
    if value.get_ref().is_empty() {
        return Err(src.field(value, who, field, "is empty"));
    }
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    let base = Path::new(src.file).parent().unwrap_or(Path::new(""));
    Ok(base.join(path))
}

/// Seconds (integer or float) within `range`.
fn seconds(
    value: &Spanned<super::raw::Number>,
    range: &RangeInclusive<f64>,
    who: &str,
    field: &str,
    src: &Source<'_>,
) -> Result<Duration, ConfigError> {
    let rule = format!(
        "is out of range {}..={} (seconds)",
        range.start(),
        range.end()
    );
    let secs = number_where(value, |v| range.contains(&v), &rule, who, field, src)?;
    Ok(Duration::from_secs_f64(secs))
}

/// `[auth]`, or its defaults (no credentials) when absent.
pub(super) fn auth(
    raw: Option<&RawAuth>,
    src: &Source<'_>,
    env: EnvLookup<'_>,
) -> Result<AuthConfig, ConfigError> {
    let mut auth = AuthConfig {
        max_failures: DEFAULT_MAX_FAILURES,
        lockout: DEFAULT_LOCKOUT,
        ..AuthConfig::default()
    };
    let Some(raw) = raw else {
        return Ok(auth);
    };
    let who = "[auth] ";
    auth.public_metrics = raw.public_metrics.unwrap_or(false);
    if let Some(v) = &raw.max_failures {
        auth.max_failures = int_in(v, &FAILURES_RANGE, who, "max_failures", src)?;
    }
    if let Some(v) = &raw.lockout {
        auth.lockout = seconds(v, &LOCKOUT_RANGE_S, who, "lockout", src)?;
    }
    for (i, t) in raw.token.iter().enumerate() {
        let token = token(t, i + 1, src, env)?;
        if let Some(first) = auth.tokens.iter().position(|o| o.token == token.token) {
            return Err(src.invalid(
                t.span().start,
                format!(
                    "[[auth.token]] {:?}: the same token as {:?}; give each client its own",
                    token.name, auth.tokens[first].name
                ),
            ));
        }
        auth.tokens.push(token);
    }
    for u in &raw.user {
        let user = user(u, src)?;
        if auth.users.iter().any(|o| o.name == user.name) {
            return Err(src.field(
                &u.get_ref().name,
                "[[auth.user]] ",
                "name",
                &format!("{:?} is used twice", user.name),
            ));
        }
        auth.users.push(user);
    }
    Ok(auth)
}

fn token(
    raw: &Spanned<RawToken>,
    n: usize,
    src: &Source<'_>,
    env: EnvLookup<'_>,
) -> Result<TokenConfig, ConfigError> {
    let t = raw.get_ref();
    let name = match &t.name {
        Some(name) if name.get_ref().is_empty() || name.get_ref().chars().any(char::is_control) => {
            return Err(src.field(
                name,
                "[[auth.token]] ",
                "name",
                "must be non-empty, without control characters",
            ));
        }
        Some(name) => name.get_ref().clone(),
        None => format!("token #{n}"),
    };
    let who = format!("[[auth.token]] {name:?}: ");
    let secret = match (&t.token, &t.token_env) {
        (Some(_), Some(e)) => {
            return Err(src.invalid(
                e.span().start,
                format!("{who}`token` and `token_env` are both set; use one"),
            ));
        }
        (None, None) => {
            return Err(src.invalid(
                raw.span().start,
                format!("{who}needs `token` or `token_env`"),
            ));
        }
        (Some(v), None) => {
            if let Some(problem) = token_problem(v.get_ref()) {
                return Err(src.field(v, &who, "token", problem));
            }
            v.get_ref().clone()
        }
        (None, Some(e)) => {
            let var = e.get_ref();
            let err = |what: String| src.field(e, &who, "token_env", &what);
            if var.is_empty() || var.contains(['=', '\0']) {
                return Err(err(format!(
                    "{var:?} is not a valid environment variable name"
                )));
            }
            let value = env(var)
                .ok_or_else(|| err(format!("environment variable {var} is not set")))?
                .into_string()
                .map_err(|_| err(format!("environment variable {var} is not valid UTF-8")))?;
            if let Some(problem) = token_problem(&value) {
                return Err(err(format!(
                    "environment variable {var}: the token {problem}"
                )));
            }
            value
        }
    };
    let role = *t.role.get_ref();
    let cameras = cameras(t.cameras.as_ref(), role, &who, src)?;
    Ok(TokenConfig {
        name,
        token: crate::credentials::Secret::new(secret),
        role,
        cameras,
    })
}

/// Why a token cannot be used, if it cannot. Never quotes the token.
fn token_problem(token: &str) -> Option<&'static str> {
    // RFC 6750 b64token: what an `Authorization: Bearer` header can carry.
    let alphabet = |c: char| c.is_ascii_alphanumeric() || "-._~+/".contains(c);
    let body = token.trim_end_matches('=');
    if token.chars().count() < MIN_TOKEN_LEN {
        Some("is shorter than 16 characters; generate one with `openssl rand -hex 32`")
    } else if !body.chars().all(alphabet) {
        Some("may contain only ASCII letters, digits and -._~+/ (then = padding)")
    } else {
        None
    }
}

fn user(raw: &Spanned<RawUser>, src: &Source<'_>) -> Result<UserConfig, ConfigError> {
    let u = raw.get_ref();
    let name = u.name.get_ref();
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.contains(':') {
        Some("contains ':', which HTTP Basic authentication cannot carry")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(src.field(&u.name, "[[auth.user]] ", "name", problem));
    }
    let who = format!("[[auth.user]] {name:?}: ");
    let hash = u.password_hash.get_ref();
    if let Err(e) = crate::password::check_password_hash(hash) {
        return Err(src.field(
            &u.password_hash,
            &who,
            "password_hash",
            &format!("{e}; make one with `camgate hash-password`"),
        ));
    }
    let role = *u.role.get_ref();
    Ok(UserConfig {
        name: name.clone(),
        password_hash: hash.clone(),
        role,
        cameras: cameras(u.cameras.as_ref(), role, &who, src)?,
    })
}

/// `cameras = [...]`: viewer credentials only, each id spelt like a camera
/// id. Ids are not required to exist yet: cameras can be added at run time.
#[allow(clippy::type_complexity)]
fn cameras(
    raw: Option<&Spanned<Vec<Spanned<String>>>>,
    role: Role,
    who: &str,
    src: &Source<'_>,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(list) = raw else {
        return Ok(None);
    };
    if role != Role::Viewer {
        return Err(src.field(
            list,
            who,
            "cameras",
            &format!("applies to role \"viewer\" only; role \"{role}\" is not limited to cameras"),
        ));
    }
    let mut ids = Vec::with_capacity(list.get_ref().len());
    for id in list.get_ref() {
        if let Some(problem) = id_problem(id.get_ref()) {
            return Err(src.field(id, who, "cameras", &problem));
        }
        ids.push(id.get_ref().clone());
    }
    Ok(Some(ids))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::config::{Config, ConfigError};

    /// A hash with tiny costs (valid, fast).
    const HASH: &str =
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$2c3Pt5QIWcPFRqmO8KSqQAxMudwQSHdAfT4SizmKIRM";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let env = |name: &str| match name {
            "CI_TOKEN" => Some(OsString::from("token-from-env-0123456789")),
            "SHORT" => Some(OsString::from("short")),
            _ => None,
        };
        super::super::validate::parse(text, "/etc/camgate/cameras.toml", &env)
    }

    #[track_caller]
    fn err(text: &str, line: usize, parts: &[&str]) {
        match parse(text) {
            Err(ConfigError::Invalid {
                line: got, message, ..
            }) => {
                for p in parts {
                    assert!(message.contains(p), "{message:?} lacks {p:?}");
                }
                assert_eq!(got, line, "{message}");
                assert!(
                    !message.contains("0123456789abcdef"),
                    "token leaked: {message}"
                );
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert!(!c.auth.enabled());
        assert!(!c.server.allow_unauthenticated);
        assert_eq!(c.server.tls, None);
        assert_eq!(c.server.limits, HttpLimits::default());
        assert_eq!(c.auth.max_failures, DEFAULT_MAX_FAILURES);
        assert_eq!(c.auth.lockout, DEFAULT_LOCKOUT);
    }

    #[test]
    fn tokens_users_and_limits() {
        let c = parse(&format!(
            r#"
[server]
listen = "0.0.0.0:8443"
tls_cert = "tls/cert.pem"
tls_key = "/keys/key.pem"
max_body_bytes = 4096
header_timeout = 2.5
max_connections_per_ip = 4
max_whep_negotiations = 2

[auth]
public_metrics = true
max_failures = 3
lockout = 120

[[auth.token]]
name = "lobby screen"
token = "0123456789abcdef0123"
role = "viewer"
cameras = ["lobby", "yard.east"]

[[auth.token]]
token_env = "CI_TOKEN"
role = "admin"

[[auth.user]]
name = "alice"
password_hash = "{HASH}"
role = "metrics"
"#
        ))
        .unwrap();
        let tls = c.server.tls.clone().unwrap();
        assert_eq!(tls.cert, Path::new("/etc/camgate/tls/cert.pem"));
        assert_eq!(tls.key, Path::new("/keys/key.pem"));
        assert_eq!(c.server.limits.max_body_bytes, 4096);
        assert_eq!(c.server.limits.header_timeout, Duration::from_millis(2500));
        assert_eq!(c.server.limits.max_connections_per_ip, 4);
        assert_eq!(c.server.limits.max_whep_negotiations, 2);
        assert_eq!(c.server.limits.max_connections, 512);
        assert!(c.auth.public_metrics);
        assert_eq!(c.auth.max_failures, 3);
        assert_eq!(c.auth.lockout, Duration::from_secs(120));
        assert_eq!(c.auth.tokens[0].name, "lobby screen");
        assert_eq!(
            c.auth.tokens[0].cameras.as_deref(),
            Some(&["lobby".to_owned(), "yard.east".to_owned()][..])
        );
        assert_eq!(c.auth.tokens[1].name, "token #2");
        assert_eq!(c.auth.tokens[1].token.expose(), "token-from-env-0123456789");
        assert_eq!(c.auth.tokens[1].role, Role::Admin);
        assert_eq!(c.auth.users[0].role, Role::Metrics);
        // The token never shows in Debug.
        assert!(!format!("{c:?}").contains("0123456789abcdef0123"));
    }

    #[test]
    fn open_listener_needs_credentials_or_consent() {
        err(
            "[server]\nlisten = \"0.0.0.0:8080\"\n",
            2,
            &[
                "[server] field `listen`",
                "allow_unauthenticated = true",
                "[[auth.token]]",
            ],
        );
        err(
            "[server]\nlisten = \"192.0.2.1:8080\"\n",
            2,
            &["no credentials"],
        );
        assert!(parse("[server]\nlisten = \"[::1]:8080\"\n").is_ok());
        assert!(
            parse("[server]\nlisten = \"0.0.0.0:8080\"\nallow_unauthenticated = true\n").is_ok()
        );
        let with_token = "[server]\nlisten = \"0.0.0.0:8080\"\n[[auth.token]]\ntoken = \"0123456789abcdef0123\"\nrole = \"viewer\"\n";
        assert!(parse(with_token).is_ok());
    }

    #[test]
    fn bad_values() {
        err(
            "[server]\ntls_cert = \"c.pem\"\n",
            2,
            &["`tls_cert`: needs `tls_key` too"],
        );
        err(
            "[server]\ntls_key = \"k.pem\"\n",
            2,
            &["`tls_key`: needs `tls_cert` too"],
        );
        err(
            "[server]\nmax_body_bytes = 10\n",
            2,
            &["`max_body_bytes`", "out of range"],
        );
        err(
            "[server]\nmax_header_bytes = 100\n",
            2,
            &["`max_header_bytes`"],
        );
        err(
            "[server]\nheader_timeout = 0\n",
            2,
            &["`header_timeout`", "seconds"],
        );
        err("[server]\nmax_connections = 0\n", 2, &["`max_connections`"]);
        err(
            "[auth]\nmax_failures = 0\n",
            2,
            &["[auth] field `max_failures`"],
        );
        err("[auth]\nlockout = \"x\"\n", 2, &["lockout"]);
        err(
            "[auth]\nsecret = 1\n",
            2,
            &["unknown field `secret` in [auth]"],
        );
        let token = |body: &str| format!("[[auth.token]]\n{body}\n");
        err(
            &token("role = \"viewer\""),
            1,
            &["needs `token` or `token_env`"],
        );
        err(
            &token("token = \"short\"\nrole = \"viewer\""),
            2,
            &["shorter than 16"],
        );
        err(
            &token("token = \"0123456789abcdef 0123\"\nrole = \"viewer\""),
            2,
            &["may contain only"],
        );
        err(
            &token("token = 1234567890123456789\nrole = \"viewer\""),
            2,
            &["field `token` in [[auth.token]]: must be a string"],
        );
        err(
            &token("token = \"0123456789abcdef0123\"\ntoken_env = \"CI_TOKEN\"\nrole = \"viewer\""),
            3,
            &["both set"],
        );
        err(
            &token("token_env = \"MISSING\"\nrole = \"viewer\""),
            2,
            &["MISSING is not set"],
        );
        err(
            &token("token_env = \"SHORT\"\nrole = \"viewer\""),
            2,
            &["SHORT: the token is shorter"],
        );
        err(
            &token("token = \"0123456789abcdef0123\""),
            1,
            &["missing field `role`"],
        );
        err(
            &token("token = \"0123456789abcdef0123\"\nrole = \"root\""),
            3,
            &["unknown variant `root`"],
        );
        err(
            &token("token = \"0123456789abcdef0123\"\nrole = \"admin\"\ncameras = [\"a\"]"),
            4,
            &["applies to role \"viewer\" only"],
        );
        err(
            &token("token = \"0123456789abcdef0123\"\nrole = \"viewer\"\ncameras = [\"a/b\"]"),
            4,
            &["`cameras`", "contains '/'"],
        );
        err(
            "[[auth.token]]\ntoken = \"0123456789abcdef0123\"\nrole = \"viewer\"\n[[auth.token]]\nname = \"again\"\ntoken = \"0123456789abcdef0123\"\nrole = \"admin\"\n",
            4,
            &["\"again\": the same token as \"token #1\""],
        );
        let user = |name: &str, hash: &str| {
            format!(
                "[[auth.user]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nrole = \"viewer\"\n"
            )
        };
        err(&user("a:b", HASH), 2, &["contains ':'"]);
        err(
            &user("alice", "hunter2"),
            3,
            &["not a PHC string", "camgate hash-password"],
        );
        err(
            &user(
                "alice",
                "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            ),
            3,
            &["not supported (use argon2id)"],
        );
        err(
            &format!("{}{}", user("alice", HASH), user("alice", HASH)),
            6,
            &["\"alice\" is used twice"],
        );
    }

    #[test]
    fn camera_tls_verify() {
        let c =
            parse("[[camera]]\nid = \"a\"\nurl = \"rtsps://192.0.2.1/live\"\ntls_verify = false\n")
                .unwrap();
        assert_eq!(c.cameras[0].url.scheme(), "rtsps");
        assert!(!c.cameras[0].tls_verify);
        let c = parse("[[camera]]\nid = \"a\"\nurl = \"rtsps://u:p@192.0.2.1/live\"\n").unwrap();
        assert!(c.cameras[0].tls_verify);
        assert_eq!(
            c.cameras[0].credentials,
            Some(crate::credentials::Credentials::new("u", "p"))
        );
        err(
            "[[camera]]\nid = \"a\"\nurl = \"rtsp://192.0.2.1/live\"\ntls_verify = false\n",
            4,
            &["`tls_verify`: applies to rtsps:// cameras only"],
        );
    }
}
