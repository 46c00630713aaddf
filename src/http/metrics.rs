//! `GET /metrics`: the Prometheus text exposition of every camera, rendered
//! by [`crate::metrics`] on each scrape.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::metrics::{process_start, render_with, ClusterFigures};

/// The metrics route.
pub fn routes() -> Router<AppState> {
    process_start();
    Router::new().route("/metrics", get(scrape))
}

/// `GET /metrics`.
async fn scrape(State(st): State<AppState>) -> Response {
    let mut cameras = st.supervisor.cameras();
    let figures = st.cluster.as_ref().map(|c| {
        // A camera warming up here before a handover is its owner's.
        cameras.retain(|cam| c.owns(&cam.config.id));
        ClusterFigures {
            nodes: c.nodes().len(),
            cameras_owned: c.owned(),
            etcd_up: c.etcd_up(),
            handovers: c.handovers(),
            etcd_writes: c.writes(),
        }
    });
    let text = render_with(&cameras, figures.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
