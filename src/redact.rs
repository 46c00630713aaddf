//! The one place that removes credentials from URLs before they are logged,
//! stored in state, or shown anywhere.

/// Returns `url` with any `user:password@` userinfo replaced by `***@`.
///
/// Works on strings that are not valid URLs too (it never fails), so it can
/// be applied to anything that might contain a URL, such as an error text.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let auth_end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..auth_end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[auth_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn removes_userinfo() {
        assert_eq!(
            redact_url("rtsp://admin:s3cret@192.0.2.10:554/Streaming/Channels/101"),
            "rtsp://***@192.0.2.10:554/Streaming/Channels/101"
        );
        assert_eq!(redact_url("rtsp://cam/x"), "rtsp://cam/x");
        assert_eq!(
            redact_url("failed rtsp://u:p@h/a and sim://a:b@lobby"),
            "failed rtsp://***@h/a and sim://***@lobby"
        );
        // A password containing '@' is removed whole.
        assert_eq!(redact_url("rtsp://u:p@ss@h/"), "rtsp://***@h/");
    }
}
