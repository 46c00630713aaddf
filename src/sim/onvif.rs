//! A simulated camera's ONVIF device and media services (ONVIF Core and
//! Media Service Specs ver10, SOAP 1.2 over HTTP, WS-Security UsernameToken
//! and/or RFC 7616 HTTP Digest): just enough for camgate's keyframe
//! requests, `SetSynchronizationPoint`, to reach the sim's RTSP sessions
//! through a [`KeyframeTrigger`].
//!
//! The camera is named in the query of every service URL: the device
//! service of sim camera `NAME` (RTSP path `/NAME`) is
//! `http://ADDR/onvif/device_service?camera=NAME`, and the media XAddr it
//! advertises carries the same `?camera=NAME`. There is one profile,
//! [`PROFILE_TOKEN`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use quick_xml::escape::escape;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::auth::Authenticator;
use super::KeyframeTrigger;
use crate::credentials::Credentials;
use crate::onvif::{soap, xml, DEVICE_NS, MEDIA_NS};

/// The token of the sim's only media profile.
pub const PROFILE_TOKEN: &str = "camgate_sim";
/// How far `Created` may be from the sim's clock, as cameras allow for
/// replay protection.
const CREATED_WINDOW_SECS: i64 = 300;

/// Requests the sim answered, by operation (the body element's local name).
/// Cheap to clone; clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct OnvifSimCalls {
    /// Count per operation name.
    counts: Arc<Mutex<HashMap<String, u64>>>,
    /// Requests answered HTTP 401 (see [`OnvifAuth`]).
    unauthorized: Arc<std::sync::atomic::AtomicU64>,
}

impl OnvifSimCalls {
    /// Every SOAP request received, whatever its outcome.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// Requests of `operation` (e.g. `SetSynchronizationPoint`) received,
    /// refused ones included.
    pub fn of(&self, operation: &str) -> u64 {
        self.lock().get(operation).copied().unwrap_or(0)
    }

    /// Requests refused with HTTP 401 for want of a valid HTTP Digest
    /// answer (they count under their operation too).
    pub fn unauthorized(&self) -> u64 {
        self.unauthorized.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts one request of `operation`.
    fn add(&self, operation: &str) {
        // Only known names become keys, so a client cannot grow the map.
        let key = if KNOWN.contains(&operation) {
            operation
        } else {
            "other"
        };
        *self.lock().entry(key.to_owned()).or_default() += 1;
    }

    /// The counts; a panicked holder cannot have left them inconsistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Operations the sim implements.
const KNOWN: [&str; 5] = [
    "GetSystemDateAndTime",
    "GetCapabilities",
    "GetServices",
    "GetProfiles",
    "SetSynchronizationPoint",
];

/// How the sim's ONVIF endpoint checks the credentials given to
/// [`OnvifSim::bind`] (on every request but GetSystemDateAndTime).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnvifAuth {
    /// A WS-Security UsernameToken PasswordDigest in the SOAP header, as
    /// ONVIF Core asks; failures are `ter:NotAuthorized` faults.
    #[default]
    WsUsernameToken,
    /// HTTP Digest (RFC 7616, realm `camgate-sim`) only, WS-Security
    /// ignored, as many cameras' web servers do; failures are HTTP 401.
    HttpDigest,
    /// Both: HTTP Digest first, then the UsernameToken.
    Both,
}

/// The ONVIF endpoint of the sim cameras of one [`super::SimServer`].
/// `Debug` shows the password as `***`.
#[derive(Debug)]
pub struct OnvifSim {
    /// The listening socket.
    listener: TcpListener,
    /// Its address, also the host of advertised XAddrs.
    local_addr: SocketAddr,
    /// Checked on every request but GetSystemDateAndTime when set.
    credentials: Option<Credentials>,
    /// How they are checked.
    auth: OnvifAuth,
    /// Reaches the RTSP sessions on SetSynchronizationPoint.
    trigger: KeyframeTrigger,
    /// Shared with [`Self::calls`] handles.
    calls: OnvifSimCalls,
    /// Operations answered with `ter:ActionNotSupported`, to exercise
    /// clients' fallbacks.
    refused: HashSet<String>,
    /// Added to the sim's clock (GetSystemDateAndTime and the `Created`
    /// check), to play a camera whose clock drifted.
    clock_offset_secs: i64,
}

impl OnvifSim {
    /// Binds the HTTP listener. With `credentials`, requests must carry a
    /// WS-Security UsernameToken PasswordDigest for them (see
    /// [`Self::set_auth`] for HTTP Digest).
    pub async fn bind(
        addr: SocketAddr,
        credentials: Option<Credentials>,
        trigger: KeyframeTrigger,
    ) -> std::io::Result<OnvifSim> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(OnvifSim {
            listener,
            local_addr,
            credentials,
            auth: OnvifAuth::default(),
            trigger,
            calls: OnvifSimCalls::default(),
            refused: HashSet::new(),
            clock_offset_secs: 0,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The device service URL of sim camera `camera`.
    pub fn device_url(&self, camera: &str) -> url::Url {
        service_url(self.local_addr, "device_service", camera)
    }

    /// A handle on the request counts.
    pub fn calls(&self) -> OnvifSimCalls {
        self.calls.clone()
    }

    /// Answers `operation` with a `ter:ActionNotSupported` fault, as cameras
    /// without it do.
    pub fn refuse(&mut self, operation: &str) {
        self.refused.insert(operation.to_owned());
    }

    /// Checks the credentials with `auth` instead of the UsernameToken.
    pub fn set_auth(&mut self, auth: OnvifAuth) {
        self.auth = auth;
    }

    /// Runs the sim's clock `secs` ahead of the system clock (behind if
    /// negative).
    pub fn set_clock_offset(&mut self, secs: i64) {
        self.clock_offset_secs = secs;
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let http_digest = match self.auth {
            OnvifAuth::WsUsernameToken => None,
            OnvifAuth::HttpDigest | OnvifAuth::Both => self
                .credentials
                .clone()
                .map(|c| Authenticator::new(c.username, c.password)),
        };
        let ws_security = match self.auth {
            OnvifAuth::HttpDigest => None,
            OnvifAuth::WsUsernameToken | OnvifAuth::Both => self.credentials,
        };
        let state = Arc::new(Shared {
            local_addr: self.local_addr,
            ws_security,
            http_digest,
            trigger: self.trigger,
            calls: self.calls,
            refused: self.refused,
            clock_offset_secs: self.clock_offset_secs,
        });
        let router = Router::new()
            .route(
                "/onvif/device_service",
                post(|s, q, h, b| handle(Service::Device, s, q, h, b)),
            )
            .route(
                "/onvif/media_service",
                post(|s, q, h, b| handle(Service::Media, s, q, h, b)),
            )
            .with_state(state);
        if let Err(e) = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
        {
            warn!("sim ONVIF: server failed: {e}");
        }
    }
}

/// What the request handlers share.
#[derive(Debug)]
struct Shared {
    /// Host of advertised XAddrs.
    local_addr: SocketAddr,
    /// The UsernameToken every request but GetSystemDateAndTime must carry.
    ws_security: Option<Credentials>,
    /// The HTTP Digest check every request but GetSystemDateAndTime must
    /// pass.
    http_digest: Option<Authenticator>,
    /// See [`OnvifSim`].
    trigger: KeyframeTrigger,
    /// See [`OnvifSim`].
    calls: OnvifSimCalls,
    /// See [`OnvifSim::refuse`].
    refused: HashSet<String>,
    /// See [`OnvifSim::set_clock_offset`].
    clock_offset_secs: i64,
}

/// The two services, on two paths as most cameras have them.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Service {
    /// `/onvif/device_service`: clock, capabilities, services.
    Device,
    /// `/onvif/media_service`: profiles and SetSynchronizationPoint.
    Media,
}

/// `http://ADDR/onvif/PATH?camera=CAMERA`.
fn service_url(addr: SocketAddr, path: &str, camera: &str) -> url::Url {
    let mut url = url::Url::parse(&format!("http://{addr}/onvif/{path}"))
        .expect("an http URL of a socket address parses");
    if !camera.is_empty() {
        url.query_pairs_mut().append_pair("camera", camera);
    }
    url
}

/// Answers one SOAP request: parse, count, refuse if configured, check
/// HTTP Digest and WS-Security (all but GetSystemDateAndTime), then
/// dispatch.
async fn handle(
    service: Service,
    State(state): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let camera = query.get("camera").map_or("", String::as_str);
    let root = match xml::parse(body.as_bytes()) {
        Ok(r) => r,
        Err(reason) => return fault(true, "ter:WellFormed", &reason),
    };
    let Some(op) = root.find("Body").and_then(|b| b.children.first()) else {
        return fault(true, "ter:WellFormed", "no operation in the SOAP Body");
    };
    let name = op.name.as_str();
    state.calls.add(name);
    debug!(?service, operation = name, camera, "sim ONVIF: request");
    if state.refused.contains(name) {
        return fault(false, "ter:ActionNotSupported", "refused by the sim");
    }
    let now = soap::unix_now() + state.clock_offset_secs;
    if name == "GetSystemDateAndTime" && service == Service::Device {
        return ok(&date_and_time(now));
    }
    if let Some(digest) = &state.http_digest {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !digest.check("POST", authorization) {
            state
                .calls
                .unauthorized
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return unauthorized(&digest.challenge());
        }
    }
    if let Some(c) = &state.ws_security {
        if !authorized(&root, &c.username, c.password.expose(), now) {
            return fault(true, "ter:NotAuthorized", "Sender not authorized");
        }
    }
    let media =
        escape(service_url(state.local_addr, "media_service", camera).as_str()).into_owned();
    let device =
        escape(service_url(state.local_addr, "device_service", camera).as_str()).into_owned();
    match (service, name) {
        (Service::Device, "GetCapabilities") => ok(&format!(
            "<tds:GetCapabilitiesResponse><tds:Capabilities>\
             <tt:Device><tt:XAddr>{device}</tt:XAddr></tt:Device>\
             <tt:Media><tt:XAddr>{media}</tt:XAddr><tt:StreamingCapabilities>\
             <tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>\
             <tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>\
             </tds:Capabilities></tds:GetCapabilitiesResponse>"
        )),
        (Service::Device, "GetServices") => ok(&format!(
            "<tds:GetServicesResponse>\
             <tds:Service><tds:Namespace>{}</tds:Namespace><tds:XAddr>{device}</tds:XAddr>\
             <tds:Version><tt:Major>2</tt:Major><tt:Minor>40</tt:Minor></tds:Version></tds:Service>\
             <tds:Service><tds:Namespace>{}</tds:Namespace><tds:XAddr>{media}</tds:XAddr>\
             <tds:Version><tt:Major>2</tt:Major><tt:Minor>40</tt:Minor></tds:Version></tds:Service>\
             </tds:GetServicesResponse>",
            DEVICE_NS, MEDIA_NS
        )),
        (Service::Media, "GetProfiles") => ok(&format!(
            "<trt:GetProfilesResponse><trt:Profiles token=\"{PROFILE_TOKEN}\" fixed=\"true\">\
             <tt:Name>camgate sim</tt:Name></trt:Profiles></trt:GetProfilesResponse>"
        )),
        (Service::Media, "SetSynchronizationPoint") => {
            let token = op.child("ProfileToken").map_or("", |t| t.text.trim());
            if token != PROFILE_TOKEN {
                return fault(true, "ter:InvalidArgVal/ter:NoProfile", "no such profile");
            }
            if camera.is_empty() {
                return fault(
                    true,
                    "ter:InvalidArgVal",
                    "no ?camera=NAME in the service URL",
                );
            }
            state.trigger.request(camera);
            ok("<trt:SetSynchronizationPointResponse/>")
        }
        _ => fault(false, "ter:ActionNotSupported", "operation not supported"),
    }
}

/// Whether the request's UsernameToken digest matches, and its `Created`
/// lies within [`CREATED_WINDOW_SECS`] of `now`.
fn authorized(root: &xml::Element, user: &str, password: &str, now: i64) -> bool {
    let Some(token) = root.find("Security").and_then(|s| s.find("UsernameToken")) else {
        return false;
    };
    let text = |name: &str| token.child(name).map(|e| e.text.trim());
    let Some(pw) = token.child("Password") else {
        return false;
    };
    if pw.attr("Type") != Some(soap::PASSWORD_DIGEST_TYPE) || text("Username") != Some(user) {
        return false;
    }
    let (Some(nonce), Some(created)) = (text("Nonce"), text("Created")) else {
        return false;
    };
    let Ok(nonce) = base64::engine::general_purpose::STANDARD.decode(nonce) else {
        return false;
    };
    let fresh = soap::parse_utc(created).is_some_and(|t| (t - now).abs() <= CREATED_WINDOW_SECS);
    fresh && soap::password_digest(&nonce, created, password) == pw.text.trim()
}

/// A GetSystemDateAndTimeResponse for Unix time `now`.
fn date_and_time(now: i64) -> String {
    let (year, month, day, hour, minute, second) =
        soap::fields_from_unix(now).unwrap_or((1970, 1, 1, 0, 0, 0));
    format!(
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>\
         <tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>\
         <tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime>\
         <tt:Time><tt:Hour>{hour}</tt:Hour><tt:Minute>{minute}</tt:Minute><tt:Second>{second}</tt:Second></tt:Time>\
         <tt:Date><tt:Year>{year}</tt:Year><tt:Month>{month}</tt:Month><tt:Day>{day}</tt:Day></tt:Date>\
         </tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )
}

/// The envelope every answer shares, namespaces declared up front with the
/// prefixes Hikvision-style cameras use.
fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\" \
         xmlns:tt=\"http://www.onvif.org/ver10/schema\" xmlns:tds=\"{}\" xmlns:trt=\"{}\" \
         xmlns:ter=\"http://www.onvif.org/ver10/error\">\n\
         <env:Body>{body}</env:Body></env:Envelope>\n",
        DEVICE_NS, MEDIA_NS
    )
}

/// HTTP 200 with `body` in an envelope.
fn ok(body: &str) -> Response {
    soap(StatusCode::OK, envelope(body))
}

/// A SOAP 1.2 Fault: `sender` faults are HTTP 400, receiver faults 500
/// (SOAP 1.2 Part 2, HTTP binding). `subcodes` are `/`-separated, outermost
/// first.
fn fault(sender: bool, subcodes: &str, reason: &str) -> Response {
    let (status, code) = if sender {
        (StatusCode::BAD_REQUEST, "env:Sender")
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "env:Receiver")
    };
    let mut nested = String::new();
    for sub in subcodes.split('/').rev() {
        nested = format!("<env:Subcode><env:Value>{sub}</env:Value>{nested}</env:Subcode>");
    }
    let body = format!(
        "<env:Fault><env:Code><env:Value>{code}</env:Value>{nested}</env:Code>\
         <env:Reason><env:Text xml:lang=\"en\">{}</env:Text></env:Reason></env:Fault>",
        escape(reason)
    );
    soap(status, envelope(&body))
}

/// HTTP 401 with an HTTP Digest `challenge`, as a camera's web server
/// answers before any SOAP processing.
fn unauthorized(challenge: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, challenge),
            (header::CONTENT_TYPE, "text/plain"),
        ],
        "401 Unauthorized\n",
    )
        .into_response()
}

/// An HTTP response with a SOAP 1.2 body.
fn soap(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/soap+xml; charset=utf-8")],
        body,
    )
        .into_response()
}
