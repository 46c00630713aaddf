//! The HTTP listener: consumer SDP files and the camera status API.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::camera::stats::StatsSnapshot;
use crate::camera::{CameraHandle, CameraStatus, Supervisor};
use crate::egress::rtp::consumer_sdp;
use crate::redact::redact_url;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The running cameras.
    pub supervisor: Arc<Supervisor>,
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/cameras/{file}", get(camera_file))
        .route("/api/v1/cameras", get(list_cameras))
        .route("/api/v1/cameras/{id}", get(get_camera))
        .with_state(state)
}

/// Serves `router` on an already bound listener until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
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

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            error: message.into(),
        }),
    )
        .into_response()
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
        return error(StatusCode::NOT_FOUND, format!("no such file: {file}"));
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

/// A camera as the API shows it.
#[derive(Serialize)]
struct CameraView {
    id: String,
    url: String,
    enabled: bool,
    #[serde(flatten)]
    status: CameraStatus,
    stats: StatsSnapshot,
    consumers: usize,
}

fn view(cam: &CameraHandle) -> CameraView {
    CameraView {
        id: cam.config.id.clone(),
        url: redact_url(cam.config.url.as_str()),
        enabled: cam.config.enabled,
        status: cam.status.borrow().clone(),
        stats: cam.stats.snapshot(),
        consumers: cam.hub.consumers(),
    }
}

/// `GET /api/v1/cameras`.
async fn list_cameras(State(st): State<AppState>) -> Response {
    Json(st.supervisor.cameras().map(view).collect::<Vec<_>>()).into_response()
}

/// `GET /api/v1/cameras/{id}`.
async fn get_camera(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.supervisor.camera(&id) {
        Some(cam) => Json(view(cam)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no camera with id {id:?}")),
    }
}
