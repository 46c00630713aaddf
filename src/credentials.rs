//! Secrets as values whose `Debug` never shows them: a camera's user name
//! and password (RTSP, ONVIF, the simulator), bearer tokens, TURN
//! credentials. Every struct that holds one can derive `Debug` safely.

use std::fmt;

/// A secret string. `Debug` prints `"***"`; the value is read with
/// [`Secret::expose`], which names every place a secret leaves memory.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, to put on the wire or compare.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// A user name and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user name, sent in clear in Basic auth and Digest's `username`.
    pub username: String,
    /// The password; never logged, never shown.
    pub password: Secret,
}

impl Credentials {
    /// Credentials from a user name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: Secret::new(password),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Credentials, Secret};

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::new("admin", "s3cret");
        let shown = format!("{:?} {c:?} {c:#?}", Some(&c));
        assert!(shown.contains("admin"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(format!("{:?}", Secret::new("x")), "\"***\"");
        assert_eq!(c.password.expose(), "s3cret");
    }
}
