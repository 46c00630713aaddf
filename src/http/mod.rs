//! The HTTP listener. Each area has its own module and router, merged
//! here: `api` (the JSON API under `/api/v1`), and the camera files
//! (`/cameras/{id}.sdp`).

pub mod api;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::camera::Supervisor;
use crate::egress::rtp::consumer_sdp;

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
        .merge(api::routes())
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

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
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
