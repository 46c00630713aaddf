//! HTTP authentication of ONVIF requests: answers a camera's 401 challenge
//! with RFC 7616 Digest (or RFC 7617 Basic) through the http-auth crate, and
//! keeps the accepted challenge so later requests are answered up front.

use http_auth::{PasswordClient, PasswordParams};

use crate::credentials::Credentials;

/// What a 401 answer means for the request it refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// A challenge the client can answer (first one, or a fresh nonce):
    /// send the request again with [`HttpAuth::authorization`].
    Retry,
    /// The request already carried an answer to this very challenge: the
    /// user name or password is wrong.
    Rejected,
    /// No Digest or Basic challenge: nothing to answer.
    Unusable,
}

/// The accepted challenge of one camera, if any. Holds no password: the
/// credentials are passed in for each answer.
#[derive(Debug, Default)]
pub(crate) struct HttpAuth {
    /// The challenge answered on every request once accepted (Digest with
    /// an increasing nonce count).
    client: Option<PasswordClient>,
}

impl HttpAuth {
    /// The `Authorization` value for a POST of `body` to `uri` (path and
    /// query), once a challenge was accepted.
    pub(crate) fn authorization(
        &mut self,
        credentials: &Credentials,
        uri: &str,
        body: &[u8],
    ) -> Option<String> {
        let client = self.client.as_mut()?;
        let params = PasswordParams {
            username: &credentials.username,
            password: credentials.password.expose(),
            uri,
            method: "POST",
            body: Some(body),
        };
        match client.respond(&params) {
            Ok(value) => Some(value),
            Err(_) => {
                // E.g. a user name Digest cannot carry; asking without an
                // answer gives the camera's own verdict.
                self.client = None;
                None
            }
        }
    }

    /// Takes the `WWW-Authenticate` values of a 401. `answered` says
    /// whether the refused request carried an `Authorization`: then only a
    /// fresh challenge (`stale=true`, a new nonce, or Basic giving way to
    /// Digest; RFC 7616 section 3.3) is worth another try. Digest is
    /// preferred over Basic when both are offered.
    pub(crate) fn on_challenge(&mut self, challenges: &[String], answered: bool) -> Challenge {
        let mut builder = PasswordClient::builder();
        for value in challenges {
            builder = builder.challenges(value);
        }
        let Ok(new) = builder.build() else {
            return Challenge::Unusable;
        };
        if answered {
            let fresh = match (&self.client, &new) {
                (Some(PasswordClient::Digest(old)), PasswordClient::Digest(d)) => {
                    d.stale() || d.nonce() != old.nonce()
                }
                (Some(PasswordClient::Basic(_)), PasswordClient::Digest(_)) => true,
                _ => false,
            };
            if !fresh {
                self.client = Some(new);
                return Challenge::Rejected;
            }
        }
        self.client = Some(new);
        Challenge::Retry
    }

    /// Forgets the accepted challenge (after a rejection, so the next
    /// request starts over).
    pub(crate) fn reset(&mut self) {
        self.client = None;
    }

    /// The scheme of the current challenge, for errors.
    pub(crate) fn scheme(&self) -> &'static str {
        match &self.client {
            Some(PasswordClient::Basic(_)) => "Basic",
            Some(PasswordClient::Digest(_)) => "Digest",
            // `PasswordClient` is non-exhaustive.
            Some(_) => "unknown",
            None => "none",
        }
    }

    /// The realm of the current challenge, for errors.
    pub(crate) fn realm(&self) -> &str {
        match &self.client {
            Some(PasswordClient::Basic(b)) => b.realm(),
            Some(PasswordClient::Digest(d)) => d.realm(),
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new("admin", "s3cret")
    }

    #[test]
    fn answers_digest_then_detects_rejection_and_fresh_nonces() {
        let mut auth = HttpAuth::default();
        assert_eq!(auth.authorization(&creds(), "/onvif", b"<x/>"), None);
        let first = vec![
            "Basic realm=\"cam\"".to_owned(),
            "Digest realm=\"cam\", nonce=\"n1\", qop=\"auth\"".to_owned(),
        ];
        assert_eq!(auth.on_challenge(&first, false), Challenge::Retry);
        assert_eq!((auth.scheme(), auth.realm()), ("Digest", "cam"));
        let a = auth.authorization(&creds(), "/onvif?x=1", b"<x/>").unwrap();
        assert!(
            a.starts_with("Digest ") && a.contains("uri=\"/onvif?x=1\""),
            "{a}"
        );
        assert!(a.contains("nc=00000001") && !a.contains("s3cret"), "{a}");
        let b = auth.authorization(&creds(), "/onvif", b"<x/>").unwrap();
        assert!(b.contains("nc=00000002"), "{b}");
        // The same nonce again after an answer: wrong credentials.
        assert_eq!(auth.on_challenge(&first, true), Challenge::Rejected);
        // A new nonce, or stale=true: worth one more try.
        let renewed = vec!["Digest realm=\"cam\", nonce=\"n2\"".to_owned()];
        assert_eq!(auth.on_challenge(&renewed, true), Challenge::Retry);
        let stale = vec!["Digest realm=\"cam\", nonce=\"n2\", stale=true".to_owned()];
        assert_eq!(auth.on_challenge(&stale, true), Challenge::Retry);
        auth.reset();
        assert_eq!(auth.authorization(&creds(), "/onvif", b""), None);
    }

    #[test]
    fn basic_and_unusable_challenges() {
        let mut auth = HttpAuth::default();
        let basic = vec!["Basic realm=\"cam\"".to_owned()];
        assert_eq!(auth.on_challenge(&basic, false), Challenge::Retry);
        let a = auth.authorization(&creds(), "/", b"").unwrap();
        assert_eq!(a, "Basic YWRtaW46czNjcmV0");
        assert_eq!(auth.on_challenge(&basic, true), Challenge::Rejected);
        for bad in [
            vec![],
            vec!["Negotiate".to_owned()],
            vec!["Digest ,,,=\"".to_owned()],
        ] {
            assert_eq!(
                HttpAuth::default().on_challenge(&bad, false),
                Challenge::Unusable
            );
        }
    }
}
