//! Server side of RTSP authentication for the sim (RFC 2326 section 14,
//! using HTTP Digest per RFC 2617 and Basic per RFC 7617).

use crate::credentials::Secret;
use crate::rtsp::digest::{digest_challenge, new_nonce, Authorization};

/// Realm of the sim's Digest challenge.
pub(crate) const REALM: &str = "camgate-sim";

/// Checks `Authorization` headers against one user name and password.
#[derive(Clone, Debug)]
pub(crate) struct Authenticator {
    /// Expected user name.
    user: String,
    /// Expected password.
    password: Secret,
    /// The server's nonce; one per server is enough for a loopback sim.
    nonce: String,
}

impl Authenticator {
    /// A checker for `user`/`password` with a fresh random nonce.
    pub(crate) fn new(user: String, password: Secret) -> Self {
        Authenticator {
            user,
            password,
            nonce: new_nonce(),
        }
    }

    /// The `WWW-Authenticate` value of a 401 answer.
    pub(crate) fn challenge(&self) -> String {
        digest_challenge(REALM, &self.nonce)
    }

    /// True when `header` (an `Authorization` value) carries the right
    /// credentials for `method`. Never panics on any input.
    pub(crate) fn check(&self, method: &str, header: Option<&str>) -> bool {
        match header.and_then(Authorization::parse) {
            Some(Authorization::Basic { user, password }) => {
                let expected = format!("{}:{}", self.user, self.password.expose());
                crate::rtsp::digest::constant_time_eq(
                    format!("{user}:{password}").as_bytes(),
                    expected.as_bytes(),
                )
            }
            Some(Authorization::Digest(d)) => {
                d.username == self.user
                    && d.verify(method, REALM, &self.nonce, self.password.expose())
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::digest::md5_hex;

    fn auth() -> Authenticator {
        Authenticator {
            user: "admin".into(),
            password: Secret::new("s3cret"),
            nonce: "abc123".into(),
        }
    }

    #[test]
    fn digest_without_qop() {
        let a = auth();
        let ha1 = md5_hex("admin:camgate-sim:s3cret");
        let ha2 = md5_hex("DESCRIBE:rtsp://127.0.0.1:554/cam");
        let resp = md5_hex(&format!("{ha1}:abc123:{ha2}"));
        let h = format!(
            "Digest username=\"admin\", realm=\"camgate-sim\", nonce=\"abc123\", \
             uri=\"rtsp://127.0.0.1:554/cam\", response=\"{resp}\""
        );
        assert!(a.check("DESCRIBE", Some(&h)));
        assert!(!a.check("SETUP", Some(&h)));
        assert!(!a.check("DESCRIBE", Some(&h.replace("admin", "root"))));
    }

    #[test]
    fn digest_with_qop_auth() {
        let a = auth();
        let ha1 = md5_hex("admin:camgate-sim:s3cret");
        let ha2 = md5_hex("PLAY:rtsp://h/cam/");
        let resp = md5_hex(&format!("{ha1}:abc123:00000001:xyz:auth:{ha2}"));
        let h = format!(
            "Digest username=\"admin\",realm=\"camgate-sim\",nonce=\"abc123\",uri=\"rtsp://h/cam/\",\
             qop=auth,nc=00000001,cnonce=\"xyz\",response=\"{resp}\",algorithm=MD5"
        );
        assert!(a.check("PLAY", Some(&h)));
    }

    #[test]
    fn basic_and_garbage() {
        let a = auth();
        assert!(a.check("PLAY", Some("Basic YWRtaW46czNjcmV0")));
        assert!(!a.check("PLAY", Some("Basic YWRtaW46d3Jvbmc=")));
        for junk in [
            "",
            "Digest",
            "Digest ,,,=\"",
            "Basic !!",
            "Bearer x",
            "Digest a=\"\\",
        ] {
            assert!(!a.check("PLAY", Some(junk)), "{junk}");
        }
        assert!(!a.check("PLAY", None));
    }
}
