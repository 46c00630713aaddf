//! From the raw, span-carrying values to the typed `Config`: every rule of
//! `docs/config.md` is checked here, and the first broken one is reported
//! with its line.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use toml::Spanned;
use url::Url;

use super::camera_auth::{camera_url, credentials};
use super::faults::Faults;
use super::raw::{self, Number, RawCamera, RawDefaults, RawFaults, RawFile, RawRtpOut};
use super::{
    access, CameraConfig, Config, ConfigError, OnDamage, RtpOut, ServerConfig, TransportMode,
    DEFAULT_LISTEN, DEFAULT_RTP_PAYLOAD_SIZE, DEFAULT_SOCKET_BUFFER_BYTES, DEFAULT_TRANSPORT,
    NETWORK_CACHE_MS_RANGE, REFRESH_TIMEOUT_RANGE_S, RTP_PAYLOAD_SIZE_RANGE,
    SOCKET_BUFFER_BYTES_RANGE,
};

/// Reads an environment variable; a parameter so tests need not touch the
/// process environment.
pub(super) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// Longest camera id: ids become metric labels and URL path segments.
const MAX_ID_LEN: usize = 64;
/// Allowed multicast TTL.
const TTL_RANGE: RangeInclusive<i64> = 1..=255;
/// Allowed `[camera.faults] stall_ms`.
const STALL_MS_RANGE: RangeInclusive<i64> = 0..=60_000;

/// Parses and validates `text`; `file` names it in errors.
pub(super) fn parse(text: &str, file: &str, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    parse_layered(text, file, None, env)
}

/// Parses `text` as [`parse`] does, followed by the `[[camera]]` tables of
/// `extra` (text, file name): a second file holding cameras only, to which
/// the first file's `[defaults]` apply, with ids and RTP ports unique
/// across both files.
pub(super) fn parse_layered(
    text: &str,
    file: &str,
    extra: Option<(&str, &str)>,
    env: EnvLookup<'_>,
) -> Result<Config, ConfigError> {
    let src = Source::new(text, file);
    let raw = read_raw(&src)?;
    let extra = match extra {
        Some((extra_text, extra_file)) => {
            let src = Source::new(extra_text, extra_file);
            let raw = read_raw(&src)?;
            let misplaced = [
                raw.server.as_ref().map(|s| (s.span().start, "[server]")),
                raw.defaults
                    .as_ref()
                    .map(|d| (d.span().start, "[defaults]")),
                raw.auth.as_ref().map(|a| (a.span().start, "[auth]")),
                raw.webrtc.as_ref().map(|w| (w.span().start, "[webrtc]")),
                raw.rtsp_server
                    .as_ref()
                    .map(|w| (w.span().start, "[rtsp_server]")),
                raw.cluster.as_ref().map(|c| (c.span().start, "[cluster]")),
            ];
            if let Some((offset, table)) = misplaced.into_iter().flatten().next() {
                return Err(src.invalid(
                    offset,
                    format!("{table} belongs in {file}; this file holds [[camera]] tables only"),
                ));
            }
            Some((raw.camera, src))
        }
        None => None,
    };

    let server = raw.server.map(Spanned::into_inner);
    let listen = match server.as_ref().and_then(|s| s.listen.as_ref()) {
        Some(listen) => parse_listen(listen, &src)?,
        None => DEFAULT_LISTEN,
    };
    let auth = access::auth(raw.auth.as_ref().map(Spanned::get_ref), &src, env)?;
    let (allow_unauthenticated, tls, limits) =
        access::server(server.as_ref(), listen, &auth, &src)?;

    let webrtc = super::webrtc::webrtc(raw.webrtc.as_ref().map(Spanned::get_ref), &src)?;
    let rtsp_server = super::rtsp_server::rtsp_server(
        raw.rtsp_server.as_ref().map(Spanned::get_ref),
        tls.is_some(),
        auth.enabled() || allow_unauthenticated,
        &src,
    )?;
    let cluster = super::cluster::cluster(
        raw.cluster.as_ref().map(Spanned::get_ref),
        listen,
        tls.is_some(),
        rtsp_server.enabled.then_some(rtsp_server.listen),
        &src,
        env,
    )?;
    let defaults = match raw.defaults.map(Spanned::into_inner) {
        Some(d) => defaults(&d, &src)?,
        None => Defaults::builtin(),
    };

    let mut ids: HashMap<String, (&str, usize)> = HashMap::new();
    let mut ports: HashMap<SocketAddr, PortUse> = HashMap::new();
    let mut cameras = Vec::with_capacity(raw.camera.len());
    let layers = std::iter::once((raw.camera, src)).chain(extra);
    let mut n = 0;
    for (tables, src) in layers {
        for cam in tables {
            n += 1;
            let line = src.line(cam.span().start);
            let cam = cam.into_inner();
            let id = check_id(&cam.id, n, &src)?;
            let id_line = src.line(cam.id.span().start);
            if let Some((first_file, first)) = ids.insert(id.clone(), (src.file, id_line)) {
                let at = if first_file == src.file {
                    format!("line {first}")
                } else {
                    format!("{first_file}:{first}")
                };
                return Err(src.invalid(
                    cam.id.span().start,
                    format!("camera id {id:?} is used twice (first at {at})"),
                ));
            }
            cameras.push(camera(cam, id, line, &defaults, &mut ports, &src, env)?);
        }
    }

    Ok(Config {
        server: ServerConfig {
            listen,
            allow_unauthenticated,
            tls,
            limits,
        },
        auth,
        webrtc,
        rtsp_server,
        cluster,
        cameras,
    })
}

/// The raw tables of a file, or its first syntax or schema error.
fn read_raw(src: &Source<'_>) -> Result<RawFile, ConfigError> {
    toml::from_str(src.text).map_err(|e| {
        let (message, offset) = raw::describe(&e, src.text);
        src.invalid(offset.unwrap_or(0), message)
    })
}

/// The text being parsed, to turn byte offsets into errors with lines.
pub(super) struct Source<'a> {
    pub(super) text: &'a str,
    /// The file name, as given (relative paths in the file are resolved
    /// against its directory).
    pub(super) file: &'a str,
    /// Where each line after the first starts, found once (a file of
    /// 10,000 cameras asks for a line per camera).
    newlines: std::sync::OnceLock<Vec<usize>>,
}

impl<'a> Source<'a> {
    pub(super) fn new(text: &'a str, file: &'a str) -> Self {
        Source {
            text,
            file,
            newlines: std::sync::OnceLock::new(),
        }
    }

    /// 1-based line of a byte offset (offsets past the end count as the end).
    pub(super) fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        let newlines = self.newlines.get_or_init(|| {
            self.text
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect()
        });
        // Newlines before `end`.
        1 + newlines.partition_point(|&i| i < end)
    }

    pub(super) fn invalid(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            line: self.line(offset),
            message: message.into(),
        }
    }

    /// An error about `field`, at `value`; `who` is a prefix such as
    /// `camera "lobby": ` or `[server] `.
    pub(super) fn field<T>(
        &self,
        value: &Spanned<T>,
        who: &str,
        field: &str,
        what: &str,
    ) -> ConfigError {
        self.invalid(value.span().start, format!("{who}field `{field}`: {what}"))
    }
}

/// `[defaults]`, with the built-in defaults filled in.
struct Defaults {
    transport: TransportMode,
    rtp_payload_size: usize,
    network_cache_ms: Option<u32>,
    socket_buffer_bytes: usize,
    on_damage: OnDamage,
    refresh_timeout: Option<Duration>,
}

impl Defaults {
    /// The values used when `[defaults]` does not set them.
    fn builtin() -> Defaults {
        Defaults {
            transport: DEFAULT_TRANSPORT,
            rtp_payload_size: DEFAULT_RTP_PAYLOAD_SIZE,
            network_cache_ms: None,
            socket_buffer_bytes: DEFAULT_SOCKET_BUFFER_BYTES,
            on_damage: OnDamage::default(),
            refresh_timeout: None,
        }
    }
}

/// Checks `[defaults]` and fills in what it does not set.
fn defaults(d: &RawDefaults, src: &Source<'_>) -> Result<Defaults, ConfigError> {
    let who = "[defaults] ";
    let builtin = Defaults::builtin();
    Ok(Defaults {
        transport: d
            .transport
            .as_ref()
            .map_or(builtin.transport, |t| *t.get_ref()),
        rtp_payload_size: match &d.rtp_payload_size {
            Some(size) => payload_size(size, who, src)?,
            None => builtin.rtp_payload_size,
        },
        network_cache_ms: match &d.network_cache_ms {
            Some(v) => Some(network_cache_ms(v, who, src)?),
            None => builtin.network_cache_ms,
        },
        socket_buffer_bytes: match &d.socket_buffer_bytes {
            Some(v) => socket_buffer_bytes(v, who, src)?,
            None => builtin.socket_buffer_bytes,
        },
        on_damage: d
            .on_damage
            .as_ref()
            .map_or(builtin.on_damage, |o| *o.get_ref()),
        refresh_timeout: match &d.refresh_timeout {
            Some(v) => Some(refresh_timeout(v, who, src)?),
            None => builtin.refresh_timeout,
        },
    })
}

/// Which `rtp_out` already sends to a port, for collision messages.
struct PortUse {
    camera: String,
    destination: SocketAddr,
    line: usize,
}

fn parse_listen(listen: &Spanned<String>, src: &Source<'_>) -> Result<SocketAddr, ConfigError> {
    listen.get_ref().parse().map_err(|_| {
        let what = format!(
            "{:?} is not IP:port (host names are not resolved; write e.g. 127.0.0.1:8080 or [::]:8080)",
            listen.get_ref()
        );
        src.field(listen, "[server] ", "listen", &what)
    })
}

fn payload_size(value: &Spanned<i64>, who: &str, src: &Source<'_>) -> Result<usize, ConfigError> {
    usize::try_from(*value.get_ref())
        .ok()
        .filter(|v| RTP_PAYLOAD_SIZE_RANGE.contains(v))
        .ok_or_else(|| {
            let what = format!(
                "{} is out of range {}..={}",
                value.get_ref(),
                RTP_PAYLOAD_SIZE_RANGE.start(),
                RTP_PAYLOAD_SIZE_RANGE.end()
            );
            src.field(value, who, "rtp_payload_size", &what)
        })
}

/// An integer `field` that must lie in `range`, converted to `T` (which
/// holds every value of `range`).
pub(super) fn int_in<T: TryFrom<i64>>(
    value: &Spanned<i64>,
    range: &RangeInclusive<i64>,
    who: &str,
    field: &str,
    src: &Source<'_>,
) -> Result<T, ConfigError> {
    let v = *value.get_ref();
    Some(v)
        .filter(|v| range.contains(v))
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| {
            let what = format!("{v} is out of range {}..={}", range.start(), range.end());
            src.field(value, who, field, &what)
        })
}

/// A number `field` (integer or float) for which `ok` holds; otherwise an
/// error saying "VALUE `rule`". NaN never passes a range check.
pub(super) fn number_where(
    value: &Spanned<Number>,
    ok: impl Fn(f64) -> bool,
    rule: &str,
    who: &str,
    field: &str,
    src: &Source<'_>,
) -> Result<f64, ConfigError> {
    let v = value.get_ref().0;
    if ok(v) {
        Ok(v)
    } else {
        Err(src.field(value, who, field, &format!("{v} {rule}")))
    }
}

/// A probability, 0.0..=1.0.
fn probability(
    value: &Spanned<Number>,
    who: &str,
    field: &str,
    src: &Source<'_>,
) -> Result<f64, ConfigError> {
    let rule = "is out of range 0.0..=1.0 (a probability)";
    number_where(value, |v| (0.0..=1.0).contains(&v), rule, who, field, src)
}

/// A period in seconds, 0 meaning never.
fn period(
    value: &Spanned<Number>,
    who: &str,
    field: &str,
    src: &Source<'_>,
) -> Result<f64, ConfigError> {
    let rule = "is not a period in seconds (0 for never, else a positive finite number)";
    number_where(value, |v| v.is_finite() && v >= 0.0, rule, who, field, src)
}

fn network_cache_ms(value: &Spanned<i64>, who: &str, src: &Source<'_>) -> Result<u32, ConfigError> {
    let range =
        i64::from(*NETWORK_CACHE_MS_RANGE.start())..=i64::from(*NETWORK_CACHE_MS_RANGE.end());
    int_in(value, &range, who, "network_cache_ms", src)
}

fn socket_buffer_bytes(
    value: &Spanned<i64>,
    who: &str,
    src: &Source<'_>,
) -> Result<usize, ConfigError> {
    let as_i64 = |v: usize| i64::try_from(v).expect("64 MiB fits i64");
    let range =
        as_i64(*SOCKET_BUFFER_BYTES_RANGE.start())..=as_i64(*SOCKET_BUFFER_BYTES_RANGE.end());
    int_in(value, &range, who, "socket_buffer_bytes", src)
}

fn refresh_timeout(
    value: &Spanned<Number>,
    who: &str,
    src: &Source<'_>,
) -> Result<Duration, ConfigError> {
    let rule = format!(
        "is out of range {}..={} (seconds)",
        REFRESH_TIMEOUT_RANGE_S.start(),
        REFRESH_TIMEOUT_RANGE_S.end()
    );
    let ok = |v: f64| REFRESH_TIMEOUT_RANGE_S.contains(&v);
    let secs = number_where(value, ok, &rule, who, "refresh_timeout", src)?;
    Ok(Duration::from_secs_f64(secs))
}

fn idle_timeout(
    value: &Spanned<Number>,
    who: &str,
    src: &Source<'_>,
) -> Result<Duration, ConfigError> {
    let rule = format!(
        "is out of range {}..={} (seconds)",
        super::IDLE_TIMEOUT_RANGE_S.start(),
        super::IDLE_TIMEOUT_RANGE_S.end()
    );
    let ok = |v: f64| super::IDLE_TIMEOUT_RANGE_S.contains(&v);
    let secs = number_where(value, ok, &rule, who, "idle_timeout", src)?;
    Ok(Duration::from_secs_f64(secs))
}

/// Checks `onvif_url`: `http://host[:port]/path`, without credentials.
fn onvif_url(value: &Spanned<String>, who: &str, src: &Source<'_>) -> Result<Url, ConfigError> {
    let err = |what: &str| src.field(value, who, "onvif_url", what);
    // url's messages never quote the input, which may hold a password.
    let url = Url::parse(value.get_ref()).map_err(|e| {
        err(&format!(
            "not a valid URL ({e}); expected e.g. http://192.0.2.10/onvif/device_service"
        ))
    })?;
    match url.scheme() {
        "http" => {}
        "https" => return Err(err("https:// is not supported yet (use http://)")),
        other => {
            return Err(err(&format!(
                "scheme {other:?} is not supported (use http://)"
            )))
        }
    }
    if url.host_str().is_none_or(|h| h.is_empty()) {
        return Err(err("http:// URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            "must not contain credentials; ONVIF requests use the camera's user name and password",
        ));
    }
    Ok(url)
}

/// Builds `[camera.faults]` from `Faults::default()` and the keys given.
fn faults(raw: &RawFaults, who: &str, src: &Source<'_>) -> Result<Faults, ConfigError> {
    let who = format!("{who}[camera.faults] ");
    let who = who.as_str();
    let mut f = Faults::default();
    if let Some(v) = &raw.seed {
        f.seed = int_in(v, &(0..=i64::MAX), who, "seed", src)?;
    }
    let probabilities = [
        (&raw.truncate, "truncate", &mut f.truncate),
        (
            &raw.truncate_resend,
            "truncate_resend",
            &mut f.truncate_resend,
        ),
        (&raw.garbage, "garbage", &mut f.garbage),
        (&raw.udp_loss, "udp_loss", &mut f.udp_loss),
        (&raw.udp_reorder, "udp_reorder", &mut f.udp_reorder),
        (&raw.udp_duplicate, "udp_duplicate", &mut f.udp_duplicate),
    ];
    for (value, field, slot) in probabilities {
        if let Some(v) = value {
            *slot = probability(v, who, field, src)?;
        }
    }
    let periods = [
        (&raw.stall_every_s, "stall_every_s", &mut f.stall_every_s),
        (
            &raw.ssrc_change_every_s,
            "ssrc_change_every_s",
            &mut f.ssrc_change_every_s,
        ),
        (
            &raw.timestamp_jump_every_s,
            "timestamp_jump_every_s",
            &mut f.timestamp_jump_every_s,
        ),
        (&raw.reboot_every_s, "reboot_every_s", &mut f.reboot_every_s),
        (&raw.require_rr_s, "require_rr_s", &mut f.require_rr_s),
    ];
    for (value, field, slot) in periods {
        if let Some(v) = value {
            *slot = period(v, who, field, src)?;
        }
    }
    if let Some(v) = &raw.stall_ms {
        f.stall_ms = int_in(v, &STALL_MS_RANGE, who, "stall_ms", src)?;
    }
    if let Some(b) = raw.sprop_only {
        f.sprop_only = b;
    }
    if let Some(b) = raw.honour_pli {
        f.honour_pli = b;
    }
    Ok(f)
}

/// Checks an id's spelling (not its uniqueness). `n` is the 1-based camera
/// index, to name a camera whose id cannot be used.
fn check_id(id: &Spanned<String>, n: usize, src: &Source<'_>) -> Result<String, ConfigError> {
    let who = format!("camera #{n}: ");
    match id_problem(id.get_ref()) {
        None => Ok(id.get_ref().clone()),
        Some(problem) => Err(src.field(id, &who, "id", &problem)),
    }
}

/// What is wrong with the spelling of a camera id, if anything.
pub(super) fn id_problem(s: &str) -> Option<String> {
    let problem = if s.is_empty() {
        "is empty".to_owned()
    } else if s.chars().count() > MAX_ID_LEN {
        format!(
            "{s:?} is {} characters long; the limit is {MAX_ID_LEN}",
            s.chars().count()
        )
    } else if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        format!("{s:?} contains {c:?}; use only ASCII letters, digits, '-', '_' and '.'")
    } else if s == "." || s == ".." {
        format!("{s:?} is reserved (it is a relative path)")
    } else {
        return None;
    };
    Some(problem)
}

fn camera(
    cam: RawCamera,
    id: String,
    line: usize,
    defaults: &Defaults,
    ports: &mut HashMap<SocketAddr, PortUse>,
    src: &Source<'_>,
    env: EnvLookup<'_>,
) -> Result<CameraConfig, ConfigError> {
    let who = format!("camera {id:?}: ");
    let (url, url_credentials) = camera_url(&cam.url, &who, src)?;
    let credentials = credentials(&cam, url_credentials, &who, src, env)?;
    let rtp_payload_size = match &cam.rtp_payload_size {
        Some(size) => payload_size(size, &who, src)?,
        None => defaults.rtp_payload_size,
    };
    let network_cache_ms = match &cam.network_cache_ms {
        Some(v) => Some(network_cache_ms(v, &who, src)?),
        None => defaults.network_cache_ms,
    };
    let socket_buffer_bytes = match &cam.socket_buffer_bytes {
        Some(v) => socket_buffer_bytes(v, &who, src)?,
        None => defaults.socket_buffer_bytes,
    };
    let refresh_timeout = match &cam.refresh_timeout {
        Some(v) => Some(refresh_timeout(v, &who, src)?),
        None => defaults.refresh_timeout,
    };
    let idle_timeout = match &cam.idle_timeout {
        Some(v) => idle_timeout(v, &who, src)?,
        None => super::DEFAULT_IDLE_TIMEOUT,
    };
    let onvif_url = cam
        .onvif_url
        .as_ref()
        .map(|u| onvif_url(u, &who, src))
        .transpose()?;
    let faults = match &cam.faults {
        None => None,
        Some(table) if url.scheme() != "sim" => {
            let what = format!(
                "{who}[camera.faults] needs a sim:// camera; this one's url (line {}) is {}://",
                src.line(cam.url.span().start),
                url.scheme()
            );
            return Err(src.invalid(table.span().start, what));
        }
        Some(table) => Some(faults(table.get_ref(), &who, src)?),
    };
    let tls_verify = match &cam.tls_verify {
        None => true,
        Some(v) if url.scheme() == "rtsps" => *v.get_ref(),
        Some(v) => {
            let what = format!(
                "applies to rtsps:// cameras only; this one is {}://",
                url.scheme()
            );
            return Err(src.field(v, &who, "tls_verify", &what));
        }
    };
    let enabled = cam.enabled.unwrap_or(true);
    let mut rtp_out = Vec::with_capacity(cam.rtp_out.len());
    for out in &cam.rtp_out {
        let checked = check_rtp_out(out.get_ref(), &who, src)?;
        if enabled {
            // A disabled camera sends nothing, so it may keep the ports of
            // the camera that replaces it.
            claim_ports(
                checked.destination,
                &out.get_ref().destination,
                &id,
                ports,
                &who,
                src,
            )?;
        }
        rtp_out.push(checked);
    }
    Ok(CameraConfig {
        id,
        url,
        credentials,
        transport: cam.transport.map_or(defaults.transport, |t| *t.get_ref()),
        enabled,
        rtp_out,
        rtp_payload_size,
        line,
        network_cache_ms,
        socket_buffer_bytes,
        on_damage: cam.on_damage.map_or(defaults.on_damage, |o| *o.get_ref()),
        refresh_timeout,
        onvif_url,
        faults,
        tls_verify,
        on_demand: cam.on_demand.unwrap_or(false),
        idle_timeout,
    })
}

fn check_rtp_out(out: &RawRtpOut, who: &str, src: &Source<'_>) -> Result<RtpOut, ConfigError> {
    let dest = &out.destination;
    let err = |what: &str| src.field(dest, who, "destination", what);
    let destination: SocketAddr = dest.get_ref().parse().map_err(|_| {
        err(&format!(
            "{:?} is not IP:port (host names are not resolved; write e.g. 127.0.0.1:5004 or [ff02::1]:5004)",
            dest.get_ref()
        ))
    })?;
    let port = destination.port();
    if destination.ip().is_unspecified() {
        return Err(err(&format!(
            "{} is not an address one can send to",
            destination.ip()
        )));
    }
    if port == 0 {
        return Err(err("port 0 is not a destination"));
    }
    if port % 2 != 0 {
        return Err(err(&format!(
            "port {port} is odd; RTP needs an even port (audio goes to port + 2)"
        )));
    }
    if port.checked_add(2).is_none() {
        return Err(err(&format!(
            "port {port} leaves no room for audio at port + 2"
        )));
    }
    let ttl = match &out.ttl {
        None => 1,
        Some(t) => {
            let v = *t.get_ref();
            if !TTL_RANGE.contains(&v) {
                let what = format!(
                    "{v} is out of range {}..={}",
                    TTL_RANGE.start(),
                    TTL_RANGE.end()
                );
                return Err(src.field(t, who, "ttl", &what));
            }
            u32::try_from(v).expect("1..=255 fits u32")
        }
    };
    Ok(RtpOut { destination, ttl })
}

/// Records that `destination` (video) and its port + 2 (audio) are in use,
/// or reports the `rtp_out` that already uses one of them: two streams on
/// one port would be mixed into garbage at the receiver.
fn claim_ports(
    destination: SocketAddr,
    value: &Spanned<String>,
    camera: &str,
    ports: &mut HashMap<SocketAddr, PortUse>,
    who: &str,
    src: &Source<'_>,
) -> Result<(), ConfigError> {
    let line = src.line(value.span().start);
    let ip = destination.ip();
    // `check_rtp_out` keeps ports at or below 65532.
    let audio_of = |port: u16| SocketAddr::new(ip, port + 2);
    let clash = [
        (destination, "video"),
        (audio_of(destination.port()), "audio"),
    ]
    .into_iter()
    .find_map(|(addr, kind)| ports.get(&addr).map(|other| (addr, kind, other)));
    if let Some((addr, kind, other)) = clash {
        let other_kind = if other.destination == addr {
            "video"
        } else {
            "audio"
        };
        // The first even port from here whose pair is free.
        let free = (destination.port()..=u16::MAX - 3)
            .step_by(2)
            .find(|&p| {
                !ports.contains_key(&SocketAddr::new(ip, p)) && !ports.contains_key(&audio_of(p))
            })
            .map(|p| format!("; {} is free", SocketAddr::new(ip, p)))
            .unwrap_or_default();
        let owner = format!(
            "camera {:?} (line {}, destination {})",
            other.camera, other.line, other.destination
        );
        let clash = if kind == "video" {
            format!("{owner} already sends {other_kind} to {addr}")
        } else {
            format!("audio would go to {addr}, where {owner} sends {other_kind}")
        };
        let what = format!(
            "{clash}; each destination uses its port for video and port + 2 for audio{free}"
        );
        return Err(src.field(value, who, "destination", &what));
    }
    for addr in [destination, audio_of(destination.port())] {
        let owner = PortUse {
            camera: camera.to_owned(),
            destination,
            line,
        };
        ports.insert(addr, owner);
    }
    Ok(())
}
