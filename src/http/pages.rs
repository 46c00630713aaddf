//! The pages served by the binary: plain HTML, CSS and JS compiled in, no
//! build step. `GET /` is the monitor dashboard (every camera with its
//! health, a live player and its pipeline);
//! `GET /cameras/{id}` shows one camera large (routed through the camera
//! file handler, which also serves `/cameras/{id}.sdp`).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{error, AppState};

const INDEX_HTML: &str = include_str!("../../assets/web/index.html");
const CAMERA_HTML: &str = include_str!("../../assets/web/camera.html");

/// Static assets by name: (content type, body).
fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "player.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../assets/web/player.js"),
        ),
        "dashboard.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../assets/web/dashboard.js"),
        ),
        "app.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../assets/web/app.js"),
        ),
        "style.css" => (
            "text/css; charset=utf-8",
            include_str!("../../assets/web/style.css"),
        ),
        _ => return None,
    })
}

/// The page routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { html(INDEX_HTML) }))
        .route("/assets/{name}", get(serve_asset))
}

fn html(body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self'; \
             img-src 'self' data:; media-src 'self' blob:; frame-ancestors 'none'",
        ),
    );
    r
}

async fn serve_asset(Path(name): Path<String>) -> Response {
    match asset(&name) {
        Some((ty, body)) => {
            let mut r = body.into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => error(StatusCode::NOT_FOUND, format!("no asset {name:?}")),
    }
}

/// `GET /cameras/{id}`: one camera's page, 404 for an unknown id.
pub fn camera_page(st: &AppState, id: &str) -> Response {
    if st.supervisor.camera(id).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no camera with id {id:?}"));
    }
    html(CAMERA_HTML)
}
