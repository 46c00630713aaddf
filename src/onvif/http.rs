//! HTTP/1.1 transport of SOAP requests (SOAP 1.2 HTTP binding over RFC 9112)
//! on hyper's client connection: one connection per exchange, a deadline
//! and bounded response sizes, since a camera is untrusted.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper::header::{self, HeaderValue};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

use super::{OnvifError, Operation, MAX_RESPONSE, REQUEST_TIMEOUT};

/// Largest response head (status line and headers) accepted.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// A complete HTTP response.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Every `WWW-Authenticate` value, to answer or name what a 401 asks for.
    pub challenges: Vec<String>,
    /// Body, de-chunked, at most [`MAX_RESPONSE`] bytes.
    pub body: Vec<u8>,
}

/// How an exchange failed, before the operation and target are attached.
enum Fail {
    /// The socket failed.
    Io(std::io::Error),
    /// More than [`MAX_RESPONSE`] body or [`MAX_HEAD`] head bytes.
    TooLarge,
    /// Not parsable HTTP/1.x.
    Bad(&'static str),
}

impl From<hyper::Error> for Fail {
    fn from(e: hyper::Error) -> Self {
        if e.is_parse_too_large() {
            Fail::TooLarge
        } else if e.is_parse() || e.is_parse_status() {
            Fail::Bad("unparsable status line or headers")
        } else {
            let io = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .map(|io| std::io::Error::new(io.kind(), io.to_string()));
            match io {
                // A body cut short by the peer closing, as hyper reports it.
                Some(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Fail::Bad("connection closed before the response was complete")
                }
                _ if e.is_incomplete_message() => {
                    Fail::Bad("connection closed before the response was complete")
                }
                Some(io) => Fail::Io(io),
                None => Fail::Io(std::io::Error::other(e.to_string())),
            }
        }
    }
}

/// POSTs a SOAP envelope, with `authorization` as the `Authorization`
/// header if any, and reads the whole response within [`REQUEST_TIMEOUT`].
pub(crate) async fn post(
    op: Operation,
    url: &Url,
    envelope: &str,
    authorization: Option<&str>,
) -> Result<HttpResponse, OnvifError> {
    if url.scheme() != "http" {
        return Err(OnvifError::UnsupportedScheme {
            url: url.to_string(),
            scheme: url.scheme().to_owned(),
        });
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => {
            return Err(OnvifError::NoHost {
                url: url.to_string(),
            })
        }
    };
    let port = url.port_or_known_default().unwrap_or(80);
    let target = url.to_string();
    let request = request(op, url, envelope, authorization).map_err(|e| OnvifError::Io {
        operation: op,
        target: target.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
    })?;
    let exchange = async {
        let stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(Fail::Io)?;
        let (mut sender, conn) = http1::Builder::new()
            .max_buf_size(MAX_HEAD)
            .handshake(TokioIo::new(stream))
            .await?;
        let work = async move {
            let response = sender.send_request(request).await?;
            read(response).await
        };
        // The connection is driven here, not spawned: it ends with this
        // future, so a deadline leaves nothing behind. When it ends first,
        // `work` still gets the outcome (or the error) through hyper.
        tokio::pin!(conn, work);
        let mut conn_done = false;
        loop {
            tokio::select! {
                r = &mut work => return r,
                _ = &mut conn, if !conn_done => conn_done = true,
            }
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Ok(r)) => Ok(r),
        Err(_) => Err(OnvifError::Timeout {
            operation: op,
            target,
            timeout: REQUEST_TIMEOUT,
        }),
        Ok(Err(Fail::Io(source))) => Err(OnvifError::Io {
            operation: op,
            target,
            source,
        }),
        Ok(Err(Fail::TooLarge)) => Err(OnvifError::ResponseTooLarge {
            operation: op,
            target,
            limit: MAX_RESPONSE,
        }),
        Ok(Err(Fail::Bad(reason))) => Err(OnvifError::BadHttp {
            operation: op,
            target,
            reason,
        }),
    }
}

/// The POST of `envelope` to `url`, closing the connection afterwards.
fn request(
    op: Operation,
    url: &Url,
    envelope: &str,
    authorization: Option<&str>,
) -> Result<Request<Full<Bytes>>, hyper::http::Error> {
    let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let content_type = format!(
        "application/soap+xml; charset=utf-8; action=\"{}/{}\"",
        op.namespace(),
        op.name()
    );
    let mut builder = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONNECTION, "close")
        .header(
            header::USER_AGENT,
            concat!("camgate/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(a) = authorization {
        let mut value = HeaderValue::from_str(a)?;
        value.set_sensitive(true);
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder.body(Full::new(Bytes::copy_from_slice(envelope.as_bytes())))
}

/// The status, challenges and whole body of `response`, bounded.
async fn read(response: hyper::Response<hyper::body::Incoming>) -> Result<HttpResponse, Fail> {
    let status = response.status().as_u16();
    let challenges = response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let declared = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_RESPONSE as u64) {
        return Err(Fail::TooLarge);
    }
    let mut body = response.into_body();
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if buf.len() + data.len() > MAX_RESPONSE {
                return Err(Fail::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(HttpResponse {
        status,
        challenges,
        body: buf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Answers one request with `answer`, written in pieces of `piece`
    /// bytes, then closes; returns the request as received.
    async fn serve_once(
        answer: &'static [u8],
        piece: usize,
    ) -> (Url, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!(
            "http://{}/onvif/device_service?camera=a",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Head, then the body by its Content-Length.
            while !String::from_utf8_lossy(&req).contains("</s:Envelope>") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            for chunk in answer.chunks(piece) {
                let _ = s.write_all(chunk).await;
                let _ = s.flush().await;
                tokio::task::yield_now().await;
            }
            String::from_utf8_lossy(&req).into_owned()
        });
        (url, task)
    }

    async fn post_to(
        answer: &'static [u8],
        piece: usize,
    ) -> (Result<HttpResponse, OnvifError>, String) {
        let (url, task) = serve_once(answer, piece).await;
        let r = post(
            Operation::GetProfiles,
            &url,
            "<s:Envelope/></s:Envelope>",
            Some("Digest username=\"u\""),
        )
        .await;
        (r, task.await.unwrap())
    }

    #[tokio::test]
    async fn sends_a_soap_post_and_reads_length_chunks_and_eof() {
        let (r, req) = post_to(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n<e/>", 3).await;
        let r = r.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"<e/>".as_slice()));
        let head = req.to_ascii_lowercase();
        assert!(
            req.starts_with("POST /onvif/device_service?camera=a HTTP/1.1\r\n"),
            "{req}"
        );
        assert!(
            head.contains("\r\nauthorization: digest username=\"u\"\r\n"),
            "{req}"
        );
        assert!(
            head.contains("action=\"http://www.onvif.org/ver10/media/wsdl/getprofiles\""),
            "{req}"
        );
        assert!(head.contains("\r\nconnection: close\r\n"), "{req}");

        let chunked = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\n\
                        WWW-Authenticate: Basic realm=\"a\"\r\nWWW-Authenticate: Digest realm=\"b\", nonce=\"n\"\r\n\
                        Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\n<e/\r\n1\r\n>\r\n0\r\n\r\n";
        let r = post_to(chunked, 5).await.0.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (401, b"<e/>".as_slice()));
        assert_eq!(
            r.challenges,
            ["Basic realm=\"a\"", "Digest realm=\"b\", nonce=\"n\""]
        );

        let until_eof = b"HTTP/1.0 500 Internal Server Error\r\n\r\n<e/>";
        let r = post_to(until_eof, 2).await.0.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (500, b"<e/>".as_slice()));
    }

    #[tokio::test]
    async fn bad_or_oversized_answers_are_errors() {
        let (r, _) = post_to(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", 100).await;
        assert!(
            matches!(r, Err(OnvifError::ResponseTooLarge { .. })),
            "{r:?}"
        );
        let (r, _) = post_to(b"RTSP/1.0 200 OK\r\n\r\n", 100).await;
        assert!(matches!(r, Err(OnvifError::BadHttp { .. })), "{r:?}");
        let (r, _) = post_to(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 100).await;
        assert!(matches!(r, Err(OnvifError::BadHttp { .. })), "{r:?}");
        let (r, _) = post_to(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            100,
        )
        .await;
        assert!(r.is_err(), "{r:?}");
        let long_header: &'static [u8] = Box::leak(
            format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD))
                .into_bytes()
                .into_boxed_slice(),
        );
        let (r, _) = post_to(long_header, 4096).await;
        assert!(
            matches!(r, Err(OnvifError::ResponseTooLarge { .. })),
            "{r:?}"
        );
    }
}
