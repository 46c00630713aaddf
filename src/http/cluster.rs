//! The cluster seen from HTTP: `GET /api/v1/cluster` lists the nodes, and
//! requests about a camera another node owns are sent there (`307`, which
//! keeps the method and body: WHEP offers, the SDP file, the per-camera
//! API, the camera page).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;
use crate::cluster::NodeView;

/// The cluster route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/cluster", get(cluster))
}

#[derive(Serialize)]
struct ClusterAnswer {
    /// This node.
    node_id: String,
    /// etcd does not answer: this node keeps its cameras and changes
    /// nothing until it does.
    degraded: bool,
    /// Live nodes.
    nodes: Vec<NodeView>,
}

/// `GET /api/v1/cluster`: 404 when the gateway runs alone.
async fn cluster(State(st): State<AppState>) -> Response {
    match &st.cluster {
        None => super::error(
            StatusCode::NOT_FOUND,
            "this gateway runs alone: no [cluster] in its configuration",
        ),
        Some(view) => Json(ClusterAnswer {
            node_id: view.node_id().to_string(),
            degraded: !view.etcd_up(),
            nodes: view.nodes(),
        })
        .into_response(),
    }
}

/// The camera a request is about, when another node should answer it:
/// `/whep/{id}` (the offer, not a session of this node),
/// `/cameras/{id}.sdp`, `/cameras/{id}` and `/api/v1/cameras/{id}...`
/// (except `DELETE` of the camera, which any node does).
fn camera_of<'a>(method: &Method, path: &'a str) -> Option<&'a str> {
    if let Some(rest) = path.strip_prefix("/whep/") {
        return (!rest.contains('/') && method == Method::POST).then_some(rest);
    }
    if let Some(rest) = path.strip_prefix("/cameras/") {
        let id = rest.strip_suffix(".sdp").unwrap_or(rest);
        return (!id.contains('/')).then_some(id);
    }
    if let Some(rest) = path.strip_prefix("/api/v1/cameras/") {
        let id = rest.split('/').next().unwrap_or_default();
        let whole_camera = !rest.contains('/');
        if whole_camera && method == Method::DELETE {
            return None;
        }
        return Some(id);
    }
    None
}

/// Sends a request about a camera another node owns to that node.
pub async fn redirect_to_owner(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(view) = &st.cluster else {
        return next.run(req).await;
    };
    let Some(raw_id) = camera_of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let id = percent_encoding::percent_decode_str(raw_id).decode_utf8_lossy();
    let Some(owner) = view.remote_owner_of(&id) else {
        return next.run(req).await;
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = format!("{}{}", owner.url.trim_end_matches('/'), path_and_query);
    let Ok(value) = HeaderValue::from_str(&location) else {
        return next.run(req).await;
    };
    let mut r = (
        StatusCode::TEMPORARY_REDIRECT,
        format!(
            "camera {id:?} is played by node {:?}: {location}\n",
            owner.id
        ),
    )
        .into_response();
    r.headers_mut().insert(header::LOCATION, value);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_requests_go_to_the_owner() {
        assert_eq!(camera_of(&Method::POST, "/whep/lobby"), Some("lobby"));
        assert_eq!(camera_of(&Method::DELETE, "/whep/lobby/abc"), None);
        assert_eq!(camera_of(&Method::PATCH, "/whep/lobby/abc"), None);
        assert_eq!(camera_of(&Method::GET, "/cameras/lobby.sdp"), Some("lobby"));
        assert_eq!(camera_of(&Method::GET, "/cameras/lobby"), Some("lobby"));
        assert_eq!(
            camera_of(&Method::GET, "/api/v1/cameras/lobby"),
            Some("lobby")
        );
        assert_eq!(
            camera_of(&Method::POST, "/api/v1/cameras/lobby/restart"),
            Some("lobby")
        );
        assert_eq!(camera_of(&Method::DELETE, "/api/v1/cameras/lobby"), None);
        assert_eq!(camera_of(&Method::GET, "/api/v1/cameras"), None);
        assert_eq!(camera_of(&Method::GET, "/metrics"), None);
    }
}
