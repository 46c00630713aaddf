//! `GET /api/v1/health[/{id}]`: the recent health of the cameras the
//! caller may watch, from [`crate::health`]'s samples.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};

use super::auth::Principal;
use super::{error, AppState};
use crate::health::CameraHealth;

/// The health routes: `GET /api/v1/health` (every camera the caller may
/// watch) and `GET /api/v1/health/{id}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health", get(list))
        .route("/api/v1/health/{id}", get(one))
}

async fn list(State(st): State<AppState>, principal: Option<Extension<Principal>>) -> Response {
    let health: Vec<CameraHealth> = st
        .supervisor
        .cameras()
        .iter()
        .filter(|c| principal.as_ref().is_none_or(|p| p.may_watch(&c.config.id)))
        .map(|c| st.health.report(c))
        .collect();
    Json(health).into_response()
}

async fn one(
    State(st): State<AppState>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
) -> Response {
    if let Some(p) = principal.filter(|p| !p.may_watch(&id)) {
        return error(
            StatusCode::FORBIDDEN,
            format!("{:?} may not watch camera {id:?}", p.name),
        );
    }
    match st.supervisor.camera(&id) {
        Some(cam) => Json(st.health.report(&cam)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no camera with id {id:?}")),
    }
}
