//! A camera's URL and credentials in `cameras.toml`: the URL's userinfo
//! taken out and percent-decoded, `username` / `password` /
//! `password_env` / `credentials_file` combined, each mistake named with
//! its line and field, and no message ever quoting a password.

use toml::Spanned;
use url::Url;

use super::raw::RawCamera;
use super::validate::{EnvLookup, Source};
use super::ConfigError;
use crate::credentials::Credentials;

/// Parses the camera URL and takes its credentials out of it. Returns the
/// URL without credentials and the percent-decoded credentials, if any.
pub(super) fn camera_url(
    value: &Spanned<String>,
    who: &str,
    src: &Source<'_>,
) -> Result<(Url, Option<Credentials>), ConfigError> {
    let err = |what: &str| src.field(value, who, "url", what);
    // url's messages never quote the input, which may hold a password.
    let mut url = Url::parse(value.get_ref()).map_err(|e| {
        err(&format!(
            "not a valid URL ({e}); expected rtsp://host[:port]/path, rtsps://host[:port]/path or sim://NAME"
        ))
    })?;
    match url.scheme() {
        "rtsp" => {
            if url.host_str().is_none_or(|h| h.is_empty()) {
                return Err(err("rtsp:// URL has no host"));
            }
        }
        "sim" => {
            if url.host_str().is_none_or(|h| h.is_empty()) {
                return Err(err("sim:// URL has no simulator name (write sim://NAME)"));
            }
        }
        "rtsps" => {
            if url.host_str().is_none_or(|h| h.is_empty()) {
                return Err(err("rtsps:// URL has no host"));
            }
        }
        other => {
            return Err(err(&format!(
                "scheme {other:?} is not supported (use rtsp://, rtsps:// or sim://)"
            )))
        }
    }

    let username = url.username();
    let password = url.password();
    if username.is_empty() && password.is_none() {
        return Ok((url, None));
    }
    let username = percent_decode(username)
        .ok_or_else(|| err("the user name is not UTF-8 after percent-decoding"))?;
    let password = password
        .map(|p| {
            percent_decode(p).ok_or_else(|| err("the password is not UTF-8 after percent-decoding"))
        })
        .transpose()?
        .unwrap_or_default();
    if username.is_empty() {
        return Err(err("has a password but no user name"));
    }
    if let Some(problem) = username_problem(&username) {
        return Err(err(&format!("the user name {problem}")));
    }
    // Both calls only fail for URLs without a host, excluded above.
    let removed = url.set_password(None).and_then(|()| url.set_username(""));
    if removed.is_err() {
        return Err(err("cannot remove the credentials from this URL"));
    }
    Ok((url, Some(Credentials::new(username, password))))
}

/// Combines URL credentials with `username`, `password`, `password_env`
/// and `credentials_file`.
pub(super) fn credentials(
    cam: &RawCamera,
    from_url: Option<Credentials>,
    who: &str,
    src: &Source<'_>,
    env: EnvLookup<'_>,
) -> Result<Option<Credentials>, ConfigError> {
    if let Some(file) = &cam.credentials_file {
        let field = |what: &str| src.field(file, who, "credentials_file", what);
        if from_url.is_some() {
            return Err(field(
                "is set and the url has credentials too; give them in one place",
            ));
        }
        if cam.username.is_some() || cam.password.is_some() || cam.password_env.is_some() {
            return Err(field(
                "excludes `username`, `password` and `password_env` (the file holds username:password)",
            ));
        }
        if file.get_ref().is_empty() {
            return Err(field("is empty"));
        }
        let path = super::credentials::resolve(file.get_ref(), src.file);
        let (user, password) = super::credentials::read(&path).map_err(|e| field(&e))?;
        if let Some(problem) = username_problem(&user) {
            return Err(field(&format!("the user name {problem}")));
        }
        return Ok(Some(Credentials::new(user, password)));
    }
    if from_url.is_some() {
        if cam.username.is_some() || cam.password.is_some() || cam.password_env.is_some() {
            return Err(src.field(
                &cam.url,
                who,
                "url",
                "has credentials, and `username`/`password`/`password_env` are set too; give them in one place",
            ));
        }
        return Ok(from_url);
    }
    if let (Some(_), Some(env_name)) = (&cam.password, &cam.password_env) {
        return Err(src.invalid(
            env_name.span().start,
            format!("{who}`password` and `password_env` are both set; use one"),
        ));
    }
    let Some(username) = &cam.username else {
        if let Some(p) = &cam.password {
            return Err(src.field(p, who, "password", "needs `username`"));
        }
        if let Some(p) = &cam.password_env {
            return Err(src.field(p, who, "password_env", "needs `username`"));
        }
        return Ok(None);
    };
    if username.get_ref().is_empty() {
        return Err(src.field(username, who, "username", "is empty"));
    }
    if let Some(problem) = username_problem(username.get_ref()) {
        return Err(src.field(username, who, "username", problem));
    }
    let password = match (&cam.password, &cam.password_env) {
        (Some(p), _) => p.get_ref().clone(),
        (None, Some(name)) => password_from_env(name, who, src, env)?,
        (None, None) => String::new(),
    };
    Ok(Some(Credentials::new(username.get_ref().clone(), password)))
}

/// Why a (non-empty) user name cannot be sent, if it cannot.
fn username_problem(username: &str) -> Option<&'static str> {
    if username.chars().any(char::is_control) {
        // A CR/LF would end the RTSP header line it is sent in.
        Some("contains a control character")
    } else if username.contains(':') {
        Some("contains ':', which HTTP Basic authentication cannot carry")
    } else {
        None
    }
}

/// Reads `password_env`. Messages name the variable, never its value.
fn password_from_env(
    name: &Spanned<String>,
    who: &str,
    src: &Source<'_>,
    env: EnvLookup<'_>,
) -> Result<String, ConfigError> {
    let n = name.get_ref();
    let err = |what: String| src.field(name, who, "password_env", &what);
    if n.is_empty() || n.contains(['=', '\0']) {
        return Err(err(format!(
            "{n:?} is not a valid environment variable name"
        )));
    }
    let value = env(n).ok_or_else(|| err(format!("environment variable {n} is not set")))?;
    let value = value
        .into_string()
        .map_err(|_| err(format!("environment variable {n} is not valid UTF-8")))?;
    if value.is_empty() {
        return Err(err(format!(
            "environment variable {n} is set but empty (for a blank password write password = \"\")"
        )));
    }
    Ok(value)
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it
/// is. `None` when the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}
