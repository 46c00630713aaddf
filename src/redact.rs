//! The one place that removes credentials from URLs before they are logged,
//! stored in state, or shown anywhere.

/// Returns `url` with any `user:password@` userinfo replaced by `***@`.
///
/// Works on strings that are not valid URLs too (it never fails), so it can
/// be applied to anything that might contain a URL, such as an error text
/// or an SDP. A password typed into a URL without percent-encoding may hold
/// `/`, `?`, `#`, `:` or `@`, which would end a URL's authority early: so the
/// userinfo is taken to run to the last `@` before the next whitespace,
/// quote or angle bracket. That may hide a host followed by an `@` in a
/// path too; hiding too much is the safe side.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        out.push_str(head);
        let token_end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
            .unwrap_or(tail.len());
        match tail[..token_end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => {
                out.push_str(&tail[..token_end]);
                rest = &tail[token_end..];
            }
        }
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
        // Not percent-encoded: '/', '?', '#' and ':' in the password.
        assert_eq!(redact_url("rtsp://u:pa/s?s#x:y@h/a"), "rtsp://***@h/a");
        assert_eq!(
            redact_url("a=control:rtsp://u:p/w@h/t1\r\na=x\r\n"),
            "a=control:rtsp://***@h/t1\r\na=x\r\n"
        );
        // A password holding a scheme separator.
        assert_eq!(redact_url("rtsp://u:a://b@h/"), "rtsp://***@h/");
        assert_eq!(redact_url("\"rtsp://u:p@h/\""), "\"rtsp://***@h/\"");
        assert_eq!(redact_url("no url here"), "no url here");
    }
}
