//! The JSON API under `/api/v1`: cameras (list, get, add, remove, restart)
//! and their sessions (list, end). Errors are `{"error": "..."}`: 400 names
//! the invalid field, 404 an unknown id, 409 a duplicate id.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::{error, AppState};
use crate::camera::consumers::ConsumerView;
use crate::camera::stats::StatsSnapshot;
use crate::camera::supervisor::SupervisorError;
use crate::camera::{CameraHandle, CameraStatus, ConsumerKind};
use crate::redact::redact_url;
use crate::reload::{ApiChangeError, ConfigStore};

/// The API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/cameras", get(list_cameras).post(add_camera))
        .route(
            "/api/v1/cameras/{id}",
            get(get_camera).delete(remove_camera),
        )
        .route("/api/v1/cameras/{id}/restart", post(restart_camera))
        .route("/api/v1/cameras/{id}/sessions", get(list_sessions))
        .route("/api/v1/cameras/{id}/sessions/{sid}", delete(end_session))
}

/// A camera as the API shows it. Never a password: the URL has none
/// (removed at load), the SDP and the last error are redacted.
#[derive(Serialize)]
struct CameraView {
    id: String,
    url: String,
    enabled: bool,
    on_demand: bool,
    /// `file` (cameras.toml) or `api` (added through the API).
    source: &'static str,
    #[serde(flatten)]
    status: CameraStatus,
    stats: StatsSnapshot,
    /// Subscribers of the camera's hub.
    consumers: usize,
    /// WebRTC viewers.
    viewers: usize,
    /// `rtp_out` consumers.
    rtp_consumers: usize,
    /// Clients of the RTSP server.
    rtsp_clients: usize,
    /// The node that plays the camera (in a cluster only).
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

fn view(st: &AppState, cam: &CameraHandle) -> CameraView {
    let api = st
        .store
        .as_ref()
        .is_some_and(|s| s.is_api_camera(&cam.config.id));
    CameraView {
        id: cam.config.id.clone(),
        url: redact_url(cam.config.url.as_str()),
        enabled: cam.config.enabled,
        on_demand: cam.config.on_demand,
        source: if api { "api" } else { "file" },
        status: cam.status.borrow().clone(),
        stats: cam.stats.snapshot(),
        consumers: cam.hub.consumers(),
        viewers: cam.consumers.count(ConsumerKind::Viewer),
        rtp_consumers: cam.consumers.count(ConsumerKind::Rtp),
        rtsp_clients: cam.consumers.count(ConsumerKind::Rtsp),
        owner: st.cluster.as_ref().map(|c| c.node_id().to_string()),
    }
}

/// A camera of the cluster this node does not play: what its owner
/// published (no counters: ask the owner).
fn remote_view(r: crate::cluster::RemoteCamera) -> CameraView {
    let cfg = &r.camera.config;
    CameraView {
        id: cfg.id.clone(),
        url: redact_url(cfg.url.as_str()),
        enabled: cfg.enabled,
        on_demand: cfg.on_demand,
        source: if r.camera.from_api { "api" } else { "file" },
        status: r
            .summary
            .as_ref()
            .map(|s| s.to_status())
            .unwrap_or_else(|| CameraStatus::new(crate::camera::CameraState::Connecting)),
        stats: StatsSnapshot::default(),
        consumers: 0,
        viewers: 0,
        rtp_consumers: 0,
        rtsp_clients: 0,
        owner: r.owner,
    }
}

fn no_camera(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("no camera with id {id:?}"))
}

/// The store API changes go through; a supervisor without configuration
/// files (tests) validates against an empty one and saves nothing.
fn store(st: &AppState) -> Arc<ConfigStore> {
    st.store
        .clone()
        .unwrap_or_else(|| Arc::new(ConfigStore::in_memory()))
}

fn change_error(e: ApiChangeError) -> Response {
    let status = match &e {
        ApiChangeError::Invalid(_) => StatusCode::BAD_REQUEST,
        ApiChangeError::Duplicate(_)
        | ApiChangeError::Supervisor(SupervisorError::Duplicate(_)) => StatusCode::CONFLICT,
        ApiChangeError::Supervisor(SupervisorError::NotFound(_)) => StatusCode::NOT_FOUND,
        ApiChangeError::Supervisor(SupervisorError::Disabled(_)) => StatusCode::CONFLICT,
        ApiChangeError::Supervisor(SupervisorError::Stopping) => StatusCode::SERVICE_UNAVAILABLE,
        ApiChangeError::Supervisor(SupervisorError::Simulator { .. })
        | ApiChangeError::Save { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// `GET /api/v1/cameras`: the cameras the caller may watch.
async fn list_cameras(
    State(st): State<AppState>,
    principal: Option<axum::Extension<super::auth::Principal>>,
) -> Response {
    let cameras = st.supervisor.cameras();
    let visible = |c: &&CameraHandle| principal.as_ref().is_none_or(|p| p.may_watch(&c.config.id));
    if let Some(cluster) = &st.cluster {
        // Every camera of the cluster: the ones played here, then the
        // others as their owners published them.
        let mut all: Vec<CameraView> = cameras
            .iter()
            .filter(visible)
            .filter(|c| cluster.owns(&c.config.id))
            .map(|c| view(&st, c))
            .collect();
        all.extend(
            cluster
                .remote_cameras()
                .into_iter()
                .filter(|r| {
                    principal
                        .as_ref()
                        .is_none_or(|p| p.may_watch(&r.camera.config.id))
                })
                .map(remote_view),
        );
        all.sort_by(|a, b| a.id.cmp(&b.id));
        return Json(all).into_response();
    }
    Json(
        cameras
            .iter()
            .filter(visible)
            .map(|c| view(&st, c))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// `GET /api/v1/cameras/{id}`.
async fn get_camera(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    if let Some(cluster) = &st.cluster {
        // Another node's camera was redirected before this; here are
        // cameras played here, and ones nobody plays now.
        if !cluster.owns(&id) {
            if let Some(r) = cluster
                .remote_cameras()
                .into_iter()
                .find(|r| r.camera.config.id == id)
            {
                return Json(remote_view(r)).into_response();
            }
        }
    }
    match st.supervisor.camera(&id) {
        Some(cam) => Json(view(&st, &cam)).into_response(),
        None => no_camera(&id),
    }
}

/// `POST /api/v1/cameras`: a JSON object in the schema of one `[[camera]]`
/// table of cameras.toml. 201 with the camera; saved so it survives reloads
/// and restarts.
async fn add_camera(State(st): State<AppState>, body: Bytes) -> Response {
    let body: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        }
    };
    if let Some(cluster) = &st.cluster {
        // Stored in etcd: every node lists it, its owner plays it.
        let checked = store(&st).check_camera(&body, |id| cluster.camera(id).is_some());
        let (cfg, _) = match checked {
            Ok(c) => c,
            Err(e) => return change_error(e),
        };
        if let Err(e) = cluster.put_api_camera(&cfg.id, &body).await {
            return error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
        tracing::info!(camera = %cfg.id, "camera added through the API (cluster)");
        let location = format!("/api/v1/cameras/{}", cfg.id);
        let view = remote_view(crate::cluster::RemoteCamera {
            camera: crate::cluster::ClusterCamera {
                config: cfg,
                from_api: true,
            },
            owner: None,
            summary: None,
        });
        return (
            StatusCode::CREATED,
            [(header::LOCATION, location)],
            Json(view),
        )
            .into_response();
    }
    match store(&st).add_camera(&st.supervisor, &body).await {
        Ok(cam) => {
            let location = format!("/api/v1/cameras/{}", cam.config.id);
            (
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(view(&st, &cam)),
            )
                .into_response()
        }
        Err(e) => change_error(e),
    }
}

/// `DELETE /api/v1/cameras/{id}`: stops the camera (TEARDOWN, its RTP
/// outputs and viewers end). 204.
async fn remove_camera(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    if let Some(cluster) = &st.cluster {
        return match cluster.camera(&id) {
            None => no_camera(&id),
            Some(c) if !c.from_api => error(
                StatusCode::CONFLICT,
                format!(
                    "camera {id:?} comes from cameras.toml, which every node reads: remove it from the file on every node"
                ),
            ),
            Some(_) => match cluster.delete_api_camera(&id).await {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
            },
        };
    }
    match store(&st).remove_camera(&st.supervisor, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => change_error(e),
    }
}

#[derive(Serialize)]
struct Restarting {
    restarting: String,
}

/// `POST /api/v1/cameras/{id}/restart`: a fresh RTSP session now; its
/// consumers and viewers stay. 202.
async fn restart_camera(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.supervisor.restart(&id) {
        Ok(()) => (StatusCode::ACCEPTED, Json(Restarting { restarting: id })).into_response(),
        Err(e) => change_error(e.into()),
    }
}

/// `GET /api/v1/cameras/{id}/sessions`: its viewers and RTP consumers.
async fn list_sessions(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(cam) = st.supervisor.camera(&id) else {
        return no_camera(&id);
    };
    let sessions: Vec<ConsumerView> = cam.consumers.list().iter().map(|s| s.snapshot()).collect();
    Json(sessions).into_response()
}

/// `DELETE /api/v1/cameras/{id}/sessions/{sid}`: ends a session (it leaves
/// the list when its task has ended). 204.
async fn end_session(
    State(st): State<AppState>,
    Path((id, sid)): Path<(String, String)>,
) -> Response {
    let Some(cam) = st.supervisor.camera(&id) else {
        return no_camera(&id);
    };
    match cam.consumers.get(&sid) {
        Some(session) => {
            session.cancel.cancel();
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("camera {id:?} has no session {sid:?}"),
        ),
    }
}
