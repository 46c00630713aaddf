//! WHEP (RFC 9725): `POST /whep/{camera}` with an SDP offer answers
//! `201 Created` with the SDP answer and the session's `Location`;
//! `DELETE` on that location ends the session. camgate gathers its ICE
//! candidates (all on one UDP port) before answering, so trickle ICE is not
//! used: `PATCH` answers `405`. CORS for other origins is configured with
//! `[webrtc] cors_origins`.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Router;
use serde::Deserialize;

use super::{error, try_negotiation, AppState};
use crate::config::IceServer;
use crate::egress::webrtc::{OfferOptions, WhepError};

/// The WHEP routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/whep/{camera}",
            post(offer).options(preflight).fallback(not_allowed),
        )
        .route("/whep/{camera}/{session}", session_routes())
}

fn session_routes() -> MethodRouter<AppState> {
    axum::routing::delete(end_session)
        .patch(patch)
        .options(preflight)
        .fallback(not_allowed)
}

#[derive(Deserialize)]
struct OfferQuery {
    /// `0`/`false` to start at the next keyframe instead of the cached GOP.
    fast_start: Option<String>,
}

/// CORS headers for `origin`, when it is allowed.
fn cors(st: &AppState, headers: &HeaderMap, response: &mut Response) {
    let Some(webrtc) = &st.webrtc else { return };
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return;
    };
    let allowed = &webrtc.config().cors_origins;
    let value = if allowed.iter().any(|a| a == "*") {
        "*".to_string()
    } else if allowed.iter().any(|a| a == origin.trim_end_matches('/')) {
        origin.to_string()
    } else {
        return;
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link, Content-Type"),
    );
}

/// `OPTIONS`: the CORS preflight (and the methods allowed).
async fn preflight(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ALLOW,
        HeaderValue::from_static("OPTIONS, POST, DELETE, PATCH"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("OPTIONS, POST, DELETE, PATCH"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    cors(&st, &headers, &mut r);
    r
}

async fn not_allowed() -> Response {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "WHEP: POST an SDP offer to /whep/{camera}; DELETE the session's Location to end it",
    );
    r.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_static("OPTIONS, POST, DELETE"),
    );
    r
}

/// `PATCH`: camgate answers with all its candidates, so there is nothing to
/// trickle.
async fn patch(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE is not used: the answer carries every candidate (one UDP port)",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("OPTIONS, DELETE"));
    cors(&st, &headers, &mut r);
    r
}

/// A `Link` header value for one ICE server (RFC 9725 §4.6).
fn link(server: &IceServer, url: &str) -> String {
    let mut v = format!("<{url}>; rel=\"ice-server\"");
    if let (Some(u), Some(c)) = (&server.username, &server.credential) {
        let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        v.push_str(&format!(
            "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
            q(u),
            q(c.expose())
        ));
    }
    v
}

/// `POST /whep/{camera}`.
async fn offer(
    State(st): State<AppState>,
    Path(camera): Path<String>,
    Query(q): Query<OfferQuery>,
    req: Request,
) -> Response {
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), st.listener.limits.max_body_bytes).await
    {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the SDP offer is larger than [server] max_body_bytes",
            )
        }
    };
    let mut r = offer_inner(&st, &camera, q, remote, &headers, body).await;
    cors(&st, &headers, &mut r);
    r
}

async fn offer_inner(
    st: &AppState,
    camera: &str,
    q: OfferQuery,
    remote: Option<SocketAddr>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(webrtc) = st.webrtc.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "WebRTC is off on this gateway: its UDP port could not be bound (see the log and [webrtc] udp_listen)",
        );
    };
    let Some(cam) = st.supervisor.camera(camera) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no camera with id {camera:?}"),
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .eq_ignore_ascii_case("application/sdp")
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("a WHEP offer is sent as Content-Type application/sdp, not {content_type:?}"),
        );
    }
    let Ok(offer) = String::from_utf8(body.to_vec()) else {
        return error(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8 text");
    };
    let _permit = match try_negotiation(st) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let fast_start = q
        .fast_start
        .as_deref()
        .map(|v| !matches!(v, "0" | "false" | "no" | "off"));
    let options = OfferOptions { fast_start, remote };
    match webrtc.offer(&cam, offer, options).await {
        Ok(answer) => {
            let location = format!("/whep/{camera}/{}", answer.session);
            let mut r = (StatusCode::CREATED, answer.sdp).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                h.insert(header::LOCATION, v);
            }
            for server in &webrtc.config().ice_servers {
                for url in &server.urls {
                    if let Ok(v) = HeaderValue::from_str(&link(server, url)) {
                        h.append(header::LINK, v);
                    }
                }
            }
            if !answer.notes.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&answer.notes.join("; ")) {
                    h.insert("x-camgate-note", v);
                }
            }
            r
        }
        Err(e) => {
            let status = match &e {
                WhepError::Malformed(_) => StatusCode::BAD_REQUEST,
                WhepError::Incompatible(_) => StatusCode::UNPROCESSABLE_ENTITY,
                WhepError::Unavailable(_) | WhepError::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
                WhepError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::info!(camera, status = status.as_u16(), error = %e, "WHEP offer refused");
            let mut r = error(status, e.to_string());
            if status == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
            }
            r
        }
    }
}

/// `DELETE /whep/{camera}/{session}`.
async fn end_session(
    State(st): State<AppState>,
    Path((camera, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut r = match st
        .supervisor
        .camera(&camera)
        .and_then(|cam| cam.consumers.get(&session))
    {
        Some(s) if s.kind == crate::camera::ConsumerKind::Viewer => {
            s.cancel.cancel();
            StatusCode::OK.into_response()
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no viewer session {session:?} on camera {camera:?}"),
        ),
    };
    cors(&st, &headers, &mut r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_carry_turn_credentials() {
        let s = IceServer {
            urls: vec!["turn:turn.example.net:3478".into()],
            username: Some("u".into()),
            credential: Some(crate::credentials::Secret::new("p\"w")),
        };
        assert_eq!(
            link(&s, &s.urls[0]),
            "<turn:turn.example.net:3478>; rel=\"ice-server\"; username=\"u\"; credential=\"p\\\"w\"; credential-type=\"password\""
        );
        let stun = IceServer {
            urls: vec!["stun:stun.example.net".into()],
            username: None,
            credential: None,
        };
        assert_eq!(
            link(&stun, &stun.urls[0]),
            "<stun:stun.example.net>; rel=\"ice-server\""
        );
    }
}
