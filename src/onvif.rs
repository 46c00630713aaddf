//! ONVIF client that makes a camera send a keyframe with the Media service's
//! `SetSynchronizationPoint` (ONVIF Media Service Spec, ver10), for cameras
//! that ignore RTCP PLI/FIR: SOAP 1.2 over plain HTTP/1.1 (RFC 9112) with a
//! WS-Security UsernameToken PasswordDigest (OASIS UsernameToken Profile 1.0).
//!
//! The SOAP bodies, the digest, the HTTP response parser and the XML scanner
//! are pure functions; [`OnvifClient`] is the thin tokio driver around them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info};
use url::Url;

/// Deadline of one HTTP exchange: connect, send, and read the whole response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response accepted, headers included.
pub const MAX_RESPONSE: usize = 1 << 20;
/// Longest fault code or reason text copied from a camera into an error.
const MAX_FAULT_TEXT: usize = 200;

/// Namespace of the ONVIF device service.
pub(crate) const DEVICE_NS: &str = "http://www.onvif.org/ver10/device/wsdl";
/// Namespace of the ONVIF (ver10) media service.
pub(crate) const MEDIA_NS: &str = "http://www.onvif.org/ver10/media/wsdl";
/// `Type` of a WS-Security password that is a digest.
pub(crate) const PASSWORD_DIGEST_TYPE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";

/// The SOAP operations this client sends, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Device service: the camera's clock, asked without credentials.
    GetSystemDateAndTime,
    /// Device service: the Media service address (category Media).
    GetCapabilities,
    /// Device service: every service address (fallback for GetCapabilities).
    GetServices,
    /// Media service: the media profiles, for a profile token.
    GetProfiles,
    /// Media service: emit a keyframe on a profile's streams.
    SetSynchronizationPoint,
}

impl Operation {
    /// The element name, also the last segment of the SOAP action.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GetSystemDateAndTime => "GetSystemDateAndTime",
            Operation::GetCapabilities => "GetCapabilities",
            Operation::GetServices => "GetServices",
            Operation::GetProfiles => "GetProfiles",
            Operation::SetSynchronizationPoint => "SetSynchronizationPoint",
        }
    }

    /// The WSDL namespace the operation belongs to.
    fn namespace(self) -> &'static str {
        match self {
            Operation::GetSystemDateAndTime
            | Operation::GetCapabilities
            | Operation::GetServices => DEVICE_NS,
            Operation::GetProfiles | Operation::SetSynchronizationPoint => MEDIA_NS,
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an ONVIF request failed. `target` is the service URL without
/// userinfo; no variant ever holds the password.
#[derive(Debug, thiserror::Error)]
pub enum OnvifError {
    /// The service URL is not `http://`; https is not implemented yet.
    #[error("ONVIF URL {url}: scheme {scheme:?} is not supported, only http:// (https is not implemented yet)")]
    UnsupportedScheme { url: String, scheme: String },
    /// The service URL has no host to connect to.
    #[error("ONVIF URL {url} has no host")]
    NoHost { url: String },
    /// Connecting, sending or receiving failed.
    #[error("ONVIF {operation} to {target}: {source}")]
    Io {
        operation: Operation,
        target: String,
        source: std::io::Error,
    },
    /// The exchange did not finish within [`REQUEST_TIMEOUT`].
    #[error("ONVIF {operation} to {target}: no complete response within {timeout:?}")]
    Timeout {
        operation: Operation,
        target: String,
        timeout: Duration,
    },
    /// The response is larger than [`MAX_RESPONSE`].
    #[error("ONVIF {operation} to {target}: response larger than {limit} bytes")]
    ResponseTooLarge {
        operation: Operation,
        target: String,
        limit: usize,
    },
    /// The response is not parsable HTTP/1.x.
    #[error("ONVIF {operation} to {target}: malformed HTTP response: {reason}")]
    BadHttp {
        operation: Operation,
        target: String,
        reason: &'static str,
    },
    /// The camera answered with a SOAP Fault; not retried.
    #[error("ONVIF {operation} to {target}: camera answered HTTP {status} with SOAP Fault {code}: {reason}")]
    Fault {
        operation: Operation,
        target: String,
        status: u16,
        code: String,
        reason: String,
    },
    /// The camera answered HTTP 401, i.e. wants HTTP authentication on top of
    /// or instead of WS-Security; not retried.
    #[error("ONVIF {operation} to {target}: camera answered HTTP 401 Unauthorized (challenge: {challenge})")]
    Unauthorized {
        operation: Operation,
        target: String,
        challenge: String,
    },
    /// The camera answered an error status without a SOAP Fault.
    #[error("ONVIF {operation} to {target}: camera answered HTTP {status}")]
    HttpStatus {
        operation: Operation,
        target: String,
        status: u16,
    },
    /// The response body is not XML this client can read.
    #[error("ONVIF {operation} to {target}: unparsable XML response: {reason}")]
    BadXml {
        operation: Operation,
        target: String,
        reason: &'static str,
    },
    /// The response lacks the element the operation is asked for.
    #[error("ONVIF {operation} to {target}: response has no {element}")]
    Missing {
        operation: Operation,
        target: String,
        element: &'static str,
    },
}

impl OnvifError {
    /// True when the camera refused the credentials: asking again, or asking
    /// another service, would only add failed logins (some cameras lock
    /// the account after a few).
    pub fn is_auth(&self) -> bool {
        match self {
            OnvifError::Unauthorized { .. } => true,
            OnvifError::Fault { code, .. } => {
                let code = code.to_ascii_lowercase();
                ["notauthorized", "failedauthentication", "invalidsecurity"]
                    .iter()
                    .any(|c| code.contains(c))
            }
            _ => false,
        }
    }

    /// True when discovery should stop instead of trying the next way to find
    /// the media service: refused credentials or an unreachable camera.
    fn ends_discovery(&self) -> bool {
        self.is_auth()
            || matches!(
                self,
                OnvifError::Io { .. }
                    | OnvifError::Timeout { .. }
                    | OnvifError::UnsupportedScheme { .. }
                    | OnvifError::NoHost { .. }
            )
    }
}

/// What discovery found; reused by every later keyframe request.
#[derive(Clone, Debug)]
struct Discovered {
    /// Media service URL (origin taken from the device URL).
    media_url: Url,
    /// Profile whose streams get the keyframe.
    profile_token: String,
}

/// Asks one camera for keyframes over ONVIF. Not shared: the camera task
/// that owns the RTSP session owns this too.
pub struct OnvifClient {
    /// Device service URL, userinfo removed so it can appear in errors.
    device_url: Url,
    /// User name and password for the WS-Security header; never formatted.
    credentials: Option<crate::credentials::Credentials>,
    /// Profile token from the configuration; discovery then skips GetProfiles.
    configured_profile: Option<String>,
    /// Media service and profile once discovery succeeded; forgotten when
    /// SetSynchronizationPoint faults for a reason other than credentials
    /// (the camera may have been reconfigured).
    discovered: Option<Discovered>,
    /// Camera clock minus ours in seconds, from GetSystemDateAndTime, so
    /// `Created` falls in the camera's replay window even if its clock drifts.
    clock_offset_secs: i64,
}

impl std::fmt::Debug for OnvifClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnvifClient")
            .field("device_url", &self.device_url.as_str())
            .field("user", &self.credentials.as_ref().map(|c| &c.username))
            .field("configured_profile", &self.configured_profile)
            .field("discovered", &self.discovered)
            .field("clock_offset_secs", &self.clock_offset_secs)
            .finish()
    }
}

impl OnvifClient {
    /// A client of the device service at `device_url`. Credentials in the
    /// URL's userinfo are used when `credentials` is `None`, and removed from
    /// the URL either way. Nothing is sent before [`Self::request_keyframe`].
    pub fn new(mut device_url: Url, credentials: Option<crate::credentials::Credentials>) -> Self {
        let from_url = (!device_url.username().is_empty()).then(|| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (
                decode(device_url.username()),
                decode(device_url.password().unwrap_or("")),
            )
        });
        // Fails only for URLs that cannot have userinfo, which have none.
        let _ = device_url.set_username("");
        let _ = device_url.set_password(None);
        OnvifClient {
            device_url,
            credentials: credentials.or(from_url.map(|(u, p)| crate::credentials::Credentials::new(u, p))),
            configured_profile: None,
            discovered: None,
            clock_offset_secs: 0,
        }
    }

    /// Uses `token` instead of the first profile GetProfiles lists.
    pub fn with_profile_token(mut self, token: impl Into<String>) -> Self {
        self.configured_profile = Some(token.into());
        self
    }

    /// The media service URL, once discovered.
    pub fn media_url(&self) -> Option<&Url> {
        self.discovered.as_ref().map(|d| &d.media_url)
    }

    /// The profile token keyframes are requested for, once discovered.
    pub fn profile_token(&self) -> Option<&str> {
        self.discovered.as_ref().map(|d| d.profile_token.as_str())
    }

    /// Asks the camera for a keyframe. The first call discovers the media
    /// service and profile (up to five requests); later calls send only
    /// SetSynchronizationPoint. Errors are not retried here: the caller
    /// decides when to ask again.
    pub async fn request_keyframe(&mut self) -> Result<(), OnvifError> {
        let discovered = match &self.discovered {
            Some(d) => d.clone(),
            None => {
                let d = self.discover().await?;
                self.discovered = Some(d.clone());
                d
            }
        };
        let body = set_synchronization_point_body(&discovered.profile_token);
        match self
            .call(
                Operation::SetSynchronizationPoint,
                &discovered.media_url,
                &body,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if matches!(e, OnvifError::Fault { .. }) && !e.is_auth() {
                    self.discovered = None;
                }
                Err(e)
            }
        }
    }

    /// Finds the media service and the profile token.
    async fn discover(&mut self) -> Result<Discovered, OnvifError> {
        if self.credentials.is_some() {
            self.sync_clock().await?;
        }
        let media_url = self.find_media_service().await?;
        let profile_token = match &self.configured_profile {
            Some(t) => t.clone(),
            None => {
                let op = Operation::GetProfiles;
                let root = self.call(op, &media_url, &empty_body(op)).await?;
                first_profile_token(&root)
                    .ok_or_else(|| OnvifError::Missing {
                        operation: op,
                        target: media_url.to_string(),
                        element: "Profiles token",
                    })?
                    .to_owned()
            }
        };
        info!(media = %media_url, profile = %profile_token, "ONVIF: discovered");
        Ok(Discovered {
            media_url,
            profile_token,
        })
    }

    /// Reads the camera's clock (unauthenticated, as ONVIF Core allows) for
    /// `Created`. A camera that does not answer usefully leaves the offset
    /// at zero; only an unreachable camera is an error.
    async fn sync_clock(&mut self) -> Result<(), OnvifError> {
        let op = Operation::GetSystemDateAndTime;
        let now = unix_now();
        let device_url = self.device_url.clone();
        match self.send(op, &device_url, &empty_body(op), false).await {
            Ok(root) => match camera_utc(&root) {
                Some(camera) => {
                    self.clock_offset_secs = camera - now;
                    if self.clock_offset_secs.abs() > 5 {
                        info!(
                            offset_s = self.clock_offset_secs,
                            "ONVIF: camera clock differs from ours; WS-Security Created follows the camera"
                        );
                    }
                }
                None => debug!("ONVIF: GetSystemDateAndTime without UTCDateTime"),
            },
            Err(e) if e.ends_discovery() && !e.is_auth() => return Err(e),
            Err(e) => debug!("ONVIF: {e}; keeping our clock"),
        }
        Ok(())
    }

    /// GetCapabilities, then GetServices, then the conventional path.
    async fn find_media_service(&self) -> Result<Url, OnvifError> {
        let device = &self.device_url;
        type Extract = fn(&xml::Element) -> Option<&str>;
        let ways: [(Operation, Extract); 2] = [
            (Operation::GetCapabilities, media_xaddr_from_capabilities),
            (Operation::GetServices, media_xaddr_from_services),
        ];
        for (op, extract) in ways {
            let body = match op {
                Operation::GetCapabilities => get_capabilities_body(),
                _ => get_services_body(),
            };
            match self.call(op, device, &body).await {
                Ok(root) => match extract(&root).and_then(|x| resolve_xaddr(device, x)) {
                    Some(url) => return Ok(url),
                    None => debug!("ONVIF: {op} to {device} named no usable media XAddr"),
                },
                Err(e) if e.ends_discovery() => return Err(e),
                Err(e) => debug!("ONVIF: {e}; trying the next way"),
            }
        }
        let mut url = device.clone();
        url.set_path("/onvif/media_service");
        info!(media = %url, "ONVIF: camera named no media service; trying the conventional path");
        Ok(url)
    }

    /// One authenticated SOAP exchange.
    async fn call(&self, op: Operation, url: &Url, body: &str) -> Result<xml::Element, OnvifError> {
        self.send(op, url, body, true).await
    }

    /// One SOAP exchange; `authenticate` adds the WS-Security header when
    /// there are credentials.
    async fn send(
        &self,
        op: Operation,
        url: &Url,
        body: &str,
        authenticate: bool,
    ) -> Result<xml::Element, OnvifError> {
        let security = match (&self.credentials, authenticate) {
            (Some(c), true) => {
                let (user, password) = (&c.username, c.password.expose());
                let nonce: [u8; 16] = rand::random();
                let created = format_utc(unix_now().saturating_add(self.clock_offset_secs));
                Some(security_header(user, password, &nonce, &created))
            }
            _ => None,
        };
        let envelope = envelope(security.as_deref(), body);
        let target = url.to_string();
        let response = post(op, url, &envelope).await?;
        let password = self.credentials.as_ref().map(|c| c.password.expose());
        interpret(op, target, response, password)
    }
}

/// Turns an HTTP response into the SOAP envelope's root element or an error.
fn interpret(
    operation: Operation,
    target: String,
    response: HttpResponse,
    password: Option<&str>,
) -> Result<xml::Element, OnvifError> {
    let parsed = std::str::from_utf8(&response.body)
        .map_err(|_| "not UTF-8")
        .and_then(xml::parse);
    if let Ok(root) = &parsed {
        if let Some((code, reason)) = fault(root) {
            return Err(OnvifError::Fault {
                operation,
                target,
                status: response.status,
                code: sanitize(&code, password),
                reason: sanitize(&reason, password),
            });
        }
    }
    if response.status == 401 {
        let challenge = response.challenge.as_deref().unwrap_or("none");
        // The scheme and realm are enough to tell what the camera wants.
        let challenge = challenge.split(',').next().unwrap_or("");
        return Err(OnvifError::Unauthorized {
            operation,
            target,
            challenge: sanitize(challenge, password),
        });
    }
    if !(200..300).contains(&response.status) {
        return Err(OnvifError::HttpStatus {
            operation,
            target,
            status: response.status,
        });
    }
    parsed.map_err(|reason| OnvifError::BadXml {
        operation,
        target,
        reason,
    })
}

/// Camera text made fit for an error: bounded, one line, and without the
/// password should a camera ever echo it.
fn sanitize(text: &str, password: Option<&str>) -> String {
    let mut s: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FAULT_TEXT)
        .collect();
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        s = s.replace(p, "***");
    }
    s
}

// ---------------------------------------------------------------------------
// SOAP messages

/// A SOAP 1.2 envelope around `body`, with `header` (already XML) if any.
pub(crate) fn envelope(header: Option<&str>, body: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">"#,
            "{}<s:Body>{}</s:Body></s:Envelope>"
        ),
        header.map_or(String::new(), |h| format!("<s:Header>{h}</s:Header>")),
        body
    )
}

/// The WS-Security header with a UsernameToken PasswordDigest.
pub(crate) fn security_header(user: &str, password: &str, nonce: &[u8], created: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        concat!(
            r#"<wsse:Security s:mustUnderstand="1" "#,
            r#"xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" "#,
            r#"xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">"#,
            "<wsse:UsernameToken><wsse:Username>{}</wsse:Username>",
            r#"<wsse:Password Type="{}">{}</wsse:Password>"#,
            r#"<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{}</wsse:Nonce>"#,
            "<wsu:Created>{}</wsu:Created></wsse:UsernameToken></wsse:Security>"
        ),
        xml::escape(user),
        PASSWORD_DIGEST_TYPE,
        password_digest(nonce, created, password),
        b64.encode(nonce),
        created
    )
}

/// `Base64(SHA1(nonce + created + password))`, the UsernameToken digest.
pub(crate) fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(nonce);
    sha.update(created.as_bytes());
    sha.update(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// An operation element without arguments.
fn empty_body(op: Operation) -> String {
    format!(r#"<m:{} xmlns:m="{}"/>"#, op.name(), op.namespace())
}

/// GetCapabilities for the Media category only.
fn get_capabilities_body() -> String {
    format!(
        r#"<m:GetCapabilities xmlns:m="{DEVICE_NS}"><m:Category>Media</m:Category></m:GetCapabilities>"#
    )
}

/// GetServices without the (large) capability blocks.
fn get_services_body() -> String {
    format!(
        r#"<m:GetServices xmlns:m="{DEVICE_NS}"><m:IncludeCapability>false</m:IncludeCapability></m:GetServices>"#
    )
}

/// SetSynchronizationPoint for `token`.
fn set_synchronization_point_body(token: &str) -> String {
    format!(
        r#"<m:SetSynchronizationPoint xmlns:m="{MEDIA_NS}"><m:ProfileToken>{}</m:ProfileToken></m:SetSynchronizationPoint>"#,
        xml::escape(token)
    )
}

/// The Media XAddr of a GetCapabilitiesResponse.
fn media_xaddr_from_capabilities(root: &xml::Element) -> Option<&str> {
    root.find("Capabilities")?
        .find("Media")?
        .child("XAddr")
        .map(|x| x.text.trim())
}

/// The XAddr of the ver10 media service in a GetServicesResponse.
fn media_xaddr_from_services(root: &xml::Element) -> Option<&str> {
    root.find_all("Service")
        .into_iter()
        .find(|s| {
            s.child("Namespace")
                .is_some_and(|n| n.text.trim() == MEDIA_NS)
        })?
        .child("XAddr")
        .map(|x| x.text.trim())
}

/// The token of the first profile in a GetProfilesResponse.
fn first_profile_token(root: &xml::Element) -> Option<&str> {
    root.find("Profiles")?
        .attr("token")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The code and reason of a SOAP 1.2 or 1.1 Fault. Codes are joined with
/// `/` from the outermost to the most specific subcode
/// (`env:Sender/ter:NotAuthorized`).
fn fault(root: &xml::Element) -> Option<(String, String)> {
    let fault = root.find("Fault")?;
    let mut codes = Vec::new();
    let mut code = fault.child("Code");
    while let Some(c) = code {
        if let Some(v) = c.child("Value") {
            codes.push(v.text.trim());
        }
        code = c.child("Subcode");
    }
    if let Some(c) = fault.child("faultcode") {
        codes.push(c.text.trim());
    }
    let reason = fault
        .child("Reason")
        .and_then(|r| r.child("Text"))
        .or_else(|| fault.child("faultstring"))
        .map_or("", |t| t.text.trim());
    let code = if codes.is_empty() {
        "unknown".to_owned()
    } else {
        codes.join("/")
    };
    Some((code, reason.to_owned()))
}

/// The camera's UTC clock in Unix seconds from a
/// GetSystemDateAndTimeResponse.
fn camera_utc(root: &xml::Element) -> Option<i64> {
    let utc = root.find("UTCDateTime")?;
    let num = |parent: &str, name: &str| -> Option<i64> {
        utc.child(parent)?.child(name)?.text.trim().parse().ok()
    };
    let (y, mo, d) = (
        num("Date", "Year")?,
        num("Date", "Month")?,
        num("Date", "Day")?,
    );
    let (h, mi, s) = (
        num("Time", "Hour")?,
        num("Time", "Minute")?,
        num("Time", "Second")?,
    );
    // The year bound keeps the arithmetic far from overflow.
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || !(0..=23).contains(&h)
        || !(0..=59).contains(&mi)
        || !(0..=60).contains(&s)
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Uses the path and query of a camera's XAddr with the origin of the
/// device URL. Quirk `xaddr-origin`: cameras behind NAT or port forwarding
/// advertise their internal address; the address the user configured is
/// the one that is reachable.
fn resolve_xaddr(device: &Url, xaddr: &str) -> Option<Url> {
    // Some cameras list several space-separated addresses.
    let first = xaddr.split_whitespace().next()?;
    let mut url = device.join(first).ok()?;
    if url.origin() != device.origin() {
        info!(advertised = %url, device = %device, "ONVIF quirk xaddr-origin: using the device URL's host for the media service");
        let path = url.path().to_owned();
        let query = url.query().map(str::to_owned);
        url = device.clone();
        url.set_path(&path);
        url.set_query(query.as_deref());
    }
    Some(url)
}

// ---------------------------------------------------------------------------
// Time

/// Seconds since the Unix epoch by the system clock.
pub(crate) fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Unix seconds as `YYYY-MM-DDThh:mm:ssZ` (xsd:dateTime in UTC).
pub(crate) fn format_utc(unix_secs: i64) -> String {
    let (days, secs) = (unix_secs.div_euclid(86_400), unix_secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Unix seconds of an xsd:dateTime in UTC, `YYYY-MM-DDThh:mm:ss`, optional
/// fraction, then `Z` or `+00:00` (or nothing, read as UTC).
pub(crate) fn parse_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> {
        let f = s.get(r)?;
        f.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| f.parse().ok())?
    };
    let (y, mo, d, h, mi, sec) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    if !matches!(rest, "" | "Z" | "+00:00" | "-00:00") {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

// ---------------------------------------------------------------------------
// HTTP/1.1

/// A complete HTTP response.
#[derive(Debug)]
struct HttpResponse {
    /// Status code.
    status: u16,
    /// `WWW-Authenticate`, to name what a 401 asks for.
    challenge: Option<String>,
    /// Body, de-chunked.
    body: Vec<u8>,
}

/// POSTs a SOAP envelope and reads the whole response, within
/// [`REQUEST_TIMEOUT`].
async fn post(op: Operation, url: &Url, envelope: &str) -> Result<HttpResponse, OnvifError> {
    if url.scheme() != "http" {
        return Err(OnvifError::UnsupportedScheme {
            url: url.to_string(),
            scheme: url.scheme().to_owned(),
        });
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => {
            return Err(OnvifError::NoHost {
                url: url.to_string(),
            })
        }
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\n\
         Content-Type: application/soap+xml; charset=utf-8; action=\"{}/{}\"\r\n\
         Content-Length: {}\r\nConnection: close\r\nUser-Agent: camgate/{}\r\n\r\n{envelope}",
        op.namespace(),
        op.name(),
        envelope.len(),
        env!("CARGO_PKG_VERSION"),
    );
    let target = url.to_string();
    let exchange = async {
        let mut stream = TcpStream::connect((host.as_str(), port)).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        loop {
            let n = stream.read(&mut chunk).await?;
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_RESPONSE {
                return Err(ReadError::TooLarge);
            }
            match parse_response(&buf, n == 0) {
                Ok(Some(r)) => return Ok(r),
                Ok(None) if n == 0 => return Err(ReadError::Bad("connection closed early")),
                Ok(None) => {}
                Err(reason) => return Err(ReadError::Bad(reason)),
            }
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Ok(r)) => Ok(r),
        Err(_) => Err(OnvifError::Timeout {
            operation: op,
            target,
            timeout: REQUEST_TIMEOUT,
        }),
        Ok(Err(ReadError::Io(source))) => Err(OnvifError::Io {
            operation: op,
            target,
            source,
        }),
        Ok(Err(ReadError::TooLarge)) => Err(OnvifError::ResponseTooLarge {
            operation: op,
            target,
            limit: MAX_RESPONSE,
        }),
        Ok(Err(ReadError::Bad(reason))) => Err(OnvifError::BadHttp {
            operation: op,
            target,
            reason,
        }),
    }
}

/// How reading a response failed, before the operation is attached.
enum ReadError {
    /// The socket failed.
    Io(std::io::Error),
    /// More than [`MAX_RESPONSE`] bytes.
    TooLarge,
    /// Not parsable HTTP.
    Bad(&'static str),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Parses `buf` as one HTTP/1.x response: `Ok(None)` while more bytes are
/// needed, the response once complete. `eof` says the peer closed, which
/// ends a body that has neither a length nor chunks. Interim 1xx responses
/// are skipped.
fn parse_response(buf: &[u8], eof: bool) -> Result<Option<HttpResponse>, &'static str> {
    let mut buf = buf;
    loop {
        let Some(head_end) = find(buf, b"\r\n\r\n") else {
            return if eof {
                Err("connection closed inside the headers")
            } else {
                Ok(None)
            };
        };
        let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "headers are not UTF-8")?;
        let rest = &buf[head_end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        if !parts.next().unwrap_or("").starts_with("HTTP/1.") {
            return Err("not an HTTP/1.x status line");
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| (100..600).contains(s))
            .ok_or("bad status code")?;
        if (100..200).contains(&status) {
            buf = rest;
            continue;
        }
        let (mut length, mut chunked, mut challenge) = (None, false, None);
        for line in lines {
            let (name, value) = line.split_once(':').ok_or("header without a colon")?;
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("www-authenticate") {
                challenge = Some(value.to_owned());
            }
        }
        let body = if chunked {
            match dechunk(rest)? {
                Some(b) => b,
                None if eof => return Err("connection closed inside a chunk"),
                None => return Ok(None),
            }
        } else if let Some(n) = length {
            if n > MAX_RESPONSE {
                return Err("Content-Length above the response limit");
            }
            match rest.get(..n) {
                Some(b) => b.to_vec(),
                None if eof => return Err("connection closed before Content-Length bytes"),
                None => return Ok(None),
            }
        } else if status == 204 || status == 304 {
            Vec::new()
        } else if eof {
            rest.to_vec()
        } else {
            return Ok(None);
        };
        return Ok(Some(HttpResponse {
            status,
            challenge,
            body,
        }));
    }
}

/// The body of a chunked message if all of it is in `buf`.
fn dechunk(mut buf: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(buf, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[..line_end]).map_err(|_| "bad chunk size")?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| "bad chunk size")?;
        if size > MAX_RESPONSE {
            return Err("chunk above the response limit");
        }
        buf = &buf[line_end + 2..];
        if size == 0 {
            // Trailers end with an empty line; none is the common case.
            return Ok(
                if buf.starts_with(b"\r\n") || find(buf, b"\r\n\r\n").is_some() {
                    Some(body)
                } else {
                    None
                },
            );
        }
        if buf.len() < size + 2 {
            return Ok(None);
        }
        if &buf[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF");
        }
        body.extend_from_slice(&buf[..size]);
        buf = &buf[size + 2..];
    }
}

/// Position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------

/// A minimal XML reader for SOAP responses: elements by local name (prefixes
/// ignored), attributes, text. No DTDs, no external entities; depth bounded.
pub(crate) mod xml {
    /// Deepest nesting accepted; SOAP responses need about ten.
    const MAX_DEPTH: usize = 64;

    /// One element, names without namespace prefix.
    #[derive(Debug, Default)]
    pub(crate) struct Element {
        /// Local name.
        pub name: String,
        /// Attributes as (local name, unescaped value).
        pub attrs: Vec<(String, String)>,
        /// The element's own text (CDATA included), unescaped, untrimmed.
        pub text: String,
        /// Child elements in document order.
        pub children: Vec<Element>,
    }

    impl Element {
        /// The first attribute with local name `name`.
        pub fn attr(&self, name: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }

        /// The first child with local name `name`.
        pub fn child(&self, name: &str) -> Option<&Element> {
            self.children.iter().find(|c| c.name == name)
        }

        /// The first descendant (self excluded, depth first) named `name`.
        pub fn find(&self, name: &str) -> Option<&Element> {
            self.children.iter().find_map(|c| {
                if c.name == name {
                    Some(c)
                } else {
                    c.find(name)
                }
            })
        }

        /// Every descendant named `name`, depth first.
        pub fn find_all(&self, name: &str) -> Vec<&Element> {
            let mut out = Vec::new();
            self.collect(name, &mut out);
            out
        }

        /// Appends every descendant named `name` to `out`.
        fn collect<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
            for c in &self.children {
                if c.name == name {
                    out.push(c);
                }
                c.collect(name, out);
            }
        }
    }

    /// `qname` without its prefix.
    fn local(qname: &str) -> &str {
        qname.rsplit_once(':').map_or(qname, |(_, l)| l)
    }

    /// Parses a document into its root element.
    pub(crate) fn parse(input: &str) -> Result<Element, &'static str> {
        // Open elements with their qualified names, for end-tag matching.
        let mut stack: Vec<(Element, &str)> = Vec::new();
        let mut root = None;
        let mut rest = input.strip_prefix('\u{feff}').unwrap_or(input);
        loop {
            let lt = rest.find('<').unwrap_or(rest.len());
            let (text, tail) = rest.split_at(lt);
            match stack.last_mut() {
                Some((top, _)) => unescape(text, &mut top.text)?,
                None if !text.trim().is_empty() => return Err("text outside the root element"),
                None => {}
            }
            rest = tail;
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix("<?") {
                rest = skip_past(r, "?>")?;
            } else if let Some(r) = rest.strip_prefix("<!--") {
                rest = skip_past(r, "-->")?;
            } else if let Some(r) = rest.strip_prefix("<![CDATA[") {
                let end = r.find("]]>").ok_or("unterminated CDATA")?;
                let (top, _) = stack.last_mut().ok_or("CDATA outside the root element")?;
                top.text.push_str(&r[..end]);
                rest = &r[end + 3..];
            } else if rest.starts_with("<!") {
                return Err("DTDs are not accepted");
            } else if let Some(r) = rest.strip_prefix("</") {
                let end = r.find('>').ok_or("unterminated end tag")?;
                let (el, qname) = stack.pop().ok_or("end tag without start tag")?;
                if r[..end].trim() != qname {
                    return Err("mismatched end tag");
                }
                rest = &r[end + 1..];
                match stack.last_mut() {
                    Some((parent, _)) => parent.children.push(el),
                    None => root = Some(el),
                }
            } else {
                if root.is_some() {
                    return Err("more than one root element");
                }
                let end = tag_end(&rest[1..]).ok_or("unterminated start tag")? + 1;
                let inner = &rest[1..end];
                rest = &rest[end + 1..];
                let (inner, empty) = match inner.strip_suffix('/') {
                    Some(i) => (i, true),
                    None => (inner, false),
                };
                let name_end = inner
                    .find(|c: char| c.is_ascii_whitespace())
                    .unwrap_or(inner.len());
                let qname = &inner[..name_end];
                if qname.is_empty() {
                    return Err("element without a name");
                }
                let el = Element {
                    name: local(qname).to_owned(),
                    attrs: attributes(&inner[name_end..])?,
                    ..Element::default()
                };
                if empty {
                    match stack.last_mut() {
                        Some((parent, _)) => parent.children.push(el),
                        None => root = Some(el),
                    }
                } else {
                    if stack.len() >= MAX_DEPTH {
                        return Err("elements nested too deeply");
                    }
                    stack.push((el, qname));
                }
            }
        }
        if !stack.is_empty() {
            return Err("unclosed element");
        }
        root.ok_or("no root element")
    }

    /// The rest of `s` after `end`.
    fn skip_past<'a>(s: &'a str, end: &str) -> Result<&'a str, &'static str> {
        s.find(end)
            .map(|i| &s[i + end.len()..])
            .ok_or("unterminated markup")
    }

    /// Index of the `>` that ends a tag, skipping quoted attribute values.
    fn tag_end(s: &str) -> Option<usize> {
        let mut quote = None;
        for (i, c) in s.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '>') => return Some(i),
                _ => {}
            }
        }
        None
    }

    /// Attributes of a start tag after its name.
    fn attributes(mut s: &str) -> Result<Vec<(String, String)>, &'static str> {
        let mut out = Vec::new();
        loop {
            s = s.trim_start();
            if s.is_empty() {
                return Ok(out);
            }
            let eq = s.find('=').ok_or("attribute without a value")?;
            let name = s[..eq].trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err("bad attribute name");
            }
            let v = s[eq + 1..].trim_start();
            let quote = v.chars().next().filter(|c| *c == '"' || *c == '\'');
            let quote = quote.ok_or("unquoted attribute value")?;
            let end = v[1..].find(quote).ok_or("unterminated attribute value")?;
            let mut value = String::new();
            unescape(&v[1..1 + end], &mut value)?;
            out.push((local(name).to_owned(), value));
            s = &v[end + 2..];
        }
    }

    /// Appends `s` to `out` with the predefined and numeric entities replaced.
    fn unescape(mut s: &str, out: &mut String) -> Result<(), &'static str> {
        while let Some(amp) = s.find('&') {
            out.push_str(&s[..amp]);
            let r = &s[amp + 1..];
            let semi = r.find(';').filter(|i| *i <= 10).ok_or("bad entity")?;
            let c = match &r[..semi] {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                "apos" => '\'',
                e => {
                    let n = if let Some(h) = e.strip_prefix("#x") {
                        u32::from_str_radix(h, 16).ok()
                    } else if let Some(d) = e.strip_prefix('#') {
                        d.parse().ok()
                    } else {
                        None
                    };
                    n.and_then(char::from_u32).ok_or("unknown entity")?
                }
            };
            out.push(c);
            s = &r[semi + 1..];
        }
        out.push_str(s);
        Ok(())
    }

    /// `s` with the characters that are markup in text and attributes escaped.
    pub(crate) fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&apos;"),
                c => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hikvision-shaped: `env`/`tds`/`tt` prefixes, other services first.
    const CAPABILITIES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<env:Body><tds:GetCapabilitiesResponse><tds:Capabilities>
<tt:Device><tt:XAddr>http://192.168.1.64/onvif/device_service</tt:XAddr></tt:Device>
<tt:Events><tt:XAddr>http://192.168.1.64/onvif/Events</tt:XAddr></tt:Events>
<tt:Media><tt:XAddr>http://192.168.1.64/onvif/Media</tt:XAddr>
<tt:StreamingCapabilities><tt:RTPMulticast>true</tt:RTPMulticast></tt:StreamingCapabilities></tt:Media>
</tds:Capabilities></tds:GetCapabilitiesResponse></env:Body></env:Envelope>"#;

    /// Axis-shaped: `SOAP-ENV` prefix, a comment, Media2 listed before Media.
    const SERVICES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">
<!-- generated --><SOAP-ENV:Body><tds:GetServicesResponse>
<tds:Service><tds:Namespace>http://www.onvif.org/ver20/media/wsdl</tds:Namespace><tds:XAddr>http://10.0.0.5/onvif/services</tds:XAddr></tds:Service>
<tds:Service><tds:Namespace> http://www.onvif.org/ver10/media/wsdl </tds:Namespace><tds:XAddr>http://10.0.0.5/onvif/services?x=1&amp;y=2</tds:XAddr>
<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>
</tds:GetServicesResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;

    /// Dahua-shaped: `s` prefix, default namespace on the response, single quotes.
    const PROFILES: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>
<GetProfilesResponse xmlns="http://www.onvif.org/ver10/media/wsdl">
<Profiles fixed='true' token = 'MediaProfile000'><Name xmlns="http://www.onvif.org/ver10/schema">MainStream</Name></Profiles>
<Profiles token="MediaProfile001"/></GetProfilesResponse></s:Body></s:Envelope>"#;

    const FAULT12: &str = r#"<?xml version="1.0" ?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error">
<env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code>
<env:Reason><env:Text xml:lang="en">The action requested requires authorization and the sender is not authorized</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;

    const FAULT11: &str = r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><SOAP-ENV:Fault>
<faultcode>SOAP-ENV:Client</faultcode><faultstring>Method &apos;SetSynchronizationPoint&apos; not implemented</faultstring>
</SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;

    const DATE: &str = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema"><env:Body><tds:GetSystemDateAndTimeResponse xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><tds:SystemDateAndTime>
<tt:DateTimeType>Manual</tt:DateTimeType><tt:LocalDateTime><tt:Time><tt:Hour>9</tt:Hour><tt:Minute>50</tt:Minute><tt:Second>45</tt:Second></tt:Time><tt:Date><tt:Year>2010</tt:Year><tt:Month>9</tt:Month><tt:Day>16</tt:Day></tt:Date></tt:LocalDateTime>
<tt:UTCDateTime><tt:Time><tt:Hour>7</tt:Hour><tt:Minute>50</tt:Minute><tt:Second>45</tt:Second></tt:Time><tt:Date><tt:Year>2010</tt:Year><tt:Month>9</tt:Month><tt:Day>16</tt:Day></tt:Date></tt:UTCDateTime>
</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse></env:Body></env:Envelope>"#;

    #[test]
    fn digest_matches_the_onvif_programmers_guide_example() {
        // ONVIF Application Programmer's Guide, 6.1.1.3; also checked with
        // Python: b64encode(sha1(b64decode(nonce) + created + password)).
        let nonce = base64::engine::general_purpose::STANDARD
            .decode("LKqI6G/AikKCQrN0zqZFlg==")
            .unwrap();
        assert_eq!(
            password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        );
    }

    #[test]
    fn security_header_carries_digest_not_password() {
        let h = security_header(
            "ad<min",
            "s3cret-pw",
            b"0123456789abcdef",
            "2024-01-02T03:04:05Z",
        );
        let root = xml::parse(&envelope(Some(&h), "<x/>")).unwrap();
        let token = root.find("UsernameToken").unwrap();
        assert_eq!(token.child("Username").unwrap().text, "ad<min");
        assert_eq!(
            token.child("Password").unwrap().attr("Type"),
            Some(PASSWORD_DIGEST_TYPE)
        );
        assert_eq!(token.child("Created").unwrap().text, "2024-01-02T03:04:05Z");
        assert!(!h.contains("s3cret-pw"));
    }

    #[test]
    fn utc_time_round_trips() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        // Values from Python's calendar.timegm.
        assert_eq!(format_utc(1_284_623_445), "2010-09-16T07:50:45Z");
        assert_eq!(format_utc(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(format_utc(2_147_483_648), "2038-01-19T03:14:08Z");
        for t in [-86_401, 0, 951_868_799, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_utc(&format_utc(t)), Some(t));
        }
        assert_eq!(parse_utc("2010-09-16T07:50:45.123Z"), Some(1_284_623_445));
        assert_eq!(parse_utc("2010-09-16T07:50:45+00:00"), Some(1_284_623_445));
        assert_eq!(parse_utc("2010-09-16T07:50:45+02:00"), None);
        assert_eq!(parse_utc("2010-13-16T07:50:45Z"), None);
        assert_eq!(parse_utc("2010-09-16 07:50:45Z"), None);
        assert_eq!(parse_utc("+010-09-16T07:50:45Z"), None);
    }

    #[test]
    fn extracts_from_real_world_shaped_responses() {
        let caps = xml::parse(CAPABILITIES).unwrap();
        assert_eq!(
            media_xaddr_from_capabilities(&caps),
            Some("http://192.168.1.64/onvif/Media")
        );
        let services = xml::parse(SERVICES).unwrap();
        assert_eq!(
            media_xaddr_from_services(&services),
            Some("http://10.0.0.5/onvif/services?x=1&y=2")
        );
        assert_eq!(media_xaddr_from_services(&caps), None);
        let profiles = xml::parse(PROFILES).unwrap();
        assert_eq!(first_profile_token(&profiles), Some("MediaProfile000"));
        assert_eq!(fault(&profiles), None);
        let date = xml::parse(DATE).unwrap();
        assert_eq!(camera_utc(&date), Some(1_284_623_445));
        let absurd = DATE.replace(
            "<tt:Year>2010</tt:Year>",
            "<tt:Year>99999999999999999</tt:Year>",
        );
        assert_eq!(camera_utc(&xml::parse(&absurd).unwrap()), None);
    }

    #[test]
    fn reads_soap_12_and_11_faults() {
        let (code, reason) = fault(&xml::parse(FAULT12).unwrap()).unwrap();
        assert_eq!(code, "env:Sender/ter:NotAuthorized");
        assert!(reason.starts_with("The action requested requires authorization"));
        let (code, reason) = fault(&xml::parse(FAULT11).unwrap()).unwrap();
        assert_eq!(code, "SOAP-ENV:Client");
        assert_eq!(reason, "Method 'SetSynchronizationPoint' not implemented");
    }

    #[test]
    fn xml_scanner_rejects_what_it_cannot_read() {
        let bad = [
            "",
            "text",
            "<a>",
            "<a></b>",
            "<a></a><b/>",
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<a x=1/>",
            "<a>&bogus;</a>",
            "<a><![CDATA[x</a>",
            "<a x=\"1></a>",
        ];
        for doc in bad {
            assert!(xml::parse(doc).is_err(), "{doc:?}");
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(xml::parse(&deep).unwrap_err(), "elements nested too deeply");
        let ok = xml::parse(
            "\u{feff}<?xml version='1.0'?><a b='x>y'>1 &lt; 2 &#x41;&#66;<![CDATA[<c>]]></a>",
        )
        .unwrap();
        assert_eq!(ok.attr("b"), Some("x>y"));
        assert_eq!(ok.text, "1 < 2 AB<c>");
    }

    #[test]
    fn http_response_parser_handles_length_chunks_and_eof() {
        let body = "<e/>";
        let whole = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        for cut in 0..whole.len() {
            assert!(parse_response(&whole.as_bytes()[..cut], false)
                .unwrap()
                .is_none());
        }
        let r = parse_response(whole.as_bytes(), false).unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, body.as_bytes()));

        let chunked = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request\r\n\
                       Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\n<e/\r\n1\r\n>\r\n0\r\n\r\n";
        for cut in 0..chunked.len() {
            assert!(parse_response(&chunked.as_bytes()[..cut], false)
                .unwrap()
                .is_none());
        }
        let r = parse_response(chunked.as_bytes(), false).unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, body.as_bytes()));

        let until_eof = "HTTP/1.0 200 OK\r\nWWW-Authenticate: Digest realm=\"x\"\r\n\r\n<e/>";
        assert!(parse_response(until_eof.as_bytes(), false)
            .unwrap()
            .is_none());
        let r = parse_response(until_eof.as_bytes(), true).unwrap().unwrap();
        assert_eq!(r.body, b"<e/>");
        assert_eq!(r.challenge.as_deref(), Some("Digest realm=\"x\""));

        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
            false
        )
        .is_err());
        assert!(parse_response(b"RTSP/1.0 200 OK\r\n\r\n", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", true).is_err());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false
        )
        .is_err());
    }

    #[test]
    fn faults_and_401_become_errors_without_the_password() {
        let response = |status, body: &str| HttpResponse {
            status,
            challenge: Some("Digest realm=\"cam\", nonce=\"abc\"".into()),
            body: body.as_bytes().to_vec(),
        };
        let op = Operation::GetProfiles;
        let echo = FAULT12.replace("the sender", "the sender hunter2");
        let e = interpret(op, "t".into(), response(400, &echo), Some("hunter2")).unwrap_err();
        assert!(e.is_auth());
        let text = e.to_string();
        assert!(
            text.contains("GetProfiles") && text.contains("ter:NotAuthorized"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let e = interpret(op, "t".into(), response(401, ""), None).unwrap_err();
        assert!(
            matches!(e, OnvifError::Unauthorized { .. }) && e.is_auth(),
            "{e}"
        );
        assert!(e.to_string().contains("Digest realm=\"cam\""));
        let e = interpret(op, "t".into(), response(500, "oops"), None).unwrap_err();
        assert!(
            matches!(e, OnvifError::HttpStatus { status: 500, .. }),
            "{e}"
        );
        let e = interpret(op, "t".into(), response(200, "<a>"), None).unwrap_err();
        assert!(matches!(e, OnvifError::BadXml { .. }), "{e}");
    }

    #[test]
    fn xaddr_takes_the_device_urls_origin() {
        let device = Url::parse("http://203.0.113.5:8080/onvif/device_service").unwrap();
        let media = resolve_xaddr(
            &device,
            "http://192.168.1.64/onvif/Media?a=b http://[fe80::1]/x",
        )
        .unwrap();
        assert_eq!(media.as_str(), "http://203.0.113.5:8080/onvif/Media?a=b");
        let same = resolve_xaddr(&device, "/onvif/media").unwrap();
        assert_eq!(same.as_str(), "http://203.0.113.5:8080/onvif/media");
        assert!(resolve_xaddr(&device, "  ").is_none());
    }

    #[test]
    fn credentials_in_the_url_are_moved_out_of_it() {
        let url = Url::parse("http://admin:p%40ss@192.0.2.10/onvif/device_service").unwrap();
        let client = OnvifClient::new(url, None);
        assert_eq!(
            client.device_url.as_str(),
            "http://192.0.2.10/onvif/device_service"
        );
        assert_eq!(client.credentials, Some(crate::credentials::Credentials::new("admin", "p@ss")));
        let debug = format!("{client:?}");
        assert!(
            !debug.contains("p@ss") && !debug.contains("p%40ss"),
            "{debug}"
        );
    }

    #[tokio::test]
    async fn https_is_refused_clearly() {
        let url = Url::parse("https://192.0.2.10/onvif/device_service").unwrap();
        let e = OnvifClient::new(url, None)
            .request_keyframe()
            .await
            .unwrap_err();
        assert!(matches!(e, OnvifError::UnsupportedScheme { .. }), "{e}");
        assert!(e.to_string().contains("https"), "{e}");
    }
}
