//! The HTTP listener. Each area has its own module and router, merged
//! here: `api` (the JSON API under `/api/v1`), and the camera files
//! (`/cameras/{id}.sdp`). Access control (`auth`) applies to every route,
//! by method and path; `listener` owns the accept loop and its limits,
//! `tls` the certificate.

pub mod api;
pub mod auth;
mod cluster;
mod health;
mod listener;
mod metrics;
pub mod pages;
pub mod tls;
pub mod whep;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::camera::Supervisor;
use crate::config::{Config, HttpLimits};
use crate::egress::rtp::consumer_sdp;
use auth::{Auth, Need};
use tls::TlsReloader;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The running cameras.
    pub supervisor: Arc<Supervisor>,
    /// Who may do what. `Auth::set_config` replaces the credentials (on a
    /// configuration reload); lockouts survive it.
    pub auth: Arc<Auth>,
    /// One permit per WHEP negotiation under way ([`try_negotiation`]),
    /// `[server] max_whep_negotiations` in all.
    pub whep_negotiations: Arc<Semaphore>,
    /// The listener's limits and certificate.
    pub listener: Arc<ListenerSetup>,
    /// WebRTC viewers (WHEP), when running.
    pub webrtc: Option<Arc<crate::egress::webrtc::WebrtcEgress>>,
    /// The cameras' recent health samples (`crate::health::sample` fills
    /// it; the health routes read it).
    pub health: Arc<crate::health::HealthBook>,
    /// The configuration files, when the cameras come from one (API
    /// additions are validated against it and saved beside it).
    pub store: Option<Arc<crate::reload::ConfigStore>>,
    /// The cluster, when this gateway is a node of one.
    pub cluster: Option<Arc<crate::cluster::ClusterView>>,
}

impl AppState {
    /// The state of a gateway running `supervisor` behind `setup`.
    pub fn new(supervisor: Arc<Supervisor>, setup: ListenerSetup) -> AppState {
        AppState {
            supervisor,
            auth: setup.auth.clone(),
            whep_negotiations: Arc::new(Semaphore::new(setup.limits.max_whep_negotiations)),
            listener: Arc::new(setup),
            webrtc: None,
            health: Arc::default(),
            store: None,
            cluster: None,
        }
    }

    /// As a node of a cluster.
    pub fn with_cluster(mut self, view: Arc<crate::cluster::ClusterView>) -> AppState {
        self.cluster = Some(view);
        self
    }

    /// With the configuration files the cameras come from.
    pub fn with_store(mut self, store: Arc<crate::reload::ConfigStore>) -> AppState {
        self.store = Some(store);
        self
    }

    /// With WebRTC viewers.
    pub fn with_webrtc(mut self, webrtc: Arc<crate::egress::webrtc::WebrtcEgress>) -> AppState {
        self.webrtc = Some(webrtc);
        self
    }
}

/// What the listener takes from the configuration. Loading it reads the
/// TLS files, so the gateway can refuse to start before any camera does.
pub struct ListenerSetup {
    /// `[server]` limits.
    pub limits: HttpLimits,
    /// The certificate, when `[server] tls_cert` is set.
    pub tls: Option<Arc<TlsReloader>>,
    /// `[auth]`.
    pub auth: Arc<Auth>,
}

impl ListenerSetup {
    /// From `config`'s `[server]` and `[auth]`; the message names the TLS
    /// file that could not be used.
    pub fn load(config: &Config) -> Result<ListenerSetup, String> {
        let tls = match &config.server.tls {
            Some(files) => Some(Arc::new(TlsReloader::load(files)?)),
            None => None,
        };
        Ok(ListenerSetup {
            limits: config.server.limits.clone(),
            tls,
            auth: Arc::new(Auth::new(&config.auth)),
        })
    }

    /// Reads the TLS certificate and key again (what SIGHUP does); `Ok`
    /// without TLS. On failure the previous certificate stays in use.
    pub fn reload_tls(&self) -> Result<(), String> {
        self.tls.as_ref().map_or(Ok(()), |t| t.reload())
    }
}

impl Default for ListenerSetup {
    /// Open (no credentials), default limits, plain HTTP: for tests.
    fn default() -> Self {
        ListenerSetup {
            limits: HttpLimits::default(),
            tls: None,
            auth: Arc::new(Auth::new(&Default::default())),
        }
    }
}

/// A permit for one WHEP negotiation, held until the answer is sent; 503
/// with `Retry-After` when `[server] max_whep_negotiations` are under way.
// The error is the response a handler returns as it is; boxing it would
// only add an allocation on the refusal path.
#[allow(clippy::result_large_err)]
pub fn try_negotiation(state: &AppState) -> Result<OwnedSemaphorePermit, Response> {
    state
        .whep_negotiations
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many WebRTC negotiations under way; try again shortly",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        })
}

/// The routes.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/cameras/{file}", get(camera_file))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(api::routes())
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(whep::routes())
        .merge(cluster::routes())
        .merge(pages::routes());
    // Every route is merged above: the layers below apply to those only.
    protect(routes, state)
}

/// Access control on every route (the [`auth::Principal`] is left in the
/// request's extensions), the body size limit and the handler timeout.
fn protect(routes: Router<AppState>, state: AppState) -> Router {
    let limits = state.listener.limits.clone();
    routes
        // Inside access control: a stranger learns nothing of the cluster.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            cluster::redirect_to_owner,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), access))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .with_state(state)
}

/// The peer address the listener recorded (unspecified when the router is
/// driven without it, as in unit tests).
pub fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// What a request needs, by method and path: `/metrics` needs Metrics;
/// under `/api/`, reads need List (Watch for one camera) and anything else
/// Admin; `/cameras/{id}...` and `/whep/{id}...` need Watch(id);
/// everything else (the dashboard and its assets) List.
fn need_for(method: &Method, path: &str) -> (NeedKind, Option<String>) {
    let read = method == Method::GET || method == Method::HEAD;
    let camera = |rest: &str| {
        let segment = rest.split('/').next().unwrap_or_default();
        let segment = segment.strip_suffix(".sdp").unwrap_or(segment);
        percent_encoding::percent_decode_str(segment)
            .decode_utf8_lossy()
            .into_owned()
    };
    if path == "/metrics" {
        (NeedKind::Metrics, None)
    } else if path.starts_with("/api/") {
        match path.strip_prefix("/api/v1/cameras/") {
            _ if !read => (NeedKind::Admin, None),
            Some(rest) if !rest.is_empty() => (NeedKind::Watch, Some(camera(rest))),
            _ => (NeedKind::List, None),
        }
    } else if let Some(rest) = path
        .strip_prefix("/cameras/")
        .or_else(|| path.strip_prefix("/whep/"))
        .filter(|r| !r.is_empty())
    {
        (NeedKind::Watch, Some(camera(rest)))
    } else {
        (NeedKind::List, None)
    }
}

/// [`Need`] without its borrowed camera id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NeedKind {
    List,
    Watch,
    Admin,
    Metrics,
}

/// The access-control middleware.
async fn access(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    // CORS preflights carry no credentials (the WHEP handler answers them
    // without revealing anything).
    if req.method() == Method::OPTIONS && req.uri().path().starts_with("/whep/") {
        return next.run(req).await;
    }
    let (kind, camera) = need_for(req.method(), req.uri().path());
    let need = match (kind, camera.as_deref()) {
        (NeedKind::Watch, Some(id)) => Need::Watch(id),
        (NeedKind::Admin, _) => Need::Admin,
        (NeedKind::Metrics, _) => Need::Metrics,
        _ => Need::List,
    };
    match auth::authorize(&st, req.headers(), peer_ip(&req), need).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(response) => response,
    }
}

/// Serves the routes on an already bound listener until `shutdown`, with
/// the state's TLS certificate (reloaded on SIGHUP) and limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let setup = state.listener.clone();
    if setup.tls.is_none() && state.auth.enabled() {
        let open = listener.local_addr().is_ok_and(|a| !a.ip().is_loopback());
        if open {
            tracing::warn!(
                "credentials travel unencrypted over plain HTTP; set [server] tls_cert and tls_key"
            );
        }
    }
    listener::serve(
        listener,
        router(state),
        setup.limits.clone(),
        setup.tls.clone(),
        shutdown,
    )
    .await
}

/// Binds the HTTP listener, with a sentence naming the address on failure.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// A JSON error body.
#[derive(Serialize)]
struct ApiError {
    error: String,
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            error: message.into(),
        }),
    )
        .into_response()
}

/// The OpenAPI 3.1 description of the routes, docs/openapi.json
/// (tests/openapi.rs checks real answers against it).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// `GET /api/v1/openapi.json`.
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(Deserialize)]
struct SdpQuery {
    /// Which `rtp_out` of the camera (0-based), default the first.
    out: Option<usize>,
}

/// `GET /cameras/{id}.sdp`: the SDP a consumer opens to receive the camera's
/// RTP output.
async fn camera_file(
    State(st): State<AppState>,
    Path(file): Path<String>,
    Query(q): Query<SdpQuery>,
) -> Response {
    let Some(id) = file.strip_suffix(".sdp") else {
        // `/cameras/{id}`: the camera's page.
        return pages::camera_page(&st, &file);
    };
    let Some(cam) = st.supervisor.camera(id) else {
        return error(StatusCode::NOT_FOUND, format!("no camera with id {id:?}"));
    };
    let index = q.out.unwrap_or(0);
    let Some(out) = cam.config.rtp_out.get(index) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "camera {id:?} has {} rtp_out destination(s); none with index {index}",
                cam.config.rtp_out.len()
            ),
        );
    };
    let sdp = consumer_sdp(id, out, &cam.hub.info());
    ([(header::CONTENT_TYPE, "application/sdp")], sdp).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_by_method_and_path() {
        let need = |m: Method, p: &str| need_for(&m, p);
        let watch = |id: &str| (NeedKind::Watch, Some(id.to_owned()));
        let (list, admin) = ((NeedKind::List, None), (NeedKind::Admin, None));
        assert_eq!(need(Method::GET, "/metrics"), (NeedKind::Metrics, None));
        assert_eq!(need(Method::GET, "/api/v1/cameras"), list);
        assert_eq!(need(Method::GET, "/api/v1/cameras/"), list);
        assert_eq!(need(Method::HEAD, "/api/v1/cameras/a"), watch("a"));
        assert_eq!(need(Method::GET, "/api/v1/cameras/a/sessions"), watch("a"));
        assert_eq!(need(Method::POST, "/api/v1/cameras"), admin);
        assert_eq!(need(Method::DELETE, "/api/v1/cameras/a"), admin);
        assert_eq!(need(Method::POST, "/api/v1/cameras/a/restart"), admin);
        assert_eq!(need(Method::GET, "/cameras/front.sdp"), watch("front"));
        assert_eq!(need(Method::GET, "/cameras/fr%6Fnt.sdp"), watch("front"));
        assert_eq!(need(Method::POST, "/whep/front"), watch("front"));
        assert_eq!(need(Method::DELETE, "/whep/front/123"), watch("front"));
        assert_eq!(need(Method::GET, "/"), list);
        assert_eq!(need(Method::GET, "/assets/app.js"), list);
    }
}
