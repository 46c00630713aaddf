//! RTSP authentication (RFC 2326 section 16 with RFC 7617 Basic and RFC
//! 7616 / RFC 2069 Digest): answers `WWW-Authenticate` challenges.

use crate::credentials::Credentials;
use http_auth::{PasswordClient, PasswordParams};

use super::message::Headers;

/// Why a challenge cannot be answered.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The camera asks for credentials and none are configured.
    #[error("the camera requires credentials and none are configured")]
    NoCredentials,
    /// No `WWW-Authenticate` challenge with a usable scheme.
    #[error("unusable WWW-Authenticate challenge: {0}")]
    BadChallenge(String),
    /// The camera rejected the answer to its current challenge.
    #[error("credentials rejected")]
    Rejected,
    /// The challenge asks for something the Digest client cannot do.
    #[error("cannot answer the challenge: {0}")]
    CannotRespond(String),
}

/// The credentials and the challenge currently answered.
#[derive(Debug)]
pub struct Authenticator {
    /// User name and password, if configured.
    credentials: Option<Credentials>,
    /// The accepted challenge; kept so every later request carries an
    /// answer (Digest with an increasing nonce count).
    client: Option<PasswordClient>,
}

impl Authenticator {
    /// An authenticator that has seen no challenge yet.
    pub fn new(credentials: Option<Credentials>) -> Self {
        Authenticator {
            credentials,
            client: None,
        }
    }

    /// True once a challenge was accepted.
    pub fn is_active(&self) -> bool {
        self.client.is_some()
    }

    /// Takes the challenges of a 401 answer. `answered` says whether the
    /// refused request carried an `Authorization`: then only a fresh Digest
    /// challenge (`stale=true` or a new nonce, RFC 7616 section 3.3) is
    /// accepted, anything else means the credentials are wrong. Digest is
    /// preferred over Basic when both are offered.
    pub fn on_challenge(&mut self, headers: &Headers, answered: bool) -> Result<(), AuthError> {
        if self.credentials.is_none() {
            return Err(AuthError::NoCredentials);
        }
        let mut builder = PasswordClient::builder();
        for value in headers.get_all("WWW-Authenticate") {
            builder = builder.challenges(value);
        }
        let new = builder.build().map_err(AuthError::BadChallenge)?;
        if answered {
            let fresh = match (&self.client, &new) {
                (Some(PasswordClient::Digest(old)), PasswordClient::Digest(d)) => {
                    d.stale() || d.nonce() != old.nonce()
                }
                // A scheme change (Basic to Digest) is a new challenge too.
                (Some(PasswordClient::Basic(_)), PasswordClient::Digest(_)) => true,
                _ => false,
            };
            if !fresh {
                return Err(AuthError::Rejected);
            }
        }
        self.client = Some(new);
        Ok(())
    }

    /// The `Authorization` value for a request, if a challenge was accepted.
    pub fn authorization(&mut self, method: &str, uri: &str) -> Result<Option<String>, AuthError> {
        let (Some(client), Some(credentials)) = (self.client.as_mut(), self.credentials.as_ref())
        else {
            return Ok(None);
        };
        let params = PasswordParams {
            username: &credentials.username,
            password: credentials.password.expose(),
            uri,
            method,
            body: None,
        };
        client
            .respond(&params)
            .map(Some)
            .map_err(AuthError::CannotRespond)
    }
}
