//! The server side of RTSP authentication (RFC 2326 section 14): reading an
//! `Authorization` header as Basic (RFC 7617) or Digest (RFC 2617 / RFC
//! 7616 with MD5, the only algorithm RTSP clients send), checking a Digest
//! answer against a known password, and writing the challenge. Sans-IO and
//! tolerant of any input: used by the simulator and the RTSP server.

use base64::Engine as _;
use md5::{Digest as _, Md5};

/// An `Authorization` header, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization {
    /// `Basic base64(user:password)`.
    Basic {
        /// The user name.
        user: String,
        /// The password as sent.
        password: String,
    },
    /// `Digest username=..., response=...`.
    Digest(DigestAnswer),
}

/// The fields of a Digest answer that the check needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestAnswer {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`, as the server sent it.
    pub nonce: String,
    /// `uri`, as the client hashed it.
    pub uri: String,
    /// `response`: the hex MD5 the client computed.
    pub response: String,
    /// `qop`, when the client used one.
    pub qop: Option<String>,
    /// `nc` (with `qop`).
    pub nc: Option<String>,
    /// `cnonce` (with `qop`).
    pub cnonce: Option<String>,
    /// `algorithm`, when given.
    pub algorithm: Option<String>,
}

impl Authorization {
    /// Parses an `Authorization` value; `None` for a scheme other than
    /// Basic or Digest, or a malformed one.
    pub fn parse(value: &str) -> Option<Authorization> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (user, password) = text.split_once(':')?;
            return Some(Authorization::Basic {
                user: user.to_owned(),
                password: password.to_owned(),
            });
        }
        if !scheme.eq_ignore_ascii_case("digest") {
            return None;
        }
        let params = parse_params(rest);
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        Some(Authorization::Digest(DigestAnswer {
            username: get("username")?,
            realm: get("realm")?,
            nonce: get("nonce")?,
            uri: get("uri")?,
            response: get("response")?,
            qop: get("qop"),
            nc: get("nc"),
            cnonce: get("cnonce"),
            algorithm: get("algorithm"),
        }))
    }
}

impl DigestAnswer {
    /// Whether the answer proves knowledge of `password` for `method`, in
    /// `realm`, to the challenge `nonce`. Compares in constant time.
    pub fn verify(&self, method: &str, realm: &str, nonce: &str, password: &str) -> bool {
        if self.realm != realm || self.nonce != nonce {
            return false;
        }
        if self
            .algorithm
            .as_deref()
            .is_some_and(|a| !a.eq_ignore_ascii_case("md5"))
        {
            return false;
        }
        let ha1 = md5_hex(&format!("{}:{realm}:{password}", self.username));
        let ha2 = md5_hex(&format!("{method}:{}", self.uri));
        let expected = match self.qop.as_deref() {
            None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
            Some(qop) if qop.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (&self.nc, &self.cnonce) else {
                    return false;
                };
                md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
            }
            Some(_) => return false,
        };
        constant_time_eq(
            expected.as_bytes(),
            self.response.to_ascii_lowercase().as_bytes(),
        )
    }
}

/// The `WWW-Authenticate` value of a Digest challenge.
pub fn digest_challenge(realm: &str, nonce: &str) -> String {
    format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5")
}

/// A fresh random nonce (128 bits, hex).
pub fn new_nonce() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Lower-case hex MD5 of `s`.
pub(crate) fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Equality that does not stop at the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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

    fn digest(h: &str) -> DigestAnswer {
        match Authorization::parse(h) {
            Some(Authorization::Digest(d)) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn digest_without_qop() {
        let ha1 = md5_hex("admin:camgate-sim:s3cret");
        let ha2 = md5_hex("DESCRIBE:rtsp://127.0.0.1:554/cam");
        let resp = md5_hex(&format!("{ha1}:abc123:{ha2}"));
        let h = format!(
            "Digest username=\"admin\", realm=\"camgate-sim\", nonce=\"abc123\", \
             uri=\"rtsp://127.0.0.1:554/cam\", response=\"{resp}\""
        );
        let d = digest(&h);
        assert!(d.verify("DESCRIBE", "camgate-sim", "abc123", "s3cret"));
        assert!(!d.verify("SETUP", "camgate-sim", "abc123", "s3cret"));
        assert!(!d.verify("DESCRIBE", "camgate-sim", "abc123", "wrong"));
        assert!(!d.verify("DESCRIBE", "camgate-sim", "other-nonce", "s3cret"));
        assert!(!d.verify("DESCRIBE", "camgate", "abc123", "s3cret"));
    }

    #[test]
    fn digest_with_qop_auth() {
        let ha1 = md5_hex("admin:camgate-sim:s3cret");
        let ha2 = md5_hex("PLAY:rtsp://h/cam/");
        let resp = md5_hex(&format!("{ha1}:abc123:00000001:xyz:auth:{ha2}"));
        let h = format!(
            "Digest username=\"admin\",realm=\"camgate-sim\",nonce=\"abc123\",uri=\"rtsp://h/cam/\",\
             qop=auth,nc=00000001,cnonce=\"xyz\",response=\"{resp}\",algorithm=MD5"
        );
        assert!(digest(&h).verify("PLAY", "camgate-sim", "abc123", "s3cret"));
    }

    #[test]
    fn basic_and_garbage() {
        assert_eq!(
            Authorization::parse("Basic YWRtaW46czNjcmV0"),
            Some(Authorization::Basic {
                user: "admin".into(),
                password: "s3cret".into()
            })
        );
        for junk in [
            "",
            "Digest",
            "Digest ,,,=\"",
            "Basic !!",
            "Bearer x",
            "Digest a=\"\\",
        ] {
            assert!(Authorization::parse(junk).is_none(), "{junk}");
        }
    }
}
