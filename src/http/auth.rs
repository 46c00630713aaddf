//! Access control for the HTTP listener: the [`crate::access`] policy over
//! `Authorization: Bearer` (RFC 6750) and `Basic` (RFC 7617) headers, with
//! its refusals as HTTP answers (401 with a challenge, 403, 429, 503).
//!
//! Handlers call [`authorize`] with what they need; the router's middleware
//! (`super::access`) already does so by method and path for every route and
//! leaves the [`Principal`] in the request's extensions.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;

use super::{error, AppState};
pub use crate::access::{address_key, Auth, Denied, Need, Presented, Principal};

/// Checks a request's credentials against what it needs. `Err` is the
/// response to send: 401 (no or wrong credentials, with a
/// `WWW-Authenticate` challenge), 403 (authenticated but not allowed), 429
/// (the address failed too often and is locked out) or 503 (too many
/// password checks under way).
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    peer: IpAddr,
    need: Need<'_>,
) -> Result<Principal, Response> {
    check(&state.auth, headers, peer, need).await
}

/// [`authorize`] against `auth` itself.
async fn check(
    auth: &Auth,
    headers: &HeaderMap,
    peer: IpAddr,
    need: Need<'_>,
) -> Result<Principal, Response> {
    auth.authorize(credentials(headers), peer, need)
        .await
        .map_err(|denied| match denied {
            Denied::Unauthorized(why) => unauthorized(why),
            Denied::Forbidden(why) => error(StatusCode::FORBIDDEN, why),
            Denied::LockedOut(wait) => locked_out(wait),
            Denied::Busy => {
                let mut r = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many password checks under way; try again",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
        })
}

/// The `Authorization` header's credentials: `None` when absent, `Err`
/// when present but unusable.
fn credentials(headers: &HeaderMap) -> Option<Result<Presented, &'static str>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err("the Authorization header is not ASCII"));
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    Some(if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Presented::Bearer(rest.to_owned()))
    } else if scheme.eq_ignore_ascii_case("basic") {
        base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|text| {
                let (user, password) = text.split_once(':')?;
                Some(Presented::Basic {
                    user: user.to_owned(),
                    password: password.to_owned(),
                })
            })
            .ok_or("malformed Basic credentials")
    } else {
        Err("unsupported authentication scheme (use Bearer or Basic)")
    })
}

/// 401 with the challenge browsers answer with a login dialog.
fn unauthorized(why: &str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, why);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"camgate\", Bearer realm=\"camgate\""),
    );
    r
}

fn locked_out(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed authentications from this address; try again in {secs} s"),
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::config;
    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {v}")).unwrap(),
        );
        h
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[tokio::test]
    async fn roles_and_cameras() {
        let auth = Auth::new(&config());
        let status =
            |r: Result<Principal, Response>| r.map(|_| 200).unwrap_or_else(|r| r.status().as_u16());
        let viewer = bearer("viewer-token-0123456789");
        assert_eq!(status(check(&auth, &viewer, PEER, Need::List).await), 200);
        assert_eq!(
            status(check(&auth, &viewer, PEER, Need::Watch("front")).await),
            200
        );
        assert_eq!(
            status(check(&auth, &viewer, PEER, Need::Watch("back")).await),
            403
        );
        assert_eq!(status(check(&auth, &viewer, PEER, Need::Admin).await), 403);
        assert_eq!(
            status(check(&auth, &viewer, PEER, Need::Metrics).await),
            403
        );
        let admin = bearer("admin-token-0123456789");
        for need in [Need::List, Need::Watch("back"), Need::Admin, Need::Metrics] {
            assert_eq!(status(check(&auth, &admin, PEER, need).await), 200);
        }
        let alice = basic("alice", "wonderland");
        assert_eq!(
            status(check(&auth, &alice, PEER, Need::Watch("back")).await),
            200
        );
        // Cached the second time.
        assert_eq!(status(check(&auth, &alice, PEER, Need::List).await), 200);
        // A token as a Basic password.
        let ffmpeg = basic("anything", "viewer-token-0123456789");
        assert_eq!(
            status(check(&auth, &ffmpeg, PEER, Need::Watch("front")).await),
            200
        );
        assert_eq!(
            status(check(&auth, &HeaderMap::new(), PEER, Need::List).await),
            401
        );
    }

    #[tokio::test]
    async fn lockout_after_failures() {
        let auth = Auth::new(&config());
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            let r = check(&auth, &bearer("wrong-token-0123456789"), PEER, Need::List).await;
            assert_eq!(r.unwrap_err().status(), StatusCode::UNAUTHORIZED);
        }
        // Locked out, even with good credentials.
        let good = bearer("admin-token-0123456789");
        let r = check(&auth, &good, PEER, Need::List).await;
        assert_eq!(r.unwrap_err().status(), StatusCode::TOO_MANY_REQUESTS);
        // Others are not.
        assert!(check(&auth, &good, other, Need::List).await.is_ok());
        // Missing credentials are not failures.
        for _ in 0..5 {
            let r = check(&auth, &HeaderMap::new(), other, Need::List).await;
            assert_eq!(r.unwrap_err().status(), StatusCode::UNAUTHORIZED);
        }
        assert!(check(&auth, &good, other, Need::List).await.is_ok());
    }
}
