//! The JSON API under `/api/v1`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::{error, AppState};
use crate::camera::stats::StatsSnapshot;
use crate::camera::{CameraHandle, CameraStatus};
use crate::redact::redact_url;

/// The API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/cameras", get(list_cameras))
        .route("/api/v1/cameras/{id}", get(get_camera))
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
