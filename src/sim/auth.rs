//! Server side of RTSP authentication for the sim (RFC 2326 section 14,
//! using HTTP Digest per RFC 2617 and Basic per RFC 7617).

use base64::Engine as _;
use md5::{Digest as _, Md5};

/// Realm of the sim's Digest challenge.
pub(crate) const REALM: &str = "camgate-sim";

/// Checks `Authorization` headers against one user name and password.
/// `Debug` shows the password as `***`.
#[derive(Clone)]
pub(crate) struct Authenticator {
    /// Expected user name.
    user: String,
    /// Expected password.
    password: String,
    /// The server's nonce; one per server is enough for a loopback sim.
    nonce: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("user", &self.user)
            .field("password", &"***")
            .field("nonce", &self.nonce)
            .finish()
    }
}

impl Authenticator {
    /// A checker for `user`/`password` with a fresh random nonce.
    pub(crate) fn new(user: String, password: String) -> Self {
        let nonce = format!("{:032x}", rand::random::<u128>());
        Authenticator {
            user,
            password,
            nonce,
        }
    }

    /// The `WWW-Authenticate` value of a 401 answer.
    pub(crate) fn challenge(&self) -> String {
        format!(
            "Digest realm=\"{REALM}\", nonce=\"{}\", algorithm=MD5",
            self.nonce
        )
    }

    /// True when `header` (an `Authorization` value) carries the right
    /// credentials for `method`. Never panics on any input.
    pub(crate) fn check(&self, method: &str, header: Option<&str>) -> bool {
        let Some(header) = header.map(str::trim) else {
            return false;
        };
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            self.check_basic(rest.trim())
        } else if scheme.eq_ignore_ascii_case("digest") {
            self.check_digest(method, rest)
        } else {
            false
        }
    }

    fn check_basic(&self, token: &str) -> bool {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token) else {
            return false;
        };
        let expected = format!("{}:{}", self.user, self.password);
        constant_time_eq(&decoded, expected.as_bytes())
    }

    fn check_digest(&self, method: &str, params: &str) -> bool {
        let params = parse_params(params);
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let (Some(user), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            get("username"),
            get("realm"),
            get("nonce"),
            get("uri"),
            get("response"),
        ) else {
            return false;
        };
        if user != self.user || realm != REALM || nonce != self.nonce {
            return false;
        }
        if get("algorithm").is_some_and(|a| !a.eq_ignore_ascii_case("md5")) {
            return false;
        }
        let ha1 = md5_hex(&format!("{user}:{REALM}:{}", self.password));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let expected = match get("qop") {
            None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
            Some(qop) if qop.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (get("nc"), get("cnonce")) else {
                    return false;
                };
                md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
            }
            Some(_) => return false,
        };
        constant_time_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        )
    }
}

/// Lower-case hex MD5 of `s`.
fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Equality that does not stop at the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses `k=v, k="quoted, v"` auth parameters; tolerant of any input.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator {
            user: "admin".into(),
            password: "s3cret".into(),
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
