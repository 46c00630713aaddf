//! `GET /metrics`: the Prometheus text exposition of every camera, rendered
//! by [`crate::metrics`] on each scrape.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::metrics::{process_start, render};

/// The metrics route.
pub fn routes() -> Router<AppState> {
    process_start();
    Router::new().route("/metrics", get(scrape))
}

/// `GET /metrics`.
async fn scrape(State(st): State<AppState>) -> Response {
    let text = render(&st.supervisor.cameras());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
