//! RTSP 1.0 messages (RFC 2326 sections 6 and 7): the parsed view of a
//! request or response, tolerant of `\n` line ends and stray spaces.

use bytes::Bytes;

/// Header fields in arrival order; names compare case-insensitively.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// The first value of header `name` (case-insensitive), trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in arrival order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All `(name, value)` pairs in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Appends a header.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// `CSeq` as a number, tolerating surrounding spaces (longse sends
    /// `CSeq: 1 `).
    pub fn cseq(&self) -> Option<u32> {
        self.get("CSeq")?.trim().parse().ok()
    }

    /// `Content-Length`: `Ok(None)` when absent, `Err(value)` when unparseable.
    pub(crate) fn content_length(&self) -> Result<Option<usize>, String> {
        match self.get("Content-Length") {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| v.to_string()),
        }
    }
}

/// A response from the camera.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code (`200`, `401`, ...).
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: String,
    /// Header fields.
    pub headers: Headers,
    /// Body (`Content-Length` bytes), sharing the connection buffer.
    pub body: Bytes,
}

/// A request the camera sent to us (RFC 2326 allows server-to-client
/// OPTIONS, GET_PARAMETER, SET_PARAMETER, ANNOUNCE, REDIRECT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Method token, as sent.
    pub method: String,
    /// Request-URI, as sent.
    pub uri: String,
    /// Header fields.
    pub headers: Headers,
    /// Body (`Content-Length` bytes), sharing the connection buffer.
    pub body: Bytes,
}

/// The first line of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StartLine {
    Response { status: u16, reason: String },
    Request { method: String, uri: String },
}

/// Parses a header section (start line up to and including the empty line).
/// Returns the start line or the offending line on error.
pub(crate) fn parse_head(head: &[u8]) -> Result<(StartLine, Headers), String> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or_default();
    let start = parse_start_line(first).ok_or_else(|| first.to_string())?;
    let mut headers = Headers::default();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding (RFC 2616 section 2.2): continues the
            // previous value.
            if let Some((_, v)) = headers.0.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        // A line without a colon is ignored rather than failing the whole
        // message: it carries nothing we could use.
        if let Some((name, value)) = line.split_once(':') {
            headers.push(name.trim(), value.trim());
        }
    }
    Ok((start, headers))
}

fn parse_start_line(line: &str) -> Option<StartLine> {
    let line = line.trim();
    if line.starts_with("RTSP/") {
        let mut parts = line.splitn(3, ' ');
        let _version = parts.next()?;
        let status = parts.next()?.trim();
        // Three digits, the first 1-9 (RFC 2326 section 7.1.1); `parse`
        // alone would take "+12" or "007".
        if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let status: u16 = status.parse().ok().filter(|s| *s >= 100)?;
        let reason = parts.next().unwrap_or("").trim().to_string();
        return Some(StartLine::Response { status, reason });
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?;
    let uri = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with("RTSP/") || parts.next().is_some() {
        return None;
    }
    Some(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_response_head_with_odd_spacing() {
        let (start, h) = parse_head(
            b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1 \r\nSession:        7;timeout=60\n\n",
        )
        .unwrap();
        assert_eq!(
            start,
            StartLine::Response {
                status: 401,
                reason: "Unauthorized".into()
            }
        );
        assert_eq!(h.cseq(), Some(1));
        assert_eq!(h.get("session"), Some("7;timeout=60"));
    }

    #[test]
    fn parses_request_head_and_folding() {
        let (start, h) =
            parse_head(b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\nX-A: a\r\n b\r\n\r\n").unwrap();
        assert_eq!(
            start,
            StartLine::Request {
                method: "OPTIONS".into(),
                uri: "*".into()
            }
        );
        assert_eq!(h.get("x-a"), Some("a b"));
        assert!(parse_head(b"RTSP/1.0 2000 OK\r\n\r\n").is_err());
        // Found by the rtsp_framer fuzz target: no status below 100, no sign.
        assert!(parse_head(b"RTSP/1.0 012 OK\r\n\r\n").is_err());
        assert!(parse_head(b"RTSP/1.0 +20 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HELLO\r\n\r\n").is_err());
    }
}
